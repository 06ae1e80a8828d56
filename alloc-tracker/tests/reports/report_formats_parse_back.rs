//! Every report format is read back by an independent parser and gives the
//! report's own numbers: JSON round-trips, folded stacks sum to the scope
//! totals, the SVG flame graph is XML naming the scopes and functions, and
//! the Prometheus text is accepted by an exposition-format parser.

use std::collections::BTreeMap;
use std::hint::black_box;

use scope_alloc_tracker::report::{
    Report, ScopeReport, SeriesOptions, SiteReport, SiteSource, SCHEMA_VERSION, UNSAMPLED_FRAME,
};
use scope_alloc_tracker::sampling::{set_sampling, Sampling};
use scope_alloc_tracker::{Scope, ScopeId};

/// A hand-made report: `checkpoint` (10 000 live bytes, two sampled sites
/// of 3 000 and 5 000 bytes, one recorded site of 700) with a child
/// `checkpoint/collect` (100 live bytes, no sites).
fn known_report() -> Report {
    let mut r = Report::default();
    r.schema_version = SCHEMA_VERSION;
    r.pid = 42;
    let mut ckpt = ScopeReport::new(3, "checkpoint", None);
    ckpt.own.live_bytes = 10_000;
    ckpt.own.live_allocs = 5;
    ckpt.own.total_allocs = 9;
    ckpt.own.total_bytes = 12_000;
    let mut collect = ScopeReport::new(4, "checkpoint/collect", Some(3));
    collect.own.live_bytes = 100;
    collect.own.live_allocs = 1;
    collect.own.total_allocs = 1;
    collect.own.total_bytes = 100;
    collect.with_children = collect.own;
    ckpt.with_children = ckpt.own;
    ckpt.with_children.live_bytes += 100;
    r.scopes = vec![ckpt, collect];
    r.sites = vec![
        SiteReport::new(
            "checkpoint",
            SiteSource::Sampled,
            &[
                "alloc::vec::Vec<T>::with_capacity",
                "ckptdb::encode_batch",
                "main",
            ],
            5_000,
            2,
        ),
        SiteReport::new(
            "checkpoint",
            SiteSource::Sampled,
            &["<[u8; 4] as Foo>::grow", "ckptdb::flush", "main"],
            3_000,
            1,
        ),
        SiteReport::new(
            "checkpoint",
            SiteSource::Recorded,
            &["ckptdb::flush", "main"],
            700,
            1,
        ),
    ];
    r
}

/// Parses folded lines into (stack, bytes), checking the line syntax.
fn parse_folded(folded: &str) -> Vec<(Vec<String>, u64)> {
    folded
        .lines()
        .map(|line| {
            let (stack, n) = line.rsplit_once(' ').expect("`stack bytes`");
            let frames: Vec<String> = stack.split(';').map(str::to_string).collect();
            assert!(frames.iter().all(|f| !f.is_empty()), "empty frame: {line}");
            (frames, n.parse().expect("a byte count"))
        })
        .collect()
}

#[test]
fn folded_lines_sum_to_the_scope_and_site_totals() {
    let _shared = crate::common::shared();
    let r = known_report();
    let lines = parse_folded(&r.to_folded());
    let mut by_root: BTreeMap<String, u64> = BTreeMap::new();
    for (frames, n) in &lines {
        *by_root.entry(frames[0].clone()).or_default() += n;
    }
    // The leak tower's 700 exact bytes come out of the scope's 10 000, not
    // drawn twice: sampled 8 000 + unsampled 1 300 + leak 700.
    assert_eq!(by_root["checkpoint"], 9_300);
    assert_eq!(by_root["checkpoint/collect"], 100);
    assert_eq!(by_root["leak:checkpoint"], 700);
    assert_eq!(by_root.values().sum::<u64>(), 10_100);
    // Outermost frame first, `;` inside names replaced.
    assert!(lines.contains(&(
        vec![
            "checkpoint".into(),
            "main".into(),
            "ckptdb::encode_batch".into(),
            "alloc::vec::Vec<T>::with_capacity".into()
        ],
        5_000
    )));
    assert!(lines
        .iter()
        .any(|(f, n)| f.last().unwrap() == "<[u8, 4] as Foo>::grow" && *n == 3_000));
    assert!(lines.contains(&(vec!["checkpoint".into(), UNSAMPLED_FRAME.into()], 1_300)));
}

