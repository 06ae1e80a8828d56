//! With the default hybrid attribution, a block whose size class has slack
//! carries a trailer in jemalloc's automatic arenas while an exact fit
//! lives in its scope's arena. A reallocation that crosses between the two
//! (24 -> 32 -> 40 -> 64 -> 4096 -> 5000 bytes) must keep the contents, the
//! origin scope and every figure exact, with and without a recording leak
//! check, and a free on another thread must credit the origin scope.

use std::alloc::{alloc, dealloc, realloc, Layout};

use scope_alloc_tracker::leak::LeakCheck;
use scope_alloc_tracker::{Scope, ScopeId};

const SIZES: [usize; 7] = [24, 32, 40, 64, 4096, 5000, 48];

fn fill(p: *mut u8, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: `p` has at least `len` bytes.
        unsafe { p.add(i).write(seed.wrapping_add(i as u8)) };
    }
}

fn check(p: *const u8, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: `p` has at least `len` bytes.
        let byte = unsafe { p.add(i).read() };
        assert_eq!(byte, seed.wrapping_add(i as u8), "byte {i}");
    }
}

/// Walks one block through `SIZES` in `scope` (or unscoped), checking the
/// scope's live figures after each step (when `exact`: other tests of this
/// binary allocate unscoped concurrently), then frees it on another thread.
fn walk(scope: ScopeId, exact: bool) {
    let base = scope.stats();
    let mut layout = Layout::from_size_align(SIZES[0], 8).unwrap();
    // SAFETY: non-zero size.
    let mut p = scope.in_scope(|| unsafe { alloc(layout) });
    assert!(!p.is_null());
    fill(p, layout.size(), 1);
    for &size in &SIZES[1..] {
        // Reallocate with another scope current: the origin must stay.
        // SAFETY: `p` is live with `layout`; non-zero size.
        let q = unsafe { realloc(p, layout, size) };
        assert!(!q.is_null());
        check(q, layout.size().min(size), 1);
        layout = Layout::from_size_align(size, 8).unwrap();
        fill(q, size, 1);
        p = q;
        if !exact {
            continue;
        }
        let s = scope.stats();
        assert_eq!(
            (
                s.live_allocs - base.live_allocs,
                s.live_bytes - base.live_bytes
            ),
            (1, size as u64),
            "after realloc to {size}: {s:?}"
        );
    }
    let addr = p as usize;
    std::thread::spawn(move || {
        // SAFETY: the block is live with `layout` and used by nobody else.
        unsafe { dealloc(addr as *mut u8, layout) }
    })
    .join()
    .unwrap();
    if !exact {
        return;
    }
    let s = scope.stats();
    assert_eq!(
        (s.live_allocs, s.live_bytes),
        (base.live_allocs, base.live_bytes),
        "{s:?}"
    );
}

#[test]
fn scoped_block_crosses_placements() {
    static S: Scope = Scope::new("crossing");
    walk(S.id(), true);
}

#[test]
fn recorded_block_crosses_placements_and_its_record_follows() {
    static S: Scope = Scope::new("crossing-recorded");
    let check = LeakCheck::begin(&S);
    walk(S.id(), true);
    check.assert_drained();
}

#[test]
fn leaked_block_after_crossing_is_reported_with_its_final_size() {
    static S: Scope = Scope::new("crossing-leak");
    let check = LeakCheck::begin(&S);
    let mut layout = Layout::from_size_align(24, 8).unwrap();
    // SAFETY: non-zero size.
    let mut p = std::hint::black_box(S.in_scope(|| unsafe { alloc(layout) }));
    for size in [32, 40, 4096] {
        // SAFETY: `p` is live with `layout`. black_box: the optimiser may
        // not merge or drop the calls whose effect this test observes.
        p = std::hint::black_box(unsafe { realloc(p, layout, size) });
        layout = Layout::from_size_align(size, 8).unwrap();
    }
    let report = check.finish().expect_err("the block is still live");
    assert_eq!((report.leaked_bytes, report.leaked_allocs), (4096, 1));
    // SAFETY: `p` is live with `layout`.
    unsafe { dealloc(p, layout) };
}

#[test]
fn unscoped_block_crosses_placements() {
    walk(ScopeId::UNSCOPED, false);
}
