//! On a 3-thread rayon pool, work stolen by other workers is charged to the
//! caller's scope when the parallel iterator carries it
//! (`in_current_scope`), so a leak there is caught; without it, stolen
//! items land elsewhere (the reason the adaptor exists).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use rayon::prelude::*;
use scope_alloc_tracker::integrations::rayon::{self as scoped, ParallelIteratorExt};
use scope_alloc_tracker::leak::LeakCheck;
use scope_alloc_tracker::{Scope, ScopeId};

static ENCODE: Scope = Scope::new("encode");

fn pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap()
}

fn leak_item(threads: &Mutex<HashSet<std::thread::ThreadId>>) {
    std::thread::sleep(Duration::from_millis(1));
    threads.lock().unwrap().insert(std::thread::current().id());
    std::mem::forget(std::hint::black_box(vec![0u8; 1000]));
}

#[test]
fn a_leak_in_stolen_work_is_charged_to_the_scope() {
    let pool = pool();
    let threads = Mutex::new(HashSet::new());
    // The thread set's own growth happens before the check.
    threads.lock().unwrap().reserve(16);
    let instance = ENCODE.instance().unwrap();
    let check = LeakCheck::begin(&instance);
    instance.in_scope(|| {
        // `scoped::install` carries the scope onto the pool's thread, where
        // `in_current_scope` picks it up for every item.
        scoped::install(&pool, || {
            (0..64)
                .into_par_iter()
                .in_current_scope()
                .for_each(|_| leak_item(&threads))
        })
    });
    let report = check.finish().unwrap_err();
    assert!(
        threads.lock().unwrap().len() >= 2,
        "the work was not spread over the pool"
    );
    assert_eq!(report.leaked_bytes, 64 * 1000, "{report}");
    assert_eq!(report.leaked_allocs, 64);
}

#[test]
fn without_the_adaptor_stolen_items_escape_the_scope() {
    static PLAIN: Scope = Scope::new("plain");
    let pool = pool();
    let threads = Mutex::new(HashSet::new());
    threads.lock().unwrap().reserve(16);
    let before = PLAIN.stats().live_bytes;
    PLAIN.in_scope(|| pool.install(|| (0..64).into_par_iter().for_each(|_| leak_item(&threads))));
    let charged = PLAIN.stats().live_bytes - before;
    if threads.lock().unwrap().len() >= 2 {
        assert!(charged < 64 * 1000, "{charged}");
    }
}

#[test]
fn collect_map_join_and_spawn_keep_the_scope() {
    static WORK: Scope = Scope::new("work");
    let pool = pool();
    let before = WORK.stats();
    let (lens, (a, b)) = WORK.in_scope(|| {
        scoped::install(&pool, || {
            let lens: Vec<usize> = (0..256)
                .into_par_iter()
                .in_current_scope()
                .map(|i| {
                    assert_eq!(ScopeId::current(), WORK.id());
                    std::hint::black_box(vec![0u8; 100 + i]).len()
                })
                .collect();
            let ab = scoped::join(ScopeId::current, ScopeId::current);
            (lens, ab)
        })
    });
    assert_eq!(lens.len(), 256);
    assert_eq!((a, b), (WORK.id(), WORK.id()));
    let after = WORK.stats();
    let items: u64 = (0..256).map(|i| 100 + i as u64).sum();
    assert!(after.total_bytes - before.total_bytes >= items);
    drop(lens);
    assert_eq!(WORK.stats().live_bytes, before.live_bytes);

    let (tx, rx) = std::sync::mpsc::channel();
    WORK.in_scope(|| {
        scoped::install(&pool, || {
            scoped::spawn(move || tx.send(ScopeId::current()).unwrap())
        })
    });
    assert_eq!(rx.recv().unwrap(), WORK.id());
}
