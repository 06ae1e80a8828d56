//! The allocator's per-thread state: the current scope, the thread's counter
//! shard and the re-entrancy flag.
//!
//! It is one `const`-initialised thread-local without a destructor, so it can
//! be read on every allocation, including from other thread-local
//! destructors while the thread exits, without registering anything or
//! allocating (rust-lang/rust#116390). It is read with `try_with`; if the
//! platform ever refuses access, the allocation is counted in the
//! [`UNSCOPED`](crate::ScopeId::UNSCOPED) scope on the shared overflow shard,
//! never dropped.

use std::cell::Cell;

use super::counters::{Shard, ShardSlot, OVERFLOW_LINES};
use super::ids::ScopeId;

/// Per-thread state read by the hot path.
#[derive(Debug)]
pub(crate) struct ThreadState {
    /// The scope that new allocations of this thread are charged to.
    pub(crate) scope: Cell<ScopeId>,
    /// The counter shard this thread owns, or why it has none, and the
    /// re-entrancy flag ([`ShardSlot::busy`]): true while the tracker itself
    /// runs code that may allocate on this thread; such allocations are
    /// charged to [`INTERNAL`](crate::ScopeId::INTERNAL) and skip sampling.
    /// Read it with [`ThreadState::slot`] and [`ThreadState::busy`].
    shard: Cell<ShardSlot>,
    /// The lines of the shard `shard` names (the overflow shard's while it
    /// names none): spares the hot path computing the address.
    lines: Cell<&'static Shard>,
    /// Bytes this thread may still allocate before its next visit to the
    /// sampling slow path; `0` means "not initialised yet".
    pub(crate) sample_countdown: Cell<u64>,
    /// State of this thread's sampling random number generator.
    pub(crate) rng: Cell<u64>,
    /// A small number naming this thread in live records (0 = unassigned).
    pub(crate) thread_no: Cell<u32>,
}

impl ThreadState {
    const fn new() -> Self {
        Self {
            scope: Cell::new(ScopeId::UNSCOPED),
            shard: Cell::new(ShardSlot::UNCLAIMED),
            lines: Cell::new(OVERFLOW_LINES),
            sample_countdown: Cell::new(0),
            rng: Cell::new(0),
            thread_no: Cell::new(0),
        }
    }
}

impl ThreadState {
    /// The shard slot with the re-entrancy flag: `is_owned()` is the fast
    /// path's test "owns a shard and is not in tracker code".
    #[cfg_attr(not(feature = "jemalloc"), allow(dead_code))]
    #[inline(always)]
    pub(crate) fn slot_and_flag(&self) -> ShardSlot {
        self.shard.get()
    }

    /// The shard this thread counts on, or why it has none.
    #[inline(always)]
    pub(crate) fn slot(&self) -> ShardSlot {
        self.shard.get().shard()
    }

    /// The lines of [`ThreadState::slot`]'s shard.
    #[cfg_attr(not(feature = "jemalloc"), allow(dead_code))]
    #[inline(always)]
    pub(crate) fn lines(&self) -> &'static Shard {
        self.lines.get()
    }

    /// Makes this thread count on `slot` from now on, keeping the flag.
    pub(crate) fn set_slot(&self, slot: ShardSlot) {
        let busy = self.shard.get().busy();
        self.shard.set(slot.shard().with_busy(busy));
        self.lines.set(slot.lines());
    }

    /// Whether the tracker's own code runs on this thread.
    #[inline(always)]
    pub(crate) fn busy(&self) -> bool {
        self.shard.get().busy()
    }

    /// Sets the re-entrancy flag; returns its previous value.
    fn replace_busy(&self, busy: bool) -> bool {
        let slot = self.shard.get();
        self.shard.set(slot.with_busy(busy));
        slot.busy()
    }
}

thread_local! {
    static STATE: ThreadState = const { ThreadState::new() };
}

/// Runs `f` on this thread's state; `None` only if the platform refuses
/// thread-local access (not expected for a destructor-less `const` local).
#[inline(always)]
pub(crate) fn with<R>(f: impl FnOnce(&ThreadState) -> R) -> Option<R> {
    STATE.try_with(f).ok()
}

/// The scope current on this thread.
#[inline]
pub(crate) fn current_scope() -> ScopeId {
    with(|t| t.scope.get()).unwrap_or(ScopeId::UNSCOPED)
}

/// Makes `scope` current and returns the previous one.
#[inline]
pub(crate) fn replace_scope(scope: ScopeId) -> ScopeId {
    with(|t| t.scope.replace(scope)).unwrap_or(ScopeId::UNSCOPED)
}

/// Marks this thread as running tracker code until the guard drops.
///
/// It must wrap *any* code in this crate that can allocate on behalf of the
/// tracker (registering a dynamic scope name, building a report, capturing a
/// backtrace, inserting into the site tables): allocations made under it are
/// charged to the tracker's own [`INTERNAL`](crate::ScopeId::INTERNAL) scope
/// and never re-enter the sampling or recording paths.
#[derive(Debug)]
pub(crate) struct ReentrancyGuard {
    was_already_inside: bool,
}

impl ReentrancyGuard {
    /// Enters tracker-internal mode.
    pub(crate) fn enter() -> Self {
        let was_already_inside = with(|t| t.replace_busy(true)).unwrap_or(true);
        Self { was_already_inside }
    }
}

impl Drop for ReentrancyGuard {
    fn drop(&mut self) {
        if !self.was_already_inside {
            let _ = with(|t| t.replace_busy(false));
        }
    }
}

/// Whether this thread is running tracker code right now.
pub(crate) fn is_busy() -> bool {
    with(|t| t.busy()).unwrap_or(true)
}

/// Runs `f` with the re-entrancy guard held.
pub(crate) fn internal<R>(f: impl FnOnce() -> R) -> R {
    let _guard = ReentrancyGuard::enter();
    f()
}
