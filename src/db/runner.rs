//! The background checkpoint runner (`Runner::Background`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Inner;
use crate::checkpoint::{CheckpointKind, Checkpointer};
use crate::error::CheckpointError;
use crate::options::SyncPolicy;

/// The longest back-off before the background runner retries a run that
/// went over the checkpoint budget.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// Starts the runner thread of the database `inner`.
pub(super) fn spawn_runner(inner: Arc<Inner>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ckptdb-checkpointer".into())
        .spawn(move || run_background(&inner))
}

/// The background runner: checkpoints on the interval, when dirty bytes
/// exceed the threshold or when the memtable is over its budget; also
/// drives group-commit syncs. A run over the checkpoint budget is retried
/// after a back-off (doubling from one tick up to [`MAX_RETRY_DELAY`]).
fn run_background(inner: &Inner) {
    let opts = &inner.opts;
    let mut tick = opts.checkpoint_interval.min(Duration::from_millis(50));
    if let SyncPolicy::GroupCommit { max_delay, .. } = opts.sync {
        tick = tick.min(max_delay);
    }
    let mut last_run = Instant::now();
    let mut runs: u64 = 0;
    let mut retry_delay = tick;
    let mut retry_at: Option<Instant> = None;
    let checkpointer = Checkpointer { inner };
    loop {
        {
            let g = inner.wake.0.lock().unwrap_or_else(|e| e.into_inner());
            let _ = inner.wake.1.wait_timeout(g, tick);
        }
        if inner.is_closed() {
            return;
        }
        {
            let mut wal = inner.wal.lock().unwrap_or_else(|e| e.into_inner());
            if !wal.is_poisoned() {
                if let Err(e) = wal.sync_if_due() {
                    tracing::error!(error = %e, "group commit sync failed");
                }
            }
        }
        let dirty = {
            let st = inner.state.read().unwrap_or_else(|e| e.into_inner());
            Inner::dirty_bytes(&st)
        };
        let by_budget = inner.mem.memtable_over_budget();
        if last_run.elapsed() < opts.checkpoint_interval
            && dirty < opts.checkpoint_dirty_bytes
            && !by_budget
        {
            continue;
        }
        if retry_at.is_some_and(|t| Instant::now() < t) {
            continue;
        }
        if by_budget {
            inner.mem.memtable_runs.fetch_add(1, Ordering::Relaxed);
        }
        runs += 1;
        let kind = if runs.is_multiple_of(u64::from(opts.global_every)) {
            CheckpointKind::Global
        } else {
            CheckpointKind::Incremental
        };
        match checkpointer.begin(kind).and_then(|run| run.finish()) {
            Ok(report) => {
                retry_at = None;
                retry_delay = tick;
                tracing::debug!(?report, by_budget, "background checkpoint");
            }
            Err(CheckpointError::Closed) => return,
            Err(e @ CheckpointError::OverBudget { .. }) => {
                tracing::warn!(error = %e, retry_in = ?retry_delay, "checkpoint over budget; retrying");
                retry_at = Some(Instant::now() + retry_delay);
                retry_delay = (retry_delay * 2).min(MAX_RETRY_DELAY);
            }
            Err(e) => tracing::error!(error = %e, "background checkpoint failed"),
        }
        last_run = Instant::now();
    }
}
