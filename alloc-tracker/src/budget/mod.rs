//! BUDGETS: a soft limit on a scope's live bytes (its children included),
//! set and changed at run time, that the owner acts on at safe points.
//!
//! ```
//! # #[global_allocator]
//! # static A: alloc_tracker::TrackingAlloc<alloc_tracker::Jemalloc> =
//! #     alloc_tracker::TrackingAlloc::new(alloc_tracker::Jemalloc);
//! use alloc_tracker::{Budget, Scope};
//!
//! static MEMTABLE: Scope = Scope::new("memtable");
//!
//! MEMTABLE.set_budget(Budget::soft(64 << 20));
//! // ... at a safe point, e.g. after each write batch:
//! if MEMTABLE.over_budget() {
//!     // flush the memtable
//! }
//! MEMTABLE.set_budget(Budget::soft(128 << 20)); // changed at run time
//! MEMTABLE.clear_budget();
//! ```
//!
//! # What crossing a budget does
//!
//! Nothing inside the allocator but counting: an allocation is never
//! refused or delayed for a soft limit, and no user code runs on the
//! allocating thread. The allocator keeps a shared live-byte counter for
//! each budgeted scope (an allocation in a child counts in every budgeted
//! ancestor) and counts each upward crossing of the limit. The owner reads
//! [`ScopeId::over_budget`] at safe points; [`watch`] runs callbacks on a
//! tracker thread that polls the crossing counters.
//!
//! A scope is *over* its budget when its live bytes (with children) are
//! strictly greater than the soft limit: holding exactly the budget is
//! within it. The allocation that takes the live bytes from `<= limit` to
//! `> limit` makes the crossing, exactly once per crossing, whatever the
//! threads' interleaving.
//!
//! # Cost
//!
//! With no budget set anywhere: one relaxed load of a global flag per
//! allocation and per free. With budgets set: two more loads for a scope
//! that no budget covers (a per-scope cache of "is the scope or an
//! ancestor budgeted", refreshed after each budget change); for a covered
//! scope, a walk up its parent chain (at most [`MAX_DEPTH`] levels) and one
//! shared atomic add per budgeted scope on it, the only shared
//! read-modify-write of the tracker: budget subsystems, not hot leaf
//! scopes. `bench/src/bin/budget-hooks.rs` measures the three cases.
//!
//! # Setting a budget on a busy scope
//!
//! The counter starts from the scope's exact live bytes when
//! [`ScopeId::set_budget`] is called. Allocations or frees that other
//! threads make *during* that call may be missed (bounded by what is in
//! flight); set budgets at start-up or while the scope is quiet for an
//! exact figure. Changing a budget's limits keeps the counter running.
//!
//! # Hard limits
//!
//! A `GlobalAlloc` cannot tell a fallible request (`Vec::try_reserve`,
//! `Box::try_new`) from an infallible one (`Vec::push`, `Box::new`): both
//! arrive as `alloc(layout)`. A null return to an infallible request ends
//! in `handle_alloc_error`, which aborts the process. So a hard limit can
//! only ever refuse allocations made inside a section the program marks as
//! fallible, [`fallible`]`(|| v.try_reserve(n))`, where the one allocation
//! expected has an error path; [`Budget::hard`] sets it. Inside the section
//! keep only the fallible call: any other allocation there is refused too,
//! and aborts.
//!
//! The hard limit needs one more check in the allocator, which is not
//! wired yet: before calling the backend in `alloc`, `alloc_zeroed` and
//! `realloc` (for the growth), `if !budget::admits(scope, size) { return
//! null }` (`admits` is one relaxed load when no budget is set). Until
//! then [`fallible`] sections and hard limits are accepted and counted but
//! refuse nothing through the allocator.
//!
//! # Wiring (for the allocator)
//!
//! The hot path calls [`on_alloc`]`(scope, bytes)` once per allocation,
//! right after `count_alloc` with the same scope and requested bytes, and
//! [`on_free`]`(scope, bytes)` once per free, right after `count_free`;
//! `realloc` calls `on_free(scope, old)` then `on_alloc(scope, new)`. Until
//! the allocator makes those calls, budgets count only what is passed to
//! the hooks directly (the tests do that).

