//! The checkpoint-leak regression test: after every checkpoint run
//! (incremental, global, with GC), the database's `checkpoint#n` scope and
//! the `checkpoint` kind have drained to zero and the file-leak invariant
//! holds; also after a restart.

use crate::common;

use ckptdb::scopes::CHECKPOINT;
use ckptdb::workload::Workload;
use ckptdb::{CheckpointKind, Db, SyncPolicy};

fn assert_drained(db: &Db, what: &str) {
    let own = db.checkpoint_scope();
    assert!(own.path().starts_with("checkpoint#"), "{}", own.path());
    let live = own.stats_with_children();
    assert_eq!(
        live.live_bytes,
        0,
        "{what}: {} still holds {live:?}",
        own.path()
    );
    let live = CHECKPOINT.id().stats_with_children();
    assert_eq!(
        live.live_bytes, 0,
        "{what}: checkpoint scope still holds {live:?}"
    );
    db.check_file_invariant()
        .expect("list dir")
        .unwrap_or_else(|v| panic!("{what}: {v}"));
    assert!(
        db.checkpoint_files().len() <= 1 + 3,
        "{what}: {:?}",
        db.checkpoint_files()
    );
}

#[test]
fn every_run_drains_and_keeps_the_file_invariant() {
    let dir = common::tempdir();
    // Two encoder threads, and enough data for them to be used.
    let _serial = common::serial();
    let opts = || {
        common::test_options()
            .sync(SyncPolicy::None)
            .write_threads(2)
            .build()
            .unwrap()
    };
    let db = Db::open(dir.path(), opts()).unwrap();
    let mut runs = 0;
    for round in 0..10u64 {
        Workload {
            seed: round,
            key_space: 3_000,
            value_sizes: vec![8, 64, 300],
            ops_per_thread: 1_500,
            ..Workload::default()
        }
        .run(&db)
        .unwrap();
        let kind = if round % 4 == 3 {
            CheckpointKind::Global
        } else {
            CheckpointKind::Incremental
        };
        let report = db.checkpoint_now(kind).unwrap();
        runs += 1;
        assert!(report.drained(), "run {runs}: {report:?}");
        assert!(
            report.allocated_bytes > 0,
            "run {runs} allocated nothing? {report:?}"
        );
        assert_drained(&db, &format!("run {runs} ({kind:?})"));
        if round == 5 {
            assert!(report.gc.is_some() || db.checkpoint_files().len() <= 4);
        }
    }
    // An empty run drains too.
    let report = db.checkpoint_now(CheckpointKind::Incremental).unwrap();
    assert!(report.empty);
    assert_drained(&db, "empty run");
    let stats = db.stats();
    assert_eq!(stats.leaks_detected, 0);
    assert_eq!(stats.checkpoints_ok, runs + 1);
    let expected = db.scan(..);
    db.close().unwrap();

    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(db.scan(..), expected);
    for kind in [CheckpointKind::Incremental, CheckpointKind::Global] {
        db.put(b"after-restart", b"1").unwrap();
        let report = db.checkpoint_now(kind).unwrap();
        assert!(report.drained());
        assert_drained(&db, "after restart");
    }
    // Recovery's transient memory is gone too.
    assert_eq!(ckptdb::scopes::RECOVERY.id().stats().live_bytes, 0);
}

#[test]
fn gc_compacts_incrementals_into_one_base() {
    let _serial = common::serial();
    let dir = common::tempdir();
    let db = Db::open(dir.path(), common::test_options().build().unwrap()).unwrap();
    let mut saw_gc = false;
    for i in 0..8u32 {
        for k in 0..50u32 {
            db.put(format!("k{k}").as_bytes(), &i.to_le_bytes())
                .unwrap();
        }
        db.delete(format!("k{i}").as_bytes()).unwrap();
        let r = db.checkpoint_now(CheckpointKind::Incremental).unwrap();
        saw_gc |= r.gc.is_some();
        assert_drained(&db, "incremental");
    }
    assert!(saw_gc, "GC never ran");
    let files = db.checkpoint_files();
    assert!(files.len() <= 4, "{files:?}");
    let expected = db.scan(..);
    assert_eq!(expected.len(), 49);
    assert_eq!(db.get(b"k7"), None);
    drop(db);
    let db = Db::open(dir.path(), common::test_options().build().unwrap()).unwrap();
    assert_eq!(db.scan(..), expected);
}
