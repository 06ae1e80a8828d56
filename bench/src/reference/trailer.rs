//! [`RefTrailerAlloc`]: every block carries its scope in a 2-byte trailer.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::Ordering;

use tikv_jemalloc_sys as ffi;

use super::{
    align_flags, bump, claim_row, je_alloc, read_tag, thread, write_tag, Row, SHARED, TAG,
};

/// The trailer-always reference tracker (see the [module](super) docs):
/// every block is `size + 2` bytes, through jemalloc's fast path; exact fits
/// move up a size class.
#[derive(Clone, Copy, Debug, Default)]
pub struct RefTrailerAlloc;

/// Counts `blocks` and `bytes` of `scope` on `row`, or on the shared row
/// when the thread has none.
#[inline(always)]
fn count(row: *const Row, scope: usize, blocks: i64, bytes: i64) {
    if row.is_null() {
        return count_cold(scope, blocks, bytes);
    }
    // SAFETY: a non-null row pointer points into `ROWS`.
    let line = unsafe { &*row }.line(scope);
    bump(&line.count, blocks);
    bump(&line.bytes, bytes);
}

#[cold]
#[inline(never)]
fn count_cold(scope: usize, blocks: i64, bytes: i64) {
    match claim_row() {
        Some(row) => {
            let line = row.line(scope);
            bump(&line.count, blocks);
            bump(&line.bytes, bytes);
        }
        None => {
            let line = SHARED.line(scope);
            line.count.fetch_add(blocks, Ordering::Relaxed);
            line.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}

// SAFETY: every block comes from jemalloc with `size + TAG` bytes and the
// layout's alignment (tikv-jemallocator's flag rule) and goes back with
// them.
unsafe impl GlobalAlloc for RefTrailerAlloc {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (scope, row) = thread();
        let (size, align) = (layout.size(), layout.align());
        let Some(outer) = size.checked_add(TAG) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `outer` is non-zero; an outer size jemalloc cannot serve
        // with this alignment fails with null.
        let p = unsafe { je_alloc(outer, align_flags(outer, align)) };
        if !p.is_null() {
            // SAFETY: `p` has `size + TAG` bytes.
            unsafe { write_tag(p, size, scope) };
            count(row, scope, 1, size as i64);
        }
        p
    }

    #[inline(always)]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        let (_, row) = thread();
        let size = layout.size();
        // SAFETY: every block carries its tag after `size` bytes.
        let scope = unsafe { read_tag(p, size) };
        // SAFETY: made with `size + TAG` bytes and the alignment.
        unsafe {
            ffi::sdallocx(
                p.cast(),
                size + TAG,
                align_flags(size + TAG, layout.align()),
            )
        };
        count(row, scope, -1, -(size as i64));
    }

    #[inline(always)]
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (_, row) = thread();
        let size = layout.size();
        let Some(outer) = new_size.checked_add(TAG) else {
            return std::ptr::null_mut();
        };
        // SAFETY: every block carries its tag after `size` bytes.
        let scope = unsafe { read_tag(p, size) };
        let flags = align_flags(outer, layout.align());
        // SAFETY: made with `size + TAG` bytes; `outer` is non-zero.
        let q: *mut u8 = unsafe {
            if flags == 0 {
                ffi::realloc(p.cast(), outer).cast()
            } else {
                ffi::rallocx(p.cast(), outer, flags).cast()
            }
        };
        if !q.is_null() {
            // SAFETY: `q` has `new_size + TAG` bytes.
            unsafe { write_tag(q, new_size, scope) };
            count(row, scope, 0, new_size as i64 - size as i64);
        }
        q
    }
}
