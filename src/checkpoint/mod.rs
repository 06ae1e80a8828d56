//! Checkpoints: the run lifecycle, its allocation scope and leak check.
//!
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

use std::path::PathBuf;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use alloc_tracker::ScopeId;

use crate::db::{CkptState, Inner};
use crate::error::{CheckpointError, FileLeak, StorageError};
use crate::memtable::Memtable;
use crate::options::LeakMode;
use crate::scopes::{CHECKPOINT_RESULTS, ENGINE};
use fault::{CrashPoint, FailPoint};
use file::{EntryRef, FileKind, FileMeta, Manifest, MANIFEST, MANIFEST_TMP};
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
    pub trends: Vec<alloc_tracker::leak::TrendReport>,
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

    fn execute(&mut self) -> Result<(), CheckpointError> {
        let inner = self.inner;
        if self.state.cleanup_pending {
            // Best effort: if it fails again it stays pending, and the
            // cleanup after this run's publication retries it.
            if let Err(e) = self.cleanup() {
                tracing::warn!(error = %e, "pending checkpoint cleanup failed; will retry");
            }
        }
        let manifest_lsn = self.state.manifest.checkpoint_lsn;
        let chain_is_one_base =
            matches!(self.state.manifest.chain.as_slice(), [m] if m.kind.is_base());
        let nothing_new = self.frozen.is_empty() && self.fence <= manifest_lsn;
        let (lsn_start, lsn_end) = match self.kind {
            CheckpointKind::Incremental => (manifest_lsn + 1, self.fence.max(manifest_lsn)),
            CheckpointKind::Global => (0, self.fence.max(manifest_lsn)),
        };
        self.report(|r| {
            r.lsn_start = lsn_start;
            r.lsn_end = lsn_end;
        });
        let skip = match self.kind {
            CheckpointKind::Incremental => nothing_new,
            CheckpointKind::Global => {
                nothing_new
                    && (chain_is_one_base || self.state.manifest.chain.is_empty() && lsn_end == 0)
            }
        };
        if !skip {
            let meta = FileMeta {
                kind: match self.kind {
                    CheckpointKind::Incremental => FileKind::Incremental,
                    CheckpointKind::Global => FileKind::Global,
                },
                id: self.state.manifest.next_file_id,
                lsn_start,
                lsn_end,
            };
            let frozen = std::mem::take(&mut self.frozen);
            let base = self.base.take();
            let written = {
                let entries = crate::scopes::within(self.inner.ckpt_scopes.collect, || {
                    match (self.kind, &base) {
                        (CheckpointKind::Global, Some(b)) => global::collect(b, &frozen),
                        _ => incremental::collect(&frozen),
                    }
                });
                self.phase = Phase::Collected;
                inner.faults.crash(CrashPoint::AfterCollect);
                // Safe point: the entries are collected, nothing written.
                let r = self.check_budget("after collect").and_then(|()| {
                    crate::scopes::within(self.inner.ckpt_scopes.write, || {
                        self.write_data_file(&meta, &entries)
                    })
                });
                drop(entries);
                r
            };
            let consumed = frozen.len();
            drop(frozen);
            drop(base);
            let bytes = written?;
            self.phase = Phase::Written;
            // Safe point: the last before publication (the crossing count
            // catches a peak while encoding that has been freed since).
            self.check_budget("before publish")?;
            let mut next = crate::scopes::within(&ENGINE, || self.state.manifest.clone());
            next.generation += 1;
            next.checkpoint_lsn = lsn_end;
            next.next_file_id = meta.id + 1;
            match self.kind {
                CheckpointKind::Incremental => {
                    crate::scopes::within(&ENGINE, || next.chain.push(meta))
                }
                CheckpointKind::Global => {
                    next.chain.clear();
                    crate::scopes::within(&ENGINE, || next.chain.push(meta));
                }
            }
            crate::scopes::within(self.inner.ckpt_scopes.publish, || self.publish(next))?;
            self.report(|r| {
                r.empty = false;
                r.entries = bytes.1;
                r.bytes_written += bytes.0;
                r.files_written.push(meta.name());
            });
            self.apply_to_memory(consumed);
            self.cleanup_with_retries()?;
        } else {
            self.phase = Phase::Published;
        }
        self.gc_if_due()?;
        let verdict = gc::check_invariant(
            &*inner.storage,
            &inner.dir,
            &self.state.manifest,
            gc::allowed_incrementals(&self.state, inner.opts.max_incrementals),
        )?;
        if let Err(v) = verdict {
            inner.stats.record_file_leak();
            // Deleting unregistered files is part of cleanup: retry it.
            self.state.cleanup_pending = true;
            return Err(CheckpointError::FileLeak(v));
        }
        Ok(())
    }

    /// A budget safe point: fails if the run's scope is, or went, over the
    /// checkpoint budget.
    fn check_budget(&self, at: &'static str) -> Result<(), CheckpointError> {
        match &self.budget {
            Some(b) => b.check(at),
            None => Ok(()),
        }
    }

    /// Writes `entries` to a temp file, fsyncs, renames it to its final
    /// name and fsyncs the directory. Returns (bytes, entries). A budget
    /// safe point once the batches are encoded, before anything is written
    /// (`after encode`).
    fn write_data_file(
        &mut self,
        meta: &FileMeta,
        entries: &[EntryRef<'_>],
    ) -> Result<(u64, u64), CheckpointError> {
        let inner = self.inner;
        let storage = &*inner.storage;
        let tmp = inner.dir.join(file::data_tmp_name(meta.id));
        let dst = inner.dir.join(meta.name());
        self.unpublished.push(tmp.clone());
        self.unpublished.push(dst.clone());
        inner.faults.fail(FailPoint::DataWrite, &tmp)?;
        storage.create(&tmp)?;
        let batches = encode_parallel(inner, entries);
        self.check_budget("after encode")?;
        let mut crc = crc32fast::Hasher::new();
        let mut bytes = (file::HEADER_LEN + file::FOOTER_LEN) as u64;
        storage.append(&tmp, &file::encode_header(meta, entries.len() as u64))?;
        for b in &batches {
            crc.update(b);
            storage.append(&tmp, b)?;
            bytes += b.len() as u64;
        }
        drop(batches);
        storage.append(&tmp, &file::encode_footer(crc.finalize()))?;
        inner.faults.crash(CrashPoint::AfterDataWrite);
        storage.sync(&tmp)?;
        inner.faults.crash(CrashPoint::AfterDataSync);
        storage.rename(&tmp, &dst)?;
        storage.sync_dir(&inner.dir)?;
        inner.faults.crash(CrashPoint::AfterDataRename);
        Ok((bytes, entries.len() as u64))
    }

    /// Writes `MANIFEST.tmp`, fsyncs, renames it over `MANIFEST`. Once the
    /// rename returned, the run is published.
    fn publish(&mut self, next: Manifest) -> Result<(), StorageError> {
        let inner = self.inner;
        let tmp = file::write_manifest_tmp(&*inner.storage, &inner.dir, &next)?;
        inner.faults.crash(CrashPoint::AfterManifestTemp);
        inner.faults.fail(FailPoint::ManifestPublish, &tmp)?;
        inner.storage.rename(&tmp, &inner.dir.join(MANIFEST))?;
        // Published: the files this run wrote are registered now.
        self.phase = Phase::Published;
        self.unpublished.clear();
        self.state.manifest = next;
        self.state.cleanup_pending = true;
        inner.faults.crash(CrashPoint::AfterManifestRename);
        Ok(())
    }

    /// Moves the `consumed` oldest frozen memtables into the base table.
    fn apply_to_memory(&mut self, consumed: usize) {
        let mut st = self.inner.state.write().unwrap_or_else(|e| e.into_inner());
        let st = &mut *st;
        crate::scopes::within(self.inner.mem.memtable_scope(), || {
            let n = consumed.min(st.frozen.len());
            let done: Vec<Arc<Memtable>> = st.frozen.drain(..n).collect();
            let base = Arc::make_mut(&mut st.base);
            for m in done {
                match Arc::try_unwrap(m) {
                    Ok(m) => {
                        for (k, e) in m.into_entries() {
                            match e.value {
                                Some(v) => base.insert(k, v),
                                None => base.remove(&k),
                            };
                        }
                    }
                    Err(m) => {
                        for (k, e) in m.iter() {
                            match &e.value {
                                Some(v) => base.insert(k.clone(), v.clone()),
                                None => base.remove(k),
                            };
                        }
                    }
                }
            }
        });
    }

    fn cleanup_with_retries(&mut self) -> Result<(), CheckpointError> {
        let mut attempt = 0;
        loop {
            match self.cleanup() {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= 2 => {
                    return Err(CheckpointError::Cleanup {
                        published_lsn: self.state.manifest.checkpoint_lsn,
                        source: e,
                    })
                }
                Err(_) => attempt += 1,
            }
        }
    }

    /// The idempotent steps after publication: make the rename durable,
    /// truncate the WAL, delete files the manifest does not register.
    fn cleanup(&mut self) -> Result<(), StorageError> {
        let inner = self.inner;
        let storage = &*inner.storage;
        storage.sync_dir(&inner.dir)?;
        inner.faults.crash(CrashPoint::AfterPublish);
        inner.faults.fail(FailPoint::WalTruncate, &inner.dir)?;
        let covered = inner
            .wal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .covered_segments(self.state.manifest.checkpoint_lsn);
        for seg in &covered {
            storage.remove(seg)?;
            inner
                .wal
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .forget_segments(std::slice::from_ref(seg));
        }
        if !covered.is_empty() {
            storage.sync_dir(&inner.dir)?;
        }
        drop(covered);
        inner.faults.crash(CrashPoint::AfterWalTruncate);
        if !inner.faults.keep_stale() {
            let registered: Vec<String> = self
                .state
                .manifest
                .chain
                .iter()
                .map(FileMeta::name)
                .collect();
            let mut removed = false;
            for name in storage.list(&inner.dir)? {
                if file::is_checkpoint_file(&name) && !registered.contains(&name) {
                    storage.remove(&inner.dir.join(&name))?;
                    removed = true;
                }
            }
            if removed {
                storage.sync_dir(&inner.dir)?;
            }
        }
        inner.faults.crash(CrashPoint::AfterStaleDelete);
        self.state.cleanup_pending = false;
        Ok(())
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

/// Encodes `entries` in batches, on `write_threads` helper threads when
/// there are many; helpers run in the caller's scope through
/// [`ScopeId::bind`].
fn encode_parallel(inner: &Inner, entries: &[EntryRef<'_>]) -> Vec<Vec<u8>> {
    const MIN_BATCH: usize = 512;
    let threads = inner.opts.write_threads;
    let leak = inner.faults.leak();
    if threads <= 1 || entries.len() < 2 * MIN_BATCH {
        return vec![encode_one(entries, leak)];
    }
    let per = entries.len().div_ceil(threads).max(MIN_BATCH);
    let scope = ScopeId::current();
    // The threads themselves (their handles, the closures' boxes) are made
    // outside the checkpoint scope: a thread releases its handle in its TLS
    // destructors, possibly after `join` returned, and that late free would
    // look like a leak to a check that has already finished waiting. Only
    // the work, bound to the run's scope, allocates in it.
    crate::scopes::within(&ENGINE, || {
        std::thread::scope(|s| {
            let handles: Vec<_> = entries
                .chunks(per)
                .enumerate()
                .map(|(i, chunk)| s.spawn(scope.bind(move || encode_one(chunk, leak && i == 0))))
                .collect();
            // The results belong to the run again.
            scope.in_scope(|| {
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            })
        })
    })
}

fn encode_one(entries: &[EntryRef<'_>], leak: bool) -> Vec<u8> {
    if leak {
        return fault::encode_batch_leaky(entries);
    }
    file::encode_batch(entries)
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
