//! `Report::diff` of two known reports gives the exact growth and shrinkage
//! per scope (matched by path) and per site.

use scope_alloc_tracker::report::{Report, ScopeReport, SiteReport, SiteSource};

fn scope(id: u16, path: &str, live: u64, allocs: u64, total_bytes: u64, total: u64) -> ScopeReport {
    let mut s = ScopeReport::new(id, path, None);
    s.own.live_bytes = live;
    s.own.live_allocs = allocs;
    s.own.total_bytes = total_bytes;
    s.own.total_allocs = total;
    s.own.total_frees = total - allocs;
    s.with_children = s.own;
    s
}

fn before() -> Report {
    let mut r = Report::default();
    r.timestamp_unix_ms = 1_000;
    r.scopes = vec![
        scope(3, "cache", 1_000, 2, 5_000, 10),
        scope(4, "wal", 4_000, 4, 4_000, 4),
        scope(5, "gone", 300, 1, 300, 1),
        scope(6, "idle", 50, 1, 50, 1),
        scope(7, "churn", 0, 0, 100, 2),
    ];
    r.tracked.live_bytes = 5_350;
    r.sites = vec![
        SiteReport::new("cache", SiteSource::Sampled, &["fill", "main"], 800, 1),
        SiteReport::new("wal", SiteSource::Sampled, &["append", "main"], 4_000, 2),
    ];
    r
}

fn after() -> Report {
    let mut r = Report::default();
    r.timestamp_unix_ms = 3_500;
    // Ids differ from the earlier process: scopes are matched by path.
    r.scopes = vec![
        scope(9, "cache", 6_000, 7, 10_000, 15),
        scope(3, "wal", 1_500, 1, 4_500, 5),
        scope(4, "new", 64, 1, 64, 1),
        scope(6, "idle", 50, 1, 50, 1),
        scope(7, "churn", 0, 0, 1_100, 12),
    ];
    r.tracked.live_bytes = 7_614;
    r.sites = vec![
        SiteReport::new("cache", SiteSource::Sampled, &["fill", "main"], 5_800, 6),
        SiteReport::new("wal", SiteSource::Sampled, &["append", "main"], 1_000, 1),
        SiteReport::new("new", SiteSource::Recorded, &["leaky", "main"], 64, 1),
    ];
    r
}

#[test]
fn scopes_that_grew_and_shrank_with_exact_numbers() {
    let _shared = crate::common::shared();
    let d = after().diff(&before());
    assert_eq!(d.elapsed_ms, 2_500);
    assert_eq!(d.tracked_live_bytes, 7_614 - 5_350);
    assert_eq!(d.untracked_bytes, None);

    let grew: Vec<(&str, i64)> = d.grew().map(|s| (s.path.as_str(), s.live_bytes)).collect();
    assert_eq!(grew, [("cache", 5_000), ("new", 64)]);
    let shrank: Vec<(&str, i64)> = d
        .shrank()
        .map(|s| (s.path.as_str(), s.live_bytes))
        .collect();
    assert_eq!(shrank, [("wal", -2_500), ("gone", -300)]);

    let cache = d.scope("cache").unwrap();
    assert_eq!(
        (
            cache.before_live_bytes,
            cache.after_live_bytes,
            cache.live_allocs
        ),
        (1_000, 6_000, 5)
    );
    assert_eq!((cache.allocated_bytes, cache.allocations), (5_000, 5));
    let wal = d.scope("wal").unwrap();
    assert_eq!(
        (
            wal.live_allocs,
            wal.allocated_bytes,
            wal.allocations,
            wal.frees
        ),
        (-3, 500, 1, 4)
    );
    let gone = d.scope("gone").unwrap();
    assert_eq!((gone.before_live_bytes, gone.after_live_bytes), (300, 0));
    // Allocated and freed again in between: listed, with zero growth.
    let churn = d.scope("churn").unwrap();
    assert_eq!(
        (churn.live_bytes, churn.allocated_bytes, churn.allocations),
        (0, 1_000, 10)
    );
    // Nothing happened: not listed.
    assert!(d.scope("idle").is_none());
}

#[test]
fn sites_that_grew_and_shrank_with_exact_numbers() {
    let _shared = crate::common::shared();
    let d = after().diff(&before());
    let grew: Vec<(&str, &str, i64, i64)> = d
        .sites_grew()
        .map(|s| {
            (
                s.scope.as_str(),
                s.frames[0].function.as_str(),
                s.bytes,
                s.allocs,
            )
        })
        .collect();
    assert_eq!(grew, [("cache", "fill", 5_000, 5), ("new", "leaky", 64, 1)]);
    let shrank: Vec<(&str, i64, u64, u64)> = d
        .sites_shrank()
        .map(|s| (s.scope.as_str(), s.bytes, s.before_bytes, s.after_bytes))
        .collect();
    assert_eq!(shrank, [("wal", -3_000, 4_000, 1_000)]);
    assert_eq!(
        d.sites.iter().find(|s| s.scope == "new").unwrap().source,
        SiteSource::Recorded
    );
}

#[test]
fn display_lists_growth_then_shrinkage() {
    let _shared = crate::common::shared();
    let text = after().diff(&before()).to_string();
    let grew = text.find("grew:").expect("a grew section");
    let shrank = text.find("shrank:").expect("a shrank section");
    assert!(grew < shrank, "{text}");
    assert!(text.contains("+4.9 KiB  cache"), "{text}");
    assert!(text.contains("-2.4 KiB  wal"), "{text}");
    assert!(text.contains("-300 B  gone"), "{text}");
    assert!(text.contains("sites that grew:"), "{text}");
}

#[test]
fn a_report_against_itself_has_no_changes() {
    let _shared = crate::common::shared();
    let r = after();
    let d = r.diff(&r);
    assert!(d.scopes.is_empty() && d.sites.is_empty(), "{d:?}");
    assert!(d.to_string().contains("no scope's live bytes changed"));
}
