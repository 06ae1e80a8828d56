//! Chaos: a checkpoint whose save fails surfaces the error, leaves the file
//! set as it was and records no half checkpoint; after removing the fault
//! a retry succeeds and a restart finds all data. Failures after
//! publication are retried; stale files break the file-leak invariant.

use crate::common;

use std::sync::Arc;

use ckptdb::{CheckpointError, CheckpointKind, Db, Faults, FileStorage, LeakMode, Storage};

fn fill(db: &Db, round: u32) {
    for i in 0..300u32 {
        db.put(
            format!("k{i:04}").as_bytes(),
            format!("v{round}-{i}").as_bytes(),
        )
        .unwrap();
    }
    db.delete(format!("k{round:04}").as_bytes()).unwrap();
}

fn open(dir: &std::path::Path, faults: &Arc<Faults>, storage: Arc<dyn Storage>) -> Db {
    let opts = common::test_options()
        .sync(ckptdb::SyncPolicy::None)
        .faults(Arc::clone(faults))
        .storage(storage)
        .build()
        .unwrap();
    Db::open(dir, opts).unwrap()
}

#[test]
fn failures_before_publication_roll_back_then_retry_succeeds() {
    let _serial = common::serial();
    let dir = common::tempdir();
    let faults = Arc::new(Faults::default());
    let db = open(dir.path(), &faults, Arc::new(FileStorage::new()));
    fill(&db, 0);
    db.checkpoint_now(CheckpointKind::Incremental).unwrap();
    type Inject = fn(&Faults);
    let injections: [(&str, Inject); 2] = [
        ("data write", |f| f.fail_data_write(1)),
        ("manifest publish", |f| f.fail_manifest_publish(1)),
    ];
    for (round, (what, inject)) in injections.into_iter().enumerate() {
        for kind in [CheckpointKind::Incremental, CheckpointKind::Global] {
            fill(&db, round as u32 + 1);
            let before_disk = common::checkpoint_files(dir.path());
            let before_registered = db.checkpoint_files();
            let before_lsn = db.stats().checkpoint_lsn;
            inject(&faults);
            let err = db.checkpoint_now(kind).unwrap_err();
            assert!(matches!(err, CheckpointError::Storage(_)), "{what}: {err}");
            assert!(err.to_string().contains("injected"), "{what}: {err}");
            assert_eq!(common::checkpoint_files(dir.path()), before_disk, "{what}");
            assert_eq!(db.checkpoint_files(), before_registered, "{what}");
            assert_eq!(db.stats().checkpoint_lsn, before_lsn, "{what}");
            assert!(
                db.stats().frozen_memtables >= 1,
                "{what}: data kept for the retry"
            );
            // Fault removed: the retry checkpoints everything.
            let report = db.checkpoint_now(kind).unwrap();
            assert!(report.drained());
            assert_eq!(db.stats().checkpoint_lsn, db.stats().last_lsn);
            assert_eq!(db.stats().frozen_memtables, 0);
        }
    }
    let expected = db.scan(..);
    drop(db);
    let db = open(dir.path(), &faults, Arc::new(FileStorage::new()));
    assert_eq!(db.scan(..), expected);
    assert_eq!(db.recovery_report().wal_records_replayed, 0);
}

#[test]
fn io_error_from_storage_rolls_back() {
    let _serial = common::serial();
    let dir = common::tempdir();
    let faults = Arc::new(Faults::default());
    let storage = common::FaultyStorage::new(Arc::new(FileStorage::new()));
    let db = open(dir.path(), &faults, storage.clone());
    fill(&db, 0);
    db.checkpoint_now(CheckpointKind::Global).unwrap();
    for n in 0..4 {
        fill(&db, n + 1);
        let before = common::checkpoint_files(dir.path());
        // The n-th operation on a checkpoint temp file fails once.
        storage.fail_after(u64::from(n), 1, Some(".tmp"));
        let err = db.checkpoint_now(CheckpointKind::Incremental).unwrap_err();
        assert!(matches!(err, CheckpointError::Storage(_)), "{err}");
        assert_eq!(storage.failures(), u64::from(n) + 1);
        assert_eq!(common::checkpoint_files(dir.path()), before, "op {n}");
        storage.heal();
    }
    db.checkpoint_now(CheckpointKind::Incremental).unwrap();
    let expected = db.scan(..);
    drop(db);
    let db = open(dir.path(), &faults, Arc::new(FileStorage::new()));
    assert_eq!(db.scan(..), expected);
}

#[test]
fn wal_truncation_failure_after_publication_is_retried() {
    let _serial = common::serial();
    let dir = common::tempdir();
    let faults = Arc::new(Faults::default());
    let db = open(dir.path(), &faults, Arc::new(FileStorage::new()));
    for r in 0..12 {
        fill(&db, r);
    }
    // More failures than the in-run retries: the run reports it, but the
    // checkpoint is published.
    faults.fail_wal_truncate(10);
    let err = db.checkpoint_now(CheckpointKind::Incremental).unwrap_err();
    let CheckpointError::Cleanup { published_lsn, .. } = err else {
        panic!("expected a cleanup error, got {err}");
    };
    assert_eq!(published_lsn, db.stats().last_lsn);
    assert_eq!(db.stats().checkpoint_lsn, published_lsn);
    let segments_before = db.stats().wal_segments;
    assert!(segments_before > 1);
    faults.clear();
    let report = db.checkpoint_now(CheckpointKind::Incremental).unwrap();
    assert!(report.empty && report.drained());
    assert_eq!(db.stats().wal_segments, 1);
    let expected = db.scan(..);
    drop(db);
    let db = open(dir.path(), &faults, Arc::new(FileStorage::new()));
    assert_eq!(db.scan(..), expected);
}

#[test]
fn stale_files_break_the_file_invariant() {
    let _serial = common::serial();
    for mode in [LeakMode::Strict, LeakMode::Production] {
        let dir = common::tempdir();
        let faults = Arc::new(Faults::default());
        let opts = common::test_options()
            .leak_mode(mode)
            .sync(ckptdb::SyncPolicy::None)
            .faults(Arc::clone(&faults))
            .build()
            .unwrap();
        let db = Db::open(dir.path(), opts).unwrap();
        fill(&db, 0);
        db.checkpoint_now(CheckpointKind::Incremental).unwrap();
        faults.keep_stale_files(true);
        fill(&db, 1);
        let result = db.checkpoint_now(CheckpointKind::Global);
        match mode {
            LeakMode::Strict => {
                let Err(CheckpointError::FileLeak(v)) = result else {
                    panic!("expected a file leak, got {result:?}");
                };
                assert_eq!(v.unregistered.len(), 1, "{v}");
            }
            _ => {
                let report = result.unwrap();
                assert_eq!(report.file_leak.map(|v| v.unregistered.len()), Some(1));
            }
        }
        assert_eq!(db.stats().file_leaks_detected, 1);
        // Fault removed: the next run's cleanup deletes the stale file.
        faults.clear();
        db.checkpoint_now(CheckpointKind::Incremental).unwrap();
        assert_eq!(db.check_file_invariant().unwrap(), Ok(()));
    }
}
