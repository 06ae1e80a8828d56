//! Attribution by address: every scope's blocks live in jemalloc arenas of
//! their own, and a free learns the block's scope from one load in a table
//! indexed by the block's address, without touching the block.
//!
//! ```text
//!   address  p ──► p >> CHUNK_SHIFT ──► CHUNKS[..] : u16
//!                                         0          a block of jemalloc's own (automatic)
//!                                                    arenas: UNSCOPED, untagged
//!                                         1 + s      a block of scope s's arena
//!                                         TAGGED     a block of the shared tagged arena:
//!                                                    its scope is in a 2-byte trailer
//! ```
//!
//! - **Scope arenas.** The first allocation of scope `s` creates an arena
//!   (`arenas.create`) whose extent hooks map memory in whole 2 MiB chunks
//!   and write `1 + s` into `CHUNKS` for each of them. The arena belongs to
//!   the scope *id* for the life of the process (ids are recycled only once
//!   drained, so a recycled id inherits an arena holding none of its old
//!   blocks). Allocations of `s` are made with
//!   `mallocx(size, MALLOCX_ARENA(a) | MALLOCX_TCACHE(tc))`, where `tc` is an
//!   explicit tcache of the calling thread for that arena; frees go back
//!   through the freeing thread's explicit tcache for the block's arena
//!   (jemalloc requires a block to return through a tcache of its own arena:
//!   a thread's automatic tcache would hand it out again to another scope).
//! - **Unscoped blocks** take jemalloc's flag-free fast path and carry
//!   nothing; their chunks were never written, so the table says 0.
//! - **The tagged arena** (one, shared) holds the blocks that need a tag:
//!   sampled and recorded blocks (their tag carries the record flags),
//!   blocks of transient scopes, and the fallback when a scope arena or a
//!   tcache cannot be created. Its blocks are `layout.size() + 2` bytes with
//!   the tag as a trailer (see `trailer`), so they may take the next size
//!   class: a cost paid by few blocks.
//!
//! Nothing here allocates through the global allocator: arenas and tcaches
//! are created by `mallctl`, which uses jemalloc's internal base allocator,
//! and the hooks map memory with `mmap`. Creation runs at most once per
//! scope and per (thread, scope) pair, on a `#[cold]` path; jemalloc takes
//! its control mutex there, as its own slow paths do.
//!
//! Failure modes, each falling back to a correct, slower path and counted
//! in [`AttributionStats`](crate::AttributionStats): arena creation fails
//! (jemalloc's limit is 4095 arenas) → the scope's blocks go to the tagged
//! arena; tcache creation fails (the limit is 4096 explicit tcaches) or the
//! thread has no counter shard → `MALLOCX_TCACHE_NONE` (the arena's bins,
//! under their locks).

use core::alloc::Layout;
use core::ffi::{c_char, c_uint};
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use tikv_jemalloc_sys as ffi;

mod ctl;
mod hooks;
mod scrub;
mod tcache;

use hooks::HOOKS;
pub(crate) use scrub::scrub_tcaches;
pub(crate) use tcache::release_tcaches;
use tcache::tcache_flag;
pub(crate) use tcache::{cached_bytes, ready_tcache_flag};

use crate::hot::counters::{self, Line, ShardSlot};
use crate::scope::{ScopeId, MAX_SCOPES};

/// Each chunk of `1 << CHUNK_SHIFT` bytes belongs to one arena.
const CHUNK_SHIFT: u32 = 21;
const CHUNK: usize = 1 << CHUNK_SHIFT;
/// User-space addresses on x86_64 and aarch64 Linux are below `1 << 47`.
const ADDRESS_BITS: u32 = 47;
const CHUNKS_LEN: usize = 1 << (ADDRESS_BITS - CHUNK_SHIFT);

