//! The [`Db`] handle: open/put/get/delete/scan/close, wiring the WAL, the
//! memtables, the checkpointer and its background runner.
//!
//! - here: the handle: open, the write and read paths, close;
//! - `shared`: the state the handle, the runner and the checkpointer share;
//! - `stats`: the engine's counters and the [`DbStats`] snapshot;
//! - `runner`: the background checkpoint runner.

mod runner;
mod shared;
mod stats;

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;

use crate::checkpoint::budget::MemControl;
use crate::checkpoint::fault::Faults;
use crate::checkpoint::leak_guard;
use crate::checkpoint::{gc, CheckpointKind, CheckpointReport, Checkpointer};
use crate::error::{CheckpointError, FileLeak, LockError, OpenError, StorageError, WriteError};
use crate::options::{LeakMode, Options, Runner};
use crate::recovery::{self, RecoveryReport};
use crate::scopes::{CheckpointScopes, MemtableScope, ENGINE};
use crate::storage::DirLock;
use crate::trend::Trends;
use crate::wal::record::Op;
use crate::wal::Wal;
use runner::spawn_runner;
pub(crate) use shared::{CkptState, Inner, State};
pub(crate) use stats::Counters;
pub use stats::DbStats;

/// An open database.
///
/// ```
/// # #[global_allocator]
/// # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
/// #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
/// # fn main() -> Result<(), ckptdb::Error> {
/// use ckptdb::{CheckpointKind, Db, Options, Runner};
/// let dir = std::env::temp_dir().join(format!("ckptdb-doc-{}", std::process::id()));
/// let db = Db::open(&dir, Options::builder().runner(Runner::Manual).build().map_err(ckptdb::OpenError::from)?)?;
/// db.put(b"k", b"v")?;
/// let report = db.checkpoint_now(CheckpointKind::Incremental)?;
/// assert!(report.drained());
/// assert_eq!(db.get(b"k").as_deref(), Some(&b"v"[..]));
/// db.close()?;
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Db {
    inner: Arc<Inner>,
    runner: Option<JoinHandle<()>>,
    recovery: RecoveryReport,
    /// Held for the life of the handle; dropped (released) after
    /// [`Drop`] has stopped the runner and synced the WAL.
    _lock: DirLock,
}

