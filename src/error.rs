//! Error types, one per operation, converging into [`enum@Error`].
//!
//! Every error that carries heap data (paths, file lists) is built in the
//! [`ERRORS`](crate::scopes::ERRORS) scope, because it outlives the
//! operation that failed: an error built inside a checkpoint run would
//! otherwise count as a leak of that run.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::checkpoint::leak_guard::LeakReport;
use crate::scopes::ERRORS;

/// The I/O operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageOp {
    /// Reading a file.
    Read,
    /// Creating or truncating a file.
    Create,
    /// Appending to a file.
    Append,
    /// `fsync` of a file.
    Sync,
    /// `fsync` of a directory.
    SyncDir,
    /// Renaming a file.
    Rename,
    /// Removing a file.
    Remove,
    /// Listing a directory.
    List,
    /// Truncating a file to a length.
    Truncate,
    /// Creating a directory.
    CreateDir,
    /// Reading metadata.
    Metadata,
    /// Taking the directory lock.
    Lock,
}

impl fmt::Display for StorageOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            StorageOp::Read => "read",
            StorageOp::Create => "create",
            StorageOp::Append => "append to",
            StorageOp::Sync => "fsync",
            StorageOp::SyncDir => "fsync directory",
            StorageOp::Rename => "rename",
            StorageOp::Remove => "remove",
            StorageOp::List => "list",
            StorageOp::Truncate => "truncate",
            StorageOp::CreateDir => "create directory",
            StorageOp::Metadata => "stat",
            StorageOp::Lock => "lock",
        };
        f.write_str(s)
    }
}

/// An I/O operation of the [`Storage`](crate::Storage) layer failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {}: {source}", path.display())]
#[non_exhaustive]
pub struct StorageError {
    /// What was being done.
    pub op: StorageOp,
    /// The file or directory.
    pub path: PathBuf,
    /// The underlying error.
    #[source]
    pub source: io::Error,
}

impl StorageError {
    /// Builds the error (in the [`ERRORS`] scope).
    pub fn new(op: StorageOp, path: &Path, source: io::Error) -> Self {
        crate::scopes::within(&ERRORS, || StorageError {
            op,
            path: path.to_path_buf(),
            source,
        })
    }
}

/// A file failed validation: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} at offset {offset}: {reason}", path.display())]
#[non_exhaustive]
pub struct Corruption {
    /// The corrupt file.
    pub path: PathBuf,
    /// Byte offset in the file where validation failed.
    pub offset: u64,
    /// What was wrong.
    pub reason: &'static str,
}

impl Corruption {
    /// Builds the value (in the [`ERRORS`] scope).
    pub fn new(path: &Path, offset: u64, reason: &'static str) -> Self {
        crate::scopes::within(&ERRORS, || Corruption {
            path: path.to_path_buf(),
            offset,
            reason,
        })
    }
}

/// Invalid [`Options`](crate::Options).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// A size or count option is zero or out of its range.
    #[error("option `{name}` is {value}, expected {expected}")]
    OutOfRange {
        /// The option's name.
        name: &'static str,
        /// The value given.
        value: u64,
        /// The valid range, in words.
        expected: &'static str,
    },
    /// Two options contradict each other.
    #[error("options conflict: {0}")]
    Conflict(&'static str),
}

/// Opening a database failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The options were rejected.
    #[error("invalid options: {0}")]
    InvalidOptions(#[from] OptionsError),
    /// Another open [`Db`](crate::Db), in this process or another, holds the
    /// directory's lock. Nothing was read or changed.
    #[error("database directory {} is already open{}", dir.display(), Holder(*holder))]
    Locked {
        /// The database directory.
        dir: PathBuf,
        /// The process id written in the lock file by the holder, if it
        /// could be read.
        holder: Option<u32>,
    },
    /// An I/O error outside recovery proper.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The on-disk state could not be recovered.
    #[error("recovery failed: {0}")]
    Recovery(#[from] RecoveryError),
    /// Strict leak mode ([`LeakMode::Strict`](crate::LeakMode::Strict)),
    /// but `TrackingAlloc` is not this program's `#[global_allocator]`: the
    /// checkpoint leak check would see nothing and pass every run. The
    /// message names the missing line. Nothing was read or changed.
    /// (Production mode opens, logging a warning once.)
    #[error("strict leak mode cannot check checkpoint runs: {0}")]
    TrackerNotInstalled(scope_alloc_tracker::NotInstalled),
    /// The tracker's scope table had no free id for this database's
    /// checkpoint scope instance (`checkpoint#n`). Nothing was read or
    /// changed.
    #[error("no checkpoint scope for this database: {0}")]
    CheckpointScope(scope_alloc_tracker::ScopeError),
    /// The tracker's scope table had no free id for this database's
    /// memtable scope instance (`ckptdb/memtable#n`). Nothing was read or
    /// changed.
    #[error("no memtable scope for this database: {0}")]
    MemtableScope(scope_alloc_tracker::ScopeError),
}

impl OpenError {
    /// Builds [`OpenError::Locked`] (in the [`ERRORS`] scope).
    pub(crate) fn locked(dir: &Path, holder: Option<u32>) -> Self {
        crate::scopes::within(&ERRORS, || OpenError::Locked {
            dir: dir.to_path_buf(),
            holder,
        })
    }
}

/// Formats the lock holder of [`OpenError::Locked`] and [`LockError::Held`].
struct Holder(Option<u32>);

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(pid) => write!(f, " (locked by process {pid})"),
            None => f.write_str(" (locked by an unknown holder)"),
        }
    }
}

