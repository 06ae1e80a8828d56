//! The hot path's side of budgets: per-scope shared live counters, kept
//! only for budgeted scopes and only while at least one budget is set.
//!
//! ```text
//! alloc in scope S ──> any budget? ──no──> return         (one relaxed load)
//!                          │yes
//!                          v
//!          for B in S, parent(S), parent(parent(S)), ...:
//!              if LIMIT[B] != 0:  old = LIVE[B].fetch_add(bytes)
//!                                 old <= soft < old + bytes  =>  CROSSINGS[B] += 1
//! ```
//!
//! Nothing here allocates, locks, panics or runs user code. The walk up the
//! parent chain reads the scope table's lock-free entries; it is bounded by
//! [`MAX_DEPTH`].

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::ids::{ScopeId, MAX_SCOPES};

/// Soft limit per scope in bytes; 0 = no budget.
pub(crate) static SOFT: [AtomicU64; MAX_SCOPES] = [const { AtomicU64::new(0) }; MAX_SCOPES];
/// Hard limit per scope in bytes for fallible allocations; 0 = none.
pub(crate) static HARD: [AtomicU64; MAX_SCOPES] = [const { AtomicU64::new(0) }; MAX_SCOPES];
/// Live bytes of the scope and its children, counted while it has a budget
/// (started from the exact figure when the budget was set).
pub(crate) static LIVE: [AtomicI64; MAX_SCOPES] = [const { AtomicI64::new(0) }; MAX_SCOPES];
/// Upward crossings of the soft limit so far (monotonic; watchers poll it).
pub(crate) static CROSSINGS: [AtomicU64; MAX_SCOPES] = [const { AtomicU64::new(0) }; MAX_SCOPES];
/// Allocations refused by a hard limit in a fallible section.
pub(crate) static REFUSED: [AtomicU64; MAX_SCOPES] = [const { AtomicU64::new(0) }; MAX_SCOPES];
/// Bumped each time a released scope's budget state is reset for the next
/// scope on its id (see `limit::scope_released`): lets watchers tell a new
/// owner's crossing count from the old one's.
pub(crate) static OWNERS: [AtomicU32; MAX_SCOPES] = [const { AtomicU32::new(0) }; MAX_SCOPES];
/// Bumped by every budget change: invalidates [`COVER`].
pub(crate) static GENERATION: AtomicU32 = AtomicU32::new(1);
/// Per scope, cached: `GENERATION` (high 16 bits) when it was computed,
/// and whether the scope or an ancestor has a budget (bit 0). Spares the
/// walk up the parent chain for the scopes no budget covers.
static COVER: [AtomicU32; MAX_SCOPES] = [const { AtomicU32::new(0) }; MAX_SCOPES];

/// One past the highest scope index that ever had a budget: watchers scan
/// below it.
pub(crate) static HIGH: AtomicUsize = AtomicUsize::new(0);

/// Scopes nested deeper than this do not charge ancestors above it (the
/// chain is walked from the scope upwards).
pub const MAX_DEPTH: usize = 16;