#[test]
fn folded_estimates_never_exceed_the_exact_live_bytes() {
    let _shared = crate::common::shared();
    // A scope with 1 000 exact live bytes whose sampled
    // estimates add up to 4 000 (one small allocation weighted as a whole
    // sampling interval), and a leak report larger than what is still live.
    let mut r = known_report();
    r.scopes[1].own.live_bytes = 1_000;
    r.scopes[0].own.live_bytes = 500;
    r.sites.extend([
        SiteReport::new("checkpoint/collect", SiteSource::Sampled, &["a"], 3_000, 1),
        SiteReport::new("checkpoint/collect", SiteSource::Sampled, &["b"], 1_000, 1),
    ]);
    let lines = parse_folded(&r.to_folded());
    let drawn = |root: &str, leaf: &str| -> u64 {
        lines
            .iter()
            .filter(|(f, _)| f[0] == root && f.last().unwrap() == leaf)
            .map(|(_, n)| n)
            .sum()
    };
    // Scaled by 1 000 / 4 000, nothing left unsampled.
    assert_eq!(drawn("checkpoint/collect", "a"), 750);
    assert_eq!(drawn("checkpoint/collect", "b"), 250);
    assert_eq!(drawn("checkpoint/collect", UNSAMPLED_FRAME), 0);
    // `checkpoint` has 500 live bytes: the 700 recorded bytes are scaled
    // to 500 and leave nothing for its 8 000 sampled bytes.
    assert_eq!(drawn("leak:checkpoint", "ckptdb::flush"), 500);
    let ckpt: u64 = lines
        .iter()
        .filter(|(f, _)| f[0] == "checkpoint")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(ckpt, 0);
    // The graph's total is the exact live total.
    let total: u64 = lines.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 1_500);
    // The report itself keeps the unscaled estimates.
    assert_eq!(
        r.sites_in("checkpoint/collect")
            .map(|s| s.bytes)
            .sum::<u64>(),
        4_000
    );
}

#[inline(never)]
fn fill_sampled_buffers() -> Vec<Vec<u8>> {
    (0..64)
        .map(|i| black_box(vec![i as u8; 16 * 1024]))
        .collect()
}

#[test]
fn real_report_folded_covers_every_live_byte_of_each_scope() {
    let _alone = crate::common::alone();
    static SAMPLED: Scope = Scope::new("folded-sampled");
    set_sampling(Sampling::Bytes { every_bytes: 4096 });
    // This thread notices sampling within 16 MiB of allocations.
    drop(black_box(vec![0u8; 16 << 20]));
    let kept = SAMPLED.in_scope(fill_sampled_buffers);
    let r = Report::take();
    let path = SAMPLED.id().path();
    let sampled: u64 = r.sites_in(&path).map(|s| s.bytes).sum();
    assert!(sampled > 0, "no samples in {path}:\n{r}");
    assert!(
        r.sites_in(&path).any(|s| s
            .frames
            .iter()
            .any(|f| f.function.contains("fill_sampled_buffers"))),
        "no site names the allocating function:\n{r}"
    );
    let own = r.scope(&path).unwrap().own.live_bytes;
    let folded: u64 = parse_folded(&r.to_folded())
        .iter()
        .filter(|(f, _)| f[0] == path)
        .map(|(_, n)| n)
        .sum();
    set_sampling(Sampling::Off);
    // Every live byte once; estimates above the exact figure are scaled down.
    assert_eq!(folded, own);
    drop(kept);
}

#[cfg(feature = "json")]
#[test]
fn json_round_trips_a_real_report() {
    let _shared = crate::common::shared();
    static KEPT: Scope = Scope::new("json-kept");
    let kept = KEPT.in_scope(|| vec![1u8; 3000]);
    let leak = {
        let check = scope_alloc_tracker::leak::LeakCheck::begin(&KEPT);
        KEPT.in_scope(|| std::mem::forget(black_box(vec![0u64; 8])));
        check.finish().unwrap_err()
    };
    let r = Report::take().with_leak(&leak);
    let json = r.to_json();
    let back = Report::from_json(&json).unwrap();
    assert_eq!(back, r);
    assert_eq!(back.scope("json-kept").unwrap().own.live_bytes, 3064);
    assert!(back
        .sites
        .iter()
        .any(|s| s.source == SiteSource::Recorded && s.bytes == 64));
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["schema_version"], SCHEMA_VERSION);
    drop(kept);
}

#[cfg(feature = "json")]
#[test]
fn json_of_another_schema_version_is_refused() {
    let _shared = crate::common::shared();
    let mut r = known_report();
    r.schema_version = SCHEMA_VERSION + 1;
    let err = Report::from_json(&r.to_json()).unwrap_err();
    assert!(err.to_string().contains("schema_version"), "{err}");
    assert!(Report::from_json("{\"schema_version\": 1}").is_err());
}

