//! Each database keeps its memtables in its own instance of the memtable
//! scope (`ckptdb/memtable#n`), where its memtable budget is set: one
//! database written far past its budget makes memory-driven checkpoints,
//! while another in the same process, with the same budget and a few
//! writes, makes none, and each instance's live bytes are its own
//! database's memtable and base table. The kind `ckptdb/memtable` sums
//! them.

use crate::common;

use std::time::{Duration, Instant};

use ckptdb::scopes::MEMTABLE;
use ckptdb::{Db, Runner};

const BUDGET: u64 = 128 << 10;

fn open(dir: &std::path::Path) -> Db {
    let opts = common::test_options()
        .sync(ckptdb::SyncPolicy::None)
        .runner(Runner::Background)
        // Only the memtable budget can start a run.
        .checkpoint_interval(Duration::from_secs(3600))
        .checkpoint_dirty_bytes(u64::MAX)
        .memtable_budget(BUDGET)
        .build()
        .unwrap();
    Db::open(dir, opts).unwrap()
}

#[test]
fn one_database_over_its_memtable_budget_does_not_flush_another() {
    let _serial = common::serial();
    let (dir_a, dir_b) = (common::tempdir(), common::tempdir());
    let heavy = open(dir_a.path());
    let light = open(dir_b.path());
    assert_ne!(heavy.memtable_scope(), light.memtable_scope());
    assert!(
        heavy
            .memtable_scope()
            .path()
            .starts_with("ckptdb/memtable#"),
        "{}",
        heavy.memtable_scope().path()
    );

    // A few small writes: far under the budget.
    for i in 0..10u32 {
        light.put(format!("l{i}").as_bytes(), b"small").unwrap();
    }
    // ~3 MiB over 1000 keys: many times the budget.
    for i in 0..3000u32 {
        let value = vec![(i % 251) as u8; 1000];
        heavy
            .put(format!("h{:04}", i % 1000).as_bytes(), &value)
            .unwrap();
        // The light database never sees the heavy one's memtable.
        if i % 500 == 0 {
            assert!(!light.memtable_over_budget(), "after {i} heavy writes");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while heavy.memtable_over_budget() {
        assert!(Instant::now() < deadline, "the runner never caught up");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Time for the light database's runner to act if it (wrongly) saw the
    // heavy one's bytes.
    std::thread::sleep(Duration::from_millis(200));

    let (h, l) = (heavy.stats(), light.stats());
    eprintln!(
        "heavy: {} runs by budget; light: {} runs by budget",
        h.memtable_budget_runs, l.memtable_budget_runs
    );
    assert!(h.memtable_budget_runs >= 2, "{h:?}");
    assert_eq!((l.memtable_budget_runs, l.checkpoints_ok), (0, 0), "{l:?}");
    assert!(!light.memtable_over_budget());

    // Each instance holds its own database's tables only: the heavy one's
    // base holds its 1000 values of 1000 B; the light one, 10 small
    // entries.
    let heavy_live = heavy.memtable_scope().stats_with_children().live_bytes;
    let light_live = light.memtable_scope().stats_with_children().live_bytes;
    eprintln!("memtable live: heavy {heavy_live} B, light {light_live} B");
    assert!(heavy_live >= 1000 * 1000, "{heavy_live}");
    assert!(light_live < 4 << 10, "{light_live}");
    // The kind sums its instances and holds nothing itself.
    assert_eq!(MEMTABLE.stats().live_bytes, 0);
    assert_eq!(
        MEMTABLE.stats_with_children().live_bytes,
        heavy_live + light_live
    );
    // The budgets are set on the instances, not on the kind.
    assert!(MEMTABLE.id().budget().is_none());
    assert!(light.memtable_scope().budget().is_some());

    for i in (0..1000u32).step_by(37) {
        assert!(heavy.get(format!("h{i:04}").as_bytes()).is_some());
    }
    assert_eq!(light.get(b"l3").as_deref(), Some(&b"small"[..]));
    heavy.close().unwrap();
    light.close().unwrap();
    // Closed: the instances are released, their budgets cleared.
    assert_eq!(MEMTABLE.stats_with_children().live_bytes, 0);
}
