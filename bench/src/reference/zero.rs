//! [`RefAlloc`]: the zero-memory form (trailer where the class has slack,
//! the scope's arena for exact fits).

use std::alloc::{GlobalAlloc, Layout};
use std::ptr;
use std::sync::atomic::Ordering;

use tikv_jemalloc_sys as ffi;

use super::{
    align_flags, arena, arena_flags, bump, claim_row, has_slack, je_alloc, make_flags, read_tag,
    thread, write_tag, Row, SHARED,
};

/// The zero-memory reference tracker (see the [module](super) docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct RefAlloc;

impl RefAlloc {
    /// Allocates a block of `layout` in `scope`, counting it on `row`.
    ///
    /// # Safety
    /// As `GlobalAlloc::alloc`.
    #[inline(always)]
    unsafe fn alloc_on(row: &Row, scope: usize, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        let line = row.line(scope);
        let p = if has_slack(layout) {
            // SAFETY: `size + TAG` is in `size`'s class: valid and non-zero.
            let p = unsafe { je_alloc(size + super::TAG, align_flags(size + super::TAG, align)) };
            if p.is_null() {
                return p;
            }
            // SAFETY: `p` has `size + TAG` bytes.
            unsafe { write_tag(p, size, scope) };
            p
        } else {
            let nf = line.not_flags.load(Ordering::Relaxed);
            let flags = if nf == 0 { make_flags(row, scope) } else { !nf };
            // SAFETY: the caller's layout; the tcache in `flags` is this
            // thread's for the arena in `flags`.
            let p = unsafe { je_alloc(size, flags | align_flags(size, align)) };
            if p.is_null() {
                return p;
            }
            p
        };
        bump(&line.count, 1);
        bump(&line.bytes, size as i64);
        p
    }

    /// Frees `p`, counting on `row`.
    ///
    /// # Safety
    /// As `GlobalAlloc::dealloc`, for a block made by this allocator.
    #[inline(always)]
    unsafe fn dealloc_on(row: &Row, p: *mut u8, layout: Layout) {
        let (size, align) = (layout.size(), layout.align());
        let scope = if has_slack(layout) {
            // SAFETY: a block of a layout with slack carries its tag.
            let scope = unsafe { read_tag(p, size) };
            // SAFETY: made with `size + TAG` bytes and `align`.
            unsafe {
                ffi::sdallocx(
                    p.cast(),
                    size + super::TAG,
                    align_flags(size + super::TAG, align),
                )
            };
            scope
        } else {
            let scope = arena::scope_of_chunk(p);
            let nf = row.line(scope).not_flags.load(Ordering::Relaxed);
            let flags = if nf == 0 { make_flags(row, scope) } else { !nf };
            // SAFETY: a block of `scope`'s arena (or of jemalloc's own for
            // 0) returned through this thread's tcache of that arena.
            unsafe { ffi::sdallocx(p.cast(), size, flags | align_flags(size, align)) };
            scope
        };
        let line = row.line(scope);
        bump(&line.count, -1);
        bump(&line.bytes, -(size as i64));
    }

    /// The scope of the block `p` of `layout`.
    ///
    /// # Safety
    /// `p` is a live block of this allocator made with `layout`.
    #[inline(always)]
    unsafe fn scope_of(p: *const u8, layout: Layout) -> usize {
        if has_slack(layout) {
            // SAFETY: a block of a layout with slack carries its tag.
            unsafe { read_tag(p, layout.size()) }
        } else {
            arena::scope_of_chunk(p)
        }
    }
}

// SAFETY: every block comes from jemalloc with at least the layout's size
// and alignment (`je_alloc`/`mallocx` with the alignment rule of
// tikv-jemallocator) and goes back to it with the size and alignment it was
// made with; the tcache named in any flags is the calling thread's for the
// arena named beside it.
unsafe impl GlobalAlloc for RefAlloc {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (scope, row) = thread();
        if row.is_null() {
            // SAFETY: the caller's contract.
            return unsafe { alloc_cold(scope, layout) };
        }
        // SAFETY: a non-null row pointer points into `ROWS`; the caller's
        // contract.
        unsafe { Self::alloc_on(&*row, scope, layout) }
    }

    #[inline(always)]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        let (_, row) = thread();
        if row.is_null() {
            // SAFETY: the caller's contract.
            return unsafe { dealloc_cold(p, layout) };
        }
        // SAFETY: as in `alloc`.
        unsafe { Self::dealloc_on(&*row, p, layout) }
    }

    #[inline(always)]
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (_, row) = thread();
        // SAFETY: the caller guarantees `new_size` is non-zero and valid
        // for the alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let (slack, new_slack) = (has_slack(layout), has_slack(new_layout));
        if row.is_null() || slack != new_slack {
            // SAFETY: the caller's contract.
            return unsafe { realloc_moving(p, layout, new_size) };
        }
        // SAFETY: as in `alloc`.
        let row = unsafe { &*row };
        let (size, align) = (layout.size(), layout.align());
        let (q, scope) = if slack {
            // SAFETY: a block of a layout with slack carries its tag.
            let scope = unsafe { read_tag(p, size) };
            let new_outer = new_size + super::TAG;
            let flags = align_flags(new_outer, align);
            // SAFETY: made with `size + TAG` bytes; `new_outer` is in
            // `new_size`'s class, valid for the alignment.
            let q: *mut u8 = unsafe {
                if flags == 0 {
                    ffi::realloc(p.cast(), new_outer).cast()
                } else {
                    ffi::rallocx(p.cast(), new_outer, flags).cast()
                }
            };
            if q.is_null() {
                return q;
            }
            // SAFETY: `q` has `new_size + TAG` bytes.
            unsafe { write_tag(q, new_size, scope) };
            (q, scope)
        } else {
            let scope = arena::scope_of_chunk(p);
            let nf = row.line(scope).not_flags.load(Ordering::Relaxed);
            let flags =
                if nf == 0 { make_flags(row, scope) } else { !nf } | align_flags(new_size, align);
            // SAFETY: a block of `scope`'s arena; if it moves it stays in
            // that arena (same flags), through this thread's tcache of it.
            let q: *mut u8 = unsafe {
                if flags == 0 {
                    ffi::realloc(p.cast(), new_size).cast()
                } else {
                    ffi::rallocx(p.cast(), new_size, flags).cast()
                }
            };
            if q.is_null() {
                return q;
            }
            (q, scope)
        };
        bump(&row.line(scope).bytes, new_size as i64 - size as i64);
        q
    }
}