/// Chunk owner: 0 = automatic arena, `1 + scope`, or `TAGGED`; one `u16`
/// per chunk of the address space: 64 Mi entries, 128 MiB of address space
/// mapped (`MAP_NORESERVE`) when the first scope arena is made. Only the
/// pages covering mapped chunks are ever touched (a 1 GiB heap uses 512
/// entries, 1 KiB). Null until then: every block is an automatic one.
static CHUNKS: AtomicPtr<AtomicU16> = AtomicPtr::new(ptr::null_mut());
pub(crate) const TAGGED: u16 = u16::MAX;

/// Who owns the block at `p`, from the chunk table alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// jemalloc's automatic arenas: an unscoped, untagged block.
    Automatic,
    /// The arena of this scope.
    Scope(ScopeId),
    /// The tagged arena: the scope is in the block's trailer.
    Tagged,
}

/// The owner of the chunk holding `p`.
#[inline(always)]
pub(crate) fn owner(p: *const u8) -> Owner {
    let table = CHUNKS.load(Ordering::Acquire);
    if table.is_null() {
        return Owner::Automatic;
    }
    let i = (p as usize >> CHUNK_SHIFT) & (CHUNKS_LEN - 1);
    // SAFETY: a non-null `CHUNKS` points to `CHUNKS_LEN` zero-initialised
    // `AtomicU16`s that are never unmapped, and `i < CHUNKS_LEN`.
    match unsafe { (*table.add(i)).load(Ordering::Relaxed) } {
        0 => Owner::Automatic,
        TAGGED => Owner::Tagged,
        s => Owner::Scope(ScopeId((s - 1) & (MAX_SCOPES as u16 - 1))),
    }
}

