//! `Budget` and the per-scope API: set, change, clear, read.

use std::fmt;
use std::sync::atomic::Ordering;

use crate::hot::budget::{clear, CROSSINGS, GENERATION, HARD, HIGH, LIVE, REFUSED, SETTING, SOFT};
use crate::scope::{Scope, ScopeId, MAX_SCOPES};

/// Limits on a scope's live bytes, its children included.
///
/// ```
/// use scope_alloc_tracker::Budget;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
    /// Upward crossings of the soft limit since the budget was first set
    /// on this scope (a scope on a recycled id starts from 0).
    pub crossings: u64,
    /// Allocations refused by the hard limit.
    pub refused: u64,
}

// === impl ScopeId ===

impl ScopeId {
    /// Sets or changes this scope's budget. Its live bytes, children
    /// included, are counted from now on (starting from the exact current
    /// figure when the scope had no budget). A transient scope's budget is
    /// cleared when the scope is released.
    pub fn set_budget(self, budget: Budget) {
        let i = self.index();
        // Read before taking `SETTING`: the scope table takes it under its
        // own lock when it releases scopes, so it must not be taken the
        // other way round.
        let exact = self.stats_with_children().live_bytes as i64;
        let _lock = SETTING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        HARD[i].store(budget.hard.unwrap_or(0), Ordering::Relaxed);
        if SOFT[i].load(Ordering::Relaxed) == 0 {
            LIVE[i].store(exact, Ordering::Relaxed);
            HIGH.fetch_max(i + 1, Ordering::Relaxed);
            crate::hot::switches::set_budgets(true);
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
        let _lock = SETTING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        clear(self.index());
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
/// let r = scope_alloc_tracker::budget::fallible(|| v.try_reserve(1024));
/// assert!(r.is_ok());
/// ```
pub fn fallible<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = crate::hot::budget::FALLIBLE.try_with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(
        crate::hot::budget::FALLIBLE
            .try_with(|c| c.replace(true))
            .unwrap_or(false),
    );
    f()
}
