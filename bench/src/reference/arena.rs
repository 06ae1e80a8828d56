//! The reference's scope arenas: one jemalloc arena per scope, whose
//! extent hooks map memory in whole 2 MiB chunks and write the scope's
//! index into a chunk table, so that a free finds the scope of an
//! exact-fit block with one load.
//!
//! The same mechanism as `scope-alloc-tracker`'s `allocator/arena`, cut to
//! what the reference needs: no tagged arena, one arena per scope, no
//! statistics, no decay setting.

use std::ffi::{c_char, c_uint, c_void};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU16, Ordering};
use std::sync::Mutex;

use tikv_jemalloc_sys as ffi;

const CHUNK_SHIFT: u32 = 21;
const CHUNK: usize = 1 << CHUNK_SHIFT;
/// User-space addresses on x86_64 and aarch64 Linux are below `1 << 47`.
const ADDRESS_BITS: u32 = 47;
const CHUNKS_LEN: usize = 1 << (ADDRESS_BITS - CHUNK_SHIFT);

/// Scope index of each 2 MiB chunk (0: jemalloc's automatic arenas), one
/// `u16` per chunk of the address space, mapped `MAP_NORESERVE` when the
/// first scope arena is made (128 MiB of address space, touched only where
/// scope arenas have memory). Null before: every block is automatic.
static CHUNKS: AtomicPtr<AtomicU16> = AtomicPtr::new(ptr::null_mut());

/// The scope index of the chunk holding `p` (0 for jemalloc's own arenas).
#[inline(always)]
pub(super) fn scope_of_chunk(p: *const u8) -> usize {
    let table = CHUNKS.load(Ordering::Acquire);
    if table.is_null() {
        return 0;
    }
    let i = (p as usize >> CHUNK_SHIFT) & (CHUNKS_LEN - 1);
    // SAFETY: a non-null `CHUNKS` points to `CHUNKS_LEN` zero-initialised
    // `AtomicU16`s that are never unmapped, and `i < CHUNKS_LEN`.
    unsafe { (*table.add(i)).load(Ordering::Relaxed) as usize }
}

/// A fresh anonymous private read-write mapping of `len` bytes, backed only
/// where touched; it reads as zeros.
fn map_anonymous(len: usize) -> Option<*mut c_void> {
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choice; no existing memory is affected.
    let raw = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    (raw != libc::MAP_FAILED).then_some(raw)
}

/// Serialises arena creation (outside the hot path): the hook learns the
/// scope of an arena whose index `arenas.create` has not returned yet from
/// `PENDING_SCOPE`.
static CREATE: Mutex<()> = Mutex::new(());
static PENDING_SCOPE: AtomicU16 = AtomicU16::new(0);
/// Scope of each arena index, for arenas made here (0 otherwise).
static SCOPE_OF_ARENA: [AtomicU16; 4096] = [const { AtomicU16::new(0) }; 4096];

/// Creates the arena of scope `scope` (`> 0`) and returns its index, or
/// `None` if jemalloc refuses or the chunk table cannot be mapped.
pub(super) fn create_arena(scope: u16) -> Option<u32> {
    let _serial = CREATE.lock().unwrap_or_else(|e| e.into_inner());
    if CHUNKS.load(Ordering::Acquire).is_null() {
        let table = map_anonymous(CHUNKS_LEN * std::mem::size_of::<AtomicU16>())?;
        CHUNKS.store(table.cast(), Ordering::Release);
    }
    PENDING_SCOPE.store(scope, Ordering::Relaxed);
    let mut index: c_uint = 0;
    let mut len = std::mem::size_of::<c_uint>();
    let mut hooks: *mut ffi::extent_hooks_t = ptr::addr_of!(HOOKS).cast_mut();
    // SAFETY: "arenas.create" reads an `extent_hooks_t *` (a pointer to
    // `HOOKS`, which lives for the whole process and is never written) and
    // writes the new arena's `unsigned` index into `index`, whose size is
    // passed in `len`.
    let rc = unsafe {
        ffi::mallctl(
            c"arenas.create".as_ptr().cast::<c_char>(),
            ptr::addr_of_mut!(index).cast(),
            &mut len,
            ptr::addr_of_mut!(hooks).cast(),
            std::mem::size_of::<*mut ffi::extent_hooks_t>(),
        )
    };
    if rc != 0 || index as usize >= SCOPE_OF_ARENA.len() {
        return None;
    }
    SCOPE_OF_ARENA[index as usize].store(scope, Ordering::Release);
    Some(index)
}

