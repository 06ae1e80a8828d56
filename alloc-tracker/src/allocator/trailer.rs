//! The 2-byte trailer: where a block's tag lives when the block carries one,
//! and how it is read and written.
//!
//! Which blocks carry one depends on the [`Attribution`](super::Attribution):
//! all of them with `Trailer` (and over `System`); with `Hybrid` those whose
//! size class has two bytes of slack, plus sampled/recorded and transient
//! blocks. Such a block is two bytes longer
//! than the caller asked for. The two extra bytes hold the [`Tag`] and sit
//! *after* the caller's bytes, at an offset derived from the `Layout` alone,
//! which `dealloc` and `realloc` receive again:
//!
//! ```text
//!  ptr (aligned to layout.align(), exactly as the backend returned it)
//!  |
//!  v
//!  +----------------------------------+--------+------------------------+
//!  |  caller's bytes: layout.size()   |  tag   |  size-class slack      |
//!  +----------------------------------+--------+------------------------+
//!  ^ offset 0                         ^ offset layout.size()  (u16, unaligned)
//!  |<--------- backend request: layout.size() + TAG_SIZE ------>|
//!  |<-------------------- backend usable size (size class) ------------->|
//! ```
//!
//! Why a trailer and not a header: a header must be `max(TAG_SIZE, align)`
//! bytes to keep the caller's pointer aligned, and moving the pointer means
//! every request grows by at least 8 bytes (16 for `align = 16`), which
//! crosses a jemalloc size class for most small sizes. A two-byte trailer
//! keeps the backend's pointer and alignment untouched, and it usually falls
//! into the slack between the requested size and its size class: a 24-byte
//! request (class 32) costs nothing. It costs a size class when the request
//! already fills its class exactly (8, 16, 32, 48, 64, ...), which is why
//! the hybrid sends those blocks to their scope's arena instead.
//!
//! The tag is written unaligned so that any `layout.size()` works, including
//! odd sizes with `align = 1`.

use core::alloc::Layout;

/// Bytes added after every block.
pub(crate) const TAG_SIZE: usize = core::mem::size_of::<u16>();

/// The layout requested from the backend for a caller's `layout`, or `None`
/// when the enlarged size would overflow `isize` (the caller then gets null,
/// as for any failed allocation).
#[inline(always)]
pub(crate) fn outer_layout(layout: Layout) -> Option<Layout> {
    // `Layout::from_size_align`'s own condition, with the alignment already
    // known to be a power of two: the size rounded up to the alignment
    // must not exceed `isize::MAX`.
    let max = isize::MAX as usize - (layout.align() - 1);
    if layout.size() > max - TAG_SIZE {
        return None;
    }
    // SAFETY: `layout.align()` is a non-zero power of two (it comes from a
    // `Layout`), and `layout.size() + TAG_SIZE <= isize::MAX - (align - 1)`
    // was checked just above, which is what `from_size_align` requires.
    Some(unsafe { Layout::from_size_align_unchecked(layout.size() + TAG_SIZE, layout.align()) })
}

/// [`outer_layout`] for a layout that is known to have been enlarged
/// successfully before (the block exists).
#[inline(always)]
pub(crate) fn outer_layout_of_live(layout: Layout) -> Layout {
    debug_assert!(outer_layout(layout).is_some());
    // SAFETY: `layout` describes a live block that `alloc`/`realloc` created,
    // which they only do after `outer_layout(layout)` succeeded, i.e. after
    // checking that `size + TAG_SIZE` rounded to `align` fits in `isize`.
    unsafe { Layout::from_size_align_unchecked(layout.size() + TAG_SIZE, layout.align()) }
}

/// Writes `tag` after the caller's bytes of the block at `ptr`.
///
/// # Safety
/// `ptr` must point to a block of at least `layout.size() + TAG_SIZE`
/// writable bytes, i.e. a block this allocator obtained from the backend with
/// `outer_layout(layout)`. Writing past that (a `layout` larger than the one
/// the block was made for) corrupts the neighbouring heap block.
#[inline(always)]
pub(crate) unsafe fn write_unchecked(ptr: *mut u8, layout: Layout, tag: u16) {
    // SAFETY: the caller guarantees `ptr + layout.size() .. + TAG_SIZE` lies
    // inside the block; `write_unaligned` has no alignment requirement.
    unsafe { ptr.add(layout.size()).cast::<u16>().write_unaligned(tag) }
}

/// Reads the tag written by [`write_unchecked`].
///
/// # Safety
/// Same contract as [`write_unchecked`], and the tag must have been written:
/// `ptr`/`layout` must be a live block of this allocator. A `layout` that is
/// not the one the block was allocated (or last reallocated) with reads
/// caller bytes as a tag, which credits the free to a wrong scope.
#[inline(always)]
pub(crate) unsafe fn read_unchecked(ptr: *const u8, layout: Layout) -> u16 {
    // SAFETY: as in `write_unchecked`; the bytes were initialised by it.
    unsafe { ptr.add(layout.size()).cast::<u16>().read_unaligned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outer_layout_adds_tag_and_keeps_alignment() {
        for align in (0..=12).map(|s| 1usize << s) {
            for size in [
                1,
                align.saturating_sub(1).max(1),
                align,
                align + 1,
                3 * align,
            ] {
                let l = Layout::from_size_align(size, align).unwrap();
                let o = outer_layout(l).unwrap();
                assert_eq!(o.size(), size + TAG_SIZE);
                assert_eq!(o.align(), align);
                assert_eq!(outer_layout_of_live(l), o);
            }
        }
    }

    #[test]
    fn outer_layout_refuses_overflow() {
        let l = Layout::from_size_align(isize::MAX as usize - 1, 1).unwrap();
        assert!(outer_layout(l).is_none());
        let l = Layout::from_size_align(isize::MAX as usize - 4096, 4096).unwrap();
        assert!(outer_layout(l).is_none());
    }

    #[test]
    fn tag_round_trips_at_odd_offsets() {
        let mut buf = [0u8; 64];
        for size in 1..60 {
            let l = Layout::from_size_align(size, 1).unwrap();
            let tag = 0xA000 | size as u16;
            // SAFETY: `buf` has 64 bytes, `size + TAG_SIZE <= 61`.
            unsafe {
                write_unchecked(buf.as_mut_ptr(), l, tag);
                assert_eq!(read_unchecked(buf.as_ptr(), l), tag);
            }
        }
    }
}
