//! A least-work exact per-scope tracker, written as the benchmark reference
//! for `TrackingAlloc`: the fewest instructions this design's semantics
//! need, beside bare jemalloc.
//!
//! What it does (the semantics `TrackingAlloc` has on its hot path):
//! - the scope of a new block is the thread's current scope, a
//!   thread-local ([`RefScope::enter`]); index 0 is "unscoped";
//! - every free is credited to the *allocating* scope, on any thread; a
//!   reallocation keeps the block's scope, wherever it moves;
//! - live bytes and live blocks per scope are exact as soon as no
//!   allocation is in flight ([`RefScope::live`]);
//! - the hot path takes no lock and makes no allocation; each thread counts
//!   in a row of its own (a load and a store per counter, no
//!   read-modify-write).
//!
//! Two forms:
//! - [`RefAlloc`], zero memory: a block whose size class has two bytes of
//!   slack (`nallocx(size + 2) == nallocx(size)`) carries its scope in a
//!   2-byte trailer and takes jemalloc's flag-free fast path; an exact fit
//!   goes to its scope's jemalloc arena (made by [`RefScope::new`]), whose
//!   extent hooks write the scope into a table of 2 MiB chunks, so a free
//!   finds it with one load; allocations and frees of exact fits pass
//!   through the thread's explicit tcache for that arena (a block must
//!   return through a tcache of its own arena). The `mallocx` flags of
//!   (thread, scope) are cached in the thread's counter line.
//! - [`RefTrailerAlloc`], trailer always: every block is `size + 2` bytes
//!   with the scope in the trailer, through jemalloc's fast path; exact
//!   fits move up a size class (about +10% resident on a realistic mix).
//!
//! What it leaves out, compared with `TrackingAlloc`: peaks, sampling and
//! recorded call stacks, budgets, leak checks, re-entrancy protection (the
//! tracker's own allocations are charged like any other), usable-size
//! counts, transient scopes and recycled scope ids (at most
//! [`MAX_SCOPES`]` - 1` scopes, each with an arena for the life of the
//! process), several arenas per scope, thread exit (a thread's row and its
//! explicit tcaches are never given back: at most [`MAX_ROWS`] threads own
//! a row, later ones count on a shared row with atomic adds and bypass the
//! tcache), the fallbacks when jemalloc refuses an arena (scope creation
//! fails instead), `alloc_zeroed` of its own (the default zeroes after
//! `alloc`) and separate allocation and free totals (a line keeps the net
//! live figures only). It calls jemalloc (tikv-jemalloc-sys) directly,
//! whatever the process's `#[global_allocator]`; a free must come with the
//! layout the block was made (or last reallocated) with, as `GlobalAlloc`
//! requires.
//!
//! `unsafe` is needed to call jemalloc, to read and write the trailer, to
//! implement `GlobalAlloc` and the extent hooks; every block says which
//! contract it relies on.

use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU32, AtomicUsize, Ordering};

use tikv_jemalloc_sys as ffi;

mod arena;
mod classes;
mod trailer;
mod zero;

// Unit tests rather than an integration test: `cargo test` builds a
// package's binaries for its integration tests, and these need none.
#[cfg(test)]
mod exactness_tests;

pub use classes::{has_slack, size_class};
pub use trailer::RefTrailerAlloc;
pub use zero::RefAlloc;

/// Scope indexes are below this (index 0 is "unscoped").
pub const MAX_SCOPES: usize = 256;
/// Threads that get a counter row of their own.
pub const MAX_ROWS: usize = 256;
/// Bytes of the trailer.
const TAG: usize = 2;