/// A fresh anonymous private read-write mapping of `len` bytes, backed
/// only where touched (`MAP_NORESERVE`); it reads as zeros. `None` if the
/// kernel refuses.
fn map_anonymous(len: usize) -> Option<*mut core::ffi::c_void> {
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

/// The chunk table, mapped on first need (in the cold arena-creation path);
/// `None` if the mapping failed.
fn chunk_table() -> Option<*mut AtomicU16> {
    let t = CHUNKS.load(Ordering::Acquire);
    if !t.is_null() {
        return Some(t);
    }
    let len = CHUNKS_LEN * core::mem::size_of::<AtomicU16>();
    // The mapping reads as zeros, a valid `AtomicU16` bit pattern.
    let raw = map_anonymous(len)?;
    match CHUNKS.compare_exchange(
        ptr::null_mut(),
        raw.cast(),
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => Some(raw.cast()),
        Err(winner) => {
            // SAFETY: our mapping was never published.
            unsafe { libc::munmap(raw, len) };
            Some(winner)
        }
    }
}

// === arenas ===

/// Arenas per scope. Threads of one scope refill and flush their tcaches
/// from their scope's arena under its bin locks; bare jemalloc spreads
/// threads over `4 x CPUs` automatic arenas. Giving each scope a few arenas,
/// picked by the thread's counter shard, keeps two threads of one scope off
/// each other's locks (with one arena, two threads of a scope serialised
/// on them; figures in `docs/attribution.md`). Each is created on first
/// use, so a scope used by one thread has one arena.
const ARENAS_PER_SCOPE: usize = 4;

/// Arenas of each scope: 0 = not created yet, `CREATING`, `FAILED`, or
/// `1 + arena index`.
static ARENA_OF: [[AtomicU32; ARENAS_PER_SCOPE]; MAX_SCOPES] =
    [const { [const { AtomicU32::new(0) }; ARENAS_PER_SCOPE] }; MAX_SCOPES];

/// Which of its scope's arenas a thread uses.
#[inline(always)]
fn arena_slot(slot: ShardSlot) -> usize {
    slot.owned_shard()
        .map_or(0, |n| n as usize % ARENAS_PER_SCOPE)
}
/// The tagged arena, same encoding.
static TAGGED_ARENA: AtomicU32 = AtomicU32::new(0);
const CREATING: u32 = u32::MAX;
const FAILED: u32 = u32::MAX - 1;

/// Whether `scope` keeps its blocks in the tagged arena (transient scopes,
/// see `set_tagged_only`), by scope.
static TAGGED_ONLY: [AtomicU64; MAX_SCOPES / 64] = [const { AtomicU64::new(0) }; MAX_SCOPES / 64];

/// Makes `scope`'s blocks go to the tagged arena (`true`) or to an arena of
/// its own (`false`, the default). Transient scopes use the tagged arena:
/// they come and go by the thousand, and jemalloc's arena and tcache limits
/// are a few thousand for the whole process.
pub(crate) fn set_tagged_only(scope: ScopeId, tagged: bool) {
    let (w, b) = (scope.index() / 64, scope.index() % 64);
    if tagged {
        TAGGED_ONLY[w].fetch_or(1 << b, Ordering::Relaxed);
        // Flags cached for the id's previous scope name its own arena.
        for line in counters::lines_of(scope) {
            line.alloc_flags().store(0, Ordering::Relaxed);
        }
    } else {
        TAGGED_ONLY[w].fetch_and(!(1 << b), Ordering::Relaxed);
    }
}

#[inline(always)]
fn is_tagged_only(scope: ScopeId) -> bool {
    let i = scope.index();
    TAGGED_ONLY[(i / 64) % (MAX_SCOPES / 64)].load(Ordering::Relaxed) & (1 << (i % 64)) != 0
}

static STATS_ARENAS: AtomicUsize = AtomicUsize::new(0);
static STATS_ARENA_FAILURES: AtomicUsize = AtomicUsize::new(0);
static STATS_TCACHES: AtomicUsize = AtomicUsize::new(0);
static STATS_TCACHE_FAILURES: AtomicUsize = AtomicUsize::new(0);
static STATS_CHUNKS: AtomicUsize = AtomicUsize::new(0);

/// Figures of the attribution machinery: how many arenas and tcaches exist
/// and how often a fallback path had to be taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct AttributionStats {
    /// jemalloc arenas created for scopes (the tagged arena included).
    pub arenas: usize,
    /// Scopes whose arena could not be created (their blocks went to the
    /// tagged arena instead: correct, but each such block carries a trailer).
    pub arena_failures: usize,
    /// Explicit (thread, arena) tcaches alive.
    pub tcaches: usize,
    /// (thread, arena) pairs for which no tcache could be created (their
    /// allocations and frees bypass the tcache: correct, slower).
    pub tcache_failures: usize,
    /// 2 MiB chunks mapped for scope arenas.
    pub chunks: usize,
}

/// The current [`AttributionStats`].
pub(crate) fn attribution_stats() -> AttributionStats {
    AttributionStats {
        arenas: STATS_ARENAS.load(Ordering::Relaxed),
        arena_failures: STATS_ARENA_FAILURES.load(Ordering::Relaxed),
        tcaches: STATS_TCACHES.load(Ordering::Relaxed),
        tcache_failures: STATS_TCACHE_FAILURES.load(Ordering::Relaxed),
        chunks: STATS_CHUNKS.load(Ordering::Relaxed),
    }
}

/// The arena index of `scope`, creating it on first use; `None` when the
/// scope's blocks go to the tagged arena.
#[inline(always)]
fn arena_of(scope: ScopeId, k: usize) -> Option<u32> {
    match ARENA_OF[scope.index()][k % ARENAS_PER_SCOPE].load(Ordering::Acquire) {
        0 => create_arena_for(scope, k),
        CREATING | FAILED => None,
        a => Some(a - 1),
    }
}

#[cold]
#[inline(never)]
fn create_arena_for(scope: ScopeId, k: usize) -> Option<u32> {
    let slot = &ARENA_OF[scope.index()][k % ARENAS_PER_SCOPE];
    if slot
        .compare_exchange(0, CREATING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // Another thread is creating it: this one allocation goes to the
        // tagged arena rather than waiting.
        return match slot.load(Ordering::Acquire) {
            CREATING | FAILED | 0 => None,
            a => Some(a - 1),
        };
    }
    let created = create_arena(1 + scope.0);
    slot.store(created.map_or(FAILED, |a| a + 1), Ordering::Release);
    if created.is_none() {
        STATS_ARENA_FAILURES.fetch_add(1, Ordering::Relaxed);
    }
    created
}

