//! The benchmark reference trackers count exactly: live bytes and blocks
//! per scope after cross-thread frees and reallocations (within and across
//! slack and exact-fit layouts) equal what was allocated and not freed.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::mpsc;

use super::{has_slack, size_class, RefAlloc, RefScope, RefTrailerAlloc};

struct Block(*mut u8, Layout);
// SAFETY: a handle to a heap block, moved to the thread that frees it.
unsafe impl Send for Block {}

/// Sizes with and without slack, small and large, and two alignments.
fn layouts() -> Vec<Layout> {
    let mut v = Vec::new();
    for size in [
        1, 7, 8, 16, 24, 30, 32, 48, 64, 100, 128, 4096, 5000, 16384, 70_000,
    ] {
        for align in [8, 64] {
            v.push(Layout::from_size_align(size, align).unwrap());
        }
    }
    v.push(Layout::from_size_align(4096, 4096).unwrap());
    assert!(v.iter().any(|&l| has_slack(l)) && v.iter().any(|&l| !has_slack(l)));
    v
}

/// Allocates `layouts()` in `scope` on this thread, frees half of them on
/// another thread (in another scope), reallocates the rest on a third
/// thread across size kinds, and checks the scope's live figures at each
/// step.
fn exact_across_threads<A: GlobalAlloc + Sync>(a: &A) {
    let scope = RefScope::new().unwrap();
    let other = RefScope::new().unwrap();
    let ls = layouts();
    let blocks: Vec<Block> = {
        let _in = scope.enter();
        ls.iter()
            // SAFETY: non-zero sizes.
            .map(|&l| Block(unsafe { a.alloc(l) }, l))
            .collect()
    };
    assert!(blocks.iter().all(|b| !b.0.is_null()));
    let total: usize = ls.iter().map(Layout::size).sum();
    assert_eq!(scope.live(), (ls.len() as i64, total as i64));
    assert_eq!(other.live(), (0, 0));

    let (freed, kept): (Vec<_>, Vec<_>) = blocks
        .into_iter()
        .enumerate()
        // Every third block (both alignments, slack and exact fits) is
        // freed by another thread; the rest are reallocated by a third.
        .partition(|(i, _)| i % 3 == 0);
    let freed_bytes: usize = freed.iter().map(|(_, b)| b.1.size()).sum();
    let (tx, rx) = mpsc::channel::<Vec<Block>>();
    std::thread::scope(|s| {
        s.spawn(move || {
            let _in = other.enter();
            for Block(p, l) in rx.recv().unwrap() {
                // SAFETY: allocated by `a` with `l`.
                unsafe { a.dealloc(p, l) };
            }
        });
        tx.send(freed.into_iter().map(|(_, b)| b).collect())
            .unwrap();
    });
    let kept: Vec<Block> = kept.into_iter().map(|(_, b)| b).collect();
    let kept_bytes = total - freed_bytes;
    assert_eq!(scope.live(), (kept.len() as i64, kept_bytes as i64));
    assert_eq!(other.live(), (0, 0));

    // Reallocate on another thread, in another scope: slack <-> exact fit,
    // growing and shrinking, small and large.
    let new_sizes = [32, 30, 24, 64, 4100, 8, 100_000, 33, 64 * 1024];
    let kinds: Vec<(bool, bool)> = kept
        .iter()
        .zip(new_sizes.iter().cycle())
        .map(|(b, &n)| {
            let new = Layout::from_size_align(n, b.1.align()).unwrap();
            (has_slack(b.1), has_slack(new))
        })
        .collect();
    for kind in [(true, true), (false, false), (true, false), (false, true)] {
        assert!(kinds.contains(&kind), "no reallocation of kind {kind:?}");
    }
    let reallocated: Vec<Block> = std::thread::scope(|s| {
        s.spawn(|| {
            let _in = other.enter();
            kept.into_iter()
                .zip(new_sizes.iter().cycle())
                .map(|(Block(p, l), &n)| {
                    // SAFETY: `p` is live with `l`; `n` is non-zero.
                    let q = unsafe { a.realloc(p, l, n) };
                    assert!(!q.is_null());
                    Block(q, Layout::from_size_align(n, l.align()).unwrap())
                })
                .collect()
        })
        .join()
        .unwrap()
    });
    let re_bytes: usize = reallocated.iter().map(|b| b.1.size()).sum();
    assert_eq!(scope.live(), (reallocated.len() as i64, re_bytes as i64));
    assert_eq!(other.live(), (0, 0));

    for Block(p, l) in reallocated {
        // SAFETY: live with `l`.
        unsafe { a.dealloc(p, l) };
    }
    assert_eq!(scope.live(), (0, 0));
    assert_eq!(other.live(), (0, 0));
}

#[test]
fn zero_memory_reference_is_exact_across_threads_and_reallocs() {
    exact_across_threads(&RefAlloc);
}

#[test]
fn trailer_reference_is_exact_across_threads_and_reallocs() {
    exact_across_threads(&RefTrailerAlloc);
}

#[test]
fn zero_memory_reference_costs_no_size_class() {
    let scope = RefScope::new().unwrap();
    let _in = scope.enter();
    for l in layouts() {
        // SAFETY: non-zero size.
        let p = unsafe { RefAlloc.alloc(l) };
        // SAFETY: `p` is a live jemalloc block.
        let usable = unsafe { tikv_jemalloc_sys::malloc_usable_size(p.cast()) };
        assert_eq!(usable, size_class(l.size(), l.align()), "{l:?}");
        // SAFETY: allocated above with `l`.
        unsafe { RefAlloc.dealloc(p, l) };
    }
}

#[test]
fn reference_slack_matches_nallocx() {
    for align in [1usize, 8, 16, 64, 4096] {
        let lg = align.trailing_zeros() as usize;
        for size in (1..20_000).chain((20_000..5_000_000).step_by(997)) {
            let flags = tikv_jemalloc_sys::MALLOCX_LG_ALIGN(lg);
            // SAFETY: `nallocx` only computes.
            let (n, n2) = unsafe {
                (
                    tikv_jemalloc_sys::nallocx(size, flags),
                    tikv_jemalloc_sys::nallocx(size + 2, flags),
                )
            };
            assert_eq!(size_class(size, align), n, "size {size} align {align}");
            let l = Layout::from_size_align(size, align).unwrap();
            assert_eq!(has_slack(l), n == n2, "size {size} align {align}");
        }
    }
}
