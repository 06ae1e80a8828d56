//! The tag costs no memory. For every layout of a grid of sizes 1 B..16 MiB
//! and alignments 1..4096, the block that jemalloc really reserved for a
//! tracked allocation (`sallocx` of the pointer, read from jemalloc's own
//! metadata) is the size class bare jemalloc gives the same layout
//! (`nallocx` of the untracked layout), in a scope and outside any, for the
//! default `Attribution::Hybrid`. The same
//! check over `Attribution::Trailer` must find a difference (that is what
//! the test exists to catch).

use std::alloc::{GlobalAlloc, Layout};

use scope_alloc_tracker::{Attribution, Jemalloc, Scope, TrackingAlloc};

static TRAILER: TrackingAlloc<Jemalloc> =
    TrackingAlloc::new(Jemalloc).attribution(Attribution::Trailer);

static PAGES: Scope = Scope::new("pages");

/// tikv-jemallocator's flags for a layout.
fn flags(size: usize, align: usize) -> i32 {
    if align <= 16 && align <= size {
        0
    } else {
        tikv_jemalloc_sys::MALLOCX_LG_ALIGN(align.trailing_zeros() as usize)
    }
}

/// The sizes of the grid: every size up to 64 KiB, then every page
/// multiple up to 16 MiB with one and two bytes on either side.
fn sizes() -> impl Iterator<Item = usize> {
    let small = 1..=64 * 1024;
    let large = (17..=4096usize).flat_map(|pages| {
        let s = pages * 4096;
        [s - 2, s - 1, s, s + 1, s + 2]
    });
    small.chain(large)
}

const ALIGNS: [usize; 13] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

/// The first layout of the grid whose tracked block differs from bare
/// jemalloc's size class, as `(size, align, reserved, class)`.
fn first_difference(
    alloc: &dyn GlobalAlloc,
    sizes: &mut dyn Iterator<Item = usize>,
) -> Option<(usize, usize, usize, usize)> {
    for size in sizes {
        for align in ALIGNS {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: `layout` has a non-zero size.
            let p = unsafe { alloc.alloc(layout) };
            assert!(
                !p.is_null(),
                "allocation of {size} bytes aligned to {align} failed"
            );
            // SAFETY: `p` is a live jemalloc block; `sallocx` reads its size
            // class from jemalloc's metadata. `nallocx` only computes one.
            let (reserved, class) = unsafe {
                (
                    tikv_jemalloc_sys::sallocx(p.cast(), 0),
                    tikv_jemalloc_sys::nallocx(size, flags(size, align)),
                )
            };
            // SAFETY: `p` is live with `layout`.
            unsafe { alloc.dealloc(p, layout) };
            if reserved != class {
                return Some((size, align, reserved, class));
            }
        }
    }
    None
}

#[test]
fn scoped_blocks_get_bare_jemallocs_size_class() {
    let diff = PAGES.in_scope(|| first_difference(&crate::GLOBAL, &mut sizes()));
    assert_eq!(diff, None, "(size, align, reserved, bare class)");
}

#[test]
fn unscoped_blocks_get_bare_jemallocs_size_class() {
    let diff = first_difference(&crate::GLOBAL, &mut sizes());
    assert_eq!(diff, None, "(size, align, reserved, bare class)");
}

#[test]
fn the_trailer_design_is_caught_moving_exact_fits_up_a_class() {
    let diff = PAGES.in_scope(|| first_difference(&TRAILER, &mut (1..=64usize)));
    // 8 bytes fill jemalloc's smallest class; two more take the next one.
    assert_eq!(diff, Some((7, 1, 16, 8)));
}