/// Any created arena of `scope`.
fn any_arena_of(scope: ScopeId) -> Option<u32> {
    ARENA_OF[scope.index()]
        .iter()
        .map(|a| a.load(Ordering::Acquire))
        .find(|&a| a != 0 && a != CREATING && a != FAILED)
        .map(|a| a - 1)
}

/// The tagged arena's index. Created by the first thread that needs it;
/// a thread arriving while it is being created waits for it (once per
/// process, for the duration of one `arenas.create`).
#[inline(always)]
fn tagged_arena() -> Option<u32> {
    match TAGGED_ARENA.load(Ordering::Acquire) {
        0 | CREATING => create_tagged_arena(),
        FAILED => None,
        a => Some(a - 1),
    }
}

#[cold]
#[inline(never)]
fn create_tagged_arena() -> Option<u32> {
    if TAGGED_ARENA
        .compare_exchange(0, CREATING, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        let created = create_arena(TAGGED);
        TAGGED_ARENA.store(created.map_or(FAILED, |a| a + 1), Ordering::Release);
        return created;
    }
    loop {
        match TAGGED_ARENA.load(Ordering::Acquire) {
            CREATING => core::hint::spin_loop(),
            FAILED | 0 => return None,
            a => return Some(a - 1),
        }
    }
}

/// Which chunk owner each arena index maps to (set before the arena is
/// published, read by the extent hook).
static OWNER_OF_ARENA: [AtomicU16; 4096] = [const { AtomicU16::new(0) }; 4096];
/// The owner value the hook writes for an arena whose index is not yet
/// known (the hook may run inside `arenas.create`): set around the call.
static PENDING_OWNER: AtomicU16 = AtomicU16::new(0);

fn create_arena(owner: u16) -> Option<u32> {
    let mut index: c_uint = 0;
    let mut len = core::mem::size_of::<c_uint>();
    let mut hooks: *mut ffi::extent_hooks_t = ptr::addr_of!(HOOKS).cast_mut();
    PENDING_OWNER.store(owner, Ordering::Relaxed);
    // SAFETY: "arenas.create" reads an `extent_hooks_t *` (we pass a pointer
    // to one, `HOOKS`, which lives for the whole process and is never
    // written) and writes the new arena's `unsigned` index into `index`,
    // whose size we pass in `len`.
    let rc = unsafe {
        ffi::mallctl(
            c"arenas.create".as_ptr().cast::<c_char>(),
            ptr::addr_of_mut!(index).cast(),
            &mut len,
            ptr::addr_of_mut!(hooks).cast(),
            core::mem::size_of::<*mut ffi::extent_hooks_t>(),
        )
    };
    if rc != 0 || index as usize >= OWNER_OF_ARENA.len() {
        return None;
    }
    OWNER_OF_ARENA[index as usize].store(owner, Ordering::Release);
    STATS_ARENAS.fetch_add(1, Ordering::Relaxed);
    // Best effort: the arena works with jemalloc's default if this fails.
    let _ = ctl::set_dirty_decay_ms(index, SCOPE_ARENA_DIRTY_DECAY_MS);
    Some(index)
}

/// How long a scope arena keeps freed pages before giving them back.
/// jemalloc's default (10 s) suits arenas that every thread shares; a scope
/// arena's freed pages cannot serve other scopes, so holding them that long
/// shows as resident memory bare jemalloc would have reused.
const SCOPE_ARENA_DIRTY_DECAY_MS: isize = 1000;

// === allocation and free ===