/// One scope's net figures in one thread's row, and that thread's cached
/// `mallocx` flags for the scope's arena.
#[derive(Debug)]
struct Line {
    /// Blocks of the scope allocated minus freed by this thread.
    count: AtomicI64,
    /// Bytes of the scope allocated minus freed by this thread.
    bytes: AtomicI64,
    /// `!flags` (arena and tcache) for blocks of the scope made or freed by
    /// this thread; 0 until they exist. Stored inverted so that the
    /// unscoped line's flags (0: jemalloc's own arenas and tcache) are not
    /// the "not made" value.
    not_flags: AtomicI32,
}

/// One thread's lines, one per scope.
#[derive(Debug)]
struct Row([Line; MAX_SCOPES]);

impl Row {
    const fn new() -> Self {
        Row([const {
            Line {
                count: AtomicI64::new(0),
                bytes: AtomicI64::new(0),
                not_flags: AtomicI32::new(0),
            }
        }; MAX_SCOPES])
    }

    /// The line of `scope` (masked into range: tags and chunk entries are
    /// always in range, the mask spares a bounds check).
    #[inline(always)]
    fn line(&self, scope: usize) -> &Line {
        &self.0[scope & (MAX_SCOPES - 1)]
    }
}

static ROWS: [Row; MAX_ROWS] = [const { Row::new() }; MAX_ROWS];
/// Counted with atomic adds by threads past [`MAX_ROWS`].
static SHARED: Row = Row::new();
static ROWS_CLAIMED: AtomicUsize = AtomicUsize::new(0);

/// Adds `v` to a counter only this thread writes.
#[inline(always)]
fn bump(c: &AtomicI64, v: i64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(v), Ordering::Relaxed);
}

/// The allocator's thread-local: const-initialised, no destructor, so it is
/// usable at any point of a thread's life.
struct ThreadState {
    /// The current scope's index.
    scope: Cell<usize>,
    /// This thread's row; null until its first allocation, and for threads
    /// counting on the shared row.
    row: Cell<*const Row>,
    /// Whether this thread found every row taken.
    shared: Cell<bool>,
}

thread_local! {
    static STATE: ThreadState = const {
        ThreadState {
            scope: Cell::new(0),
            row: Cell::new(ptr::null()),
            shared: Cell::new(false),
        }
    };
}

/// The current scope and this thread's row (null: see [`claim_row`]).
#[inline(always)]
fn thread() -> (usize, *const Row) {
    STATE
        .try_with(|t| (t.scope.get(), t.row.get()))
        .unwrap_or((0, ptr::null()))
}

/// This thread's row, claimed now if it has none; `None` if it counts on
/// the shared row.
#[cold]
#[inline(never)]
fn claim_row() -> Option<&'static Row> {
    STATE
        .try_with(|t| {
            if !t.row.get().is_null() {
                // SAFETY: a non-null row pointer points into `ROWS`.
                return Some(unsafe { &*t.row.get() });
            }
            if t.shared.get() {
                return None;
            }
            let i = ROWS_CLAIMED.fetch_add(1, Ordering::Relaxed);
            let Some(row) = ROWS.get(i) else {
                t.shared.set(true);
                return None;
            };
            row.line(0).not_flags.store(!0, Ordering::Relaxed);
            t.row.set(row);
            Some(row)
        })
        .ok()
        .flatten()
}

/// Arena index of each scope, `1 + index` (0 for unscoped).
static ARENA_OF: [AtomicU32; MAX_SCOPES] = [const { AtomicU32::new(0) }; MAX_SCOPES];
static NEXT_SCOPE: AtomicUsize = AtomicUsize::new(1);

/// The `mallocx` flags of `scope`'s arena with `tcache`.
fn arena_flags(scope: usize, tcache: i32) -> i32 {
    match ARENA_OF[scope & (MAX_SCOPES - 1)].load(Ordering::Acquire) {
        0 => 0,
        a => ffi::MALLOCX_ARENA((a - 1) as usize) | tcache,
    }
}

