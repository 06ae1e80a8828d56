//! The engine's counters, and the [`DbStats`] snapshot of them and of the
//! database's sizes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Db, Inner};
use crate::checkpoint::leak_guard::LeakReport;

/// Engine counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    runs_ok: AtomicU64,
    runs_failed: AtomicU64,
    leaks: AtomicU64,
    leaked_bytes: AtomicU64,
    file_leaks: AtomicU64,
}

impl Counters {
    pub(crate) fn record_run(&self, ok: bool) {
        let c = if ok { &self.runs_ok } else { &self.runs_failed };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_leak(&self, leak: &LeakReport) {
        self.leaks.fetch_add(1, Ordering::Relaxed);
        self.leaked_bytes
            .fetch_add(leak.leaked_bytes, Ordering::Relaxed);
    }

    pub(crate) fn record_file_leak(&self) {
        self.file_leaks.fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of the engine's counters and sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DbStats {
    /// Checkpoint runs that succeeded.
    pub checkpoints_ok: u64,
    /// Checkpoint runs that failed.
    pub checkpoints_failed: u64,
    /// Runs whose scope did not drain.
    pub leaks_detected: u64,
    /// Bytes those runs left live.
    pub leaked_bytes: u64,
    /// Runs after which the file-leak invariant did not hold.
    pub file_leaks_detected: u64,
    /// LSN of the last write.
    pub last_lsn: u64,
    /// LSN of the last write known durable in the WAL.
    pub durable_lsn: u64,
    /// LSN covered by the published checkpoint chain.
    pub checkpoint_lsn: u64,
    /// Checkpoint files registered.
    pub chain_files: usize,
    /// WAL segment files.
    pub wal_segments: usize,
    /// Accounted bytes of the active and frozen memtables (dirty data).
    pub dirty_bytes: u64,
    /// Frozen memtables waiting for a checkpoint.
    pub frozen_memtables: usize,
    /// Background runs started because the memtable crossed its budget.
    pub memtable_budget_runs: u64,
    /// Runs that went over the checkpoint budget (rolled back).
    pub checkpoints_over_budget: u64,
    /// GCs deferred over the checkpoint budget (abandoned, the chain kept
    /// for the next run's GC; the runs themselves succeeded).
    pub gcs_deferred_over_budget: u64,
    /// Writes that waited because the memtable was over its ceiling.
    pub writes_throttled: u64,
    /// Total time those writes waited.
    pub throttled: Duration,
    /// Leak trends flagged after checkpoint runs (production mode).
    pub trends_flagged: u64,
}

impl Db {
    /// Counters and sizes.
    pub fn stats(&self) -> DbStats {
        let inner = &*self.inner;
        let (last_lsn, durable_lsn, wal_segments) = {
            let wal = inner.wal.lock().unwrap_or_else(|e| e.into_inner());
            (wal.last_lsn(), wal.synced_lsn(), wal.segment_count())
        };
        let (dirty_bytes, frozen_memtables) = {
            let st = inner.state.read().unwrap_or_else(|e| e.into_inner());
            (Inner::dirty_bytes(&st), st.frozen.len())
        };
        let (checkpoint_lsn, chain_files) = {
            let ck = inner.ckpt.lock().unwrap_or_else(|e| e.into_inner());
            (ck.manifest.checkpoint_lsn, ck.manifest.chain.len())
        };
        let c = &inner.stats;
        DbStats {
            checkpoints_ok: c.runs_ok.load(Ordering::Relaxed),
            checkpoints_failed: c.runs_failed.load(Ordering::Relaxed),
            leaks_detected: c.leaks.load(Ordering::Relaxed),
            leaked_bytes: c.leaked_bytes.load(Ordering::Relaxed),
            file_leaks_detected: c.file_leaks.load(Ordering::Relaxed),
            last_lsn,
            durable_lsn,
            checkpoint_lsn,
            chain_files,
            wal_segments,
            dirty_bytes,
            frozen_memtables,
            memtable_budget_runs: inner.mem.memtable_runs.load(Ordering::Relaxed),
            checkpoints_over_budget: inner.mem.over_budget_runs.load(Ordering::Relaxed),
            gcs_deferred_over_budget: inner.mem.gcs_deferred.load(Ordering::Relaxed),
            writes_throttled: inner.mem.throttled_writes.load(Ordering::Relaxed),
            throttled: Duration::from_nanos(inner.mem.throttled_nanos.load(Ordering::Relaxed)),
            trends_flagged: inner.trends.flagged.load(Ordering::Relaxed),
        }
    }
}