/// `tikv_jemallocator`'s flag rule: alignment flags only when `malloc`'s
/// natural alignment does not already satisfy the layout.
#[inline(always)]
pub(crate) fn align_flags(layout: Layout) -> i32 {
    const MIN_ALIGN: usize = 16;
    if layout.align() <= MIN_ALIGN && layout.align() <= layout.size() {
        0
    } else {
        ffi::MALLOCX_LG_ALIGN(layout.align().trailing_zeros() as usize)
    }
}

/// Where a new block of a scope goes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Placement {
    /// The scope's arena with these `mallocx` flags (alignment included).
    Arena(i32),
    /// The tagged arena with these flags, alignment not included (the block
    /// is made with the trailer's outer layout, whose alignment flags the
    /// caller adds): the block needs a trailer.
    Tagged(i32),
    /// No arena could be made: jemalloc's automatic arenas, untagged,
    /// charged to `UNSCOPED` (counted in [`AttributionStats`]).
    Unattributed,
}

/// The `mallocx` flags (arena and tcache, no alignment) for a new block of
/// `scope` made by the thread owning `slot`, when the scope keeps its own
/// arenas and this thread's arena and tcache of it exist already: the
/// fast path's lookup. `None` sends the caller to [`place`], which makes
/// what is missing.
///
/// `line` is `scope`'s line in `slot`'s shard, which caches the flags once
/// found: the common case is one load.
#[inline(always)]
pub(crate) fn ready_alloc_flags(slot: ShardSlot, scope: ScopeId, line: &Line) -> Option<i32> {
    match line.alloc_flags().load(Ordering::Relaxed) {
        0 => find_alloc_flags(slot, scope, line),
        flags => Some(flags as i32),
    }
}

/// [`ready_alloc_flags`] when the line has none cached: finds them and
/// caches them in the line if they exist. Only the thread owning the shard
/// runs this for its lines; `release_tcaches` (the same thread, at its
/// exit) and `set_tagged_only` (before the scope is published) clear them.
#[cold]
#[inline(never)]
fn find_alloc_flags(slot: ShardSlot, scope: ScopeId, line: &Line) -> Option<i32> {
    if is_tagged_only(scope) {
        return None;
    }
    let a = ARENA_OF[scope.index()][arena_slot(slot)].load(Ordering::Acquire);
    if a == 0 || a >= FAILED {
        return None;
    }
    let tcache = ready_tcache_flag(line)?;
    let flags = ffi::MALLOCX_ARENA((a - 1) as usize) | tcache;
    // Never 0: MALLOCX_ARENA(a) is `(a + 1) << 20`.
    line.alloc_flags().store(flags as u32, Ordering::Relaxed);
    Some(flags)
}

/// Chooses the arena for a new block of `scope` made by `slot`'s thread.
/// `tagged` forces the tagged arena (the block will carry record flags).
#[inline(always)]
pub(crate) fn place(slot: ShardSlot, scope: ScopeId, layout: Layout, tagged: bool) -> Placement {
    if !tagged && !is_tagged_only(scope) {
        if let Some(a) = arena_of(scope, arena_slot(slot)) {
            return Placement::Arena(
                align_flags(layout)
                    | ffi::MALLOCX_ARENA(a as usize)
                    | tcache_flag(slot, Some(scope)),
            );
        }
    }
    tagged_placement(slot)
}

#[cold]
#[inline(never)]
fn tagged_placement(slot: ShardSlot) -> Placement {
    match tagged_arena() {
        Some(a) => Placement::Tagged(ffi::MALLOCX_ARENA(a as usize) | tcache_flag(slot, None)),
        // No arena at all could be made (jemalloc refuses `arenas.create`
        // only past 4095 arenas or out of memory, and the tagged arena is
        // the first one this crate makes): the block goes to the automatic
        // arenas untagged and is counted as unscoped, which keeps every
        // figure consistent; the failure is counted.
        None => {
            STATS_ARENA_FAILURES.fetch_add(1, Ordering::Relaxed);
            Placement::Unattributed
        }
    }
}

