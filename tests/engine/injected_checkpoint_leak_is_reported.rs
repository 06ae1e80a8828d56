//! With the planted leak on (`encode_batch_leaky` keeps a writer buffer in
//! a static list), the very run that leaked fails in strict mode with a
//! report naming the function; in production mode the engine logs, counts
//! and keeps serving.

use crate::common;

use std::sync::Arc;

use ckptdb::{CheckpointError, CheckpointKind, Db, Drain, Faults, LeakMode, LeakReport};

fn leaky_run(mode: LeakMode) -> (tempfile::TempDir, Db, Arc<Faults>) {
    leaky_run_with(mode, true)
}

fn leaky_run_with(mode: LeakMode, record_sites: bool) -> (tempfile::TempDir, Db, Arc<Faults>) {
    let dir = common::tempdir();
    let faults = Arc::new(Faults::default());
    let opts = common::test_options()
        .leak_mode(mode)
        .record_leak_sites(record_sites)
        .sync(ckptdb::SyncPolicy::None)
        .faults(Arc::clone(&faults))
        .build()
        .unwrap();
    let db = Db::open(dir.path(), opts).unwrap();
    for i in 0..200u32 {
        db.put(format!("key{i}").as_bytes(), &[7; 100]).unwrap();
    }
    // A clean run first: the leak is not there before the fault.
    assert!(db
        .checkpoint_now(CheckpointKind::Incremental)
        .unwrap()
        .drained());
    for i in 0..200u32 {
        db.put(format!("key{i}").as_bytes(), &[8; 100]).unwrap();
    }
    faults.set_leak(true);
    (dir, db, faults)
}

fn strict_leak_report() -> LeakReport {
    let (_dir, db, _faults) = leaky_run(LeakMode::Strict);
    match db.checkpoint_now(CheckpointKind::Incremental) {
        Err(CheckpointError::Leak(report)) => *report,
        other => panic!("expected a leak error, got {other:?}"),
    }
}

#[test]
fn strict_mode_fails_the_run_that_leaked() {
    let _serial = common::serial();
    let report = strict_leak_report();
    // The kept buffer holds 200 entries of ~110 bytes.
    assert!(report.leaked_bytes >= 200 * 100, "{report}");
    assert!(report.leaked_allocs >= 1, "{report}");
}

#[test]
fn strict_leak_report_names_the_leaking_function() {
    let _serial = common::serial();
    let report = strict_leak_report();
    let named = report
        .sites
        .iter()
        .flat_map(|s| &s.frames)
        .any(|f| f.function.contains("encode_batch_leaky"));
    assert!(named, "{report}");
    assert!(
        format!("{report}").contains("encode_batch_leaky"),
        "{report}"
    );
}

#[test]
fn production_mode_logs_counts_and_keeps_serving() {
    let _serial = common::serial();
    let (dir, db, faults) = leaky_run(LeakMode::Production);
    let report = db.checkpoint_now(CheckpointKind::Incremental).unwrap();
    let Drain::Leaked { bytes, .. } = report.drain else {
        panic!("leak not seen: {report:?}");
    };
    assert!(bytes >= 200 * 100);
    let stats = db.stats();
    assert_eq!(stats.leaks_detected, 1);
    assert!(stats.leaked_bytes >= bytes);
    // Still serving: writes, reads, and later runs (judged against the
    // baseline the leak left) succeed and drain.
    faults.set_leak(false);
    db.put(b"after", b"leak").unwrap();
    assert_eq!(db.get(b"after").as_deref(), Some(&b"leak"[..]));
    let next = db.checkpoint_now(CheckpointKind::Global).unwrap();
    assert!(next.drained(), "{next:?}");
    assert_eq!(db.stats().leaks_detected, 1);
    db.close().unwrap();
    let db = Db::open(dir.path(), common::test_options().build().unwrap()).unwrap();
    assert_eq!(db.get(b"key3").as_deref(), Some(&[8u8; 100][..]));
}

#[test]
fn without_site_recording_the_leak_is_still_caught_with_counts_only() {
    let _serial = common::serial();
    let (_dir, db, _faults) = leaky_run_with(LeakMode::Strict, false);
    let report = match db.checkpoint_now(CheckpointKind::Incremental) {
        Err(CheckpointError::Leak(report)) => *report,
        other => panic!("expected a leak error, got {other:?}"),
    };
    // Same verdict and counts as with recording on ...
    assert!(report.leaked_bytes >= 200 * 100, "{report}");
    assert!(report.leaked_allocs >= 1, "{report}");
    // ... but no call stacks were captured for the run's allocations.
    assert!(report.sites.is_empty(), "{report}");
}
