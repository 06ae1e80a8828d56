//! Memory budgets of one database, on the tracker's
//! per-scope budgets (`scope_alloc_tracker::budget`).
//!
//! - **Memtable budget** ([`OptionsBuilder::memtable_budget`]): a soft
//!   budget on the database's own instance of the `ckptdb/memtable` scope
//!   (`memtable#n`: another database's memtable never counts in it).
//!   Crossing it starts a
//!   checkpoint run (the background runner is woken by the writer that
//!   sees [`ScopeId::over_budget`] after its insert; a manual owner polls
//!   [`Db::memtable_over_budget`]). The scope also holds the checkpointed
//!   base table, which never drains, so the budget counts the bytes
//!   *above the base*: after each run (and at open) the scope's soft limit
//!   is re-set to `base + budget`, where `base` is the scope's live bytes
//!   minus the dirty memtables' accounted bytes.
//! - **Memtable ceiling** ([`OptionsBuilder::memtable_ceiling`]): above
//!   `base + ceiling` a writer waits (at most [`MAX_THROTTLE`] per write)
//!   for the running checkpoint to drain the memtable. Writers are slowed,
//!   never failed.
//! - **Checkpoint budget** ([`OptionsBuilder::checkpoint_budget`],
//!   [`Db::set_checkpoint_budget`]): a soft budget on the run's
//!   `checkpoint` scope (children included), armed when a run begins. The
//!   run checks it at safe points before publication ([`RunBudget::check`])
//!   and fails with [`CheckpointError::OverBudget`], rolled back. GC, after
//!   the run's publication, checks the same budget at its own safe points
//!   and is *deferred* over it, the run still succeeding (see
//!   `checkpoint::gc`, "GC and the checkpoint budget").
//!
//! Nothing here runs inside the allocator: the allocator only counts and
//! flags; these checks read the flag and the crossing counter.
//!
//! [`OptionsBuilder::memtable_budget`]: crate::OptionsBuilder::memtable_budget
//! [`OptionsBuilder::memtable_ceiling`]: crate::OptionsBuilder::memtable_ceiling
//! [`OptionsBuilder::checkpoint_budget`]: crate::OptionsBuilder::checkpoint_budget
//! [`Db::memtable_over_budget`]: crate::Db::memtable_over_budget
//! [`Db::set_checkpoint_budget`]: crate::Db::set_checkpoint_budget

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use scope_alloc_tracker::{Budget, ScopeId};

use crate::error::CheckpointError;
use crate::options::Options;
use crate::scopes::MemtableScope;

/// The longest a write waits while the memtable is over its ceiling.
pub const MAX_THROTTLE: Duration = Duration::from_secs(1);

/// How long a throttled writer sleeps between looks at the memtable.
const THROTTLE_POLL: Duration = Duration::from_millis(5);

/// One database's budgets and their counters.
#[derive(Debug)]
pub(crate) struct MemControl {
    /// The database's memtable scope instance, where the memtable budget is
    /// set. Owned here: it is released after the memtables (`Inner`'s
    /// `state`, declared before `mem`) are dropped.
    memtable: MemtableScope,
    memtable_budget: u64,
    memtable_ceiling: u64,
    /// Bytes of the run's own allocations; 0 = none. Changed at run time.
    checkpoint_budget: AtomicU64,
    /// Live bytes of the memtable scope not counted against the budget
    /// (the base table), at the last re-baselining.
    base: AtomicU64,
    pub(crate) memtable_runs: AtomicU64,
    pub(crate) over_budget_runs: AtomicU64,
    /// GCs deferred over the checkpoint budget.
    pub(crate) gcs_deferred: AtomicU64,
    pub(crate) throttled_writes: AtomicU64,
    pub(crate) throttled_nanos: AtomicU64,
    /// Signalled after every run, for throttled writers.
    drained: (Mutex<()>, Condvar),
}

impl MemControl {
    pub(crate) fn new(opts: &Options, memtable: MemtableScope) -> Self {
        MemControl {
            memtable,
            memtable_budget: opts.memtable_budget,
            memtable_ceiling: opts.memtable_ceiling,
            checkpoint_budget: AtomicU64::new(opts.checkpoint_budget),
            base: AtomicU64::new(0),
            memtable_runs: AtomicU64::new(0),
            over_budget_runs: AtomicU64::new(0),
            gcs_deferred: AtomicU64::new(0),
            throttled_writes: AtomicU64::new(0),
            throttled_nanos: AtomicU64::new(0),
            drained: (Mutex::new(()), Condvar::new()),
        }
    }

    /// The database's memtable scope (`memtable#n`): its memtables and
    /// base table are charged there.
    pub(crate) fn memtable_scope(&self) -> ScopeId {
        self.memtable.id
    }

