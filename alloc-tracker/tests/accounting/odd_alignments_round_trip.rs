//! Every `GlobalAlloc` entry point of `TrackingAlloc`, called directly for
//! every power-of-two alignment up to a page and sizes around the
//! alignment, the page and jemalloc's small/large boundary: pointers are
//! aligned, the whole requested size is writable without disturbing the
//! tag, `alloc_zeroed` memory is zero, `realloc` keeps the contents, and
//! the scope's counters are exact after every call. Over jemalloc (with and
//! without usable sizes, hybrid and trailer) and over the
//! system allocator.

use std::alloc::{GlobalAlloc, Layout, System};

use scope_alloc_tracker::{Attribution, Backend, Jemalloc, ScopeId, TrackingAlloc, UsableSizes};

static JEMALLOC_COUNT: TrackingAlloc<Jemalloc> =
    TrackingAlloc::new(Jemalloc).usable_sizes(UsableSizes::Count);
static JEMALLOC_SKIP: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);
static JEMALLOC_TRAILER: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc)
    .usable_sizes(UsableSizes::Count)
    .attribution(Attribution::Trailer);
static SYSTEM_COUNT: TrackingAlloc<System> =
    TrackingAlloc::new(System).usable_sizes(UsableSizes::Count);

const TAG: usize = 2;
/// jemalloc's largest small size class with 4 KiB pages.
const SMALL_MAXCLASS: usize = 14336;

/// What a backend is expected to report as usable bytes for a request.
#[derive(Clone, Copy)]
enum Usable {
    /// `UsableSizes::Skip`: nothing.
    Zero,
    /// The system allocator: requested bytes plus the tag.
    SizePlusTag,
    /// jemalloc's size class of the request itself (attribution by address
    /// adds nothing to a block), checked exactly against `nallocx` for small
    /// sizes only (large ones are `usable_bytes_match_jemalloc_*`'s job).
    JemallocClass,
    /// jemalloc's size class of the request plus the trailer.
    JemallocClassWithTag,
}

impl Usable {
    /// Bytes the tracker adds to each block.
    fn tag(self) -> u64 {
        match self {
            Usable::Zero | Usable::JemallocClass => 0,
            Usable::SizePlusTag | Usable::JemallocClassWithTag => TAG as u64,
        }
    }

    /// The exact expected figure, or `None` where only a bound is checked.
    fn of(self, size: usize, align: usize) -> Option<u64> {
        match self {
            Usable::Zero => Some(0),
            Usable::SizePlusTag => Some((size + TAG) as u64),
            Usable::JemallocClass | Usable::JemallocClassWithTag
                if size + TAG <= SMALL_MAXCLASS && align <= 4096 =>
            {
                let tag = match self {
                    Usable::JemallocClassWithTag => TAG,
                    _ => 0,
                };
                let outer = size + tag;
                let flags = if align <= 16 && align <= outer {
                    0
                } else {
                    tikv_jemalloc_sys::MALLOCX_LG_ALIGN(align.trailing_zeros() as usize)
                };
                // SAFETY: `nallocx` only computes a size class.
                Some(unsafe { tikv_jemalloc_sys::nallocx(outer, flags) } as u64)
            }
            Usable::JemallocClass | Usable::JemallocClassWithTag => None,
        }
    }
}

/// The test's own running totals for one scope, compared with the
/// tracker's after every call.
struct Expected {
    scope: ScopeId,
    usable: Usable,
    allocs: u64,
    bytes: u64,
    frees: u64,
    freed: u64,
    live: Vec<(usize, usize)>,
    /// The tracker's `total_usable_bytes` after the previous step.
    usable_total: u64,
}

impl Expected {
    fn new(scope: ScopeId, usable: Usable) -> Self {
        Self {
            scope,
            usable,
            allocs: 0,
            bytes: 0,
            frees: 0,
            freed: 0,
            live: Vec::with_capacity(4),
            usable_total: 0,
        }
    }

