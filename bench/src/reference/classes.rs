//! Whether a layout's jemalloc size class has room for the 2-byte tag:
//! `nallocx(size + 2) == nallocx(size)`, computed without calling jemalloc.
//!
//! jemalloc's geometry as tikv-jemalloc-sys 0.7 builds it on x86_64 and
//! aarch64 Linux: a 16-byte quantum, 4 KiB pages, four classes per
//! doubling, large requests rounded to whole pages
//! (`opt.disable_large_size_classes`). The test
//! `reference_slack_matches_nallocx` checks it against `nallocx`.

use std::alloc::Layout;

const LG_QUANTUM: u32 = 4;
const PAGE: usize = 4096;
const LG_NGROUP: u32 = 2;
const TINY_MIN: usize = 8;
const LARGE_MINCLASS: usize = 4 * PAGE;
/// The largest small size class.
const SMALL_MAXCLASS: usize = LARGE_MINCLASS - PAGE / 2;
const LARGE_MAXCLASS: usize = isize::MAX as usize / 2 + 1;

/// jemalloc's usable size for `size` bytes (`sz_s2u_compute`); 0 past the
/// largest class.
const fn s2u(size: usize) -> usize {
    if size <= TINY_MIN {
        return TINY_MIN;
    }
    if size > LARGE_MAXCLASS {
        return 0;
    }
    if size > SMALL_MAXCLASS {
        return (size + PAGE - 1) & !(PAGE - 1);
    }
    let x = usize::BITS - 1 - ((size << 1) - 1).leading_zeros();
    let lg_delta = if x < LG_NGROUP + LG_QUANTUM + 1 {
        LG_QUANTUM
    } else {
        x - LG_NGROUP - 1
    };
    let mask = (1usize << lg_delta) - 1;
    (size + mask) & !mask
}

/// jemalloc's usable size for `size` bytes aligned to `align` (`sz_sa2u`).
pub const fn size_class(size: usize, align: usize) -> usize {
    if size <= SMALL_MAXCLASS && align <= PAGE {
        let u = s2u((size + align - 1) & !(align - 1));
        if u < LARGE_MINCLASS {
            return u;
        }
    }
    if size <= LARGE_MINCLASS {
        LARGE_MINCLASS
    } else {
        s2u(size)
    }
}

/// Bit `s`: a request of `s` bytes (alignment at most 8) has two bytes of
/// slack in its class. Computed at compile time (1.8 KiB).
static SLACK: [u64; SMALL_MAXCLASS / 64 + 1] = {
    let mut table = [0u64; SMALL_MAXCLASS / 64 + 1];
    let mut size = 1;
    while size <= SMALL_MAXCLASS {
        if size_class(size + 2, 1) == size_class(size, 1) {
            table[size / 64] |= 1 << (size % 64);
        }
        size += 1;
    }
    table
};

/// Whether the 2-byte tag fits in the slack of `layout`'s size class. With
/// an alignment of at most 8, a small class depends on the size alone
/// (small classes are multiples of 8): one bit of a table.
#[inline(always)]
pub fn has_slack(layout: Layout) -> bool {
    let (size, align) = (layout.size(), layout.align());
    if align <= 8 && size <= SMALL_MAXCLASS {
        return SLACK[size / 64] >> (size % 64) & 1 != 0;
    }
    has_slack_slow(size, align)
}

#[inline(never)]
fn has_slack_slow(size: usize, align: usize) -> bool {
    size.checked_add(2)
        .is_some_and(|outer| size_class(outer, align) == size_class(size, align))
}
