//! With `UsableSizes::Count`, the usable bytes the tracker adds to a scope
//! are exactly the bytes jemalloc itself reports for the same thread
//! (`thread.allocated` / `thread.deallocated`, an oracle independent of the
//! tracker's size-class arithmetic), for every size and alignment and
//! through allocs, reallocs and frees.

use std::alloc::{alloc, dealloc, realloc, Layout};

use scope_alloc_tracker::{ScopeId, ScopeStats};
use tikv_jemalloc_ctl::thread::{allocatedp, deallocatedp, ThreadLocal};

/// jemalloc's largest small size class (4 KiB pages), tag included.
const SMALL_MAXCLASS: usize = 14336;
const TAG: usize = 2;

/// jemalloc's byte counters of the calling thread.
#[derive(Clone, Copy)]
struct Oracle {
    allocated: ThreadLocal<u64>,
    deallocated: ThreadLocal<u64>,
}

impl Oracle {
    fn of_this_thread() -> Self {
        Self {
            allocated: allocatedp::read().unwrap(),
            deallocated: deallocatedp::read().unwrap(),
        }
    }

    /// Reads both counters; reading allocates nothing.
    fn read(self) -> (u64, u64) {
        (self.allocated.get(), self.deallocated.get())
    }
}

/// Usable bytes the scope has freed so far.
fn freed_usable(s: &ScopeStats) -> u64 {
    s.total_usable_bytes - s.live_usable_bytes
}

/// What `nallocx` says for a block of `size` bytes with the tracker's tag,
/// with the flags `tikv-jemallocator` passes (for the failure message).
fn nallocx(size: usize, align: usize) -> usize {
    let outer = size + TAG;
    let flags = if align <= 16 && align <= outer {
        0
    } else {
        tikv_jemalloc_sys::MALLOCX_LG_ALIGN(align.trailing_zeros() as usize)
    };
    // SAFETY: `nallocx` only computes a size class.
    unsafe { tikv_jemalloc_sys::nallocx(outer, flags) }
}

