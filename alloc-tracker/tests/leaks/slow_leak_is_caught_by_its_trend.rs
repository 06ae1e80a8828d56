//! A slow leak of a few hundred bytes per run, which a per-run check with a
//! realistic tolerance passes, is flagged by a `Trend` with the sampled
//! site that grew; a flat scope and a scope that grows and shrinks are not.

use std::hint::black_box;
use std::sync::Mutex;

use scope_alloc_tracker::leak::{LeakCheck, Trend, TrendOptionsError};
use scope_alloc_tracker::sampling::{set_sampling, Sampling};
use scope_alloc_tracker::ScopeId;

/// What the planted bug keeps: a few hundred bytes per run.
static KEPT: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());

/// One "checkpoint run": a batch that is freed, plus the planted leak.
#[inline(never)]
fn run_with_slow_leak(run: usize) {
    let batch: Vec<Vec<u8>> = (0..50).map(|i| vec![i as u8; 200]).collect();
    black_box(&batch);
    remember_run_summary(run);
}

#[inline(never)]
fn remember_run_summary(run: usize) {
    let summary = vec![run as u8; 300].into_boxed_slice();
    KEPT.lock().unwrap().push(black_box(summary));
}

/// A clean run: everything it allocates is freed.
#[inline(never)]
fn clean_run(run: usize) -> usize {
    let batch: Vec<Vec<u8>> = (0..50).map(|i| vec![(i + run) as u8; 200]).collect();
    batch.iter().map(|v| v.len()).sum()
}

// One test function: sampling is process-wide.
#[test]
fn slow_leak_is_flagged_with_its_growing_site_and_flat_scopes_are_not() {
    let _alone = crate::common::alone();
    // Sample finely, so that a few hundred bytes per run are seen; in
    // production the default interval catches the same growth over more
    // runs.
    set_sampling(Sampling::Bytes { every_bytes: 64 });

    let leaky = ScopeId::register("checkpoint-results", None).unwrap();
    let flat = ScopeId::register("flat", None).unwrap();
    let wavy = ScopeId::register("wavy", None).unwrap();
    let mut leaky_trend = Trend::options(leaky)
        .points(5)
        .min_slope_bytes(100)
        .build()
        .unwrap();
    let mut flat_trend = Trend::options(flat).points(5).build().unwrap();
    let mut wavy_trend = Trend::options(wavy).points(5).build().unwrap();

    // The per-run check a production mode runs, with the tolerance it
    // needs for noise: every single run passes it.
    let mut flagged = Vec::new();
    let mut wavy_keep: Vec<Vec<u8>> = Vec::new();
    for run in 0..12 {
        let check = LeakCheck::options(leaky).tolerance_bytes(1024).begin();
        leaky.in_scope(|| run_with_slow_leak(run));
        let drained = check
            .finish()
            .expect("a single run stays within the tolerance");
        assert!(drained.retained_bytes >= 300);

        flat.in_scope(|| black_box(clean_run(run)));
        wavy.in_scope(|| {
            if run % 2 == 0 {
                wavy_keep.push(vec![1; 4096]);
            } else {
                wavy_keep.clear();
            }
        });

        if let Some(report) = leaky_trend.observe() {
            flagged.push((run, report));
        }
        assert!(flat_trend.observe().is_none(), "a flat scope was flagged");
        assert!(
            wavy_trend.observe().is_none(),
            "a scope that shrinks back was flagged"
        );
    }

    // Flagged as soon as 5 points show growth: at the 5th run, and at every
    // run after.
    assert_eq!(flagged.first().map(|(run, _)| *run), Some(4));
    assert_eq!(flagged.len(), 8);
    let (_, report) = flagged.last().unwrap();
    assert!(report.growth_bytes >= 4 * 300, "{report}");
    assert_eq!(report.live_bytes.len(), 5);
    assert!(
        report.mentions_function("remember_run_summary"),
        "the growing site is not named:\n{report}"
    );
    let top = &report.sites[0];
    assert!(
        top.frames
            .iter()
            .any(|f| f.function.contains("remember_run_summary")),
        "the site that grew most is not the leak:\n{report}"
    );
    assert!(report
        .to_string()
        .contains("growing scope `checkpoint-results`"));
    assert!(leaky_trend.is_growing());
    assert!(!flat_trend.is_growing());

    // Options are validated.
    assert_eq!(
        Trend::options(flat).points(1).build().unwrap_err(),
        TrendOptionsError::TooFewPoints(1)
    );
    assert_eq!(
        Trend::options(flat).min_slope_bytes(0).build().unwrap_err(),
        TrendOptionsError::ZeroSlope
    );
    set_sampling(Sampling::Off);
}
