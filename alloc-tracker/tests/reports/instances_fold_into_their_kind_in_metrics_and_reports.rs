//! Per-request instances in the numbers people watch: one series per kind
//! in both Prometheus exporters whatever the request count, totals and
//! peaks that survive recycling, report rows that add up to their parent.

use std::hint::black_box;
use std::sync::{Arc, Barrier};

use prometheus_client::registry::Registry;
use scope_alloc_tracker::integrations::prometheus::ScopeCollector;
use scope_alloc_tracker::report::{human_bytes, Report, SeriesOptions};
use scope_alloc_tracker::{Scope, ScopeId};

/// One request: three allocations of known sizes in the instance, one in
/// its static child, all freed before the request ends.
fn request(kind: &'static Scope, child: &'static Scope) {
    let req = kind.instance().unwrap();
    req.in_scope(|| {
        let a = black_box(vec![1u8; 100]);
        let b = black_box(vec![2u8; 200]);
        let c = black_box(vec![4u8; 300]);
        let d = child.in_scope(|| black_box(vec![3u8; 50]));
        drop((a, b, c, d));
    });
}

/// The value of the sample `name{labels}` in a text exposition.
fn sample(text: &str, name: &str, labels: &str) -> Option<i64> {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
}

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

#[test]
fn metrics_have_one_series_per_kind_whatever_the_number_of_requests() {
    // Counts every series of the process: no other test may add scopes
    // meanwhile.
    let _alone = crate::common::alone();
    static REQ: Scope = Scope::new("fold-requests");
    static PARSE: Scope = Scope::child_of(&REQ, "parse");
    let mut registry = Registry::default();
    ScopeCollector::new().top(1000).register(&mut registry);

    for _ in 0..10 {
        request(&REQ, &PARSE);
    }
    let after_10 = scrape(&registry);
    for _ in 0..990 {
        request(&REQ, &PARSE);
    }
    let after_1000 = scrape(&registry);

    let series = |t: &str| t.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(
        series(&after_10),
        series(&after_1000),
        "the series count grew with the requests:\n{after_1000}"
    );
    assert!(!after_1000.contains("fold-requests#"), "{after_1000}");
    // The kind's row sums every request, recycled ones included.
    let allocs = sample(
        &after_1000,
        "alloc_tracker_allocations_total",
        "scope=\"fold-requests\"",
    );
    assert_eq!(allocs, Some(3 * 1000), "{after_1000}");
    let bytes = sample(
        &after_1000,
        "alloc_tracker_allocated_bytes_total",
        "scope=\"fold-requests\"",
    );
    assert_eq!(bytes, Some(600 * 1000));
    let child = sample(
        &after_1000,
        "alloc_tracker_allocated_bytes_total",
        "scope=\"fold-requests/parse\"",
    );
    assert_eq!(child, Some(50 * 1000));

    // The text exporter writes the same series from the same code.
    let text = Report::take().to_prometheus_with(&SeriesOptions::new().top(1000));
    for (name, labels) in [
        ("alloc_tracker_allocations_total", "scope=\"fold-requests\""),
        (
            "alloc_tracker_allocated_bytes_total",
            "scope=\"fold-requests\"",
        ),
        ("alloc_tracker_frees_total", "scope=\"fold-requests/parse\""),
        ("alloc_tracker_live_bytes", "scope=\"fold-requests\""),
    ] {
        assert_eq!(
            sample(&text, name, labels),
            sample(&scrape(&registry), name, labels),
            "{name}{{{labels}}} differs between the exporters"
        );
    }
}

#[test]
fn long_lived_instances_get_their_own_series_only_when_asked_and_capped() {
    let _shared = crate::common::shared();
    static DB: Scope = Scope::new("fold-db");
    let dbs: Vec<_> = (0..5).map(|_| DB.instance().unwrap()).collect();
    let held: Vec<_> = dbs
        .iter()
        .map(|d| d.in_scope(|| black_box(vec![0u8; 1000])))
        .collect();

    let plain = Report::take().to_prometheus_with(&SeriesOptions::new().top(1000));
    assert!(
        !plain.contains("alloc_tracker_instance_live_bytes"),
        "{plain}"
    );
    assert_eq!(
        sample(&plain, "alloc_tracker_live_bytes", "scope=\"fold-db\""),
        Some(5000)
    );
    assert_eq!(
        sample(&plain, "alloc_tracker_live_instances", "scope=\"fold-db\""),
        Some(5)
    );

    let mut registry = Registry::default();
    ScopeCollector::new()
        .instances_of("fold-db", 3)
        .register(&mut registry);
    let text = scrape(&registry);
    let per_instance: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("alloc_tracker_instance_live_bytes{"))
        .collect();
    assert_eq!(per_instance.len(), 3, "capped at 3:\n{text}");
    let first = dbs[0].serial();
    assert_eq!(
        sample(
            &text,
            "alloc_tracker_instance_live_bytes",
            &format!("scope=\"fold-db\",instance=\"{first}\"")
        ),
        Some(1000),
        "the oldest instance first:\n{text}"
    );
    drop(held);
}

