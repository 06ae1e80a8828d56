//! The timeline (feature `timeline`): a background sampler's readings of
//! real scopes agree with a JSON report taken at the same moment, cost the
//! sampled scopes nothing, and the chart is well-formed SVG naming every
//! scope and marker.

use std::hint::black_box;
use std::time::Duration;

use scope_alloc_tracker::report::timeline::{MarkerStyle, Scale, Timeline, TimelineSampler};
use scope_alloc_tracker::report::Report;
use scope_alloc_tracker::Scope;

static STORE: Scope = Scope::new("tl-store");
static STORE_INDEX: Scope = Scope::child_of(&STORE, "index");
static JOBS: Scope = Scope::new("tl-jobs");

fn svg_texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).expect("the timeline SVG is XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
        .collect()
}

#[test]
fn sampler_readings_agree_with_the_json_report() {
    let _shared = crate::common::shared();
    let scopes = [STORE.id(), JOBS.id()];
    let sampler = TimelineSampler::start(
        Timeline::new().title("test"),
        &scopes,
        Duration::from_millis(2),
    )
    .unwrap();
    // Only the blocks are made in the scopes, not `kept`'s own buffer.
    let mut kept: Vec<Vec<u8>> = Vec::with_capacity(16);
    for step in 1..=5usize {
        kept.push(STORE.in_scope(|| vec![1u8; step * 10_000]));
        kept.push(STORE_INDEX.in_scope(|| vec![2u8; 1000]));
        std::thread::sleep(Duration::from_millis(6));
        sampler.sample_now();
        sampler.mark(format!("step {step}"), MarkerStyle::Plain);
    }
    let jobs = JOBS.in_scope(|| vec![3u8; 4096]);
    sampler.mark("jobs", MarkerStyle::Alert);
    // Wait for background readings beyond the 6 explicit ones (first
    // reading, five `sample_now`), however loaded the machine is.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sampler.with(|t| t.series_of("tl-store").map_or(0, |s| s.points.len())) < 9
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut timeline = sampler.stop();
    timeline.sample(&scopes);
    let json = Report::take().to_json();
    let report = Report::from_json(&json).unwrap();

    // The store's bytes (with its child) are exactly what the test holds:
    // the sampler's own allocations went to the tracker's scope.
    let held: u64 = kept.iter().map(|v| v.capacity() as u64).sum();
    let store = timeline.series_of("tl-store").expect("store series");
    assert_eq!(store.points.last().unwrap().live_bytes, held);
    assert_eq!(
        report.scope("tl-store").unwrap().with_children.live_bytes,
        held
    );
    assert_eq!(report.scope("tl-store").unwrap().own.live_bytes, 150_000);
    let jobs_series = timeline.series_of("tl-jobs").expect("jobs series");
    assert_eq!(
        jobs_series.points.last().unwrap().live_bytes,
        report.scope("tl-jobs").unwrap().with_children.live_bytes
    );
    assert_eq!(jobs_series.points.last().unwrap().live_bytes, 4096);
    // Background readings happened; readings are in time order and never
    // above what was held at the end.
    assert!(store.points.len() >= 10, "{} readings", store.points.len());
    assert!(store.points.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(store
        .points
        .windows(2)
        .all(|w| w[0].live_bytes <= w[1].live_bytes));
    // At each step's marker the store held that step's bytes.
    let markers = timeline.markers();
    assert_eq!(markers.len(), 6);
    for (i, m) in markers.iter().take(5).enumerate() {
        let step = i as u64 + 1;
        let at = store
            .points
            .iter()
            .rfind(|p| p.at <= m.at)
            .unwrap()
            .live_bytes;
        assert_eq!(at, step * (step + 1) / 2 * 10_000 + step * 1000, "{m:?}");
    }
    assert_eq!(markers[5].style, MarkerStyle::Alert);

    let svg = timeline.to_svg().unwrap();
    let texts = svg_texts(&svg);
    for needle in [
        "tl-store", "tl-jobs", "step 1", "step 5", "jobs", "test", "seconds",
    ] {
        assert!(
            texts.iter().any(|t| t == needle),
            "{needle:?} not in {texts:?}"
        );
    }
    // The alert marker is drawn in red.
    assert!(svg.contains("#D62728"), "no red alert line");
    let csv = timeline.to_csv();
    assert!(csv.contains("point,") && csv.contains(",tl-store,") && csv.contains("marker,"));
    drop(black_box((kept, jobs)));
}

#[test]
fn hand_made_timelines_render_in_both_scales_and_quote_csv() {
    let _shared = crate::common::shared();
    let mut t = Timeline::new().scale(Scale::Linear).size(640, 320);
    t.record_at(Duration::from_millis(10), "a", 0);
    t.record_at(Duration::from_millis(30), "a", 5 << 20);
    // Out of order: kept in time order.
    t.record_at(Duration::from_millis(20), "a", 1 << 20);
    t.record_at(Duration::from_millis(20), "b,c", 7);
    t.mark_at(
        Duration::from_millis(25),
        "run \"1\", done",
        MarkerStyle::Plain,
    );
    let a = t.series_of("a").unwrap();
    assert_eq!(
        a.points.iter().map(|p| p.live_bytes).collect::<Vec<_>>(),
        [0, 1 << 20, 5 << 20]
    );
    let texts = svg_texts(&t.to_svg().unwrap());
    assert!(
        texts.iter().any(|x| x == "5.0 MiB" || x.contains("MiB")),
        "{texts:?}"
    );
    let log = t.clone().scale(Scale::Log).to_svg().unwrap();
    svg_texts(&log);
    assert_eq!(
        t.to_csv(),
        "kind,seconds,name,live_bytes\n\
         point,0.010000,a,0\npoint,0.020000,a,1048576\npoint,0.030000,a,5242880\n\
         point,0.020000,\"b,c\",7\n\
         marker,0.025000,\"run \"\"1\"\", done\",\n"
    );
    // An empty timeline is a valid (empty) chart.
    svg_texts(&Timeline::new().to_svg().unwrap());
    // A bad path is an error naming it, never a panic.
    let err = t.write_svg("/nonexistent-dir/t.svg").unwrap_err();
    assert!(err.to_string().contains("/nonexistent-dir/t.svg"), "{err}");
    let dir = std::env::temp_dir().join(format!("timeline-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    t.write_svg(dir.join("t.svg")).unwrap();
    t.write_csv(dir.join("t.csv")).unwrap();
    svg_texts(&std::fs::read_to_string(dir.join("t.svg")).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}