    /// The checkpoint budget in bytes (0: none).
    pub(crate) fn checkpoint_budget(&self) -> u64 {
        self.checkpoint_budget.load(Ordering::Relaxed)
    }

    pub(crate) fn set_checkpoint_budget(&self, bytes: Option<u64>) {
        self.checkpoint_budget
            .store(bytes.unwrap_or(0), Ordering::Relaxed);
    }

    /// Whether the memtable is over its budget: two relaxed loads.
    #[inline]
    pub(crate) fn memtable_over_budget(&self) -> bool {
        self.memtable_budget != 0 && self.memtable_scope().over_budget()
    }

    /// The memtable scope's live bytes as the budget counts them.
    fn memtable_live(&self) -> u64 {
        let scope = self.memtable_scope();
        scope
            .budget_status()
            .map_or_else(|| scope.stats_with_children().live_bytes, |s| s.live_bytes)
    }

    /// Re-sets the memtable budget to `base + budget`, `base` being the
    /// scope's live bytes minus `dirty` (the memtables' accounted bytes).
    /// Called at open and after every run; wakes throttled writers.
    pub(crate) fn rebaseline(&self, dirty: u64) {
        if self.memtable_budget != 0 {
            let base = self.memtable_live().saturating_sub(dirty);
            self.base.store(base, Ordering::Relaxed);
            self.memtable_scope()
                .set_budget(Budget::soft(base.saturating_add(self.memtable_budget)));
        }
        self.drained.1.notify_all();
    }

    /// Whether the memtable is over its ceiling.
    fn over_ceiling(&self) -> bool {
        self.memtable_ceiling != 0
            && self.memtable_live()
                > self
                    .base
                    .load(Ordering::Relaxed)
                    .saturating_add(self.memtable_ceiling)
    }

    /// Waits (at most [`MAX_THROTTLE`]) while the memtable is over its
    /// ceiling, after calling `wake` once to start a run. Never fails.
    pub(crate) fn throttle(&self, wake: impl FnOnce(), closed: impl Fn() -> bool) {
        if !self.over_ceiling() {
            return;
        }
        let start = Instant::now();
        wake();
        let mut g = self.drained.0.lock().unwrap_or_else(|e| e.into_inner());
        while self.over_ceiling() && start.elapsed() < MAX_THROTTLE && !closed() {
            g = self
                .drained
                .1
                .wait_timeout(g, THROTTLE_POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(g);
        self.throttled_writes.fetch_add(1, Ordering::Relaxed);
        self.throttled_nanos
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

/// The checkpoint budget of one run, armed by [`RunBudget::arm`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunBudget {
    scope: ScopeId,
    bytes: u64,
    /// Live bytes of the scope when the run began (an earlier leaking
    /// run's leftovers, in production mode): not the run's.
    base: u64,
    /// The scope's crossing count when the run began.
    crossings: u64,
}

impl RunBudget {
    /// Arms `bytes` (0: none) on the run's `scope` for one run: its soft
    /// limit becomes the scope's live bytes now plus `bytes`. Call with
    /// the process-wide run lock held (the scope is quiet).
    pub(crate) fn arm(scope: ScopeId, bytes: u64) -> Option<RunBudget> {
        if bytes == 0 {
            if scope.budget().is_some() {
                scope.clear_budget();
            }
            return None;
        }
        let base = match scope.budget_status() {
            Some(s) => s.live_bytes,
            None => scope.stats_with_children().live_bytes,
        };
        scope.set_budget(Budget::soft(base.saturating_add(bytes)));
        let crossings = scope.budget_status().map_or(0, |s| s.crossings);
        Some(RunBudget {
            scope,
            bytes,
            base,
            crossings,
        })
    }

    /// The same budget, its checks counting only crossings from now on:
    /// for GC, after the run's own checks have passed.
    pub(crate) fn since_now(self) -> RunBudget {
        RunBudget {
            crossings: self
                .scope
                .budget_status()
                .map_or(self.crossings, |s| s.crossings),
            ..self
        }
    }

    /// A safe point of the run at `at`: fails if the scope is over the
    /// budget now or went over it since the run began.
    ///
    /// # Errors
    /// [`CheckpointError::OverBudget`].
    pub(crate) fn check(&self, at: &'static str) -> Result<(), CheckpointError> {
        let Some(s) = self.scope.budget_status() else {
            return Ok(());
        };
        let crossed = s.crossings > self.crossings;
        if s.over || crossed {
            return Err(CheckpointError::OverBudget {
                budget_bytes: self.bytes,
                live_bytes: s.live_bytes.saturating_sub(self.base),
                crossed: !s.over,
                at,
            });
        }
        Ok(())
    }
}
