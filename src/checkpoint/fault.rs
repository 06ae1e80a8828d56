//! Fault injection for checkpoint runs.
//!
//! A shared [`Faults`] (set on [`OptionsBuilder::faults`](crate::OptionsBuilder))
//! switches faults on at run time; all are off by default.
//!
//! - Always compiled: the planted memory leak in the data-file encoder
//!   ([`Faults::set_leak`]). `encode_batch_leaky` keeps a copy of one batch
//!   buffer in a static list, the way a writer buffer that one code path
//!   forgets to release would. The main binary's `--inject-leak` uses it to
//!   show detection; it costs one relaxed load per data-file encode. And a
//!   slow leak of a few hundred bytes per run into
//!   `ckptdb/checkpoint-results` ([`Faults::set_results_leak`],
//!   `remember_run_summary`), which no single-run check sees and only the
//!   production-mode trend catches (`--inject-slow-leak`); one relaxed load
//!   per run.
//! - With the cargo feature `fault-injection` only (tests): failing the data
//!   write, the manifest publication or the WAL truncation the next `n`
//!   times; aborting the process at a [`CrashPoint`]; leaving stale
//!   checkpoint files behind after publication. Without the feature these
//!   checks compile to nothing.

/// A step of a checkpoint run where the process can be aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum CrashPoint {
    /// Fence picked, memtable frozen, nothing written.
    AfterFence = 1,
    /// Entries collected.
    AfterCollect,
    /// Data file written to its temp name, not synced.
    AfterDataWrite,
    /// Data file synced, still under its temp name.
    AfterDataSync,
    /// Data file renamed to its final name (not yet registered).
    AfterDataRename,
    /// `MANIFEST.tmp` written and synced, not renamed.
    AfterManifestTemp,
    /// `MANIFEST.tmp` renamed over `MANIFEST`, directory not synced.
    AfterManifestRename,
    /// Manifest published (directory synced); nothing cleaned up.
    AfterPublish,
    /// WAL segments covered by the checkpoint deleted.
    AfterWalTruncate,
    /// Stale checkpoint files deleted.
    AfterStaleDelete,
    /// GC wrote its compacted file (not published).
    AfterGcWrite,
    /// GC published its manifest (old files still on disk).
    AfterGcPublish,
}

impl CrashPoint {
    /// Every crash point, in run order.
    pub const ALL: [CrashPoint; 12] = [
        CrashPoint::AfterFence,
        CrashPoint::AfterCollect,
        CrashPoint::AfterDataWrite,
        CrashPoint::AfterDataSync,
        CrashPoint::AfterDataRename,
        CrashPoint::AfterManifestTemp,
        CrashPoint::AfterManifestRename,
        CrashPoint::AfterPublish,
        CrashPoint::AfterWalTruncate,
        CrashPoint::AfterStaleDelete,
        CrashPoint::AfterGcWrite,
        CrashPoint::AfterGcPublish,
    ];
}

/// An I/O step that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailPoint {
    DataWrite,
    ManifestPublish,
    WalTruncate,
}

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Run-time switches for injected faults. Share one through `Arc<Faults>`
/// between the test (or the main binary) and the `Db`.
#[derive(Debug, Default)]
pub struct Faults {
    leak: AtomicBool,
    results_leak: AtomicUsize,
    #[cfg(feature = "fault-injection")]
    io: injected::IoFaults,
}

impl Faults {
    /// Turns the planted leak in `encode_batch_leaky` on or off.
    pub fn set_leak(&self, on: bool) {
        self.leak.store(on, Ordering::SeqCst);
    }

    pub(crate) fn leak(&self) -> bool {
        self.leak.load(Ordering::Relaxed)
    }

    /// Keeps `bytes` per checkpoint run in `ckptdb/checkpoint-results`
    /// (0: off): the slow leak of `remember_run_summary`.
    pub fn set_results_leak(&self, bytes: usize) {
        self.results_leak.store(bytes, Ordering::SeqCst);
    }

    /// At the end of a run: the slow results leak, if switched on.
    pub(crate) fn leak_results(&self) {
        let n = self.results_leak.load(Ordering::Relaxed);
        if n > 0 {
            crate::scopes::within(&crate::scopes::CHECKPOINT_RESULTS, || {
                remember_run_summary(n)
            });
        }
    }
}

