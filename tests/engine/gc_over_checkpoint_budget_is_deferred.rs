//! GC is under the checkpoint budget. A budget that admits an incremental
//! run but not the GC that follows it (merging the whole chain takes
//! several times a run's memory) defers the GC: the run succeeds and
//! publishes its own file, the GC's compacted file is removed, the old
//! chain and the manifest stay as the run left them, the report and the
//! counters say so, and the data is intact after a reopen. The next run
//! retries the GC; once the budget is lifted it compacts.

use crate::common;

use ckptdb::{CheckpointKind, CheckpointReport, Db, GcDeferred, Options};

/// Entries per round: each round writes its own keys, so GC merges
/// distinct data from every file of the chain.
const N: u32 = 2000;
/// Rounds: with `max_incrementals(3)` (`common::test_options`), the
/// fourth incremental makes GC due.
const ROUNDS: u32 = 4;

fn options(budget: u64) -> Options {
    common::test_options()
        .sync(ckptdb::SyncPolicy::None)
        .checkpoint_budget(budget)
        .build()
        .unwrap()
}

fn fill(db: &Db, round: u32) {
    fill_with(db, round, 200);
}

fn fill_with(db: &Db, round: u32, value_len: usize) {
    for i in 0..N {
        db.put(
            format!("r{round}-k{i:05}").as_bytes(),
            format!("{round}-{i}-{}", "x".repeat(value_len)).as_bytes(),
        )
        .unwrap();
    }
}

/// Total size of the checkpoint data files in `dir`.
fn data_bytes(dir: &std::path::Path) -> u64 {
    common::checkpoint_files(dir)
        .iter()
        .filter(|n| n.ends_with(".dat"))
        .map(|n| std::fs::metadata(dir.join(n)).unwrap().len())
        .sum()
}

fn expect_data(db: &Db, rounds: u32) {
    for round in 0..rounds {
        for i in (0..N).step_by(97) {
            let v = db
                .get(format!("r{round}-k{i:05}").as_bytes())
                .unwrap_or_else(|| panic!("key r{round}-k{i:05} missing"));
            assert!(v.starts_with(format!("{round}-{i}-").as_bytes()));
        }
    }
    assert_eq!(db.scan(..).len(), (rounds * N) as usize);
}

fn run(db: &Db) -> CheckpointReport {
    let r = db.checkpoint_now(CheckpointKind::Incremental).unwrap();
    assert!(r.drained(), "{r:?}");
    r
}

/// Peak bytes of the runs without GC, and of the run whose GC merged the
/// chain, with no budget.
fn calibrate() -> (u64, u64) {
    let dir = common::tempdir();
    let db = Db::open(dir.path(), options(0)).unwrap();
    let mut run_peak = 0;
    for round in 0..ROUNDS - 1 {
        fill(&db, round);
        let r = run(&db);
        assert!(r.gc.is_none());
        run_peak = run_peak.max(r.peak_bytes);
    }
    fill(&db, ROUNDS - 1);
    let r = run(&db);
    assert!(r.gc.is_some(), "GC due at the 4th incremental: {r:?}");
    db.close().unwrap();
    (run_peak, r.peak_bytes)
}