/// `row`'s flags for `scope`, making this thread's tcache of the scope's
/// arena on first use.
#[cold]
#[inline(never)]
fn make_flags(row: &Row, scope: usize) -> i32 {
    let line = row.line(scope);
    let nf = line.not_flags.load(Ordering::Relaxed);
    if nf != 0 {
        return !nf;
    }
    let flags = arena_flags(scope, arena::create_tcache_flag());
    line.not_flags.store(!flags, Ordering::Relaxed);
    flags
}

/// A scope of the reference tracker: an index and its jemalloc arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefScope(usize);

/// Entered by [`RefScope::enter`]; restores the previous scope on drop.
#[derive(Debug)]
#[must_use = "the scope is exited when the guard is dropped"]
pub struct RefGuard {
    previous: usize,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for RefGuard {
    fn drop(&mut self) {
        let _ = STATE.try_with(|t| t.scope.set(self.previous));
    }
}

impl RefScope {
    /// Blocks allocated outside any scope.
    pub const UNSCOPED: RefScope = RefScope(0);

    /// A new scope with its own jemalloc arena; `None` once
    /// [`MAX_SCOPES`]` - 1` scopes exist or if jemalloc refuses the arena.
    pub fn new() -> Option<RefScope> {
        let i = NEXT_SCOPE.fetch_add(1, Ordering::Relaxed);
        if i >= MAX_SCOPES {
            return None;
        }
        let a = arena::create_arena(i as u16)?;
        ARENA_OF[i].store(a + 1, Ordering::Release);
        Some(RefScope(i))
    }

    /// Makes this the thread's current scope until the guard drops.
    pub fn enter(self) -> RefGuard {
        let previous = STATE
            .try_with(|t| t.scope.replace(self.0))
            .unwrap_or_default();
        RefGuard {
            previous,
            _not_send: std::marker::PhantomData,
        }
    }

    /// Live blocks and live bytes of the scope: every thread's row summed.
    /// Exact when no allocation or free is in flight.
    pub fn live(self) -> (i64, i64) {
        let rows = ROWS_CLAIMED.load(Ordering::Acquire).min(MAX_ROWS);
        ROWS[..rows]
            .iter()
            .chain([&SHARED])
            .map(|r| r.line(self.0))
            .fold((0, 0), |(n, b), l| {
                (
                    n + l.count.load(Ordering::Relaxed),
                    b + l.bytes.load(Ordering::Relaxed),
                )
            })
    }
}

/// tikv-jemallocator's flag rule: alignment flags only when `malloc`'s
/// natural alignment does not already satisfy the layout.
#[inline(always)]
fn align_flags(size: usize, align: usize) -> i32 {
    if align <= 16 && align <= size {
        0
    } else {
        ffi::MALLOCX_LG_ALIGN(align.trailing_zeros() as usize)
    }
}

/// `malloc(size)`, or `mallocx` with `flags` when there are any.
///
/// # Safety
/// `size` is non-zero and valid with the alignment in `flags`; a tcache in
/// `flags` belongs to the calling thread and is used only with the arena in
/// `flags`.
#[inline(always)]
unsafe fn je_alloc(size: usize, flags: i32) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe {
        if flags == 0 {
            ffi::malloc(size).cast()
        } else {
            ffi::mallocx(size, flags).cast()
        }
    }
}

/// Writes the scope tag after the caller's `size` bytes of `p`.
///
/// # Safety
/// `p` has at least `size + TAG` bytes.
#[inline(always)]
unsafe fn write_tag(p: *mut u8, size: usize, scope: usize) {
    // SAFETY: the caller's contract; unaligned write.
    unsafe { p.add(size).cast::<u16>().write_unaligned(scope as u16) }
}

/// Reads the scope tag after the caller's `size` bytes of `p`.
///
/// # Safety
/// As [`write_tag`], and the tag was written.
#[inline(always)]
unsafe fn read_tag(p: *const u8, size: usize) -> usize {
    // SAFETY: the caller's contract.
    unsafe { p.add(size).cast::<u16>().read_unaligned() as usize }
}