impl Db {
    /// Opens (creating if needed) the database in `dir` and recovers it.
    ///
    /// The directory is locked (the [`LOCK`](crate::LOCK_FILE) file) before
    /// anything is read, until the `Db` is closed or dropped: one `Db` per
    /// directory at a time, in this process or any other.
    ///
    /// Its checkpoint runs are charged to an instance of the `checkpoint`
    /// scope of its own ([`checkpoint_scope`](Self::checkpoint_scope)).
    /// The leak check needs `TrackingAlloc` as the program's
    /// `#[global_allocator]`: without it, strict leak mode refuses to open
    /// and production mode logs a warning (once per process) and opens,
    /// its runs reported [`Drain::Unchecked`](crate::Drain::Unchecked).
    ///
    /// # Errors
    /// [`OpenError::Locked`] if another `Db` has the directory open;
    /// [`OpenError::TrackerNotInstalled`] in strict leak mode without the
    /// tracker; otherwise I/O, or recovery finding corruption (naming the
    /// file and offset).
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Db, OpenError> {
        let dir = dir.as_ref();
        if let Err(missing) = leak_guard::tracker_installed() {
            match options.leak_mode {
                LeakMode::Strict => return Err(OpenError::TrackerNotInstalled(missing)),
                LeakMode::Production => warn_not_installed_once(missing),
            }
        }
        let ckpt_scopes = CheckpointScopes::for_new_db().map_err(OpenError::CheckpointScope)?;
        let memtable = MemtableScope::for_new_db().map_err(OpenError::MemtableScope)?;
        let memtable_id = memtable.id;
        let storage = Arc::clone(&options.storage);
        storage.create_dir_all(dir)?;
        let lock = storage.lock_dir(dir).map_err(|e| match e {
            LockError::Held { holder } => OpenError::locked(dir, holder),
            LockError::Storage(e) => OpenError::Storage(e),
        })?;
        let rec = recovery::recover(&*storage, dir, memtable_id)?;
        let wal = Wal::resume(
            Arc::clone(&storage),
            dir,
            rec.wal,
            options.sync,
            options.wal_segment_bytes,
        )?;
        let faults: Arc<Faults> = Arc::clone(&options.faults);
        let mem = MemControl::new(&options, memtable);
        let gc_pending = gc::incrementals(&rec.manifest) > options.max_incrementals;
        let trends = crate::scopes::within(&ENGINE, || Trends::new(&options));
        let inner = crate::scopes::within(&ENGINE, || {
            Arc::new(Inner {
                dir: dir.to_path_buf(),
                opts: options,
                storage,
                wal: Mutex::new(wal),
                state: RwLock::new(State {
                    active: rec.active,
                    frozen: Vec::new(),
                    base: crate::scopes::within(memtable_id, || Arc::new(rec.base)),
                }),
                ckpt: Mutex::new(CkptState {
                    manifest: rec.manifest,
                    cleanup_pending: true,
                    gc_pending,
                }),
                faults,
                ckpt_scopes,
                stats: Counters::default(),
                mem,
                trends,
                closed: AtomicBool::new(false),
                wake: (Mutex::new(()), Condvar::new()),
            })
        });
        inner.mem.rebaseline(inner.dirty_bytes_now());
        let runner = match inner.opts.runner {
            Runner::Background => Some(crate::scopes::within(&ENGINE, || {
                spawn_runner(Arc::clone(&inner))
            })),
            Runner::Manual => None,
        };
        let runner = runner.transpose().map_err(|e| {
            OpenError::Storage(StorageError::new(crate::error::StorageOp::Create, dir, e))
        })?;
        Ok(Db {
            inner,
            runner,
            recovery: rec.report,
            _lock: lock,
        })
    }

    fn check_key(&self, key: &[u8]) -> Result<(), WriteError> {
        let max = self.inner.opts.max_key_len;
        if key.is_empty() || key.len() > max {
            return Err(WriteError::KeyTooLarge {
                len: key.len(),
                max,
            });
        }
        Ok(())
    }

    fn write(&self, key: &[u8], value: Option<&[u8]>) -> Result<u64, WriteError> {
        self.check_key(key)?;
        if let Some(v) = value {
            let max = self.inner.opts.max_value_len;
            if v.len() > max {
                return Err(WriteError::ValueTooLarge { len: v.len(), max });
            }
        }
        let inner = &*self.inner;
        if inner.is_closed() {
            return Err(WriteError::Closed);
        }
        // Over the memtable ceiling: wait (bounded) for a run to drain it,
        // holding no lock.
        inner
            .mem
            .throttle(|| inner.wake_runner(), || inner.is_closed());
        let mut wal = inner.wal.lock().unwrap_or_else(|e| e.into_inner());
        if wal.is_poisoned() {
            return Err(WriteError::Poisoned);
        }
        let op = match value {
            Some(value) => Op::Put { key, value },
            None => Op::Delete { key },
        };
        let lsn = wal.append(&op)?;
        // Still under the WAL lock: memtable order is LSN order, and a
        // checkpoint fence sees either both the record and the entry or
        // neither.
        let mut st = inner.state.write().unwrap_or_else(|e| e.into_inner());
        crate::scopes::within(inner.mem.memtable_scope(), || {
            st.active
                .insert(key.to_vec(), value.map(<[u8]>::to_vec), lsn)
        });
        let dirty = Inner::dirty_bytes(&st);
        drop(st);
        drop(wal);
        if dirty >= inner.opts.checkpoint_dirty_bytes || inner.mem.memtable_over_budget() {
            inner.wake_runner();
        }
        Ok(lsn)
    }