#[cfg(feature = "flamegraph")]
#[test]
fn svg_flame_graph_is_xml_naming_scopes_and_functions() {
    let _shared = crate::common::shared();
    let svg = known_report().to_flamegraph_svg().unwrap();
    // inferno's SVG starts with a DOCTYPE.
    let xml = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let doc =
        roxmltree::Document::parse_with_options(&svg, xml).expect("the SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let titles: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("title"))
        .filter_map(|n| n.text())
        .collect();
    for name in [
        "checkpoint",
        "leak:checkpoint",
        "ckptdb::encode_batch",
        "alloc::vec::Vec<T>::with_capacity",
        "ckptdb::flush",
    ] {
        assert!(
            titles.iter().any(|t| t.starts_with(name)),
            "no frame titled {name:?} in {titles:?}"
        );
    }
    // An empty report still renders.
    let empty = Report::default().to_flamegraph_svg().unwrap();
    roxmltree::Document::parse_with_options(&empty, xml).unwrap();
}

#[test]
fn prometheus_text_is_accepted_by_a_parser_and_has_the_samples() {
    let _shared = crate::common::shared();
    static METERED: Scope = Scope::new("prom-metered");
    static CHILD: Scope = Scope::child_of(&METERED, "child");
    let a = METERED.in_scope(|| vec![0u8; 1000]);
    let b = CHILD.in_scope(|| vec![0u8; 24]);
    let r = Report::take();
    // Its two rows on their own whatever else the process holds (the
    // other modules' scopes can fill the default top rows).
    let opts = SeriesOptions::new()
        .always("prom-metered")
        .always("prom-metered/child");
    let text = r.to_prometheus_with(&opts);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    // The parser skips lines it does not understand: every sample line
    // must have become a sample.
    let sample_lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    assert_eq!(scrape.samples.len(), sample_lines);
    let value = |metric: &str, scope: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && s.labels.get("scope") == Some(scope))
            .map(|s| s.value.clone())
    };
    use prometheus_parse::Value;
    assert_eq!(
        value("alloc_tracker_live_bytes", "prom-metered"),
        Some(Value::Gauge(1000.0))
    );
    assert_eq!(
        value("alloc_tracker_subtree_live_bytes", "prom-metered"),
        Some(Value::Gauge(1024.0))
    );
    assert_eq!(
        value("alloc_tracker_allocations_total", "prom-metered/child"),
        Some(Value::Counter(1.0))
    );
    assert!(scrape.docs.contains_key("alloc_tracker_live_bytes"));
    assert!(scrape
        .samples
        .iter()
        .any(|s| s.metric == "alloc_tracker_jemalloc_resident_bytes"));
    drop((a, b));
}

#[test]
fn prometheus_label_values_are_escaped() {
    let _shared = crate::common::shared();
    let mut r = Report::default();
    let mut s = ScopeReport::new(3, "we\"ird\\scope\nname", None);
    s.own.total_allocs = 1;
    s.with_children = s.own;
    r.scopes.push(s);
    let text = r.to_prometheus();
    assert!(
        text.contains("alloc_tracker_live_bytes{scope=\"we\\\"ird\\\\scope\\nname\"} 0\n"),
        "{text}"
    );
    // Every sample stays on one line.
    assert!(text
        .lines()
        .all(|l| l.starts_with('#') || l.starts_with("alloc_tracker_") || l.is_empty()));
}

#[test]
fn text_table_indents_children_under_parents_sorted_by_live_bytes() {
    let _shared = crate::common::shared();
    static PARENT: Scope = Scope::new("text-parent");
    static SMALL: Scope = Scope::child_of(&PARENT, "small");
    static BIG: Scope = Scope::child_of(&PARENT, "big");
    let v = (
        SMALL.in_scope(|| vec![0u8; 10]),
        BIG.in_scope(|| vec![0u8; 5000]),
    );
    let text = Report::take().to_string();
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no line starting with {needle:?}:\n{text}"))
    };
    let parent = line_of("text-parent ");
    let big = line_of("  big ");
    let small = line_of("  small ");
    assert!(parent < big && big < small, "{text}");
    assert!(text.lines().nth(big).unwrap().contains("4.9 KiB"), "{text}");
    assert!(text.contains("jemalloc (process-wide):"));
    assert!(text.contains("untracked"));
    drop(v);
    let _ = ScopeId::current();
}

#[test]
fn prometheus_metrics_agree_with_their_help_texts() {
    let _shared = crate::common::shared();
    // The overhead gauge must agree with the alloc-tracker scope, recorded
    // leak sites must not count as sampled sites, and no usable-bytes
    // series is exported when usable sizes are not counted.
    let mut r = known_report();
    let mut internal = ScopeReport::new(ScopeId::INTERNAL.as_u16(), "alloc-tracker", None);
    internal.own.live_bytes = 92_888;
    internal.own.total_allocs = 3;
    internal.with_children = internal.own;
    r.scopes.push(internal);
    r.overhead.live_bytes = 91_600; // read a moment earlier
    let text = r.to_prometheus();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let single = |metric: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric)
            .map(|s| s.value.clone())
    };
    use prometheus_parse::Value;
    assert_eq!(
        single("alloc_tracker_overhead_live_bytes"),
        Some(Value::Gauge(92_888.0))
    );
    assert!(text.contains("alloc_tracker_live_bytes{scope=\"alloc-tracker\"} 92888\n"));
    assert_eq!(
        single("alloc_tracker_sampled_sites"),
        Some(Value::Gauge(2.0))
    );
    assert_eq!(
        single("alloc_tracker_recorded_sites"),
        Some(Value::Gauge(1.0))
    );
    assert!(!text.contains("usable_bytes"), "{text}");
    // Counted usable sizes are exported.
    r.tracked.live_usable_bytes = 12_000;
    r.scopes[0].own.live_usable_bytes = 12_000;
    let text = r.to_prometheus();
    assert!(
        text.contains("alloc_tracker_live_usable_bytes{scope=\"checkpoint\"} 12000\n"),
        "{text}"
    );
}
