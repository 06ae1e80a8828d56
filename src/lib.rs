//! `ckptdb`: a small embedded key-value engine whose checkpoint runs must
//! drain their allocation scope.
//!
//! # Overview
//!
//! Writes go to the write-ahead log ([`wal`](crate::Options) segments with
//! length + CRC32 + LSN framing) and to an in-memory sorted memtable.
//! Checkpoints persist the memtables: an **incremental** checkpoint writes
//! what changed since the previous one up to an LSN fence; a **global**
//! checkpoint writes the full image and replaces the chain. A manifest,
//! published with temp-file + fsync + rename + directory fsync, names the
//! current chain. Recovery loads the chain, then replays the WAL after it.
//! [`Db::open`] locks the directory first (an `flock` on its
//! [`LOCK`](LOCK_FILE) file, held until the `Db` is closed): a second open,
//! in this process or another, is [`OpenError::Locked`].
//! The byte formats and the exact protocol are in `docs/design.md`.
//!
//! ```no_run
//! use ckptdb::{CheckpointKind, Db, Options, SyncPolicy};
//! # #[global_allocator]
//! # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
//! #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
//!
//! # fn main() -> Result<(), ckptdb::Error> {
//! let opts = Options::builder()
//!     .sync(SyncPolicy::EveryWrite)
//!     .build()
//!     .map_err(ckptdb::OpenError::from)?;
//! let db = Db::open("/tmp/my-db", opts)?;
//! db.put(b"hello", b"world")?;
//! let report = db.checkpoint_now(CheckpointKind::Incremental)?;
//! println!("{report:?}");
//! db.close()?;
//! # Ok(())
//! # }
//! ```
//!
//! # Memory attribution and the checkpoint leak check
//!
//! Every subsystem allocates in its own [`scopes`] scope (`wal`,
//! `memtable`, `recovery`, ...). Each database runs its checkpoints inside
//! its own instance of [`scopes::CHECKPOINT`] (`checkpoint#n`, made at
//! open, released at close: [`Db::checkpoint_scope`]; phases in the scopes
//! below it, helper threads bound to it with `ScopeId::bind`), so two
//! databases in one process checkpoint concurrently and each run's check
//! sees only its own database. After the run, the live bytes of that
//! instance must be back to zero: whatever a run hands back (the report,
//! the new manifest, the merged base table) is allocated in a scope
//! outside it.
//! In [`LeakMode::Strict`] a run that leaks fails with
//! [`CheckpointError::Leak`]; in [`LeakMode::Production`] the leak is
//! logged with `tracing`, counted in [`DbStats`], and the engine goes on.
//!
//! Programs using the engine install the tracker:
//!
//! ```
//! #[global_allocator]
//! static GLOBAL: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
//!     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
//! ```
//!
//! Without it the scopes count nothing and a leak check could only pass
//! blindly, so [`Db::open`] checks: in strict mode it fails with
//! [`OpenError::TrackerNotInstalled`] (naming the missing line); in
//! production mode it logs a warning once and opens, and its runs report
//! [`Drain::Unchecked`].
//!
//! # Memory budgets and leak trends
//!
//! The exact per-scope figures also drive the engine (see `docs/design.md`,
//! "Memory budgets and leak trends"):
//! [`OptionsBuilder::memtable_budget`] starts a checkpoint run when the
//! database's own `memtable` scope instance ([`Db::memtable_scope`]) holds
//! that many bytes above the checkpointed base (memory-driven flush), [`OptionsBuilder::memtable_ceiling`] makes
//! writers wait (bounded, never failing) above a ceiling, and
//! [`OptionsBuilder::checkpoint_budget`] fails a run whose `checkpoint`
//! scope goes over it with [`CheckpointError::OverBudget`], rolled back
//! like a failed save; a GC over it, after the run's publication, is
//! deferred to the next run ([`CheckpointReport::gc_deferred`]). In production leak mode the engine watches
//! `ckptdb/checkpoint-results`, and the scopes marked with
//! [`OptionsBuilder::watch_flat_scope`], for steady growth across runs
//! ([`CheckpointReport::trends`], [`DbStats::trends_flagged`]).
//!
//! # Checkpoint files and GC
//!
//! After GC at most one base (global or compacted) checkpoint plus the
//! incrementals after it are registered and on disk (more incrementals
//! while a GC deferred over the checkpoint budget is pending); the engine checks
//! this file-leak invariant after every run and reports a violation like a
//! memory leak ([`CheckpointError::FileLeak`]).
//!
//! # Errors and recovery policy
//!
//! Errors are per operation ([`OpenError`], [`WriteError`],
//! [`CheckpointError`], [`RecoveryError`]), each wrapping [`StorageError`],
//! and all convert into [`enum@Error`]. A torn WAL tail (a bad record of
//! the newest segment with no valid record anywhere after it) is truncated
//! at open; any other bad record, and any corrupt checkpoint or manifest, is
//! a [`RecoveryError`] naming the file and byte offset. Nothing panics on
//! bad input: reversed or empty scan ranges give an empty result, keys and
//! values past their limits a [`WriteError`].
//!
//! # Feature flags
//!
//! - `fault-injection` (off): test-only fault points in checkpoint runs:
//!   failing data write / manifest publication / WAL truncation, crash
//!   points that abort the process, stale files left behind. See `Faults`
//!   and [`CrashPoint`]. The planted memory leak (`encode_batch_leaky`,
//!   behind `Faults::set_leak`, off unless switched on) is compiled in every
//!   build: the main binary's `--inject-leak` demonstrates detection with
//!   it.