mod hooks;
mod watch;

use std::fmt;
use std::sync::atomic::Ordering;

pub use hooks::MAX_DEPTH;
#[doc(hidden)]
pub use hooks::{admits, on_alloc, on_free};
pub use watch::{watch, BudgetEvent, BudgetWatch};

use hooks::{ANY_BUDGET, CROSSINGS, GENERATION, HARD, HIGH, LIVE, REFUSED, SOFT};

use crate::scope::{Scope, ScopeId, MAX_SCOPES};

/// Limits on a scope's live bytes, its children included.
///
/// ```
/// use alloc_tracker::Budget;
///
/// let b = Budget::soft(64 << 20).hard(96 << 20).unwrap();
/// assert_eq!(b.soft_bytes(), 64 << 20);
/// assert_eq!(b.hard_bytes(), Some(96 << 20));
/// assert!(Budget::soft(10).hard(5).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    soft: u64,
    hard: Option<u64>,
}

/// A hard limit below the soft limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HardBelowSoft {
    /// The soft limit.
    pub soft: u64,
    /// The hard limit asked for.
    pub hard: u64,
}

impl fmt::Display for HardBelowSoft {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hard limit {} B is below the soft limit {} B",
            self.hard, self.soft
        )
    }
}

impl std::error::Error for HardBelowSoft {}

impl Budget {
    /// A soft limit of `bytes` (at least 1; clamped to `i64::MAX`): the
    /// scope is over budget while its live bytes exceed it.
    pub const fn soft(bytes: u64) -> Budget {
        let soft = if bytes == 0 {
            1
        } else if bytes > i64::MAX as u64 {
            i64::MAX as u64
        } else {
            bytes
        };
        Budget { soft, hard: None }
    }

    /// Adds a hard limit that refuses allocations made in a [`fallible`]
    /// section once the live bytes would exceed it (see "Hard limits" in
    /// the module docs).
    ///
    /// # Errors
    /// [`HardBelowSoft`] when `bytes` is below the soft limit.
    pub const fn hard(self, bytes: u64) -> Result<Budget, HardBelowSoft> {
        if bytes < self.soft {
            return Err(HardBelowSoft {
                soft: self.soft,
                hard: bytes,
            });
        }
        Ok(Budget {
            soft: self.soft,
            hard: Some(bytes),
        })
    }

    /// The soft limit in bytes.
    pub const fn soft_bytes(&self) -> u64 {
        self.soft
    }

    /// The hard limit in bytes, if any.
    pub const fn hard_bytes(&self) -> Option<u64> {
        self.hard
    }
}

/// A budgeted scope's state. Made by [`ScopeId::budget_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct BudgetStatus {
    /// The soft limit in bytes.
    pub soft_bytes: u64,
    /// The hard limit in bytes, if any.
    pub hard_bytes: Option<u64>,
    /// Live bytes of the scope and its children, as the budget counts them.
    pub live_bytes: u64,
    /// Whether `live_bytes > soft_bytes`.
    pub over: bool,
    /// Upward crossings of the soft limit since the budget was first set.
    pub crossings: u64,
    /// Allocations refused by the hard limit.
    pub refused: u64,
}

// === impl ScopeId ===