/// Allocates and frees one block of each `(size, align)` in `scope` and
/// compares the scope's usable figures with jemalloc's thread counters for
/// each block on its own.
fn each_block_matches(scope: ScopeId, blocks: impl Iterator<Item = (usize, usize)>) {
    let oracle = Oracle::of_this_thread();
    for (size, align) in blocks {
        let layout = Layout::from_size_align(size, align).unwrap();
        let s0 = scope.stats();
        let (a0, d0) = oracle.read();
        // SAFETY: `layout` has a non-zero size.
        let p = scope.in_scope(|| unsafe { alloc(layout) });
        let (a1, _) = oracle.read();
        assert!(!p.is_null());
        let s1 = scope.stats();
        // SAFETY: `p` is live with `layout`.
        unsafe { dealloc(p, layout) };
        let (_, d1) = oracle.read();
        let s2 = scope.stats();
        assert_eq!(
            s1.total_usable_bytes - s0.total_usable_bytes,
            a1 - a0,
            "usable bytes of an allocation of {size} bytes aligned to {align} (+{TAG}-byte tag): \
             tracker vs jemalloc's thread.allocated (nallocx says {})",
            nallocx(size, align)
        );
        assert_eq!(
            freed_usable(&s2) - freed_usable(&s1),
            d1 - d0,
            "usable bytes of a free of {size} bytes aligned to {align}: tracker vs thread.deallocated"
        );
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random mix of allocations, reallocations (growing and shrinking) and
/// frees in a fresh scope, all between two reads of jemalloc's thread
/// counters with nothing else allocating on the thread; `max_size` bounds
/// the sizes.
fn mixed_workload_matches(name: &str, seed: u64, max_size: usize) {
    const OPS: usize = 20_000;
    const SLOTS: usize = 256;
    const ALIGNS: [usize; 10] = [1, 2, 4, 8, 16, 32, 64, 256, 1024, 4096];
    let scope = ScopeId::register(name, None).unwrap();
    let oracle = Oracle::of_this_thread();
    let mut rng = Rng(seed);
    let mut slots: Vec<Option<(*mut u8, Layout)>> = vec![None; SLOTS];
    let size = |rng: &mut Rng| match rng.below(10) {
        0..=5 => 1 + rng.below(512) as usize,
        6..=8 => 1 + rng.below(8192) as usize,
        _ => 1 + rng.below(max_size as u64) as usize,
    };
    let (mut allocs, mut reallocs, mut frees) = (0, 0, 0);

    let s0 = scope.stats();
    let (a0, d0) = oracle.read();
    {
        let _g = scope.enter();
        for _ in 0..OPS {
            let slot = &mut slots[rng.below(SLOTS as u64) as usize];
            match *slot {
                None => {
                    let align = ALIGNS[rng.below(ALIGNS.len() as u64) as usize];
                    let layout = Layout::from_size_align(size(&mut rng), align).unwrap();
                    // SAFETY: `layout` has a non-zero size.
                    let p = unsafe { alloc(layout) };
                    assert!(!p.is_null());
                    *slot = Some((p, layout));
                    allocs += 1;
                }
                Some((p, layout)) if rng.below(2) == 0 => {
                    // Grow or shrink, around the old size or anywhere.
                    let new_size = match rng.below(3) {
                        0 => layout.size() + 1 + rng.below(64) as usize,
                        1 => (layout.size() / 2).max(1),
                        _ => size(&mut rng),
                    };
                    // SAFETY: `p` is live with `layout`; `new_size` is
                    // non-zero and small.
                    let q = unsafe { realloc(p, layout, new_size) };
                    assert!(!q.is_null());
                    *slot = Some((
                        q,
                        Layout::from_size_align(new_size, layout.align()).unwrap(),
                    ));
                    reallocs += 1;
                }
                Some((p, layout)) => {
                    // SAFETY: `p` is live with `layout`.
                    unsafe { dealloc(p, layout) };
                    *slot = None;
                    frees += 1;
                }
            }
        }
    }
    let (a1, d1) = oracle.read();
    let s1 = scope.stats();

    assert!(
        allocs > 1000 && reallocs > 1000 && frees > 1000,
        "{allocs} {reallocs} {frees}"
    );
    assert_eq!(
        s1.total_usable_bytes - s0.total_usable_bytes,
        a1 - a0,
        "allocated usable bytes: tracker vs thread.allocated"
    );
    assert_eq!(
        freed_usable(&s1) - freed_usable(&s0),
        d1 - d0,
        "freed usable bytes: tracker vs thread.deallocated"
    );
    assert_eq!(s1.total_allocs - s0.total_allocs, allocs + reallocs);
    assert_eq!(s1.total_frees - s0.total_frees, frees + reallocs);

    // Free the rest, again between two reads.
    let (a2, d2) = oracle.read();
    for (p, layout) in slots.iter_mut().filter_map(Option::take) {
        // SAFETY: `p` is live with `layout`.
        unsafe { dealloc(p, layout) };
    }
    let (a3, d3) = oracle.read();
    let s2 = scope.stats();
    assert_eq!(a3, a2, "freeing must not allocate");
    assert_eq!(freed_usable(&s2) - freed_usable(&s1), d3 - d2);
    assert_eq!(
        (s2.live_allocs, s2.live_bytes, s2.live_usable_bytes),
        (0, 0, 0),
        "{s2:?}"
    );
    drop(slots);
}

#[test]
fn every_small_size_and_alignment_matches_thread_allocated() {
    let scope = ScopeId::register("usable/each-small", None).unwrap();
    let blocks = [1usize, 2, 8, 16, 32, 64, 4096]
        .into_iter()
        .flat_map(|align| (1..=SMALL_MAXCLASS - TAG).map(move |size| (size, align)));
    each_block_matches(scope, blocks);
}

#[test]
fn over_page_alignments_match_thread_allocated() {
    let scope = ScopeId::register("usable/big-align", None).unwrap();
    let sizes = [
        1usize, 100, 4094, 4095, 8190, 8191, 14334, 14335, 16382, 16383,
    ];
    let blocks = [8192usize, 16384, 65536]
        .into_iter()
        .flat_map(|align| sizes.map(|size| (size, align)));
    each_block_matches(scope, blocks);
}

#[test]
fn every_large_size_matches_thread_allocated() {
    let scope = ScopeId::register("usable/each-large", None).unwrap();
    let around_boundary = [1usize, 64, 4096]
        .into_iter()
        .flat_map(|align| (SMALL_MAXCLASS - TAG + 1..=20_000).map(move |size| (size, align)));
    // Between 16 and 32 KiB jemalloc's large classes are one page apart,
    // so the two roundings agree; they part from 32 KiB + 1 on.
    let big = [
        20_481usize,
        32_767,
        32_769,
        40_000,
        65_537,
        300_000,
        (1 << 20) + 1,
        (1 << 20) + 4096,
        3 << 20,
        (10 << 20) + 12_345,
    ]
    .into_iter()
    .flat_map(|size| [1usize, 16, 4096, 65536].map(|align| (size, align)));
    each_block_matches(scope, around_boundary.chain(big));
}

#[test]
fn mixed_small_workload_matches_thread_counters() {
    mixed_workload_matches(
        "usable/mixed-small",
        0x9E37_79B9_7F4A_7C15,
        SMALL_MAXCLASS - 4096,
    );
}

#[test]
fn mixed_workload_with_large_blocks_matches_thread_counters() {
    mixed_workload_matches("usable/mixed-large", 0xD1B5_4A32_D192_ED03, 2 << 20);
}
