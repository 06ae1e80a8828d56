//! The extent hooks of every arena this crate makes: memory is mapped in
//! whole chunks, and each chunk's owner is written into the chunk table.

use core::ffi::{c_uint, c_void};
use core::ptr;
use core::sync::atomic::{AtomicU16, Ordering};

use tikv_jemalloc_sys as ffi;

use super::{
    chunk_table, ADDRESS_BITS, CHUNK, CHUNK_SHIFT, OWNER_OF_ARENA, PENDING_OWNER, STATS_CHUNKS,
};

/// The hooks of every arena made here. jemalloc keeps the pointer; the
/// table is immutable.
pub(super) static HOOKS: ffi::extent_hooks_t = ffi::extent_hooks_t {
    alloc: Some(hook_alloc),
    dalloc: Some(hook_dalloc),
    destroy: Some(hook_destroy),
    commit: Some(hook_commit),
    decommit: Some(hook_decommit),
    purge_lazy: Some(hook_purge_lazy),
    purge_forced: Some(hook_purge_forced),
    split: Some(hook_split),
    merge: Some(hook_merge),
};

/// Maps `size` bytes aligned to `alignment` in whole chunks and marks the
/// chunks as `arena_ind`'s. jemalloc asks for new memory rarely (it grows an
/// arena's reserve geometrically and keeps what it got: `dalloc` opts out).
unsafe extern "C" fn hook_alloc(
    _hooks: *mut ffi::extent_hooks_t,
    new_addr: *mut c_void,
    size: usize,
    alignment: usize,
    zero: *mut bool,
    commit: *mut bool,
    arena_ind: c_uint,
) -> *mut c_void {
    if !new_addr.is_null() || size == 0 {
        // In-place growth at a given address: we cannot promise it.
        return ptr::null_mut();
    }
    let Some(table) = chunk_table() else {
        return ptr::null_mut();
    };
    let align = alignment.max(CHUNK);
    let Some(len) = size.checked_add(CHUNK - 1).map(|s| s & !(CHUNK - 1)) else {
        return ptr::null_mut();
    };
    let Some(map_len) = len.checked_add(align) else {
        return ptr::null_mut();
    };
    let Some(raw) = super::map_anonymous(map_len) else {
        return ptr::null_mut();
    };
    let start = (raw as usize + align - 1) & !(align - 1);
    let head = start - raw as usize;
    let tail = map_len - head - len;
    // SAFETY: both ranges lie inside the mapping just made and outside the
    // part we keep; unmapping them cannot touch anything else.
    unsafe {
        if head != 0 {
            libc::munmap(raw, head);
        }
        if tail != 0 {
            libc::munmap((start + len) as *mut c_void, tail);
        }
    }
    if (start + len) >> ADDRESS_BITS != 0 {
        // Outside the table's range: refuse rather than mis-attribute.
        // SAFETY: `start..start + len` is our mapping.
        unsafe { libc::munmap(start as *mut c_void, len) };
        return ptr::null_mut();
    }
    let owner = match OWNER_OF_ARENA
        .get(arena_ind as usize)
        .map(|o| o.load(Ordering::Acquire))
    {
        Some(0) | None => PENDING_OWNER.load(Ordering::Relaxed),
        Some(o) => o,
    };
    mark_chunks(table, start, len, owner);
    // SAFETY: jemalloc passes valid out-pointers. Fresh anonymous memory is
    // zeroed and committed (readable and writable).
    unsafe {
        *zero = true;
        *commit = true;
    }
    start as *mut c_void
}

fn mark_chunks(table: *mut AtomicU16, start: usize, len: usize, owner: u16) {
    let first = start >> CHUNK_SHIFT;
    let n = len >> CHUNK_SHIFT;
    for i in first..first + n {
        // SAFETY: the caller checked `start + len < 1 << ADDRESS_BITS`, so
        // `i < CHUNKS_LEN`; the table is never unmapped.
        unsafe { (*table.add(i)).store(owner, Ordering::Release) };
    }
    STATS_CHUNKS.fetch_add(n, Ordering::Relaxed);
}

/// Opts out: jemalloc keeps the extent (retained), so its chunks stay the
/// arena's and the table never has to be cleared while blocks may exist.
unsafe extern "C" fn hook_dalloc(
    _: *mut ffi::extent_hooks_t,
    _: *mut c_void,
    _: usize,
    _: bool,
    _: c_uint,
) -> bool {
    true
}

/// Only called when an arena is destroyed, which this crate never does;
/// the memory is given back, the chunks stay marked (no block lives there).
unsafe extern "C" fn hook_destroy(
    _: *mut ffi::extent_hooks_t,
    addr: *mut c_void,
    size: usize,
    _: bool,
    _: c_uint,
) {
    // SAFETY: jemalloc hands back an extent it got from `hook_alloc` (or a
    // merge of such), which no longer holds any block.
    unsafe { libc::munmap(addr, size) };
}

/// Memory is mapped read-write from the start: committing always succeeds.
unsafe extern "C" fn hook_commit(
    _: *mut ffi::extent_hooks_t,
    _: *mut c_void,
    _: usize,
    _: usize,
    _: usize,
    _: c_uint,
) -> bool {
    false
}

/// Opts out of decommit; jemalloc purges instead.
unsafe extern "C" fn hook_decommit(
    _: *mut ffi::extent_hooks_t,
    _: *mut c_void,
    _: usize,
    _: usize,
    _: usize,
    _: c_uint,
) -> bool {
    true
}

/// `MADV_FREE`: the kernel may take the pages back lazily.
unsafe extern "C" fn hook_purge_lazy(
    _: *mut ffi::extent_hooks_t,
    addr: *mut c_void,
    _size: usize,
    offset: usize,
    length: usize,
    _: c_uint,
) -> bool {
    // SAFETY: jemalloc names a page-aligned range inside one of its extents
    // that holds no live block.
    unsafe { advise(addr, offset, length, libc::MADV_FREE) }
}

/// `MADV_DONTNEED`: the pages are given back now and read as zeros.
unsafe extern "C" fn hook_purge_forced(
    _: *mut ffi::extent_hooks_t,
    addr: *mut c_void,
    _size: usize,
    offset: usize,
    length: usize,
    _: c_uint,
) -> bool {
    // SAFETY: as in `hook_purge_lazy`.
    unsafe { advise(addr, offset, length, libc::MADV_DONTNEED) }
}

/// `madvise(addr + offset, length, advice)`; `true` on failure (jemalloc's
/// hook convention).
///
/// # Safety
/// `addr + offset .. + length` is a page-aligned range of a mapping this
/// module made, holding no live block.
unsafe fn advise(addr: *mut c_void, offset: usize, length: usize, advice: i32) -> bool {
    // SAFETY: the caller's contract.
    unsafe { libc::madvise(addr.cast::<u8>().add(offset).cast(), length, advice) != 0 }
}

/// Extents may always be split: the chunks keep their owner.
unsafe extern "C" fn hook_split(
    _: *mut ffi::extent_hooks_t,
    _: *mut c_void,
    _: usize,
    _: usize,
    _: usize,
    _: bool,
    _: c_uint,
) -> bool {
    false
}

/// Extents of one arena may be merged: both halves are that arena's.
unsafe extern "C" fn hook_merge(
    _: *mut ffi::extent_hooks_t,
    _: *mut c_void,
    _: usize,
    _: *mut c_void,
    _: usize,
    _: bool,
    _: c_uint,
) -> bool {
    false
}