#[test]
fn a_kinds_peak_with_children_stays_an_upper_bound_after_its_instances_are_recycled() {
    let _shared = crate::common::shared();
    static JOB: Scope = Scope::new("fold-peak-jobs");
    const AT_ONCE: usize = 8;
    const EACH: usize = 40_000;
    let barrier = Arc::new(Barrier::new(AT_ONCE));
    let threads: Vec<_> = (0..AT_ONCE)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let job = JOB.instance().unwrap();
                let v = job.in_scope(|| black_box(vec![7u8; EACH]));
                // Every job holds its block at the same time.
                barrier.wait();
                // Read the instance's figures (samples its peak).
                assert_eq!(job.stats().live_bytes, EACH as u64);
                barrier.wait();
                drop(v);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let after = JOB.stats_with_children();
    assert_eq!(after.live_bytes, 0);
    let true_peak = (AT_ONCE * EACH) as u64;
    assert!(
        after.peak_bytes >= true_peak,
        "peak {} below the true peak {true_peak} after recycling",
        after.peak_bytes
    );
    // The bound: at most 8 at once, none above its 40 KB (plus the kind's
    // own peak, 0 here).
    assert!(
        after.peak_bytes <= true_peak + JOB.stats().peak_bytes,
        "peak {} is no tight bound",
        after.peak_bytes
    );
    let report = Report::take();
    let row = report
        .scopes
        .iter()
        .find(|s| s.path == "fold-peak-jobs")
        .unwrap();
    assert_eq!(row.recycled_count, AT_ONCE as u64);
    assert_eq!(row.recycled.total_bytes, true_peak);
    assert_eq!(row.recycled.peak_bytes, EACH as u64);
    assert!(row.with_children.peak_bytes >= true_peak);
}

#[test]
fn every_report_row_adds_up_to_its_parents_figures_with_children() {
    // Checks every row of the process: no other test may make or recycle
    // instances between the reads of one report.
    let _alone = crate::common::alone();
    static SVC: Scope = Scope::new("fold-sum-service");
    static PARSE: Scope = Scope::child_of(&SVC, "parse");
    let kept = SVC.in_scope(|| black_box(vec![0u8; 64]));
    for _ in 0..50 {
        request(&SVC, &PARSE);
    }
    // One instance still live, holding a block.
    let live = SVC.instance().unwrap();
    let held = live.in_scope(|| black_box(vec![0u8; 128]));

    let report = Report::take();
    let by_id = |id: u16| report.scopes.iter().find(|s| s.id == id).unwrap();
    for s in &report.scopes {
        let children: Vec<_> = report
            .scopes
            .iter()
            .filter(|c| c.parent == Some(s.id) && c.id != s.id)
            .collect();
        let sum = |f: fn(&scope_alloc_tracker::ScopeStats) -> u64| {
            f(&s.own) + f(&s.recycled) + children.iter().map(|c| f(&c.with_children)).sum::<u64>()
        };
        assert_eq!(
            s.with_children.total_bytes,
            sum(|x| x.total_bytes),
            "bytes of `{}` do not add up",
            s.path
        );
        assert_eq!(
            s.with_children.total_allocs,
            sum(|x| x.total_allocs),
            "allocations of `{}` do not add up",
            s.path
        );
        assert_eq!(s.with_children.live_bytes, sum(|x| x.live_bytes));
        let _ = by_id(s.id);
    }
    let svc = report
        .scopes
        .iter()
        .find(|s| s.path == "fold-sum-service")
        .unwrap();
    assert_eq!(svc.recycled_count, 50);
    assert_eq!(svc.recycled.total_bytes, 50 * 600);
    let parse = report
        .scopes
        .iter()
        .find(|s| s.path == "fold-sum-service/parse")
        .unwrap();
    assert_eq!(parse.recycled.total_bytes, 50 * 50);

    // The text shows the recycled instances as a row of their own, with
    // the figures the JSON has.
    let text = report.to_string();
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("(50 recycled"))
        .unwrap_or_else(|| panic!("no recycled row:\n{text}"));
    assert!(
        row.contains(&human_bytes(svc.recycled.total_bytes)),
        "{row}"
    );
    assert!(row.trim_end().ends_with(" 150"), "{row}");
    #[cfg(feature = "json")]
    {
        let back = Report::from_json(&report.to_json()).unwrap();
        let b = back
            .scopes
            .iter()
            .find(|s| s.path == "fold-sum-service")
            .unwrap();
        assert_eq!(b.recycled, svc.recycled);
        assert_eq!(b.recycled_count, 50);
    }
    drop((kept, held, live));
    assert_eq!(ScopeId::from(&SVC).path(), "fold-sum-service");
}