thread_local! {
    /// Inside [`fallible`](crate::budget::fallible) on this thread. No destructor.
    pub(crate) static FALLIBLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Budget hook for an allocation of `bytes` charged to `scope`: the one
/// call the allocator makes per allocation (and per `realloc`, for the new
/// size). One relaxed load when no budget is set.
#[inline]
pub(crate) fn on_alloc(scope: ScopeId, bytes: u64) {
    if super::switches::budgets() {
        charge(scope, bytes as i64);
    }
}

/// Budget hook for the free of `bytes` that were charged to `scope`: the
/// one call the allocator makes per free (and per `realloc`, for the old
/// size).
#[inline]
pub(crate) fn on_free(scope: ScopeId, bytes: u64) {
    if super::switches::budgets() {
        charge(scope, -(bytes as i64));
    }
}

/// Adds `delta` to every budgeted scope on the chain from `scope` up.
#[inline(never)]
fn charge(scope: ScopeId, delta: i64) {
    let generation = GENERATION.load(Ordering::Relaxed) & 0xffff;
    let cover = COVER[scope.index()].load(Ordering::Relaxed);
    if cover >> 16 == generation && cover & 1 == 0 {
        return;
    }
    if cover >> 16 != generation {
        let covered = chain(scope).any(|s| SOFT[s.index()].load(Ordering::Relaxed) != 0);
        COVER[scope.index()].store((generation << 16) | covered as u32, Ordering::Relaxed);
        if !covered {
            return;
        }
    }
    let mut s = Some(scope);
    for _ in 0..MAX_DEPTH {
        let Some(id) = s else { return };
        let i = id.index();
        let soft = SOFT[i].load(Ordering::Relaxed);
        if soft != 0 {
            let old = LIVE[i].fetch_add(delta, Ordering::Relaxed);
            let new = old.wrapping_add(delta);
            // Over = live > soft. Exactly one allocation makes each upward
            // crossing, whatever the interleaving: the one whose fetch_add
            // moved the counter from <= soft to > soft.
            if delta > 0 && old <= soft as i64 && new > soft as i64 {
                CROSSINGS[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        s = super::per_scope::parent_lock_free(id);
    }
}

/// A scope was installed on `id`, a fresh or a recycled one, under its
/// parent (already published for lock-free readers): the cover cached for
/// the id's previous scope says nothing of the new one's ancestors. Called
/// by the scope table under its lock: lock-free, allocation-free.
pub(crate) fn scope_installed(id: ScopeId) {
    let generation = GENERATION.load(Ordering::SeqCst) & 0xffff;
    let covered = chain(id).any(|s| SOFT[s.index()].load(Ordering::SeqCst) != 0);
    // A budget set meanwhile bumps the generation: this entry is then
    // computed again on the next charge.
    COVER[id.index()].store((generation << 16) | covered as u32, Ordering::Relaxed);
}

/// Serialises budget changes (never taken by the allocator).
pub(crate) static SETTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Removes the budget at index `i` (with [`SETTING`] held), and turns the
/// hot path's budget switch off when it was the last one.
pub(crate) fn clear(i: usize) {
    SOFT[i].store(0, Ordering::SeqCst);
    HARD[i].store(0, Ordering::Relaxed);
    GENERATION.fetch_add(1, Ordering::SeqCst);
    let high = HIGH.load(Ordering::Relaxed).min(MAX_SCOPES);
    if !SOFT[..high].iter().any(|s| s.load(Ordering::Relaxed) != 0) {
        super::switches::set_budgets(false);
    }
}

/// The owner of `id` released it, or its id is being recycled: its budget
/// goes with it, history included (crossings, refusals), so that the next
/// scope on its id starts with none. Called by the scope table with its
/// lock held (budget changes never take that lock while holding
/// [`SETTING`]), never by the allocator. Four relaxed loads for a scope
/// that never had a budget.
pub(crate) fn scope_released(id: ScopeId) {
    let i = id.index();
    let untouched = SOFT[i].load(Ordering::Relaxed) == 0
        && LIVE[i].load(Ordering::Relaxed) == 0
        && CROSSINGS[i].load(Ordering::Relaxed) == 0
        && REFUSED[i].load(Ordering::Relaxed) == 0;
    if untouched {
        return;
    }
    let _lock = SETTING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if SOFT[i].load(Ordering::Relaxed) != 0 {
        clear(i);
    }
    LIVE[i].store(0, Ordering::Relaxed);
    CROSSINGS[i].store(0, Ordering::Relaxed);
    REFUSED[i].store(0, Ordering::Relaxed);
    // Watchers compare crossing counts per owner.
    OWNERS[i].fetch_add(1, Ordering::Release);
}

/// `scope` and its ancestors, innermost first, at most [`MAX_DEPTH`].
fn chain(scope: ScopeId) -> impl Iterator<Item = ScopeId> {
    // Lock-free: this runs inside the allocator, possibly while this thread
    // holds the scope table's lock.
    std::iter::successors(Some(scope), |s| super::per_scope::parent_lock_free(*s)).take(MAX_DEPTH)
}

/// Whether any scope has a budget: lets a caller skip working out the
/// scope (a thread-local read) when no hook can act.
#[inline(always)]
pub(crate) fn any_budget() -> bool {
    super::switches::budgets()
}

/// Whether an allocation of `bytes` in `scope` may go ahead under the hard
/// limits of `scope` and its ancestors. Always `true` outside a
/// [`fallible`](crate::budget::fallible) section: an infallible allocation that
/// fails aborts the process.
#[inline]
pub(crate) fn admits(scope: ScopeId, bytes: u64) -> bool {
    if !super::switches::budgets() {
        return true;
    }
    admits_slow(scope, bytes)
}

#[inline(never)]
fn admits_slow(scope: ScopeId, bytes: u64) -> bool {
    if !FALLIBLE.try_with(|f| f.get()).unwrap_or(false) {
        return true;
    }
    let mut s = Some(scope);
    for _ in 0..MAX_DEPTH {
        let Some(id) = s else { break };
        let i = id.index();
        let hard = HARD[i].load(Ordering::Relaxed);
        if hard != 0 {
            let live = LIVE[i].load(Ordering::Relaxed).max(0) as u64;
            if live.saturating_add(bytes) > hard {
                REFUSED[i].fetch_add(1, Ordering::Relaxed);
                return false;
            }
        }
        s = super::per_scope::parent_lock_free(id);
    }
    true
}
