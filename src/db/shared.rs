//! The engine's shared state: what the handle, the background runner and
//! the checkpointer all read. Below both `db` and `checkpoint`, so that the
//! checkpointer reaches the state without importing the handle that
//! drives it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use super::stats::Counters;
use crate::checkpoint::budget::MemControl;
use crate::checkpoint::fault::Faults;
use crate::checkpoint::file::Manifest;
use crate::checkpoint::global::Base;
use crate::memtable::Memtable;
use crate::options::{Options, Runner};
use crate::scopes::CheckpointScopes;
use crate::storage::Storage;
use crate::trend::Trends;
use crate::wal::Wal;

/// Memtables and the checkpointed base.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) active: Memtable,
    /// Frozen memtables not yet covered by a published checkpoint, oldest
    /// first.
    pub(crate) frozen: Vec<Arc<Memtable>>,
    /// The image at the manifest's checkpoint LSN.
    pub(crate) base: Arc<Base>,
}

/// State owned by the checkpointer; its mutex serialises runs.
#[derive(Debug)]
pub(crate) struct CkptState {
    pub(crate) manifest: Manifest,
    /// Post-publication steps still to do (retried at the next run).
    pub(crate) cleanup_pending: bool,
    /// The chain is longer than `max_incrementals` and waits for the next
    /// run's GC: the last GC was deferred over the checkpoint budget, or
    /// the chain was found so at open. The file-leak invariant's bound on
    /// the chain length waits meanwhile.
    pub(crate) gc_pending: bool,
}
/// Shared engine state.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) opts: Options,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) wal: Mutex<Wal>,
    pub(crate) state: RwLock<State>,
    pub(crate) ckpt: Mutex<CkptState>,
    pub(crate) faults: Arc<Faults>,
    /// Where this database's checkpoint runs are charged: its own
    /// `checkpoint#n` instance, released when the last handle drops.
    pub(crate) ckpt_scopes: CheckpointScopes,
    pub(crate) stats: Counters,
    /// Memory budgets (memtable, checkpoint) and their counters.
    pub(crate) mem: MemControl,
    /// Leak-trend watchers observed after each run.
    pub(crate) trends: Trends,
    pub(super) closed: AtomicBool,
    pub(super) wake: (Mutex<()>, Condvar),
}

impl Inner {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(super) fn dirty_bytes(st: &State) -> u64 {
        (st.active.bytes() + st.frozen.iter().map(|m| m.bytes()).sum::<usize>()) as u64
    }

    /// Accounted bytes of the active and frozen memtables now.
    pub(crate) fn dirty_bytes_now(&self) -> u64 {
        Inner::dirty_bytes(&self.state.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub(super) fn wake_runner(&self) {
        if self.opts.runner == Runner::Background {
            self.wake.1.notify_one();
        }
    }
}