    fn alloc(&mut self, size: usize, align: usize) {
        self.allocs += 1;
        self.bytes += size as u64;
        self.live.push((size, align));
    }

    fn free(&mut self, size: usize, align: usize) {
        self.frees += 1;
        self.freed += size as u64;
        let i = self.live.iter().position(|&l| l == (size, align)).unwrap();
        self.live.swap_remove(i);
    }

    /// Compares with the tracker; `what` names the step for the message
    /// (made only on failure: nothing may allocate in the scope here).
    fn check(&mut self, what: &dyn Fn() -> String) {
        let s = self.scope.stats();
        let live_bytes: u64 = self.live.iter().map(|&(size, _)| size as u64).sum();
        assert_eq!(
            (
                s.total_allocs,
                s.total_bytes,
                s.total_frees,
                s.total_freed_bytes
            ),
            (self.allocs, self.bytes, self.frees, self.freed),
            "{}: {s:?}",
            what()
        );
        assert_eq!(
            (s.live_allocs, s.live_bytes),
            (self.live.len() as u64, live_bytes),
            "{}: {s:?}",
            what()
        );
        let exact: Option<u64> = self
            .live
            .iter()
            .map(|&(size, align)| self.usable.of(size, align))
            .sum();
        match exact {
            Some(u) => assert_eq!(s.live_usable_bytes, u, "{}: {s:?}", what()),
            None => assert!(
                s.live_usable_bytes >= live_bytes + self.usable.tag() * self.live.len() as u64,
                "{}: {s:?}",
                what()
            ),
        }
        // Usable bytes only ever grow by what a new block added.
        assert!(
            s.total_usable_bytes >= self.usable_total,
            "{}: {s:?}",
            what()
        );
        self.usable_total = s.total_usable_bytes;
    }
}

fn pattern(i: usize, seed: u8) -> u8 {
    seed.wrapping_add((i % 253) as u8)
}

/// Fills the block with a pattern and reads it back.
///
/// # Safety
/// `p` must be a live block of at least `len` bytes.
unsafe fn fill_and_check(p: *mut u8, len: usize, seed: u8) {
    // SAFETY: the caller guarantees `len` writable bytes at `p`.
    let block = unsafe { std::slice::from_raw_parts_mut(p, len) };
    for (i, b) in block.iter_mut().enumerate() {
        *b = pattern(i, seed);
    }
    assert!(block
        .iter()
        .enumerate()
        .all(|(i, &b)| b == pattern(i, seed)));
}

/// Checks that the first `len` bytes still hold the pattern.
///
/// # Safety
/// `p` must be a live block of at least `len` initialised bytes.
unsafe fn check_pattern(p: *const u8, len: usize, seed: u8) {
    // SAFETY: the caller guarantees `len` initialised bytes at `p`.
    let block = unsafe { std::slice::from_raw_parts(p, len) };
    if let Some(i) = block
        .iter()
        .enumerate()
        .position(|(i, &b)| b != pattern(i, seed))
    {
        panic!("byte {i} of {len} changed by realloc");
    }
}