    /// Sets `key` to `value`. Returns the write's LSN. Durable when it
    /// returns under [`SyncPolicy::EveryWrite`](crate::SyncPolicy::EveryWrite); otherwise once
    /// [`durable_lsn`](Self::durable_lsn) reaches the LSN.
    ///
    /// # Errors
    /// [`WriteError`].
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<u64, WriteError> {
        self.write(key, Some(value))
    }

    /// Removes `key` (a tombstone). Returns the write's LSN.
    ///
    /// # Errors
    /// [`WriteError`].
    pub fn delete(&self, key: &[u8]) -> Result<u64, WriteError> {
        self.write(key, None)
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let st = self.inner.state.read().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = st.active.get(key) {
            return e.value.clone();
        }
        for m in st.frozen.iter().rev() {
            if let Some(e) = m.get(key) {
                return e.value.clone();
            }
        }
        st.base.get(key).cloned()
    }

    /// Key/value pairs with keys in `range`, in key order. A reversed or
    /// empty range (`b"z".to_vec()..b"a".to_vec()`) gives an empty result.
    pub fn scan<R: RangeBounds<Vec<u8>>>(&self, range: R) -> Vec<(Vec<u8>, Vec<u8>)> {
        fn bound(b: Bound<&Vec<u8>>) -> Bound<&[u8]> {
            match b {
                Bound::Included(k) => Bound::Included(k.as_slice()),
                Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
                Bound::Unbounded => Bound::Unbounded,
            }
        }
        let (start, end) = (bound(range.start_bound()), bound(range.end_bound()));
        if crate::memtable::is_empty_range(start, end) {
            return Vec::new();
        }
        let st = self.inner.state.read().unwrap_or_else(|e| e.into_inner());
        let mut merged: BTreeMap<&[u8], Option<&[u8]>> = st
            .base
            .range::<[u8], _>((start, end))
            .map(|(k, v)| (k.as_slice(), Some(v.as_slice())))
            .collect();
        for m in st
            .frozen
            .iter()
            .map(|m| &**m)
            .chain(std::iter::once(&st.active))
        {
            for (k, e) in m.range(start, end) {
                merged.insert(k, e.value.as_deref());
            }
        }
        merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_vec(), v.to_vec())))
            .collect()
    }

    /// Fsyncs the WAL; returns the durable LSN.
    ///
    /// # Errors
    /// [`WriteError::Storage`].
    pub fn sync(&self) -> Result<u64, WriteError> {
        let mut wal = self.inner.wal.lock().unwrap_or_else(|e| e.into_inner());
        wal.sync()?;
        Ok(wal.synced_lsn())
    }

    /// LSN of the last write known durable.
    pub fn durable_lsn(&self) -> u64 {
        let wal = self.inner.wal.lock().unwrap_or_else(|e| e.into_inner());
        wal.synced_lsn()
    }

    /// Runs a checkpoint now (waiting for a background run in progress)
    /// and returns its report.
    ///
    /// # Errors
    /// [`CheckpointError`].
    pub fn checkpoint_now(
        &self,
        kind: CheckpointKind,
    ) -> Result<CheckpointReport, CheckpointError> {
        self.checkpointer().begin(kind)?.finish()
    }

    /// Whether this database's memtable scope ([`memtable_scope`](Self::memtable_scope))
    /// is over the memtable budget
    /// ([`OptionsBuilder::memtable_budget`](crate::OptionsBuilder::memtable_budget)):
    /// a checkpoint run is due. Two relaxed loads: for owners that run
    /// checkpoints themselves ([`Runner::Manual`]); the background runner
    /// acts on it by itself. `false` without a budget.
    pub fn memtable_over_budget(&self) -> bool {
        self.inner.mem.memtable_over_budget()
    }

    /// Sets (`Some`), changes or removes (`None`) the checkpoint budget
    /// ([`OptionsBuilder::checkpoint_budget`](crate::OptionsBuilder::checkpoint_budget))
    /// from the next run on.
    pub fn set_checkpoint_budget(&self, bytes: Option<u64>) {
        self.inner
            .mem
            .set_checkpoint_budget(bytes.filter(|b| *b > 0));
    }

    /// The checkpointer, to drive a run step by step.
    pub fn checkpointer(&self) -> Checkpointer<'_> {
        Checkpointer { inner: &self.inner }
    }

    /// Names of the registered checkpoint files, base first.
    pub fn checkpoint_files(&self) -> Vec<String> {
        let ck = self.inner.ckpt.lock().unwrap_or_else(|e| e.into_inner());
        ck.manifest.chain.iter().map(|m| m.name()).collect()
    }

    /// Checks the file-leak invariant now. While a GC deferred over the
    /// checkpoint budget is pending, the chain may hold more than
    /// `max_incrementals` incrementals.
    ///
    /// # Errors
    /// The I/O error of listing the directory; `Ok(Err(_))` is a violation.
    pub fn check_file_invariant(&self) -> Result<Result<(), FileLeak>, StorageError> {
        let ck = self.inner.ckpt.lock().unwrap_or_else(|e| e.into_inner());
        gc::check_invariant(
            &*self.inner.storage,
            &self.inner.dir,
            &ck.manifest,
            gc::allowed_incrementals(&ck, self.inner.opts.max_incrementals),
        )
    }

    /// What recovery did at open.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// This database's instance of the [`CHECKPOINT`](crate::scopes::CHECKPOINT)
    /// scope (`checkpoint#n`; its path is [`ScopeId::path`]), where its
    /// checkpoint runs are charged, phases in the scopes below it
    /// (`checkpoint#n/write`, ...). Each run's leak check covers this
    /// subtree only. Valid while the `Db` lives: the instance is released
    /// when the `Db` is closed or dropped, and its id may then be reused.
    ///
    /// [`ScopeId::path`]: scope_alloc_tracker::ScopeId::path
    pub fn checkpoint_scope(&self) -> scope_alloc_tracker::ScopeId {
        self.inner.ckpt_scopes.run
    }

    /// This database's instance of the [`MEMTABLE`](crate::scopes::MEMTABLE)
    /// scope (`ckptdb/memtable#n`), where its active and frozen memtables
    /// and its checkpointed base table are charged, and where its memtable
    /// budget is set: another database's memtable never counts in it.
    /// Valid while the `Db` lives, like
    /// [`checkpoint_scope`](Self::checkpoint_scope).
    pub fn memtable_scope(&self) -> scope_alloc_tracker::ScopeId {
        self.inner.mem.memtable_scope()
    }
    fn shutdown(&mut self) -> Result<(), StorageError> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner.wake.1.notify_all();
        if let Some(h) = self.runner.take() {
            let _ = h.join();
        }
        let mut wal = self.inner.wal.lock().unwrap_or_else(|e| e.into_inner());
        if wal.is_poisoned() {
            return Ok(());
        }
        wal.sync()
    }

    /// Stops the runner, syncs the WAL and releases the directory lock.
    ///
    /// It takes the handle: a closed `Db` cannot be used at all, so there is
    /// no "closed" state for callers to run into.
    ///
    /// ```compile_fail,E0382
    /// # fn f(db: ckptdb::Db) {
    /// db.close().unwrap();
    /// db.get(b"k"); // error[E0382]: borrow of moved value: `db`
    /// # }
    /// ```
    ///
    /// # Errors
    /// The final WAL sync failing.
    pub fn close(mut self) -> Result<(), crate::Error> {
        self.shutdown().map_err(crate::Error::from)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "WAL sync at drop failed");
        }
    }
}
/// Production mode without the tracker: said once per process, at the
/// first such open.
fn warn_not_installed_once(missing: scope_alloc_tracker::NotInstalled) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing::warn!(
            "{missing}; checkpoint runs of production-mode databases are NOT leak-checked \
             (reported as unchecked)"
        );
    });
}
