//! The allocators underneath [`TrackingAlloc`](super::TrackingAlloc).
//!
//! A backend is a [`GlobalAlloc`] that can also say, from a `Layout` alone
//! and without a call into the allocator, how many bytes it really reserves
//! for a request (its *usable size*). For jemalloc that is its size class,
//! computed arithmetically below; a `nallocx` call per allocation would cost
//! a measurable share of the hot path.

use core::alloc::{GlobalAlloc, Layout};

/// An allocator that [`TrackingAlloc`](crate::TrackingAlloc) can wrap.
///
/// # Safety
/// Implementors must be correct [`GlobalAlloc`]s, and
/// [`usable_size`](Backend::usable_size) must be a pure function of the layout
/// (it runs inside `alloc` and `dealloc` and must not allocate, lock or
/// panic). If it is not the exact size the allocator reserves, only the
/// `*_usable_bytes` figures are wrong, never memory safety.
pub unsafe trait Backend: GlobalAlloc {
    /// Bytes the allocator reserves for a request of `layout`.
    fn usable_size(layout: Layout) -> usize;

    /// Whether this backend is jemalloc as linked by this crate, so that
    /// [`Attribution::Hybrid`](crate::Attribution::Hybrid) can place
    /// blocks in jemalloc arenas of their scope. Only [`Jemalloc`] sets it;
    /// a backend that sets it without being this crate's jemalloc hands
    /// jemalloc pointers it did not make.
    #[doc(hidden)]
    const IS_JEMALLOC: bool = false;
}

// === impl System ===

// SAFETY: `System` is the platform allocator; `usable_size` is arithmetic.
unsafe impl Backend for std::alloc::System {
    /// The platform allocator does not publish its size classes; the request
    /// size is reported, so `*_usable_bytes` equal requested bytes plus the
    /// tag.
    #[inline(always)]
    fn usable_size(layout: Layout) -> usize {
        layout.size()
    }
}

// === impl Jemalloc ===

#[cfg(feature = "jemalloc")]
pub use tikv_jemallocator::Jemalloc;

// SAFETY: `Jemalloc` forwards to jemalloc (`mallocx`/`sdallocx`/`rallocx`);
// `usable_size` is `jemalloc_size_class`, plain arithmetic.
#[cfg(feature = "jemalloc")]
unsafe impl Backend for Jemalloc {
    #[inline(always)]
    fn usable_size(layout: Layout) -> usize {
        jemalloc_size_class(layout.size(), layout.align())
    }

    const IS_JEMALLOC: bool = true;
}

#[cfg(feature = "jemalloc")]
/// jemalloc's compile-time geometry on the platforms we build it for: a
/// 16-byte quantum and 4 KiB pages (tikv-jemalloc-sys's defaults on x86_64
/// and aarch64 Linux), and the large size classes of jemalloc 5.3.1 as
/// tikv-jemalloc-sys 0.7 ships it: `opt_disable_large_size_classes` is on
/// (`jemalloc.c`), so a large request is rounded to whole pages instead of
/// four classes per doubling. `tests/accounting/usable_bytes_match_jemalloc_thread_counters.rs`
/// checks the arithmetic against the linked jemalloc's own per-thread
/// counters.
mod geometry {
    pub(super) const LG_QUANTUM: u32 = 4;
    pub(super) const LG_PAGE: u32 = 12;
    pub(super) const PAGE: usize = 1 << LG_PAGE;
    /// `SC_LG_NGROUP`: four size classes per doubling.
    pub(super) const LG_NGROUP: u32 = 2;
    pub(super) const TINY_MIN: usize = 8;
    pub(super) const LARGE_MINCLASS: usize = 1 << (LG_PAGE + LG_NGROUP);
    pub(super) const SMALL_MAXCLASS: usize = LARGE_MINCLASS - (1 << (LG_PAGE - 1));
    pub(super) const LARGE_MAXCLASS: usize = isize::MAX as usize / 2 + 1;
    /// `opt.disable_large_size_classes` (a `MALLOC_CONF` option; its
    /// default in the linked jemalloc).
    pub(super) const LARGE_SIZE_CLASSES_DISABLED: bool = true;
}

#[cfg(feature = "jemalloc")]
/// jemalloc's usable size for `size` bytes (`sz_s2u_compute`): the smallest
/// size class that holds `size`, with four classes per power of two.
#[inline(always)]
const fn jemalloc_s2u(size: usize) -> usize {
    use geometry::*;
    if size <= TINY_MIN {
        return TINY_MIN;
    }
    if size > LARGE_MAXCLASS {
        return 0;
    }
    if size > SMALL_MAXCLASS && LARGE_SIZE_CLASSES_DISABLED {
        return (size + PAGE - 1) & !(PAGE - 1);
    }
    // lg_floor(2 * size - 1) == ceil(log2(size)) for size >= 2.
    let x = usize::BITS - 1 - ((size << 1) - 1).leading_zeros();
    let lg_delta = if x < LG_NGROUP + LG_QUANTUM + 1 {
        LG_QUANTUM
    } else {
        x - LG_NGROUP - 1
    };
    let mask = (1usize << lg_delta) - 1;
    (size + mask) & !mask
}

