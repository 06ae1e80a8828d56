//! A checkpoint run that goes over its memory budget fails cleanly with
//! `CheckpointError::OverBudget` naming the budget and the bytes, and is
//! rolled back (the file set is unchanged, the data stays dirty); the
//! retry with a larger budget (raised at run time, or set in the options
//! of the reopened database) succeeds, and the data is intact after a
//! reopen.

use crate::common;

use ckptdb::{CheckpointError, CheckpointKind, Db};

fn fill(db: &Db, round: u32, n: u32) {
    for i in 0..n {
        db.put(
            format!("k{i:05}").as_bytes(),
            format!("{round}-{i}-{}", "x".repeat(200)).as_bytes(),
        )
        .unwrap();
    }
}

fn expect_data(db: &Db, round: u32, n: u32) {
    for i in (0..n).step_by(97) {
        let v = db.get(format!("k{i:05}").as_bytes()).expect("key");
        assert!(v.starts_with(format!("{round}-{i}-").as_bytes()));
    }
    assert_eq!(db.scan(..).len(), n as usize);
}

#[test]
fn over_budget_rolls_back_and_the_retry_with_a_raised_budget_succeeds() {
    let _serial = common::serial();
    let dir = common::tempdir();
    let opts = common::test_options()
        .sync(ckptdb::SyncPolicy::None)
        // A run of 2000 entries of ~210 B needs far more than 16 KiB.
        .checkpoint_budget(16 << 10)
        .build()
        .unwrap();
    let db = Db::open(dir.path(), opts).unwrap();
    fill(&db, 0, 2000);
    let before_disk = common::checkpoint_files(dir.path());
    let before_registered = db.checkpoint_files();

    for kind in [CheckpointKind::Incremental, CheckpointKind::Global] {
        let err = db.checkpoint_now(kind).unwrap_err();
        match &err {
            CheckpointError::OverBudget {
                budget_bytes,
                live_bytes,
                at,
                ..
            } => {
                assert_eq!(*budget_bytes, 16 << 10);
                assert!(*live_bytes > 0, "{err}");
                assert!(
                    ["after collect", "after encode", "before publish"].contains(at),
                    "{err}"
                );
            }
            other => panic!("expected OverBudget, got {other}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("16384 B") && msg.contains("rolled back"),
            "{msg}"
        );
        // Rolled back: no file added or removed, nothing registered, the
        // data still dirty for the next run.
        assert_eq!(common::checkpoint_files(dir.path()), before_disk);
        assert_eq!(db.checkpoint_files(), before_registered);
        assert_eq!(db.stats().checkpoint_lsn, 0);
        assert!(db.stats().frozen_memtables >= 1);
    }
    let s = db.stats();
    assert_eq!((s.checkpoints_over_budget, s.checkpoints_failed), (2, 2));

    // Raised at run time: the retry succeeds and drains.
    db.set_checkpoint_budget(Some(64 << 20));
    let report = db.checkpoint_now(CheckpointKind::Incremental).unwrap();
    assert!(report.drained() && !report.empty);
    assert_eq!(report.entries, 2000);
    assert_eq!(db.stats().frozen_memtables, 0);
    assert_eq!(db.check_file_invariant().unwrap(), Ok(()));
    let lsn = db.stats().last_lsn;
    assert_eq!(db.stats().checkpoint_lsn, lsn);

    // Lowered again: the next run fails, then succeeds with no budget.
    fill(&db, 1, 2000);
    db.set_checkpoint_budget(Some(8 << 10));
    let before_disk = common::checkpoint_files(dir.path());
    assert!(matches!(
        db.checkpoint_now(CheckpointKind::Global),
        Err(CheckpointError::OverBudget { .. })
    ));
    assert_eq!(common::checkpoint_files(dir.path()), before_disk);
    db.set_checkpoint_budget(None);
    db.checkpoint_now(CheckpointKind::Global).unwrap();
    db.close().unwrap();

    // Data intact after a reopen (with a budget the runs fit in).
    let opts = common::test_options()
        .checkpoint_budget(64 << 20)
        .build()
        .unwrap();
    let db = Db::open(dir.path(), opts).unwrap();
    expect_data(&db, 1, 2000);
    fill(&db, 2, 2000);
    db.checkpoint_now(CheckpointKind::Incremental).unwrap();
    db.close().unwrap();
    let db = Db::open(dir.path(), common::test_options().build().unwrap()).unwrap();
    expect_data(&db, 2, 2000);
    db.close().unwrap();
}

#[test]
fn the_background_runner_retries_a_run_that_went_over_budget() {
    let _serial = common::serial();
    let dir = common::tempdir();
    let opts = common::test_options()
        .sync(ckptdb::SyncPolicy::None)
        .runner(ckptdb::Runner::Background)
        .checkpoint_interval(std::time::Duration::from_millis(20))
        .checkpoint_budget(4 << 10)
        .build()
        .unwrap();
    let db = Db::open(dir.path(), opts).unwrap();
    fill(&db, 0, 1000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while db.stats().checkpoints_over_budget == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no run went over budget"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        db.stats().checkpoint_lsn,
        0,
        "nothing published over budget"
    );
    db.set_checkpoint_budget(Some(64 << 20));
    let lsn = db.stats().last_lsn;
    while db.stats().checkpoint_lsn < lsn {
        assert!(
            std::time::Instant::now() < deadline,
            "the runner did not retry"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    db.close().unwrap();
    let db = Db::open(dir.path(), common::test_options().build().unwrap()).unwrap();
    expect_data(&db, 0, 1000);
    db.close().unwrap();
}