mod checkpoint;
mod db;
mod error;
pub mod inspect;
mod memtable;
mod options;
mod recovery;
pub mod scopes;
mod storage;
mod trend;
mod wal;
pub mod workload;

pub use checkpoint::budget::MAX_THROTTLE;
pub use checkpoint::fault::CrashPoint;
#[doc(hidden)]
pub use checkpoint::fault::Faults;
pub use checkpoint::file::{FileKind, FileMeta};
pub use checkpoint::leak_guard::{Frame, LeakReport, LeakSite};
pub use checkpoint::{
    CheckpointKind, CheckpointReport, CheckpointRun, Checkpointer, Drain, GcDeferred, GcReport,
    Phase,
};
pub use db::{Db, DbStats};
pub use error::{
    CheckpointError, Corruption, Error, FileLeak, LockError, OpenError, OptionsError,
    RecoveryError, StorageError, StorageOp, WriteError,
};
pub use options::{LeakMode, Options, OptionsBuilder, Runner, SyncPolicy};
pub use recovery::RecoveryReport;
pub use scope_alloc_tracker::leak::{GrowingSite, TrendReport};
pub use storage::{DirLock, FileStorage, Storage, LOCK_FILE};

/// The Rust code blocks of the README and of the guides in `docs/`,
/// compiled and run as doctests with warnings denied (copied into a
/// `-D warnings` build they must pass). `test_harness` blocks run their
/// `#[test]` functions. (`alloc-tracker/README.md` is doctested by the
/// library itself.)
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
#[doc(test(attr(deny(warnings))))]
mod readme_doctests {}

#[cfg(doctest)]
#[doc = include_str!("../docs/leak-checks.md")]
#[doc(test(attr(deny(warnings))))]
mod leak_checks_doctests {}

#[cfg(doctest)]
#[doc = include_str!("../docs/reports.md")]
#[doc(test(attr(deny(warnings))))]
mod reports_doctests {}

#[cfg(doctest)]
#[doc = include_str!("../docs/production.md")]
#[doc(test(attr(deny(warnings))))]
mod production_doctests {}

#[cfg(test)]
#[global_allocator]
static GLOBAL: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
    scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
