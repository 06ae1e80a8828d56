//! The writer threads and the counters they share with the driving
//! thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ckptdb::workload::WorkOp;
use ckptdb::{Db, WriteError};

/// Counters shared with the writer threads.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// Writes claimed (may exceed the limit by one per thread).
    pub(super) claimed: AtomicU64,
    /// Writes applied.
    pub(super) done: AtomicU64,
    /// Value bytes written.
    pub(super) value_bytes: AtomicU64,
    /// Set to stop the writers (deadline, error).
    pub(super) stop: AtomicBool,
    /// Writes may only be claimed below this number: when the writers reach
    /// a checkpoint's write count they wait for the driving thread to run
    /// it, so a run has exactly one checkpoint per `--checkpoint-every`
    /// writes, however the threads are scheduled. `u64::MAX` = no gate.
    pub(super) gate: AtomicU64,
}

/// One writer thread: claims writes until `limit`, the deadline, or a
/// stop.
pub(super) fn writer(
    db: &Db,
    ops: &mut (dyn Iterator<Item = WorkOp> + Send + '_),
    shared: &Shared,
    limit: u64,
    deadline: Option<Instant>,
) -> Result<(), WriteError> {
    let result = (|| {
        for n in 0u64.. {
            if shared.stop.load(Ordering::Relaxed) {
                break;
            }
            // The driving thread may be busy with a checkpoint: check the
            // deadline here too (every 64 writes: reading the clock costs).
            if n % 64 == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let claim = shared.claimed.fetch_add(1, Ordering::Relaxed);
            if claim >= limit {
                shared.claimed.fetch_sub(1, Ordering::Relaxed);
                break;
            }
            if claim >= shared.gate.load(Ordering::Acquire) {
                // A checkpoint is due at this write count: wait for it.
                shared.claimed.fetch_sub(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            let Some(op) = ops.next() else {
                shared.claimed.fetch_sub(1, Ordering::Relaxed);
                break;
            };
            match op {
                WorkOp::Put { key, value } => {
                    db.put(&key, &value)?;
                    shared
                        .value_bytes
                        .fetch_add(value.len() as u64, Ordering::Relaxed);
                }
                WorkOp::Delete { key } => {
                    db.delete(&key)?;
                }
            }
            shared.done.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    })();
    if result.is_err() {
        shared.stop.store(true, Ordering::Relaxed);
    }
    result
}
