//! A block allocated in scope A on one thread and freed on another thread,
//! while scope B is current there, is credited back to A: A's live figures
//! return to zero and B never sees the block.

use std::sync::mpsc;
use std::thread;

use scope_alloc_tracker::{ScopeId, ScopeStats};

const SIZES: [usize; 8] = [1, 7, 24, 100, 1000, 4096, 20_000, 300_000];

fn assert_untouched(s: ScopeStats) {
    assert_eq!(
        (
            s.total_allocs,
            s.total_bytes,
            s.total_usable_bytes,
            s.total_frees,
            s.total_freed_bytes
        ),
        (0, 0, 0, 0, 0),
        "{s:?}"
    );
    assert_eq!(
        (s.live_bytes, s.live_allocs, s.live_usable_bytes),
        (0, 0, 0),
        "{s:?}"
    );
}

#[test]
fn free_on_another_thread_in_another_scope_credits_the_allocating_scope() {
    let a = ScopeId::register("cross-thread/a", None).unwrap();
    let b = ScopeId::register("cross-thread/b", None).unwrap();

    // Thread 1 allocates in A. The container is allocated outside A.
    let blocks = thread::spawn(move || {
        let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(SIZES.len());
        a.in_scope(|| {
            for size in SIZES {
                blocks.push(Vec::with_capacity(size));
            }
        });
        blocks
    })
    .join()
    .unwrap();

    let bytes: u64 = SIZES.iter().map(|&s| s as u64).sum();
    let n = SIZES.len() as u64;
    let s = a.stats();
    // Whether the size classes are right is `usable_bytes_match_jemalloc_*`'s
    // business; here the usable bytes only have to move with their blocks.
    let usable_bytes = s.total_usable_bytes;
    assert!(usable_bytes >= bytes + 2 * n, "{s:?}");
    assert_eq!(
        (s.total_allocs, s.total_bytes, s.total_usable_bytes),
        (n, bytes, usable_bytes)
    );
    assert_eq!(
        (s.live_allocs, s.live_bytes, s.live_usable_bytes),
        (n, bytes, usable_bytes)
    );
    assert_eq!((s.total_frees, s.total_freed_bytes), (0, 0));

    // Thread 2 frees them with B current.
    thread::spawn(move || b.in_scope(|| drop(blocks)))
        .join()
        .unwrap();

    let s = a.stats();
    assert_eq!(
        (s.live_allocs, s.live_bytes, s.live_usable_bytes),
        (0, 0, 0),
        "{s:?}"
    );
    assert_eq!((s.total_frees, s.total_freed_bytes), (n, bytes), "{s:?}");
    assert_eq!(
        (s.total_allocs, s.total_bytes, s.total_usable_bytes),
        (n, bytes, usable_bytes)
    );
    assert_untouched(b.stats());
}

#[test]
fn frees_spread_over_many_threads_and_scopes_all_land_on_the_origin() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 250;
    let origin = ScopeId::register("cross-thread/origin", None).unwrap();
    let others: Vec<ScopeId> = (0..THREADS)
        .map(|i| ScopeId::register(&format!("cross-thread/other-{i}"), None).unwrap())
        .collect();

    // The test thread allocates everything in `origin`...
    let mut expected_bytes = 0u64;
    let mut batches: Vec<Vec<Box<[u8]>>> = (0..THREADS)
        .map(|_| Vec::with_capacity(PER_THREAD))
        .collect();
    for (t, batch) in batches.iter_mut().enumerate() {
        for i in 0..PER_THREAD {
            let size = 1 + (t * 7919 + i * 104_729) % 5000;
            expected_bytes += size as u64;
            batch.push(origin.in_scope(|| vec![0xA5u8; size].into_boxed_slice()));
        }
    }
    let n = (THREADS * PER_THREAD) as u64;
    let s = origin.stats();
    assert_eq!((s.live_allocs, s.live_bytes), (n, expected_bytes));

    // ...and each worker frees one batch inside its own scope, handed over
    // through a channel (so the worker thread exists before the blocks do).
    let mut workers = Vec::new();
    for &scope in &others {
        let (tx, rx) = mpsc::channel::<Vec<Box<[u8]>>>();
        let h = thread::spawn(move || {
            let batch = rx.recv().unwrap();
            scope.in_scope(move || {
                for block in batch {
                    assert!(block.iter().all(|&x| x == 0xA5));
                    drop(block);
                }
            });
        });
        workers.push((tx, h));
    }
    for ((tx, _), batch) in workers.iter().zip(batches) {
        tx.send(batch).unwrap();
    }
    for (_, h) in workers {
        h.join().unwrap();
    }

    let s = origin.stats();
    assert_eq!(
        (s.live_allocs, s.live_bytes, s.live_usable_bytes),
        (0, 0, 0),
        "{s:?}"
    );
    assert_eq!((s.total_allocs, s.total_bytes), (n, expected_bytes));
    assert_eq!((s.total_frees, s.total_freed_bytes), (n, expected_bytes));
    for scope in others {
        assert_untouched(scope.stats());
    }
}