fn sizes_for(align: usize) -> Vec<usize> {
    let mut sizes = vec![
        1,
        align - 1,
        align,
        align + 1,
        2 * align + 3,
        4095,
        4096,
        4097,
        16383,
        16384,
        16385,
    ];
    sizes.retain(|&s| s > 0);
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

fn round_trips<B: Backend>(a: &TrackingAlloc<B>, name: &str, usable: Usable) {
    let scope = ScopeId::register(name, None).unwrap();
    let mut e = Expected::new(scope, usable);
    for align in (0..=12).map(|s| 1usize << s) {
        for size in sizes_for(align) {
            let layout = Layout::from_size_align(size, align).unwrap();
            let what = |step: &str| format!("{name}: {step} size {size} align {align}");

            // alloc → fill → dealloc, leaving dirty memory behind.
            // SAFETY: `layout` has a non-zero size.
            let p = scope.in_scope(|| unsafe { a.alloc(layout) });
            assert!(
                !p.is_null() && (p as usize).is_multiple_of(align),
                "{}",
                what("alloc")
            );
            // SAFETY: `p` is a live block of `size` bytes.
            unsafe { fill_and_check(p, size, 0xFF) };
            e.alloc(size, align);
            e.check(&|| what("alloc"));
            // SAFETY: `p` is live with `layout`.
            unsafe { a.dealloc(p, layout) };
            e.free(size, align);
            e.check(&|| what("dealloc"));

            // alloc_zeroed, likely on the block just freed.
            // SAFETY: `layout` has a non-zero size.
            let z = scope.in_scope(|| unsafe { a.alloc_zeroed(layout) });
            assert!(
                !z.is_null() && (z as usize).is_multiple_of(align),
                "{}",
                what("alloc_zeroed")
            );
            // SAFETY: `z` is a live, zeroed block of `size` bytes.
            let zeroed = unsafe { std::slice::from_raw_parts(z, size) };
            assert!(
                zeroed.iter().all(|&b| b == 0),
                "{}",
                what("alloc_zeroed: not zero")
            );
            e.alloc(size, align);
            e.check(&|| what("alloc_zeroed"));
            // SAFETY: `z` is a live block of `size` bytes.
            unsafe { fill_and_check(z, size, 3) };

            // realloc: grow, then shrink, contents kept each time. It runs
            // outside the scope: the block stays the scope's anyway.
            let mut cur = (z, size);
            for new_size in [2 * size + 3, (size / 2).max(1), size] {
                let old = Layout::from_size_align(cur.1, align).unwrap();
                // SAFETY: `cur.0` is live with `old`; `new_size` is non-zero
                // and far from overflowing.
                let q = unsafe { a.realloc(cur.0, old, new_size) };
                let step = || what(&format!("realloc {} -> {new_size}", cur.1));
                assert!(
                    !q.is_null() && (q as usize).is_multiple_of(align),
                    "{}",
                    step()
                );
                // SAFETY: `q` is live with at least `min(old, new)` bytes
                // copied from the old block.
                unsafe { check_pattern(q, cur.1.min(new_size), 3) };
                // SAFETY: `q` is a live block of `new_size` bytes.
                unsafe { fill_and_check(q, new_size, 3) };
                e.free(cur.1, align);
                e.alloc(new_size, align);
                e.check(&step);
                cur = (q, new_size);
            }
            // SAFETY: `cur.0` is live with this layout.
            unsafe { a.dealloc(cur.0, Layout::from_size_align(cur.1, align).unwrap()) };
            e.free(cur.1, align);
            e.check(&|| what("final dealloc"));
        }
    }
    assert!(e.live.is_empty());
    let s = scope.stats();
    assert_eq!(
        (s.live_allocs, s.live_bytes, s.live_usable_bytes),
        (0, 0, 0),
        "{s:?}"
    );
}

#[test]
fn jemalloc_with_usable_sizes_round_trips_every_alignment() {
    round_trips(
        &JEMALLOC_COUNT,
        "align/jemalloc-count",
        Usable::JemallocClass,
    );
}

#[test]
fn jemalloc_with_trailer_round_trips_every_alignment() {
    round_trips(
        &JEMALLOC_TRAILER,
        "align/jemalloc-trailer",
        Usable::JemallocClassWithTag,
    );
}

#[test]
fn jemalloc_without_usable_sizes_round_trips_every_alignment() {
    round_trips(&JEMALLOC_SKIP, "align/jemalloc-skip", Usable::Zero);
}

#[test]
fn system_allocator_round_trips_every_alignment() {
    round_trips(&SYSTEM_COUNT, "align/system-count", Usable::SizePlusTag);
}

#[test]
fn the_global_allocator_round_trips_every_alignment() {
    round_trips(&crate::GLOBAL, "align/global", Usable::JemallocClass);
}
