//! `realloc` counts as one free and one allocation in the scope that made
//! the block (its origin), whatever scope or thread is current when it
//! runs, and keeps the block's contents.

use std::alloc::{alloc, dealloc, realloc, Layout};
use std::thread;

use scope_alloc_tracker::{ScopeId, ScopeStats};

const MIB: usize = 1 << 20;
/// jemalloc's largest small size class (4 KiB pages).
const SMALL_MAXCLASS: usize = 14336;

/// jemalloc's usable size of a block of `size` bytes plus the 2-byte tag,
/// with the flags `tikv-jemallocator` uses for alignment `align`. Only
/// used for small sizes: the tracker's large size classes are checked in
/// `usable_bytes_match_jemalloc_thread_counters`.
fn usable(size: usize, align: usize) -> u64 {
    // Attributed by address: the block is exactly the request's size class.
    assert!(size <= SMALL_MAXCLASS && align <= 4096);
    let outer = size;
    let flags = if align <= 16 && align <= outer {
        0
    } else {
        tikv_jemalloc_sys::MALLOCX_LG_ALIGN(align.trailing_zeros() as usize)
    };
    // SAFETY: `nallocx` only computes a size class.
    unsafe { tikv_jemalloc_sys::nallocx(outer, flags) as u64 }
}

fn fill(p: *mut u8, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: callers pass a live block of at least `len` bytes.
        unsafe { p.add(i).write(seed.wrapping_add((i % 251) as u8)) };
    }
}

fn check(p: *const u8, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: callers pass a live block of at least `len` initialised bytes.
        let got = unsafe { p.add(i).read() };
        assert_eq!(got, seed.wrapping_add((i % 251) as u8), "byte {i} of {len}");
    }
}

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
}

/// One block taken through alloc → realloc(s) → dealloc, the reallocs run
/// with `other` current; checks `origin`'s counters after every step.
fn round_trip(name: &str, align: usize, sizes: &[usize]) {
    let origin = ScopeId::register(&format!("{name}/origin"), None).unwrap();
    let other = ScopeId::register(&format!("{name}/other"), None).unwrap();

    let mut layout = Layout::from_size_align(sizes[0], align).unwrap();
    // SAFETY: `layout` has a non-zero size.
    let mut p = origin.in_scope(|| unsafe { alloc(layout) });
    assert!(!p.is_null());
    fill(p, layout.size(), 7);

    let first = origin.stats();
    let (mut allocs, mut bytes, mut usable_total) =
        (1u64, sizes[0] as u64, first.total_usable_bytes);
    assert_eq!(first.live_usable_bytes, usable_total);
    let (mut frees, mut freed) = (0u64, 0u64);
    for &new_size in &sizes[1..] {
        let old = p;
        // SAFETY: `p` is live with `layout`; `new_size` is non-zero and small.
        let q = other.in_scope(|| unsafe { realloc(p, layout, new_size) });
        assert!(!q.is_null());
        assert_eq!(q as usize % align, 0, "realloc result misaligned");
        eprintln!(
            "{name}: {} -> {new_size} (align {align}): moved: {}",
            layout.size(),
            q != old
        );
        check(q, layout.size().min(new_size), 7);
        allocs += 1;
        bytes += new_size as u64;
        frees += 1;
        freed += layout.size() as u64;
        layout = Layout::from_size_align(new_size, align).unwrap();
        p = q;
        fill(p, new_size, 7);

        let s = origin.stats();
        assert_eq!((s.total_allocs, s.total_frees), (allocs, frees), "{s:?}");
        assert_eq!(
            (s.total_bytes, s.total_freed_bytes),
            (bytes, freed),
            "{s:?}"
        );
        assert_eq!((s.live_allocs, s.live_bytes), (1, new_size as u64), "{s:?}");
        // The new block's usable bytes were added to the origin's total and
        // the old block's were taken off its live figure.
        assert_eq!(
            s.total_usable_bytes - usable_total,
            s.live_usable_bytes,
            "{s:?}"
        );
        assert!(s.live_usable_bytes >= new_size as u64, "{s:?}");
        if new_size <= SMALL_MAXCLASS && align <= 4096 {
            assert_eq!(s.live_usable_bytes, usable(new_size, align), "{s:?}");
        }
        usable_total = s.total_usable_bytes;
        assert_untouched(other.stats());
    }

    // SAFETY: `p` is live with `layout`.
    other.in_scope(|| unsafe { dealloc(p, layout) });
    let s = origin.stats();
    assert_eq!(
        (s.live_allocs, s.live_bytes, s.live_usable_bytes),
        (0, 0, 0),
        "{s:?}"
    );
    assert_eq!(
        (s.total_allocs, s.total_frees),
        (allocs, frees + 1),
        "{s:?}"
    );
    assert_untouched(other.stats());
}

#[test]
fn large_block_grown_slightly_stays_in_its_origin_scope() {
    // jemalloc usually grows this one in place (same pointer); the test
    // only asserts attribution and contents, whichever happened.
    round_trip("in-place", 8, &[MIB, MIB + 4096, MIB + 8192]);
}

#[test]
fn block_grown_across_size_classes_moves_and_stays_in_its_origin_scope() {
    round_trip("move", 1, &[24, 100, 5000, 70_000, 3 * MIB]);
    round_trip("move-aligned", 64, &[10, 200, 9000]);
}

#[test]
fn block_shrunk_stays_in_its_origin_scope() {
    round_trip("shrink", 1, &[3 * MIB, 70_000, 5000, 100, 1]);
    round_trip("shrink-aligned", 4096, &[20_000, 4097, 4095, 3]);
}

#[test]
fn realloc_on_another_thread_credits_the_origin_scope() {
    let origin = ScopeId::register("thread/origin", None).unwrap();
    let other = ScopeId::register("thread/other", None).unwrap();
    let mut v: Vec<u8> = origin.in_scope(|| Vec::with_capacity(16));
    v.extend_from_slice(b"0123456789abcdef");
    let v = thread::spawn(move || {
        other.in_scope(|| {
            v.reserve_exact(1000 - v.len());
            v.extend(std::iter::repeat_n(b'x', 1000 - v.len()));
        });
        v
    })
    .join()
    .unwrap();
    assert_eq!(v.capacity(), 1000);
    assert_eq!(&v[..16], b"0123456789abcdef");
    let s = origin.stats();
    assert_eq!((s.total_allocs, s.total_bytes), (2, 1016), "{s:?}");
    assert_eq!((s.total_frees, s.total_freed_bytes), (1, 16), "{s:?}");
    assert_eq!((s.live_allocs, s.live_bytes), (1, 1000), "{s:?}");
    assert_eq!(s.live_usable_bytes, usable(1000, 1), "{s:?}");
    assert_untouched(other.stats());
    drop(v);
    let s = origin.stats();
    assert_eq!(
        (s.live_allocs, s.live_bytes, s.live_usable_bytes),
        (0, 0, 0),
        "{s:?}"
    );
}
