//! A slow leak of a few hundred bytes per checkpoint run into
//! `ckptdb/checkpoint-results` (the `fault-injection` point
//! `remember_run_summary`) passes every run's own leak check, and is
//! caught by the production-mode trend after a few runs, with its growing
//! site; a scope marked "should be flat" that does not grow is not
//! flagged, nor is `checkpoint-results` without the fault.

use crate::common;

use std::sync::Arc;

use ckptdb::{CheckpointKind, Db, Faults, LeakMode, TrendReport};
use scope_alloc_tracker::sampling::{set_sampling, Sampling};
use scope_alloc_tracker::Scope;

/// A long-lived scope of the "application": a cache of constant size,
/// with churn between runs.
static CACHE: Scope = Scope::new("test-cache");

const POINTS: usize = 5;
const LEAK_PER_RUN: usize = 400;

fn open(dir: &std::path::Path, faults: &Arc<Faults>) -> Db {
    let opts = common::test_options()
        .leak_mode(LeakMode::Production)
        .sync(ckptdb::SyncPolicy::None)
        .trend_points(POINTS)
        .trend_min_slope_bytes(128)
        .watch_flat_scope(&CACHE)
        .faults(Arc::clone(faults))
        .build()
        .unwrap();
    Db::open(dir, opts).unwrap()
}

/// Runs `runs` checkpoints with some writes and cache churn before each;
/// returns every trend flagged. Each run's own check must pass.
fn runs(db: &Db, runs: u32) -> Vec<TrendReport> {
    let mut flagged = Vec::new();
    for r in 0..runs {
        for i in 0..50u32 {
            db.put(
                format!("k{i:03}").as_bytes(),
                format!("v{r}-{i}").as_bytes(),
            )
            .unwrap();
        }
        CACHE.in_scope(|| drop(std::hint::black_box(vec![r as u8; 4096])));
        let kind = if r % 3 == 2 {
            CheckpointKind::Global
        } else {
            CheckpointKind::Incremental
        };
        let report = db.checkpoint_now(kind).unwrap();
        assert!(report.drained(), "run {r}: its own check saw nothing");
        assert!(report.file_leak.is_none());
        flagged.extend(report.trends);
    }
    assert_eq!(db.stats().leaks_detected, 0);
    flagged
}

#[test]
fn a_slow_leak_into_checkpoint_results_is_flagged_with_its_site() {
    let _serial = common::serial();
    set_sampling(Sampling::Bytes { every_bytes: 64 });
    let _cache = CACHE.in_scope(|| vec![7u8; 64 << 10]);
    let dir = common::tempdir();
    let faults = Arc::new(Faults::default());
    faults.set_results_leak(LEAK_PER_RUN);
    let db = open(dir.path(), &faults);
    let flagged = runs(&db, 2 * POINTS as u32);
    for t in &flagged {
        eprintln!("{t}");
    }
    assert!(
        flagged
            .iter()
            .all(|t| t.scope == "ckptdb/checkpoint-results"),
        "only checkpoint-results grew: {flagged:?}"
    );
    // Flagged once per window of POINTS runs: after run 5 and run 10.
    assert_eq!(flagged.len(), 2, "{flagged:?}");
    assert_eq!(db.stats().trends_flagged, 2);
    let t = &flagged[0];
    assert_eq!(t.live_bytes.len(), POINTS);
    assert!(
        t.growth_bytes >= (LEAK_PER_RUN * (POINTS - 1)) as u64,
        "{}",
        t.growth_bytes
    );
    assert!(t.slope_bytes >= LEAK_PER_RUN as u64, "{}", t.slope_bytes);
    assert!(
        t.mentions_function("remember_run_summary"),
        "the growing site is named: {t}"
    );
    let top = t.sites.first().expect("a growing site");
    assert_eq!(top.scope, "ckptdb/checkpoint-results");
    assert!(top.growth_bytes() > 0);
    db.close().unwrap();
    set_sampling(Sampling::Off);
}

#[test]
fn without_the_leak_nothing_is_flagged() {
    let _serial = common::serial();
    set_sampling(Sampling::Bytes { every_bytes: 64 });
    let dir = common::tempdir();
    let faults = Arc::new(Faults::default());
    let db = open(dir.path(), &faults);
    let flagged = runs(&db, 2 * POINTS as u32);
    assert!(flagged.is_empty(), "{flagged:?}");
    assert_eq!(db.stats().trends_flagged, 0);
    db.close().unwrap();
    set_sampling(Sampling::Off);
}

#[test]
fn a_scope_marked_flat_that_grows_is_flagged() {
    let _serial = common::serial();
    let dir = common::tempdir();
    let faults = Arc::new(Faults::default());
    let db = open(dir.path(), &faults);
    let mut kept = Vec::new();
    let mut flagged = Vec::new();
    for r in 0..POINTS as u32 {
        CACHE.in_scope(|| kept.push(vec![r as u8; 1000]));
        flagged.extend(
            db.checkpoint_now(CheckpointKind::Incremental)
                .unwrap()
                .trends,
        );
    }
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert_eq!(flagged[0].scope, "test-cache");
    assert!(flagged[0].growth_bytes >= 4000);
    db.close().unwrap();
    CACHE.in_scope(|| drop(kept));
}
