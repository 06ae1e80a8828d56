//! Checkpoints: the run lifecycle, its allocation scope and leak check.
//!
//! - here: the run's lifecycle: [`Checkpointer::begin`] (fence, leak
//!   check, budget), [`CheckpointRun::finish`] (the verdict), rollback.
//! - `steps`: what a run does between the two: collect, write, publish,
//!   apply to memory, cleanup.
//! - `incremental`, `global`: what a run collects.
//! - `file`: data-file and manifest formats, publication.
//! - `gc`: compaction of the chain (deferred over the checkpoint budget)
//!   and the file-leak invariant.
//! - `leak_guard`: the one seam to the tracker's leak checker.
//! - `budget`: the memtable and checkpoint memory budgets.
//! - `fault`: fault injection (feature `fault-injection`).
//!
//! A run is [`Checkpointer::begin`] then [`CheckpointRun::finish`]; every
//! step executes inside the database's own instance of the
//! [`CHECKPOINT`](crate::scopes::CHECKPOINT) scope (`checkpoint#n`, phases
//! in the scopes below it), helper threads included, and `finish` verifies
//! that the instance drained. Runs of one database are serialised by its
//! checkpointer state lock; runs of different databases run concurrently.

pub(crate) mod budget;
pub(crate) mod fault;
pub(crate) mod file;
pub(crate) mod gc;
pub(crate) mod global;
pub(crate) mod incremental;
pub(crate) mod leak_guard;
mod steps;

use std::path::PathBuf;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use crate::db::{CkptState, Inner};
use crate::error::{CheckpointError, FileLeak};
use crate::memtable::Memtable;
use crate::options::LeakMode;
use crate::scopes::CHECKPOINT_RESULTS;
use fault::CrashPoint;
use file::MANIFEST_TMP;
pub use gc::{GcDeferred, GcReport};
use global::Base;
use leak_guard::{Expect, LeakCause, LeakReport};

/// Which checkpoint to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// Persist what changed since the previous checkpoint, up to the fence.
    Incremental,
    /// Persist the full image `[0, fence]`; it replaces the chain.
    Global,
}

/// Whether the run's allocation scope (the database's `checkpoint#n`)
/// drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Live bytes of the database's `checkpoint#n` scope went back to zero
    /// (or to their value at the start of the run, if an earlier run
    /// leaked).
    Drained {
        /// How long the check waited for frees in flight.
        waited: Duration,
    },
    /// They did not (production mode only; strict mode fails the run).
    Leaked {
        /// Bytes still live.
        bytes: u64,
        /// Allocations still live.
        allocs: u64,
    },
    /// Not checked: the tracker is not this program's global allocator, so
    /// the scope counted nothing (production mode only, said once at open;
    /// strict mode refuses to open, see
    /// [`OpenError::TrackerNotInstalled`](crate::OpenError::TrackerNotInstalled)).
    Unchecked,
}

/// The report of one run, returned by [`CheckpointRun::finish`].
///
/// Built in the `ckptdb/checkpoint-results` scope: it outlives the run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CheckpointReport {
    /// Kind requested.
    pub kind: CheckpointKind,
    /// First LSN covered by the file written (0 for a global checkpoint).
    pub lsn_start: u64,
    /// The fence: last LSN covered.
    pub lsn_end: u64,
    /// Wall time of the run.
    pub duration: Duration,
    /// Bytes allocated in the `checkpoint` scope during the run.
    pub allocated_bytes: u64,
    /// Peak live bytes of the `checkpoint` scope (with children).
    pub peak_bytes: u64,
    /// Whether the scope drained.
    pub drain: Drain,
    /// Data files written and published (GC output included).
    pub files_written: Vec<String>,
    /// Entries written to the run's data file.
    pub entries: u64,
    /// Bytes written to data files.
    pub bytes_written: u64,
    /// Whether there was nothing to checkpoint (no file written).
    pub empty: bool,
    /// GC, if it ran and published a compacted checkpoint.
    pub gc: Option<GcReport>,
    /// GC, if it was due but went over the checkpoint budget and was
    /// abandoned (the chain kept, retried at the next run). Never `Some`
    /// together with [`gc`](Self::gc).
    pub gc_deferred: Option<GcDeferred>,
    /// File-leak invariant violation seen (production mode only).
    pub file_leak: Option<FileLeak>,
    /// Leak trends flagged after this run: long-lived scopes that grew at
    /// every one of the last runs (production mode only; see
    /// [`OptionsBuilder::watch_flat_scope`](crate::OptionsBuilder::watch_flat_scope)).
    pub trends: Vec<scope_alloc_tracker::leak::TrendReport>,
}

impl CheckpointReport {
    /// Whether the run's scope drained.
    pub fn drained(&self) -> bool {
        matches!(self.drain, Drain::Drained { .. })
    }
}