/// `alloc` on a thread without a row yet, or counting on the shared row.
///
/// # Safety
/// As `GlobalAlloc::alloc`.
#[cold]
#[inline(never)]
unsafe fn alloc_cold(scope: usize, layout: Layout) -> *mut u8 {
    if let Some(row) = claim_row() {
        // SAFETY: the caller's contract.
        return unsafe { RefAlloc::alloc_on(row, scope, layout) };
    }
    let (size, align) = (layout.size(), layout.align());
    let p = if has_slack(layout) {
        // SAFETY: as in `alloc_on`.
        let p = unsafe { je_alloc(size + super::TAG, align_flags(size + super::TAG, align)) };
        if !p.is_null() {
            // SAFETY: `p` has `size + TAG` bytes.
            unsafe { write_tag(p, size, scope) };
        }
        p
    } else {
        let flags = arena_flags(scope, ffi::MALLOCX_TCACHE_NONE) | align_flags(size, align);
        // SAFETY: the caller's layout; no tcache.
        unsafe { je_alloc(size, flags) }
    };
    if !p.is_null() {
        let line = SHARED.line(scope);
        line.count.fetch_add(1, Ordering::Relaxed);
        line.bytes.fetch_add(size as i64, Ordering::Relaxed);
    }
    p
}

/// `dealloc` on a thread without a row yet, or counting on the shared row.
///
/// # Safety
/// As `GlobalAlloc::dealloc`.
#[cold]
#[inline(never)]
unsafe fn dealloc_cold(p: *mut u8, layout: Layout) {
    if let Some(row) = claim_row() {
        // SAFETY: the caller's contract.
        return unsafe { RefAlloc::dealloc_on(row, p, layout) };
    }
    let (size, align) = (layout.size(), layout.align());
    // SAFETY: `p` is a live block of `layout`.
    let scope = unsafe { RefAlloc::scope_of(p, layout) };
    // SAFETY: as in `dealloc_on`, without a tcache (which frees into the
    // block's own arena).
    unsafe {
        if has_slack(layout) {
            ffi::sdallocx(
                p.cast(),
                size + super::TAG,
                align_flags(size + super::TAG, align),
            );
        } else {
            let tcache = if scope == 0 {
                0
            } else {
                ffi::MALLOCX_TCACHE_NONE
            };
            ffi::sdallocx(p.cast(), size, tcache | align_flags(size, align));
        }
    }
    let line = SHARED.line(scope);
    line.count.fetch_sub(1, Ordering::Relaxed);
    line.bytes.fetch_sub(size as i64, Ordering::Relaxed);
}

/// A reallocation that changes the block's kind (slack to exact fit or
/// back), or on a thread without a row: a new block in the old block's
/// scope, a copy, a free.
///
/// # Safety
/// As `GlobalAlloc::realloc`.
#[cold]
#[inline(never)]
unsafe fn realloc_moving(p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    // SAFETY: `p` is a live block of `layout`.
    let scope = unsafe { RefAlloc::scope_of(p, layout) };
    // SAFETY: the caller guarantees `new_size` is valid for the alignment.
    let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
    // SAFETY: the caller's contract; the new block is made in `scope`.
    let q = unsafe {
        match claim_row() {
            Some(row) => RefAlloc::alloc_on(row, scope, new_layout),
            None => alloc_cold(scope, new_layout),
        }
    };
    if !q.is_null() {
        // SAFETY: both blocks hold at least the smaller size; they differ.
        unsafe { ptr::copy_nonoverlapping(p, q, layout.size().min(new_size)) };
        // SAFETY: `p` is live with `layout`.
        unsafe { RefAlloc.dealloc(p, layout) };
    }
    q
}
