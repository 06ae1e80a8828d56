//! The allocation scopes of the engine, one per subsystem.
//!
//! Every allocation the engine makes is charged to one of these scopes, so a
//! [`alloc_tracker::Snapshot`] shows the engine's memory by subsystem:
//!
//! ```text
//! ckptdb                      Db handle, manifest state kept in memory
//! ├── wal                     record encoding, segment bookkeeping
//! ├── memtable                active/frozen memtables and the checkpointed base
//! ├── recovery                open-time parsing (transient)
//! //! ├── storage                 open file handles of FileStorage
//! ├── errors                  error values (they outlive the operation that failed)
//! └── checkpoint-results      reports and anything a run hands back to its caller
//! checkpoint                  one checkpoint run; must drain to zero after each run
//! ├── collect                 choosing entries up to the fence
//! ├── write                   encoding and writing data files (and helper threads)
//! ├── publish                 manifest encoding and publication
//! └── gc                      merging old incrementals into a compacted checkpoint
//! ```
//!
//! [`CHECKPOINT`] is deliberately not under [`ENGINE`]: its subtree must hold
//! only what a run allocates, so that "live bytes back to zero" is exactly
//! the leak check. Whatever outlives a run is built in [`CHECKPOINT_RESULTS`],
//! [`MEMTABLE`], [`WAL`] or [`ENGINE`].

use alloc_tracker::Scope;

/// Root of the engine's long-lived memory.
pub static ENGINE: Scope = Scope::new("ckptdb");
/// The write-ahead log.
pub static WAL: Scope = Scope::child_of(&ENGINE, "wal");
/// Memtables and the checkpointed base table.
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

/// One checkpoint run. Its live bytes (with children) must be zero after
/// every run.
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

use alloc_tracker::ScopeGuard;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the engine's scope entering on or off (on by default). Off, the
/// tracker still counts every allocation (as unscoped), which is what the
/// benchmark compares against; the leak check then sees nothing.
#[doc(hidden)]
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Runs `f` in `scope` (unless scopes are disabled).
#[inline]
pub(crate) fn within<R>(scope: &Scope, f: impl FnOnce() -> R) -> R {
    if ENABLED.load(Ordering::Relaxed) {
        scope.in_scope(f)
    } else {
        f()
    }
}

/// Enters `scope` until the guard drops (unless scopes are disabled).
#[inline]
pub(crate) fn enter(scope: &Scope) -> Option<ScopeGuard> {
    ENABLED.load(Ordering::Relaxed).then(|| scope.enter())
}

/// The scopes one database's checkpoint runs are charged to: the run and
/// its phases.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckpointScopes {
    /// The run; must drain after each run.
    pub(crate) run: &'static Scope,
    /// Phase: picking the entries up to the fence.
    pub(crate) collect: &'static Scope,
    /// Phase: encoding and writing data files.
    pub(crate) write: &'static Scope,
    /// Phase: manifest publication.
    pub(crate) publish: &'static Scope,
    /// Phase: GC.
    pub(crate) gc: &'static Scope,
}

impl CheckpointScopes {
    /// The scopes a new database runs its checkpoints in. This is the one
    /// place that picks them: every database shares the process-wide
    /// [`CHECKPOINT`] tree today, which is why runs are serialised across
    /// databases (`checkpoint::RUNS`). A scope instance per database
    /// (issue 13, item 4) is to be created here.
    pub(crate) fn for_new_db() -> Self {
        CheckpointScopes {
            run: &CHECKPOINT,
            collect: &CKPT_COLLECT,
            write: &CKPT_WRITE,
            publish: &CKPT_PUBLISH,
            gc: &CKPT_GC,
        }
    }
}