/// Runs checkpoints of one database. Get it from
/// [`Db::checkpointer`](crate::Db::checkpointer).
#[derive(Debug, Clone, Copy)]
pub struct Checkpointer<'db> {
    pub(crate) inner: &'db Inner,
}

/// The lifecycle of a [`CheckpointRun`].
///
/// ```text
///  begin() ──► Fenced ──collect──► Collected ──write+fsync+rename──► Written
///                │                     │                               │
///                │        error / drop │                               │ manifest tmp+fsync+rename
///                └─────────────────────┴──────────► RolledBack ◄───────┤ (error before rename)
///                                  (temp and data files removed)       ▼
///                                                                  Published ──cleanup, GC──► Finished
///                                                                      │
///                                     error after rename: cleanup_pending, retried at next run
///                                     GC over the checkpoint budget: GC abandoned (its file
///                                     removed, chain kept), the run still finishes (see `gc`)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Fence picked, memtable frozen.
    Fenced,
    /// Entries collected.
    Collected,
    /// Data file durable under its final name, not registered.
    Written,
    /// Manifest renamed: the checkpoint is the current one.
    Published,
    /// Cleanup and GC done, report returned.
    Finished,
    /// Failed before publication; what it wrote was removed.
    RolledBack,
}

/// One checkpoint run. Consume it with [`finish`](Self::finish); dropping
/// it unfinished removes the files it wrote (except while panicking, when
/// recovery removes them at the next open).
#[must_use = "a run does nothing until finish() is called"]
pub struct CheckpointRun<'db> {
    inner: &'db Inner,
    state: MutexGuard<'db, CkptState>,
    kind: CheckpointKind,
    phase: Phase,
    started: Instant,
    fence: u64,
    frozen: Vec<Arc<Memtable>>,
    base: Option<Arc<Base>>,
    /// Files written but not registered: removed on rollback.
    unpublished: Vec<PathBuf>,
    check: Option<leak_guard::LeakGuard>,
    report: Option<CheckpointReport>,
    /// The checkpoint budget armed for this run, if any.
    budget: Option<budget::RunBudget>,
}

impl std::fmt::Debug for CheckpointRun<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointRun")
            .field("kind", &self.kind)
            .field("phase", &self.phase)
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

impl<'db> Checkpointer<'db> {
    /// Starts a run: waits for any other run of this database (runs of
    /// other databases go on concurrently), starts the leak check, picks the
    /// fence (syncing the WAL up to it) and freezes the active memtable.
    ///
    /// # Errors
    /// [`CheckpointError::Closed`], or the WAL sync failing.
    pub fn begin(&self, kind: CheckpointKind) -> Result<CheckpointRun<'db>, CheckpointError> {
        let inner = self.inner;
        let state = inner.ckpt.lock().unwrap_or_else(|e| e.into_inner());
        if inner.is_closed() {
            return Err(CheckpointError::Closed);
        }
        let budget = budget::RunBudget::arm(inner.ckpt_scopes.run, inner.mem.checkpoint_budget());
        // A scope left non-zero by an earlier leaking run (production mode)
        // is judged against its baseline, so that leak is reported once.
        let expect = if leak_guard::live_bytes(inner.ckpt_scopes.run) == 0 {
            Expect::Zero
        } else {
            Expect::Baseline
        };
        let check = leak_guard::begin(
            inner.ckpt_scopes.run,
            expect,
            inner.opts.leak_quiescence,
            inner.opts.record_leak_sites,
        );
        let report = crate::scopes::within(&CHECKPOINT_RESULTS, || CheckpointReport {
            kind,
            lsn_start: 0,
            lsn_end: 0,
            duration: Duration::ZERO,
            allocated_bytes: 0,
            peak_bytes: 0,
            drain: Drain::Drained {
                waited: Duration::ZERO,
            },
            files_written: Vec::new(),
            entries: 0,
            bytes_written: 0,
            empty: true,
            gc: None,
            gc_deferred: None,
            file_leak: None,
            trends: Vec::new(),
        });
        let mut run = CheckpointRun {
            inner,
            state,
            kind,
            phase: Phase::Fenced,
            started: Instant::now(),
            fence: 0,
            frozen: Vec::new(),
            base: None,
            unpublished: Vec::new(),
            check: Some(check),
            report: Some(report),
            budget,
        };
        crate::scopes::within(inner.ckpt_scopes.run, || run.pick_fence())?;
        Ok(run)
    }
}