/// `mallocx` of `size` bytes with `flags`.
///
/// # Safety
/// `size` must be non-zero and, rounded up to the alignment in `flags`, not
/// exceed `isize::MAX` (jemalloc's contract for `mallocx`).
#[inline(always)]
pub(crate) unsafe fn mallocx_unchecked(size: usize, flags: i32) -> *mut u8 {
    // SAFETY: guaranteed by the caller.
    unsafe { ffi::mallocx(size, flags).cast() }
}

/// The `sdallocx` flags for freeing a block of `owner` on `slot`'s thread.
#[inline(always)]
pub(crate) fn free_flags(slot: ShardSlot, owner: Owner, layout: Layout) -> i32 {
    match owner {
        Owner::Automatic => align_flags(layout),
        Owner::Scope(s) => align_flags(layout) | tcache_flag(slot, Some(s)),
        Owner::Tagged => align_flags(layout) | tcache_flag(slot, None),
    }
}

/// `sdallocx(p, size, flags)`.
///
/// # Safety
/// `p` must be a live jemalloc block of usable size class `size` (with the
/// alignment in `flags`), and a tcache in `flags` must belong to the calling
/// thread; passing the tcache of another arena's thread-pair is allowed
/// only for blocks of that arena (jemalloc would recycle the block for the
/// wrong arena otherwise).
#[inline(always)]
pub(crate) unsafe fn sdallocx_unchecked(p: *mut u8, size: usize, flags: i32) {
    // SAFETY: guaranteed by the caller.
    unsafe { ffi::sdallocx(p.cast(), size, flags) }
}

/// `rallocx(p, size, flags)`.
///
/// # Safety
/// `p` must be a live jemalloc block; `size` non-zero and valid for the
/// alignment in `flags`; a tcache in `flags` as in [`sdallocx_unchecked`].
#[inline(always)]
pub(crate) unsafe fn rallocx_unchecked(p: *mut u8, size: usize, flags: i32) -> *mut u8 {
    // SAFETY: guaranteed by the caller.
    unsafe { ffi::rallocx(p.cast(), size, flags).cast() }
}

/// The arena flags for a reallocation of a block of `owner` (it stays in
/// its arena if it moves).
#[inline(always)]
pub(crate) fn realloc_flags(slot: ShardSlot, owner: Owner, layout: Layout) -> i32 {
    match owner {
        Owner::Automatic => align_flags(layout),
        // A block that moves is made in this thread's arena of the scope.
        // Should that arena be impossible to make, any arena of the scope
        // keeps the block the scope's: the one that made the first block.
        Owner::Scope(s) => match arena_of(s, arena_slot(slot)).or_else(|| any_arena_of(s)) {
            Some(a) => {
                align_flags(layout) | ffi::MALLOCX_ARENA(a as usize) | tcache_flag(slot, Some(s))
            }
            // Unreachable: a block of the scope exists, so one of its arenas
            // does.
            None => align_flags(layout) | ffi::MALLOCX_TCACHE_NONE,
        },
        Owner::Tagged => match TAGGED_ARENA.load(Ordering::Acquire) {
            0 | CREATING | FAILED => align_flags(layout) | ffi::MALLOCX_TCACHE_NONE,
            a => {
                align_flags(layout) | ffi::MALLOCX_ARENA((a - 1) as usize) | tcache_flag(slot, None)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_flags_follow_tikv_rule() {
        let l = |s, a| Layout::from_size_align(s, a).unwrap();
        assert_eq!(align_flags(l(8, 8)), 0);
        assert_eq!(align_flags(l(16, 16)), 0);
        assert_ne!(align_flags(l(8, 16)), 0);
        assert_ne!(align_flags(l(64, 32)), 0);
    }

    #[test]
    fn unmapped_addresses_are_automatic() {
        let x = 0u64;
        assert_eq!(owner(ptr::addr_of!(x).cast()), Owner::Automatic);
    }
}
