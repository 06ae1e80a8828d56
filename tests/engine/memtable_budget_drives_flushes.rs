//! Memory-driven flush: with the write-count, interval and dirty-bytes
//! triggers out of the way, the background runner checkpoints when the
//! `memtable` scope crosses its budget, so the same writes make more runs
//! under a smaller budget; over the ceiling writers are throttled, never
//! failed.
//!
//! Each database has its own memtable scope instance (see
//! `two_databases_have_their_own_memtable_budget.rs`); the tests still
//! take `common::serial()` so that their timings do not overlap.

use crate::common;

use std::time::{Duration, Instant};

use ckptdb::{Db, DbStats, Runner};

const WRITES: u32 = 3000;

/// Writes the same 3000 ~1 KiB values (over 1000 keys) under `budget`
/// (and `ceiling`), waits for the runner to catch up and returns the stats.
fn run_with(budget: u64, ceiling: u64) -> DbStats {
    let dir = common::tempdir();
    let opts = common::test_options()
        .sync(ckptdb::SyncPolicy::None)
        .runner(Runner::Background)
        // The other triggers never fire.
        .checkpoint_interval(Duration::from_secs(3600))
        .checkpoint_dirty_bytes(u64::MAX)
        .memtable_budget(budget)
        .memtable_ceiling(ceiling)
        .build()
        .unwrap();
    let db = Db::open(dir.path(), opts).unwrap();
    for i in 0..WRITES {
        let value = vec![(i % 251) as u8; 1000];
        db.put(format!("k{:04}", i % 1000).as_bytes(), &value)
            .unwrap();
    }
    // Let a run in progress (or due) finish.
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.memtable_over_budget() {
        assert!(Instant::now() < deadline, "the runner never caught up");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    let stats = db.stats();
    for i in (0..1000u32).step_by(37) {
        assert!(db.get(format!("k{i:04}").as_bytes()).is_some());
    }
    db.close().unwrap();
    stats
}

#[test]
fn the_number_of_runs_follows_the_memtable_budget_not_the_write_count() {
    let _serial = common::serial();
    // ~3 MiB of values written in both cases; the ceiling at the budget
    // holds the writers while a run drains, so each run takes about one
    // budget's worth of writes.
    let small = run_with(128 << 10, 128 << 10);
    let large = run_with(1 << 20, 1 << 20);
    eprintln!(
        "128 KiB budget: {} runs ({} by budget); 1 MiB budget: {} runs ({} by budget)",
        small.checkpoints_ok,
        small.memtable_budget_runs,
        large.checkpoints_ok,
        large.memtable_budget_runs
    );
    assert_eq!(small.checkpoints_failed + large.checkpoints_failed, 0);
    // Every run was started by the budget: no other trigger can fire.
    assert_eq!(small.memtable_budget_runs, small.checkpoints_ok);
    assert_eq!(large.memtable_budget_runs, large.checkpoints_ok);
    assert!(large.checkpoints_ok >= 1, "{large:?}");
    // 8x the budget: several times fewer runs for the same writes.
    assert!(
        small.checkpoints_ok >= 4 * large.checkpoints_ok,
        "small budget {} runs, large budget {} runs",
        small.checkpoints_ok,
        large.checkpoints_ok
    );
}

#[test]
fn without_a_ceiling_writers_go_on_during_runs_and_the_budget_still_counts() {
    let _serial = common::serial();
    let small = run_with(128 << 10, 0);
    let large = run_with(1 << 20, 0);
    eprintln!(
        "unthrottled: 128 KiB budget: {} runs; 1 MiB budget: {} runs",
        small.checkpoints_ok, large.checkpoints_ok
    );
    assert_eq!(small.memtable_budget_runs, small.checkpoints_ok);
    assert!(large.checkpoints_ok >= 1);
    assert!(small.checkpoints_ok > large.checkpoints_ok);
}

#[test]
fn no_budget_no_memory_driven_runs() {
    let _serial = common::serial();
    let s = run_with(0, 0);
    assert_eq!((s.checkpoints_ok, s.memtable_budget_runs), (0, 0));
}

#[test]
fn writers_over_the_ceiling_are_throttled_never_failed() {
    let _serial = common::serial();
    // A ceiling just above the budget: writers outrun the runner and wait
    // for it; every write succeeds (run_with unwraps each put).
    let s = run_with(64 << 10, 96 << 10);
    assert!(s.checkpoints_ok >= 1);
    eprintln!(
        "{} writes throttled for {:?} in total",
        s.writes_throttled, s.throttled
    );
    // Each wait is bounded (give or take one poll and the scheduler).
    let bound = (ckptdb::MAX_THROTTLE + Duration::from_millis(100)) * s.writes_throttled as u32;
    assert!(s.throttled <= bound, "{:?} > {bound:?}", s.throttled);
}

#[test]
fn a_ceiling_needs_a_budget_at_most_the_ceiling() {
    assert!(common::test_options()
        .memtable_ceiling(1 << 20)
        .build()
        .is_err());
    assert!(common::test_options()
        .memtable_budget(2 << 20)
        .memtable_ceiling(1 << 20)
        .build()
        .is_err());
    assert!(common::test_options()
        .memtable_budget(1 << 20)
        .memtable_ceiling(2 << 20)
        .build()
        .is_ok());
}