#[test]
fn a_gc_over_the_checkpoint_budget_is_deferred_and_the_next_run_retries_it() {
    let _serial = common::serial();
    let (run_peak, gc_peak) = calibrate();
    eprintln!("peak of a run: {run_peak} B; of a run with GC: {gc_peak} B");
    assert!(
        gc_peak > 3 * run_peak,
        "GC should need several times a run's memory: {gc_peak} vs {run_peak}"
    );
    // Between the two: every run fits, their GC does not.
    let budget = 2 * run_peak;

    let dir = common::tempdir();
    let db = Db::open(dir.path(), options(budget)).unwrap();
    for round in 0..ROUNDS - 1 {
        fill(&db, round);
        let r = run(&db);
        assert!(r.gc.is_none() && r.gc_deferred.is_none());
    }
    fill(&db, ROUNDS - 1);
    let before = common::checkpoint_files(dir.path());
    let r = run(&db);

    // The run published its own file; GC was deferred and left nothing.
    assert!(r.gc.is_none(), "GC ran over the budget: {r:?}");
    let d: GcDeferred = r.gc_deferred.expect("GC deferred over the budget");
    assert_eq!(d.budget_bytes, budget);
    assert_eq!(d.chain_files, ROUNDS as usize);
    assert!(d.crossed || d.live_bytes > budget, "{d:?}");
    assert!(
        [
            "while reading the chain",
            "after merge",
            "after encode",
            "before publish"
        ]
        .contains(&d.at),
        "{d:?}"
    );
    assert!(!r.empty && r.entries == u64::from(N));
    assert_eq!(r.files_written.len(), 1, "{r:?}");
    let mut expected = before.clone();
    expected.push(r.files_written[0].clone());
    expected.sort();
    assert_eq!(
        common::checkpoint_files(dir.path()),
        expected,
        "only the run's own file was added"
    );
    assert_eq!(db.checkpoint_files().len(), ROUNDS as usize);
    assert_eq!(db.check_file_invariant().unwrap(), Ok(()));
    let s = db.stats();
    assert_eq!(s.gcs_deferred_over_budget, 1);
    assert_eq!((s.checkpoints_over_budget, s.checkpoints_failed), (0, 0));
    assert_eq!(s.checkpoint_lsn, s.last_lsn);
    db.close().unwrap();

    // Intact after a reopen; the chain is still too long, GC still
    // pending: the invariant waits for it.
    let on_disk = common::checkpoint_files(dir.path());
    let db = Db::open(dir.path(), options(budget)).unwrap();
    expect_data(&db, ROUNDS);
    assert_eq!(db.check_file_invariant().unwrap(), Ok(()));
    // The next run (nothing new) retries GC, deferred again: no file
    // added or removed.
    let r = run(&db);
    assert!(
        r.empty && r.gc.is_none() && r.gc_deferred.is_some(),
        "{r:?}"
    );
    assert_eq!(common::checkpoint_files(dir.path()), on_disk);
    assert_eq!(db.stats().gcs_deferred_over_budget, 1);

    // Lifted: the next run compacts the whole chain.
    db.set_checkpoint_budget(None);
    let r = run(&db);
    let gc = r.gc.as_ref().expect("GC ran with the budget lifted");
    assert_eq!(gc.merged_files, ROUNDS as usize);
    assert!(r.gc_deferred.is_none());
    assert_eq!(db.checkpoint_files(), vec![gc.compacted.clone()]);
    let mut after = common::checkpoint_files(dir.path());
    after.retain(|n| n.starts_with("ckpt-"));
    assert_eq!(after, vec![gc.compacted.clone()]);
    assert_eq!(db.check_file_invariant().unwrap(), Ok(()));
    db.close().unwrap();

    let db = Db::open(dir.path(), options(0)).unwrap();
    expect_data(&db, ROUNDS);
    db.close().unwrap();
}

#[test]
fn a_gc_stopped_after_it_created_its_file_removes_it() {
    let _serial = common::serial();
    // Values of ~2 KB: the chain's bytes dominate GC's memory. GC holds the
    // chain (S bytes) from its first safe point on, and the encoded image
    // (about S more) from `after encode`, once its temp file exists; a
    // budget of 1.5 S lets it through the first two safe points and stops
    // it there.
    let dir = common::tempdir();
    let db = Db::open(dir.path(), options(0)).unwrap();
    for round in 0..ROUNDS - 1 {
        fill_with(&db, round, 2000);
        run(&db);
    }
    // The fourth file is as large as each of the three.
    let chain = data_bytes(dir.path()) * u64::from(ROUNDS) / u64::from(ROUNDS - 1);
    let budget = chain * 3 / 2;
    db.set_checkpoint_budget(Some(budget));
    fill_with(&db, ROUNDS - 1, 2000);
    let before = common::checkpoint_files(dir.path());
    let r = run(&db);
    let d = r.gc_deferred.expect("GC deferred over the budget");
    assert_eq!(
        d.at, "after encode",
        "chain {chain} B, budget {budget} B: {d:?}"
    );
    assert!(d.live_bytes > budget, "{d:?}");
    // The temp file GC created is gone; only the run's own file was added.
    let mut expected = before;
    expected.extend(r.files_written.iter().cloned());
    expected.sort();
    assert_eq!(common::checkpoint_files(dir.path()), expected);
    assert_eq!(db.check_file_invariant().unwrap(), Ok(()));
    db.close().unwrap();
    let db = Db::open(dir.path(), options(0)).unwrap();
    assert_eq!(db.scan(..).len(), (ROUNDS * N) as usize);
    // No budget: the next run compacts.
    assert!(run(&db).gc.is_some());
    db.close().unwrap();
}