/// [`Storage::lock_dir`](crate::Storage::lock_dir) did not take the lock.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Someone else holds it.
    #[error("the directory lock is held{}", Holder(*holder))]
    Held {
        /// The holder's process id, if known.
        holder: Option<u32>,
    },
    /// I/O error creating or locking the lock file.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Recovering the on-disk state failed. Nothing was modified on disk except
/// truncating a torn WAL tail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// I/O error.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The manifest is corrupt or of an unknown version.
    #[error("corrupt manifest: {0}")]
    CorruptManifest(Corruption),
    /// A checkpoint file registered in the manifest is corrupt or missing.
    #[error("corrupt checkpoint: {0}")]
    CorruptCheckpoint(Corruption),
    /// A WAL record is bad and is not a torn tail: it is in a sealed
    /// segment, a valid record follows it, or its checksum matches but its
    /// LSN or payload is wrong (rule in `docs/design.md`, "Recovery
    /// rules"). The offset is the record's start.
    #[error("corrupt WAL: {0}")]
    CorruptWal(Corruption),
}

/// A write (`put`/`delete`) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// I/O error appending or syncing the WAL. The write may or may not be
    /// durable; the database refuses further writes until reopened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A key was empty or longer than the limit.
    #[error("key of {len} bytes is empty or exceeds the limit of {max} bytes")]
    KeyTooLarge {
        /// Key length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A value was longer than the limit.
    #[error("value of {len} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge {
        /// Value length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// An earlier WAL failure poisoned the log; reopen the database.
    #[error("the WAL failed earlier; reopen the database")]
    Poisoned,
    /// The database is closed.
    #[error("the database is closed")]
    Closed,
}

/// Which checkpoint files break the file-leak invariant: after GC at most
/// one base checkpoint plus the incrementals after it may stay registered
/// and on disk (see the crate docs, "Checkpoint files and GC").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FileLeak {
    /// Checkpoint files on disk that the manifest does not register.
    pub unregistered: Vec<String>,
    /// Files registered but missing on disk.
    pub missing: Vec<String>,
    /// More than one base (global/compacted) checkpoint is registered, or
    /// an incremental precedes the base.
    pub bad_chain: bool,
}

impl fmt::Display for FileLeak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "checkpoint file-leak invariant violated: unregistered {:?}, missing {:?}, bad chain: {}",
            self.unregistered, self.missing, self.bad_chain
        )
    }
}

/// A checkpoint run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// I/O error before publication: the run was rolled back, the file set
    /// is what it was before the run, and the data stays in the frozen
    /// memtables for the next run.
    #[error("checkpoint failed before publication (rolled back): {0}")]
    Storage(#[from] StorageError),
    /// The checkpoint was published (it is durable and used by recovery) but
    /// a later step (WAL truncation, deleting stale files) failed. The steps
    /// are idempotent and are retried at the start of the next run.
    #[error("checkpoint up to LSN {published_lsn} was published, but cleanup failed: {source}")]
    Cleanup {
        /// The fence of the published checkpoint.
        published_lsn: u64,
        /// The failure.
        #[source]
        source: StorageError,
    },
    /// A checkpoint file read back during GC is corrupt.
    #[error("corrupt checkpoint: {0}")]
    Corrupt(Corruption),
    /// The run's allocation scope did not drain (strict leak mode).
    #[error("checkpoint run leaked memory: {0}")]
    Leak(Box<LeakReport>),
    /// The file-leak invariant does not hold after GC (strict leak mode).
    #[error("{0}")]
    FileLeak(FileLeak),
    /// The run's `checkpoint` scope (children included) went over the
    /// budget set with
    /// [`OptionsBuilder::checkpoint_budget`](crate::OptionsBuilder::checkpoint_budget)
    /// or [`Db::set_checkpoint_budget`](crate::Db::set_checkpoint_budget).
    /// Seen at a safe point before publication: the run was rolled back
    /// (the file set is what it was before the run) and the data stays in
    /// the frozen memtables for the next run, which retries.
    #[error(
        "checkpoint run over its memory budget of {budget_bytes} B ({} {at}): rolled back",
        if *crossed { format!("went over it before the check {at}; {live_bytes} B live then") } else { format!("{live_bytes} B live in the checkpoint scope at the check") }
    )]
    OverBudget {
        /// The budget, in bytes of the run's own allocations.
        budget_bytes: u64,
        /// Live bytes of the run's scope (with children, above what an
        /// earlier leaking run left) at the check.
        live_bytes: u64,
        /// Whether the scope went over the budget and back under between
        /// two checks (then `live_bytes` may be below the budget).
        crossed: bool,
        /// The safe point: `after collect`, `after encode` (before the
        /// data file is written) or `before publish`.
        at: &'static str,
    },
    /// The database is closed.
    #[error("the database is closed")]
    Closed,
}

/// Any error of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// See [`OpenError`].
    #[error(transparent)]
    Open(#[from] OpenError),
    /// See [`WriteError`].
    #[error(transparent)]
    Write(#[from] WriteError),
    /// See [`CheckpointError`].
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// See [`RecoveryError`].
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    /// See [`StorageError`].
    #[error(transparent)]
    Storage(#[from] StorageError),
}