/// A new explicit tcache's `MALLOCX_TCACHE` flag, or `MALLOCX_TCACHE_NONE`
/// if jemalloc refuses (its limit is 4096 per process).
pub(super) fn create_tcache_flag() -> i32 {
    let mut index: c_uint = 0;
    let mut len = std::mem::size_of::<c_uint>();
    // SAFETY: "tcache.create" writes the new tcache's `unsigned` index into
    // `index`, whose size is passed in `len`; it takes no input.
    let rc = unsafe {
        ffi::mallctl(
            c"tcache.create".as_ptr().cast::<c_char>(),
            ptr::addr_of_mut!(index).cast(),
            &mut len,
            ptr::null_mut(),
            0,
        )
    };
    if rc == 0 {
        ffi::MALLOCX_TCACHE(index as usize)
    } else {
        ffi::MALLOCX_TCACHE_NONE
    }
}

static HOOKS: ffi::extent_hooks_t = ffi::extent_hooks_t {
    alloc: Some(hook_alloc),
    dalloc: Some(hook_dalloc),
    destroy: None,
    commit: Some(hook_commit),
    decommit: Some(hook_opt_out),
    purge_lazy: Some(hook_purge_lazy),
    purge_forced: Some(hook_purge_forced),
    split: Some(hook_split),
    merge: Some(hook_merge),
};

/// Maps `size` bytes aligned to `alignment` in whole chunks and marks the
/// chunks as the arena's scope.
unsafe extern "C" fn hook_alloc(
    _hooks: *mut ffi::extent_hooks_t,
    new_addr: *mut c_void,
    size: usize,
    alignment: usize,
    zero: *mut bool,
    commit: *mut bool,
    arena_ind: c_uint,
) -> *mut c_void {
    let table = CHUNKS.load(Ordering::Acquire);
    if !new_addr.is_null() || size == 0 || table.is_null() {
        return ptr::null_mut();
    }
    let align = alignment.max(CHUNK);
    let Some(len) = size.checked_add(CHUNK - 1).map(|s| s & !(CHUNK - 1)) else {
        return ptr::null_mut();
    };
    let Some(raw) = len.checked_add(align).and_then(map_anonymous) else {
        return ptr::null_mut();
    };
    let start = (raw as usize + align - 1) & !(align - 1);
    let (head, tail) = (start - raw as usize, align - (start - raw as usize));
    // SAFETY: both ranges lie inside the mapping just made, outside the
    // `len` bytes kept at `start`.
    unsafe {
        if head != 0 {
            libc::munmap(raw, head);
        }
        if tail != 0 {
            libc::munmap((start + len) as *mut c_void, tail);
        }
    }
    if (start + len) >> ADDRESS_BITS != 0 {
        // SAFETY: `start..start + len` is our mapping.
        unsafe { libc::munmap(start as *mut c_void, len) };
        return ptr::null_mut();
    }
    let scope = match SCOPE_OF_ARENA.get(arena_ind as usize) {
        Some(s) if s.load(Ordering::Acquire) != 0 => s.load(Ordering::Acquire),
        _ => PENDING_SCOPE.load(Ordering::Relaxed),
    };
    for i in start >> CHUNK_SHIFT..(start + len) >> CHUNK_SHIFT {
        // SAFETY: `start + len < 1 << ADDRESS_BITS`, so `i < CHUNKS_LEN`.
        unsafe { (*table.add(i)).store(scope, Ordering::Release) };
    }
    // SAFETY: jemalloc passes valid out-pointers; fresh anonymous memory is
    // zeroed and committed.
    unsafe {
        *zero = true;
        *commit = true;
    }
    start as *mut c_void
}

/// Opts out: jemalloc retains the extent, so its chunks keep their scope.
unsafe extern "C" fn hook_dalloc(
    _: *mut ffi::extent_hooks_t,
    _: *mut c_void,
    _: usize,
    _: bool,
    _: c_uint,
) -> bool {
    true
}

/// Memory is mapped read-write from the start.
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
unsafe extern "C" fn hook_opt_out(
    _: *mut ffi::extent_hooks_t,
    _: *mut c_void,
    _: usize,
    _: usize,
    _: usize,
    _: c_uint,
) -> bool {
    true
}

unsafe extern "C" fn hook_purge_lazy(
    _: *mut ffi::extent_hooks_t,
    addr: *mut c_void,
    _size: usize,
    offset: usize,
    length: usize,
    _: c_uint,
) -> bool {
    // SAFETY: jemalloc names a page-aligned range of one of its extents
    // that holds no live block.
    unsafe {
        libc::madvise(
            addr.cast::<u8>().add(offset).cast(),
            length,
            libc::MADV_FREE,
        ) != 0
    }
}

unsafe extern "C" fn hook_purge_forced(
    _: *mut ffi::extent_hooks_t,
    addr: *mut c_void,
    _size: usize,
    offset: usize,
    length: usize,
    _: c_uint,
) -> bool {
    // SAFETY: as in `hook_purge_lazy`.
    unsafe {
        libc::madvise(
            addr.cast::<u8>().add(offset).cast(),
            length,
            libc::MADV_DONTNEED,
        ) != 0
    }
}

/// Splits keep every chunk's scope.
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

/// Merges within one arena keep every chunk's scope.
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