#[cfg(feature = "jemalloc")]
/// jemalloc's usable size for a request of `size` bytes aligned to `align`
/// (`sz_sa2u`), which is what `mallocx`/`rallocx` reserve and what
/// `thread.allocated` counts.
#[inline(always)]
pub(crate) const fn jemalloc_size_class(size: usize, align: usize) -> usize {
    use geometry::*;
    if align <= 8 && size <= SMALL_MAXCLASS {
        // Small classes are multiples of 8: the class of `size` is the
        // class of `size` rounded up to 8, one entry of the table.
        return SMALL_CLASS[size.div_ceil(8)] as usize;
    }
    jemalloc_size_class_computed(size, align)
}

#[cfg(feature = "jemalloc")]
/// [`jemalloc_size_class`] of `8 * i` bytes (alignment at most 8), for every
/// small size; computed at compile time (3.5 KiB). `usable_size` runs on
/// every allocation and free when usable sizes are counted.
static SMALL_CLASS: [u16; geometry::SMALL_MAXCLASS / 8 + 1] = {
    let mut table = [0u16; geometry::SMALL_MAXCLASS / 8 + 1];
    let mut i = 0;
    while i < table.len() {
        table[i] = jemalloc_size_class_computed(i * 8, 1) as u16;
        i += 1;
    }
    table
};

#[cfg(feature = "jemalloc")]
/// [`jemalloc_size_class`] by arithmetic alone.
#[inline(always)]
const fn jemalloc_size_class_computed(size: usize, align: usize) -> usize {
    use geometry::*;
    if size <= SMALL_MAXCLASS && align <= PAGE {
        let usize_ = jemalloc_s2u((size + align - 1) & !(align - 1));
        if usize_ < LARGE_MINCLASS {
            return usize_;
        }
    }
    if size <= LARGE_MINCLASS {
        LARGE_MINCLASS
    } else {
        jemalloc_s2u(size)
    }
}

#[cfg(feature = "jemalloc")]
/// Bit `s` is set when a request of `s` bytes (alignment at most 16 and at
/// most `s`) leaves two bytes of slack in its jemalloc size class; computed
/// at compile time from [`jemalloc_size_class`] (1.8 KiB).
static SLACK: [u64; geometry::SMALL_MAXCLASS / 64 + 1] = {
    let mut table = [0u64; geometry::SMALL_MAXCLASS / 64 + 1];
    let mut size = 1;
    while size <= geometry::SMALL_MAXCLASS {
        if jemalloc_size_class(size + 2, 1) == jemalloc_size_class(size, 1) {
            table[size / 64] |= 1 << (size % 64);
        }
        size += 1;
    }
    table
};

#[cfg(feature = "jemalloc")]
/// Whether two more bytes after a request of `layout` still fit in the size
/// class jemalloc gives `layout` (so a trailer costs no memory).
///
/// The common case (alignment at most 8, a small size class) is one bit of
/// a table: with such an alignment jemalloc's class depends on the size
/// alone (small classes are multiples of 8, so rounding the size up to the
/// alignment first changes nothing). Everything else uses the size-class
/// arithmetic.
#[inline(always)]
pub(crate) fn trailer_fits(layout: Layout) -> bool {
    let (size, align) = (layout.size(), layout.align());
    if align <= 8 && size <= geometry::SMALL_MAXCLASS {
        return SLACK[size / 64] >> (size % 64) & 1 != 0;
    }
    trailer_fits_slow(size, align)
}

#[cfg(feature = "jemalloc")]
#[inline(never)]
fn trailer_fits_slow(size: usize, align: usize) -> bool {
    size.checked_add(2)
        .is_some_and(|outer| jemalloc_size_class(outer, align) == jemalloc_size_class(size, align))
}

#[cfg(all(test, feature = "jemalloc"))]
mod tests {
    use super::*;

    #[test]
    fn trailer_fits_agrees_with_size_classes() {
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in 1..=40_000 {
                let l = Layout::from_size_align(size, align).unwrap();
                assert_eq!(
                    trailer_fits(l),
                    jemalloc_size_class(size + 2, align) == jemalloc_size_class(size, align),
                    "size {size} align {align}"
                );
            }
        }
    }

    #[test]
    fn the_small_class_table_agrees_with_the_arithmetic() {
        for align in [1, 2, 4, 8, 16, 4096] {
            for size in 0..=geometry::SMALL_MAXCLASS + 64 {
                assert_eq!(
                    jemalloc_size_class(size, align),
                    jemalloc_size_class_computed(size, align),
                    "size {size} align {align}"
                );
            }
        }
    }

    #[test]
    fn size_classes_follow_jemalloc_table() {
        // The first classes of jemalloc's table for a 16-byte quantum.
        let classes = [
            (1, 8),
            (8, 8),
            (9, 16),
            (16, 16),
            (17, 32),
            (33, 48),
            (49, 64),
            (65, 80),
            (129, 160),
            (257, 320),
            (4097, 5120),
            (14336, 14336),
            (14337, 16384),
            (16385, 20480),
            (16384, 16384),
            (32767, 32768),
            (32769, 36864),
            (65537, 69632),
            (300_000, 303_104),
            (1 << 20, 1 << 20),
            ((1 << 20) + 1, (1 << 20) + 4096),
        ];
        for (size, class) in classes {
            assert_eq!(jemalloc_size_class(size, 1), class, "size {size}");
        }
    }

    #[test]
    fn alignment_rounds_up_before_classing() {
        assert_eq!(jemalloc_size_class(17, 32), 32);
        assert_eq!(jemalloc_size_class(33, 64), 64);
        assert_eq!(jemalloc_size_class(2, 4096), 4096);
        assert_eq!(jemalloc_size_class(10, 8192), 16384);
    }
}
