//! Frees and allocations made while a thread exits (in thread-local
//! destructors) are counted exactly, and so are allocations of more
//! threads than there are counter shards, whether they run one after the
//! other (shards are reused) or all at once (the rest share the overflow
//! shard).

use std::cell::RefCell;
use std::sync::{Arc, Barrier};
use std::thread;

use scope_alloc_tracker::{ScopeId, ScopeStats};

/// Owned counter shards in the tracker (`counters::MAX_SHARDS`).
const SHARDS: usize = 128;

/// Frees its block and allocates (and frees) another one in its scope when
/// the thread that owns it exits.
struct Holder {
    block: Vec<u8>,
    scope: ScopeId,
}

impl Drop for Holder {
    fn drop(&mut self) {
        assert_eq!(self.block.capacity(), 500);
        drop(std::mem::take(&mut self.block));
        self.scope
            .in_scope(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(333))));
    }
}

thread_local! {
    static HOLDER: RefCell<Option<Holder>> = const { RefCell::new(None) };
}

fn assert_balanced(s: ScopeStats, allocs: u64, bytes: u64) {
    assert_eq!((s.total_allocs, s.total_bytes), (allocs, bytes), "{s:?}");
    assert_eq!(
        (s.total_frees, s.total_freed_bytes),
        (allocs, bytes),
        "{s:?}"
    );
    assert_eq!(
        (s.live_allocs, s.live_bytes, s.live_usable_bytes),
        (0, 0, 0),
        "{s:?}"
    );
}

#[test]
fn tls_destructor_frees_and_allocations_are_counted_in_their_scope() {
    let s = ScopeId::register("exit/tls", None).unwrap();
    thread::spawn(move || {
        // First access outside the scope: it registers the destructor,
        // which may allocate.
        HOLDER.with(|h| assert!(h.borrow().is_none()));
        let block = s.in_scope(|| Vec::with_capacity(500));
        HOLDER.with(|h| *h.borrow_mut() = Some(Holder { block, scope: s }));
        let st = s.stats();
        assert_eq!((st.live_allocs, st.live_bytes), (1, 500), "{st:?}");
    })
    .join()
    .unwrap();
    // `join` returns after the thread's destructors ran.
    assert_balanced(s.stats(), 2, 833);
}

#[test]
fn tls_destructors_of_many_threads_balance_their_scope() {
    const THREADS: u64 = 40;
    let s = ScopeId::register("exit/tls-many", None).unwrap();
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            thread::spawn(move || {
                HOLDER.with(|h| assert!(h.borrow().is_none()));
                let block = s.in_scope(|| Vec::with_capacity(500));
                HOLDER.with(|h| *h.borrow_mut() = Some(Holder { block, scope: s }));
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_balanced(s.stats(), 2 * THREADS, 833 * THREADS);
}

#[test]
fn more_short_lived_threads_than_shards_count_exactly() {
    const THREADS: usize = 300;
    let s = ScopeId::register("exit/sequential", None).unwrap();
    let (mut allocs, mut bytes) = (0u64, 0u64);
    for i in 0..THREADS {
        let size = 1 + i * 13;
        // Each thread allocates and frees one block, and hands a second one
        // back to this thread, which frees it.
        let kept = thread::spawn(move || {
            s.in_scope(|| {
                drop(std::hint::black_box(Vec::<u8>::with_capacity(size)));
                Vec::<u8>::with_capacity(size + 1)
            })
        })
        .join()
        .unwrap();
        allocs += 2;
        bytes += (2 * size + 1) as u64;
        let st = s.stats();
        assert_eq!(
            (st.live_allocs, st.live_bytes),
            (1, size as u64 + 1),
            "thread {i}: {st:?}"
        );
        drop(kept);
    }
    const { assert!(THREADS > SHARDS) };
    assert_balanced(s.stats(), allocs, bytes);
}

#[test]
fn more_concurrent_threads_than_shards_count_exactly() {
    const THREADS: usize = 150;
    const { assert!(THREADS > SHARDS) };
    let s = ScopeId::register("exit/concurrent", None).unwrap();
    // Every thread meets the main thread at three points: all alive (the
    // main thread then reads), read (threads then free half), half freed.
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(4);
                    s.in_scope(|| {
                        for k in 0..4 {
                            blocks.push(Vec::with_capacity(10 + i + k));
                        }
                    });
                    barrier.wait();
                    barrier.wait();
                    blocks.truncate(2);
                    barrier.wait();
                    // The other two are freed by the main thread.
                    blocks
                })
                .unwrap()
        })
        .collect();

    let bytes_of =
        |i: usize, ks: std::ops::Range<usize>| ks.map(|k| (10 + i + k) as u64).sum::<u64>();
    barrier.wait();
    // Every thread is alive here, holding four blocks: more threads than
    // shards count at once.
    let st = s.stats();
    let all: u64 = (0..THREADS).map(|i| bytes_of(i, 0..4)).sum();
    assert_eq!(
        (st.live_allocs, st.live_bytes),
        (4 * THREADS as u64, all),
        "{st:?}"
    );
    barrier.wait();
    barrier.wait();
    let mut kept = Vec::with_capacity(THREADS);
    for h in handles {
        kept.push(h.join().unwrap());
    }
    let st = s.stats();
    let half: u64 = (0..THREADS).map(|i| bytes_of(i, 0..2)).sum();
    assert_eq!(
        (st.live_allocs, st.live_bytes),
        (2 * THREADS as u64, half),
        "{st:?}"
    );
    assert_eq!(
        (st.total_frees, st.total_freed_bytes),
        (2 * THREADS as u64, all - half),
        "{st:?}"
    );
    drop(kept);
    assert_balanced(s.stats(), 4 * THREADS as u64, all);
}

/// Exact fits (sizes that fill their size class) go to the scope's arena
/// through a tcache of the allocating thread, which the fast path finds in
/// the thread's counter line. A thread's exit destroys its tcaches; the
/// next thread on its shard must use its own, never one destroyed
/// (jemalloc aborts on an invalid tcache id). Two scopes per thread: a new
/// thread's tcaches get the destroyed ones' ids in another order, so a
/// stale id would name a destroyed tcache.
#[test]
fn threads_reusing_a_shard_make_their_own_tcaches_for_exact_fits() {
    let scopes = [
        ScopeId::register("exit-exact-fits-a", None).unwrap(),
        ScopeId::register("exit-exact-fits-b", None).unwrap(),
    ];
    let threads = 2 * SHARDS as u64;
    for _ in 0..threads {
        thread::spawn(move || {
            for s in scopes {
                s.in_scope(|| {
                    for size in [32usize, 64, 4096] {
                        for _ in 0..3 {
                            drop(std::hint::black_box(Vec::<u8>::with_capacity(size)));
                        }
                    }
                })
            }
        })
        .join()
        .unwrap();
    }
    for s in scopes {
        assert_balanced(s.stats(), threads * 9, threads * 3 * (32 + 64 + 4096));
    }
}
