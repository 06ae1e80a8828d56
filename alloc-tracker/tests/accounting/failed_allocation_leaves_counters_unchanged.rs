//! An allocation or reallocation that fails returns null and counts
//! nothing; a failed `realloc` leaves the old block, its contents and its
//! tag untouched.

use std::alloc::{GlobalAlloc, Layout};

use scope_alloc_tracker::{Jemalloc, ScopeId, ScopeStats, TrackingAlloc, UsableSizes};

static TRACKER: TrackingAlloc<Jemalloc> =
    TrackingAlloc::new(Jemalloc).usable_sizes(UsableSizes::Count);
static SYSTEM: TrackingAlloc<std::alloc::System> =
    TrackingAlloc::new(std::alloc::System).usable_sizes(UsableSizes::Count);

/// Sizes no allocator can serve, with their alignment:
/// - `isize::MAX - 8`: valid layout, but adding the tag overflows `isize`,
///   so the tracker itself must refuse;
/// - `isize::MAX - 4096` aligned to a page: the same with a large alignment;
/// - `isize::MAX / 2 + 1` (beyond jemalloc's largest size class) and `1 << 47` (128
///   TiB, the whole user address space): the backend refuses.
///
/// (`1 << 46` is *not* here: with overcommit jemalloc maps 64 TiB
/// successfully.)
const IMPOSSIBLE: [(usize, usize); 5] = [
    (isize::MAX as usize - 8, 8),
    (isize::MAX as usize - 1, 1),
    (isize::MAX as usize - 8191, 4096),
    (isize::MAX as usize / 2 + 1, 16),
    (1 << 47, 8),
];

fn assert_same(before: ScopeStats, after: ScopeStats, what: &str) {
    // `peak_bytes` is a sample; the rest must not move.
    assert_eq!(
        (
            after.total_allocs,
            after.total_bytes,
            after.total_usable_bytes,
            after.total_frees,
            after.total_freed_bytes
        ),
        (
            before.total_allocs,
            before.total_bytes,
            before.total_usable_bytes,
            before.total_frees,
            before.total_freed_bytes
        ),
        "{what}"
    );
    assert_eq!(
        (after.live_allocs, after.live_bytes, after.live_usable_bytes),
        (
            before.live_allocs,
            before.live_bytes,
            before.live_usable_bytes
        ),
        "{what}"
    );
}

fn impossible_allocs_count_nothing<A: GlobalAlloc>(a: &A, name: &str) {
    let s = ScopeId::register(name, None).unwrap();
    for (size, align) in IMPOSSIBLE {
        let layout = Layout::from_size_align(size, align).unwrap();
        let before = s.stats();
        // SAFETY: `layout` has a non-zero size; a non-null result is freed.
        let (p, z) = s.in_scope(|| unsafe { (a.alloc(layout), a.alloc_zeroed(layout)) });
        assert!(
            p.is_null(),
            "{name}: alloc of {size} bytes (align {align}) succeeded"
        );
        assert!(
            z.is_null(),
            "{name}: alloc_zeroed of {size} bytes (align {align}) succeeded"
        );
        assert_same(
            before,
            s.stats(),
            &format!("{name}: {size} bytes align {align}"),
        );
    }
}

#[test]
fn impossible_allocations_return_null_and_count_nothing() {
    impossible_allocs_count_nothing(&TRACKER, "failed/jemalloc");
}

#[test]
fn impossible_allocations_over_the_system_allocator_return_null_and_count_nothing() {
    impossible_allocs_count_nothing(&SYSTEM, "failed/system");
}

fn failed_realloc_keeps_the_block<A: GlobalAlloc>(a: &A, name: &str) {
    let s = ScopeId::register(name, None).unwrap();
    for align in [1usize, 8, 64, 4096] {
        let layout = Layout::from_size_align(100, align).unwrap();
        // SAFETY: `layout` has a non-zero size.
        let p = s.in_scope(|| unsafe { a.alloc(layout) });
        assert!(!p.is_null());
        // SAFETY: `p` is a live block of 100 bytes.
        let block = unsafe { std::slice::from_raw_parts_mut(p, 100) };
        for (i, b) in block.iter_mut().enumerate() {
            *b = i as u8;
        }
        let before = s.stats();
        for new_size in [
            isize::MAX as usize - 4 * 4096,
            1 << 47,
            isize::MAX as usize / 2 + 1,
        ] {
            // Rounded up to `align` the new size stays below `isize::MAX`,
            // as `realloc` requires.
            // SAFETY: `p` is live with `layout`; `new_size` is non-zero and
            // does not overflow `isize` when rounded up to `align`.
            let q = s.in_scope(|| unsafe { a.realloc(p, layout, new_size) });
            assert!(
                q.is_null(),
                "{name}: realloc to {new_size} (align {align}) succeeded"
            );
            assert_same(
                before,
                s.stats(),
                &format!("{name}: realloc to {new_size} align {align}"),
            );
            // SAFETY: the old block is still live after a failed realloc.
            let block = unsafe { std::slice::from_raw_parts(p, 100) };
            assert!(block.iter().enumerate().all(|(i, &b)| b == i as u8));
        }
        // The tag survived: the free is credited to `s` and balances it.
        // SAFETY: `p` is live with `layout`.
        unsafe { a.dealloc(p, layout) };
        let after = s.stats();
        assert_eq!(after.total_frees, before.total_frees + 1);
        assert_eq!(
            (after.live_allocs, after.live_bytes, after.live_usable_bytes),
            (0, 0, 0),
            "{after:?}"
        );
    }
}

#[test]
fn realloc_to_an_impossible_size_returns_null_and_keeps_the_old_block() {
    failed_realloc_keeps_the_block(&TRACKER, "failed-realloc/jemalloc");
}

#[test]
fn realloc_to_an_impossible_size_over_the_system_allocator_keeps_the_old_block() {
    failed_realloc_keeps_the_block(&SYSTEM, "failed-realloc/system");
}

#[test]
fn try_reserve_failures_through_the_global_allocator_count_nothing() {
    let s = ScopeId::register("failed/try-reserve", None).unwrap();
    let mut v: Vec<u8> = s.in_scope(|| Vec::with_capacity(10));
    v.push(1);
    let before = s.stats();
    s.in_scope(|| {
        assert!(v.try_reserve_exact(1 << 47).is_err());
        assert!(v.try_reserve(isize::MAX as usize - 64).is_err());
        let mut empty: Vec<u64> = Vec::new();
        assert!(empty.try_reserve_exact(1 << 45).is_err());
    });
    assert_same(before, s.stats(), "try_reserve");
    assert_eq!(v, [1]);
    drop(v);
    assert_eq!(s.stats().live_allocs, 0);
}