impl CheckpointRun<'_> {
    /// The run's phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The fence: the last LSN this run covers.
    pub fn fence(&self) -> u64 {
        self.fence
    }

    fn pick_fence(&mut self) -> Result<(), CheckpointError> {
        let inner = self.inner;
        let mut wal = inner.wal.lock().unwrap_or_else(|e| e.into_inner());
        // Records up to the fence must be durable in the WAL before a
        // checkpoint covering them is published (see design.md).
        wal.sync()?;
        self.fence = wal.last_lsn();
        let mut st = inner.state.write().unwrap_or_else(|e| e.into_inner());
        if !st.active.is_empty() {
            crate::scopes::within(inner.mem.memtable_scope(), || {
                let m = std::mem::take(&mut st.active);
                st.frozen.push(Arc::new(m));
            });
        }
        drop(wal);
        self.frozen = st.frozen.clone();
        if self.kind == CheckpointKind::Global {
            self.base = Some(Arc::clone(&st.base));
        }
        drop(st);
        inner.faults.crash(CrashPoint::AfterFence);
        Ok(())
    }

    /// Runs the remaining steps and verifies the scope drained.
    ///
    /// # Errors
    /// See [`CheckpointError`]: before publication the run is rolled back;
    /// after it, cleanup is retried at the next run. In strict mode a leak
    /// or a file-leak violation fails the run.
    pub fn finish(mut self) -> Result<CheckpointReport, CheckpointError> {
        let result = crate::scopes::within(self.inner.ckpt_scopes.run, || {
            let r = self.execute();
            if r.is_err() && self.phase != Phase::Published {
                self.rollback();
            }
            // Release everything the run holds before the leak check.
            self.frozen = Vec::new();
            self.base = None;
            self.unpublished = Vec::new();
            r
        });
        if self.phase == Phase::Published {
            self.phase = Phase::Finished;
        }
        let Some(check) = self.check.take() else {
            return Err(CheckpointError::Closed);
        };
        let Some(mut report) = self.report.take() else {
            return Err(CheckpointError::Closed);
        };
        let leak = check.finish();
        let inner = self.inner;
        report.duration = self.started.elapsed();
        inner.faults.leak_results();
        if matches!(result, Err(CheckpointError::OverBudget { .. })) {
            inner
                .mem
                .over_budget_runs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        // The memtable budget counts from the new base; throttled writers
        // look again.
        inner.mem.rebaseline(inner.dirty_bytes_now());
        report.trends = inner.trends.observe();
        match leak {
            Ok(d) => {
                report.allocated_bytes = d.total_bytes;
                report.peak_bytes = d.peak_bytes;
                report.drain = Drain::Drained { waited: d.waited };
            }
            // Blind, not leaking: production mode said so once at open.
            Err(leak)
                if leak.cause == LeakCause::NotInstalled
                    && inner.opts.leak_mode == LeakMode::Production =>
            {
                report.drain = Drain::Unchecked;
            }
            Err(leak) => {
                inner.stats.record_leak(&leak);
                report.drain = Drain::Leaked {
                    bytes: leak.leaked_bytes,
                    allocs: leak.leaked_allocs,
                };
                match inner.opts.leak_mode {
                    LeakMode::Strict => {
                        inner.stats.record_run(false);
                        return Err(CheckpointError::Leak(leak));
                    }
                    LeakMode::Production => log_leak(&leak),
                }
            }
        }
        match result {
            Ok(()) => {}
            Err(CheckpointError::FileLeak(v)) if inner.opts.leak_mode == LeakMode::Production => {
                tracing::warn!(violation = %v, "checkpoint file-leak invariant violated");
                report.file_leak = Some(v);
            }
            Err(e) => {
                inner.stats.record_run(false);
                return Err(e);
            }
        }
        inner.stats.record_run(true);
        Ok(report)
    }

    fn report(&mut self, f: impl FnOnce(&mut CheckpointReport)) {
        if let Some(r) = self.report.as_mut() {
            crate::scopes::within(&CHECKPOINT_RESULTS, || f(r));
        }
    }

    /// Removes the files this run wrote and did not publish.
    fn rollback(&mut self) {
        let inner = self.inner;
        let _scope = crate::scopes::enter(inner.ckpt_scopes.run);
        for p in self.unpublished.drain(..) {
            let _ = inner.storage.remove(&p);
        }
        let _ = inner.storage.remove(&inner.dir.join(MANIFEST_TMP));
        let _ = inner.storage.sync_dir(&inner.dir);
        if self.phase != Phase::Published {
            self.phase = Phase::RolledBack;
        }
    }
}

impl Drop for CheckpointRun<'_> {
    fn drop(&mut self) {
        if matches!(
            self.phase,
            Phase::Finished | Phase::Published | Phase::RolledBack
        ) {
            return;
        }
        if std::thread::panicking() {
            // Recovery removes unregistered files at the next open.
            return;
        }
        self.rollback();
        self.frozen = Vec::new();
        self.base = None;
    }
}

fn log_leak(leak: &LeakReport) {
    let top: Vec<String> = leak
        .sites
        .iter()
        .take(3)
        .map(|s| {
            let f = s
                .frames
                .iter()
                .map(|f| f.function.as_str())
                .collect::<Vec<_>>();
            format!("{} bytes at {}", s.bytes, f.join(" <- "))
        })
        .collect();
    tracing::error!(
        leaked_bytes = leak.leaked_bytes,
        leaked_allocs = leak.leaked_allocs,
        top_sites = ?top,
        "checkpoint run did not drain its allocation scope"
    );
}