impl ScopeId {
    /// Sets or changes this scope's budget. Its live bytes, children
    /// included, are counted from now on (starting from the exact current
    /// figure when the scope had no budget).
    pub fn set_budget(self, budget: Budget) {
        let i = self.index();
        let _lock = SETTING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        HARD[i].store(budget.hard.unwrap_or(0), Ordering::Relaxed);
        if SOFT[i].load(Ordering::Relaxed) == 0 {
            LIVE[i].store(
                self.stats_with_children().live_bytes as i64,
                Ordering::Relaxed,
            );
            HIGH.fetch_max(i + 1, Ordering::Relaxed);
            ANY_BUDGET.store(true, Ordering::Relaxed);
        }
        let live = LIVE[i].load(Ordering::Relaxed);
        let old = SOFT[i].swap(budget.soft, Ordering::SeqCst);
        GENERATION.fetch_add(1, Ordering::SeqCst);
        // Lowering the limit under the live bytes is a crossing too.
        if live > budget.soft as i64 && (old == 0 || live <= old as i64) {
            CROSSINGS[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Removes this scope's budget; the scope stops being counted.
    pub fn clear_budget(self) {
        let i = self.index();
        let _lock = SETTING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        SOFT[i].store(0, Ordering::SeqCst);
        HARD[i].store(0, Ordering::Relaxed);
        GENERATION.fetch_add(1, Ordering::SeqCst);
        let high = HIGH.load(Ordering::Relaxed).min(MAX_SCOPES);
        if !SOFT[..high].iter().any(|s| s.load(Ordering::Relaxed) != 0) {
            ANY_BUDGET.store(false, Ordering::Relaxed);
        }
    }

    /// This scope's budget, if it has one.
    pub fn budget(self) -> Option<Budget> {
        let soft = SOFT[self.index()].load(Ordering::Relaxed);
        (soft != 0).then(|| Budget {
            soft,
            hard: Some(HARD[self.index()].load(Ordering::Relaxed)).filter(|h| *h != 0),
        })
    }

    /// Whether this scope's live bytes (with children) exceed its soft
    /// limit; `false` without a budget. Two relaxed loads: cheap enough
    /// for every safe point.
    pub fn over_budget(self) -> bool {
        let i = self.index();
        let soft = SOFT[i].load(Ordering::Relaxed);
        soft != 0 && LIVE[i].load(Ordering::Relaxed) > soft as i64
    }

    /// The budget's figures, if this scope has one.
    pub fn budget_status(self) -> Option<BudgetStatus> {
        let i = self.index();
        let budget = self.budget()?;
        let live = LIVE[i].load(Ordering::Relaxed).max(0) as u64;
        Some(BudgetStatus {
            soft_bytes: budget.soft,
            hard_bytes: budget.hard,
            live_bytes: live,
            over: live > budget.soft,
            crossings: CROSSINGS[i].load(Ordering::Relaxed),
            refused: REFUSED[i].load(Ordering::Relaxed),
        })
    }
}

// === impl Scope ===

impl Scope {
    /// Sets or changes this scope's budget ([`ScopeId::set_budget`]).
    pub fn set_budget(&self, budget: Budget) {
        self.id().set_budget(budget)
    }

    /// Removes this scope's budget ([`ScopeId::clear_budget`]).
    pub fn clear_budget(&self) {
        self.id().clear_budget()
    }

    /// Whether this scope is over its soft limit ([`ScopeId::over_budget`]).
    pub fn over_budget(&self) -> bool {
        self.id().over_budget()
    }

    /// The budget's figures ([`ScopeId::budget_status`]).
    pub fn budget_status(&self) -> Option<BudgetStatus> {
        self.id().budget_status()
    }
}

/// Serialises budget changes (never taken by the allocator).
static SETTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Budgeted scopes with their status, for watchers and reports.
pub fn budgets() -> Vec<(ScopeId, BudgetStatus)> {
    let high = HIGH.load(Ordering::Relaxed).min(MAX_SCOPES);
    (0..high)
        .map(|i| ScopeId(i as u16))
        .filter_map(|s| s.budget_status().map(|b| (s, b)))
        .collect()
}

/// Runs `f` as a fallible section of this thread: allocations made in it
/// may be refused (null, so `try_reserve` returns an error) by a hard
/// limit. Keep only the fallible call inside: an infallible allocation
/// refused here aborts the process.
///
/// ```
/// let mut v: Vec<u8> = Vec::new();
/// let r = alloc_tracker::budget::fallible(|| v.try_reserve(1024));
/// assert!(r.is_ok());
/// ```
pub fn fallible<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = hooks::FALLIBLE.try_with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(
        hooks::FALLIBLE
            .try_with(|c| c.replace(true))
            .unwrap_or(false),
    );
    f()
}