/// Where the slow results leak keeps its buffers.
static REMEMBERED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// The planted slow leak: a per-run summary of `bytes` kept in a static
/// list that nothing clears, in the `checkpoint-results` scope, the way a
/// results cache that forgets to evict would.
#[inline(never)]
pub(crate) fn remember_run_summary(bytes: usize) {
    let summary = std::hint::black_box(vec![0x5a_u8; bytes]);
    REMEMBERED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(summary);
}

/// Where the planted leak keeps its buffers.
static KEPT_BATCHES: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// The planted bug: encodes a batch like `encode_batch`, but keeps a copy
/// of the writer buffer in a static list that nothing ever clears.
#[inline(never)]
pub(crate) fn encode_batch_leaky(entries: &[crate::checkpoint::file::EntryRef<'_>]) -> Vec<u8> {
    let buf = crate::checkpoint::file::encode_batch(entries);
    let kept = std::hint::black_box(buf.clone());
    KEPT_BATCHES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(kept);
    buf
}

#[cfg(feature = "fault-injection")]
mod injected {
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};

    use super::{CrashPoint, FailPoint, Faults};
    use crate::error::{StorageError, StorageOp};

    /// The test-only faults.
    #[derive(Debug, Default)]
    pub(super) struct IoFaults {
        fail_data_write: AtomicU32,
        fail_publish: AtomicU32,
        fail_wal_truncate: AtomicU32,
        keep_stale: AtomicBool,
        crash_at: AtomicU8,
    }

    impl Faults {
        /// Fails the next `n` data-file writes.
        pub fn fail_data_write(&self, n: u32) {
            self.io.fail_data_write.store(n, Ordering::SeqCst);
        }
        /// Fails the next `n` manifest publications.
        pub fn fail_manifest_publish(&self, n: u32) {
            self.io.fail_publish.store(n, Ordering::SeqCst);
        }
        /// Fails the next `n` WAL truncations.
        pub fn fail_wal_truncate(&self, n: u32) {
            self.io.fail_wal_truncate.store(n, Ordering::SeqCst);
        }
        /// Leaves stale checkpoint files on disk after publication.
        pub fn keep_stale_files(&self, on: bool) {
            self.io.keep_stale.store(on, Ordering::SeqCst);
        }
        /// Aborts the process when a run reaches `point`.
        pub fn crash_at(&self, point: Option<CrashPoint>) {
            self.io
                .crash_at
                .store(point.map_or(0, |p| p as u8), Ordering::SeqCst);
        }
        /// Clears every fault.
        pub fn clear(&self) {
            self.set_results_leak(0);
            self.set_leak(false);
            self.fail_data_write(0);
            self.fail_manifest_publish(0);
            self.fail_wal_truncate(0);
            self.keep_stale_files(false);
            self.crash_at(None);
        }

        pub(crate) fn keep_stale(&self) -> bool {
            self.io.keep_stale.load(Ordering::SeqCst)
        }

        pub(crate) fn crash(&self, point: CrashPoint) {
            if self.io.crash_at.load(Ordering::SeqCst) == point as u8 {
                std::process::abort();
            }
        }

        pub(crate) fn fail(&self, point: FailPoint, path: &Path) -> Result<(), StorageError> {
            let (counter, op) = match point {
                FailPoint::DataWrite => (&self.io.fail_data_write, StorageOp::Append),
                FailPoint::ManifestPublish => (&self.io.fail_publish, StorageOp::Rename),
                FailPoint::WalTruncate => (&self.io.fail_wal_truncate, StorageOp::Remove),
            };
            let hit = counter
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if hit {
                let e = crate::scopes::within(&crate::scopes::ERRORS, || {
                    std::io::Error::other(format!("injected fault: {point:?}"))
                });
                return Err(StorageError::new(op, path, e));
            }
            Ok(())
        }
    }
}

/// Without the feature no test-only fault ever fires.
#[cfg(not(feature = "fault-injection"))]
impl Faults {
    #[inline(always)]
    pub(crate) fn keep_stale(&self) -> bool {
        false
    }
    #[inline(always)]
    pub(crate) fn crash(&self, _point: CrashPoint) {}
    #[inline(always)]
    pub(crate) fn fail(
        &self,
        _point: FailPoint,
        _path: &std::path::Path,
    ) -> Result<(), crate::error::StorageError> {
        Ok(())
    }
}
