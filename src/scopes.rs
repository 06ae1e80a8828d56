//! The allocation scopes of the engine, one per subsystem.
//!
//! Every allocation the engine makes is charged to one of these scopes, so a
//! [`scope_alloc_tracker::Snapshot`] shows the engine's memory by subsystem:
//!
//! ```text
//! ckptdb                      Db handle, manifest state kept in memory
//! ├── wal                     record encoding, segment bookkeeping
//! ├── memtable                the kind: one instance per open database
//! │   └── memtable#n          one database's active/frozen memtables and checkpointed base
//! ├── recovery                open-time parsing (transient)
//! ├── storage                 open file handles of FileStorage
//! ├── errors                  error values (they outlive the operation that failed)
//! └── checkpoint-results      reports and anything a run hands back to its caller
//! checkpoint                  the kind: one instance per open database
//! └── checkpoint#n            one database's runs; must drain to zero after each run
//!     ├── collect             choosing entries up to the fence
//!     ├── write               encoding and writing data files (and helper threads)
//!     ├── publish             manifest encoding and publication
//!     └── gc                  merging old incrementals into a compacted checkpoint
//! ```
//!
//! Each [`Db`](crate::Db) runs its checkpoints in its own instance of
//! [`CHECKPOINT`] (`checkpoint#n`, made at open, released when the `Db` is
//! dropped), its phases in the transient scopes the static children
//! ([`CKPT_COLLECT`], ...) stand for below it (`checkpoint#n/collect`). Two
//! databases in one process therefore checkpoint concurrently, and each
//! run's leak check sees only its own database. `CHECKPOINT`'s figures with
//! children are the sum over every database.
//!
//! Likewise each `Db` keeps its memtables in its own instance of
//! [`MEMTABLE`] (`ckptdb/memtable#n`, [`Db::memtable_scope`]), so that its
//! memtable budget counts its own memtable only; `MEMTABLE`'s figures with
//! children are the sum over every database (the kind itself holds
//! nothing, except the table `ckptdb inspect` recovers without a `Db`).
//!
//! [`Db::memtable_scope`]: crate::Db::memtable_scope
//!
//! [`CHECKPOINT`] is deliberately not under [`ENGINE`]: its subtree must hold
//! only what a run allocates, so that "live bytes back to zero" is exactly
//! the leak check. Whatever outlives a run is built in [`CHECKPOINT_RESULTS`],
//! [`MEMTABLE`], [`WAL`] or [`ENGINE`].

use scope_alloc_tracker::Scope;

/// Root of the engine's long-lived memory.
pub static ENGINE: Scope = Scope::new("ckptdb");
/// The write-ahead log.
pub static WAL: Scope = Scope::child_of(&ENGINE, "wal");
/// Memtables and the checkpointed base table: each database keeps its own
/// in its own instance of it (`memtable#n`); its figures with children sum
/// every database's.
pub static MEMTABLE: Scope = Scope::child_of(&ENGINE, "memtable");
/// Open-time recovery (should drain once `open` returns).
pub static RECOVERY: Scope = Scope::child_of(&ENGINE, "recovery");
/// The storage layer's own state (open file handles).
pub static STORAGE: Scope = Scope::child_of(&ENGINE, "storage");
/// Error values, which outlive the operation that made them.
pub static ERRORS: Scope = Scope::child_of(&ENGINE, "errors");
/// Results of checkpoint runs that outlive the run (reports, new manifest
/// state). A sibling of [`CHECKPOINT`], never below it.
pub static CHECKPOINT_RESULTS: Scope = Scope::child_of(&ENGINE, "checkpoint-results");

/// The checkpoint runs: each database runs in its own instance of it
/// (`checkpoint#n`), whose live bytes (with children) must be zero after
/// every run. Its figures with children sum every database's runs.
pub static CHECKPOINT: Scope = Scope::new("checkpoint");
/// Phase: picking the entries up to the fence.
pub static CKPT_COLLECT: Scope = Scope::child_of(&CHECKPOINT, "collect");
/// Phase: encoding and writing the data file(s), helper threads included.
pub static CKPT_WRITE: Scope = Scope::child_of(&CHECKPOINT, "write");
/// Phase: encoding and publishing the manifest.
pub static CKPT_PUBLISH: Scope = Scope::child_of(&CHECKPOINT, "publish");
/// Phase: checkpoint garbage collection (compaction of incrementals).
pub static CKPT_GC: Scope = Scope::child_of(&CHECKPOINT, "gc");

use std::sync::atomic::{AtomicBool, Ordering};

use scope_alloc_tracker::{ScopeError, ScopeGuard, ScopeId, ScopeInstance};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the engine's scope entering on or off (on by default). Off, the
/// tracker still counts every allocation (as unscoped), which is what the
/// benchmark compares against; the leak check then sees nothing.
#[doc(hidden)]
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Runs `f` in `scope` (unless scopes are disabled): a static `&Scope`
/// (resolved in context, see [`Scope::current_id`]) or an explicit
/// [`ScopeId`], entered as given.
#[inline]
pub(crate) fn within<R>(scope: impl Into<ScopeId>, f: impl FnOnce() -> R) -> R {
    if ENABLED.load(Ordering::Relaxed) {
        scope.into().in_scope(f)
    } else {
        f()
    }
}

/// Enters `scope` until the guard drops (unless scopes are disabled).
#[inline]
pub(crate) fn enter(scope: impl Into<ScopeId>) -> Option<ScopeGuard> {
    ENABLED
        .load(Ordering::Relaxed)
        .then(|| scope.into().enter())
}

/// The scopes one database's checkpoint runs are charged to: its own
/// instance of [`CHECKPOINT`] and the phase scopes below that instance.
/// Held by the database for its life; dropping it releases the instance
/// (which clears the checkpoint budget armed on it).
#[derive(Debug)]
pub(crate) struct CheckpointScopes {
    /// The run (`checkpoint#n`); must drain after each run.
    pub(crate) run: ScopeId,
    /// Phase: picking the entries up to the fence (`checkpoint#n/collect`).
    pub(crate) collect: ScopeId,
    /// Phase: encoding and writing data files.
    pub(crate) write: ScopeId,
    /// Phase: manifest publication.
    pub(crate) publish: ScopeId,
    /// Phase: GC.
    pub(crate) gc: ScopeId,
    /// Owns `run` (and the scopes below it): released on drop.
    _instance: ScopeInstance,
}

impl CheckpointScopes {
    /// The scopes a new database runs its checkpoints in. This is the one
    /// place that picks them: a fresh instance of [`CHECKPOINT`] per
    /// database, so that concurrent runs of different databases never see
    /// each other's allocations. The phase scopes are made below it here,
    /// before any leak check begins, so that every check covers (and
    /// records sites in) the whole subtree from its start.
    ///
    /// # Errors
    /// [`ScopeError::TableFull`] when the tracker's scope table has no free
    /// id.
    pub(crate) fn for_new_db() -> Result<Self, ScopeError> {
        let instance = CHECKPOINT.instance()?;
        let [collect, write, publish, gc] = instance
            .in_scope(|| [&CKPT_COLLECT, &CKPT_WRITE, &CKPT_PUBLISH, &CKPT_GC].map(ScopeId::from));
        Ok(CheckpointScopes {
            run: instance.id(),
            collect,
            write,
            publish,
            gc,
            _instance: instance,
        })
    }
}

/// One database's instance of [`MEMTABLE`] (`ckptdb/memtable#n`), where its
/// memtables and base table are charged and its memtable budget is set.
/// Held by the database for its life; dropping it releases the instance,
/// which clears the budget set on it (drop it after the memtables, so that
/// it is drained and its id recycled at once).
#[derive(Debug)]
pub(crate) struct MemtableScope {
    /// The instance.
    pub(crate) id: ScopeId,
    /// Owns `id`: released on drop.
    _instance: ScopeInstance,
}

impl MemtableScope {
    /// A fresh instance of [`MEMTABLE`] for a new database.
    ///
    /// # Errors
    /// [`ScopeError::TableFull`] when the tracker's scope table has no free
    /// id.
    pub(crate) fn for_new_db() -> Result<Self, ScopeError> {
        let instance = MEMTABLE.instance()?;
        Ok(MemtableScope {
            id: instance.id(),
            _instance: instance,
        })
    }
}
