//! Test helpers: temp dirs, `CrashStorage` (live vs durable bytes, freeze
//! after N syncs), `FaultyStorage` (I/O error countdown); `main_job`: the
//! main binary run as a subprocess.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod main_job;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ckptdb::scopes::STORAGE;
use ckptdb::{
    DirLock, LockError, Options, OptionsBuilder, Runner, Storage, StorageError, StorageOp,
    SyncPolicy,
};

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ckptdb-test-")
        .tempdir()
        .expect("tempdir")
}

/// Manual runner, strict leak mode, small segments.
pub fn test_options() -> OptionsBuilder {
    Options::builder()
        .runner(Runner::Manual)
        .leak_mode(ckptdb::LeakMode::Strict)
        .sync(SyncPolicy::EveryWrite)
        .wal_segment_bytes(64 << 10)
        .max_incrementals(3)
        .leak_quiescence(std::time::Duration::from_millis(200))
}

/// Each `Db` checkpoints in its own `checkpoint#n` scope, so runs of
/// different tests do not see each other; but tests read process-wide
/// figures (the `checkpoint` and `memtable` kinds', `recovery`'s) or switch
/// process-wide state (sampling), and the engine's tests share one process:
/// every test of the `engine` binary that opens a database takes this lock.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Names of files in `dir`, sorted.
pub fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Checkpoint-related files (data files, manifest, temps), sorted.
pub fn checkpoint_files(dir: &Path) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|n| n.starts_with("ckpt-") || n.starts_with("MANIFEST"))
        .collect()
}

// === CrashStorage ===

#[derive(Debug, Default, Clone)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct CrashState {
    inodes: Vec<Inode>,
    live: BTreeMap<PathBuf, usize>,
    durable: BTreeMap<PathBuf, usize>,
    syncs: u64,
    freeze_after: Option<u64>,
}

impl CrashState {
    fn frozen(&self) -> bool {
        self.freeze_after.is_some_and(|n| self.syncs >= n)
    }
}

/// Its state is charged to the engine's storage scope (it outlives
/// whichever checkpoint run wrote it), as `FileStorage` does.
///
/// In-memory storage that keeps live and durable bytes apart: file content
/// becomes durable at `sync`, names at `sync_dir`. After `freeze_after(n)`
/// syncs, nothing more becomes durable (the power is cut, the process
/// goes on). `crash()` returns the storage a reboot would find.
///
/// Directory locks live in memory, per storage: `crash()` returns a storage
/// with none held (the crashed process and its locks are gone).
#[derive(Debug, Default)]
pub struct CrashStorage {
    state: Mutex<CrashState>,
    locks: Arc<Mutex<BTreeSet<PathBuf>>>,
}

/// A directory lock of a `CrashStorage`, released on drop.
#[derive(Debug)]
struct CrashLock {
    locks: Arc<Mutex<BTreeSet<PathBuf>>>,
    dir: PathBuf,
}

impl Drop for CrashLock {
    fn drop(&mut self) {
        self.locks.lock().unwrap().remove(&self.dir);
    }
}

fn not_found(op: StorageOp, path: &Path) -> StorageError {
    StorageError::new(op, path, io::ErrorKind::NotFound.into())
}

impl CrashStorage {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Only the first `n` syncs (file or directory, counted from creation)
    /// take effect.
    pub fn freeze_after(&self, n: u64) {
        self.state.lock().unwrap().freeze_after = Some(n);
    }

    pub fn syncs(&self) -> u64 {
        self.state.lock().unwrap().syncs
    }

    pub fn is_frozen(&self) -> bool {
        self.state.lock().unwrap().frozen()
    }

    /// The storage after a crash: durable names with their durable bytes.
    pub fn crash(&self) -> Arc<CrashStorage> {
        let st = self.state.lock().unwrap();
        let mut next = CrashState::default();
        for (path, &id) in &st.durable {
            let bytes = st.inodes[id].durable.clone();
            next.inodes.push(Inode {
                live: bytes.clone(),
                durable: bytes,
            });
            let new_id = next.inodes.len() - 1;
            next.live.insert(path.clone(), new_id);
            next.durable.insert(path.clone(), new_id);
        }
        Arc::new(CrashStorage {
            state: Mutex::new(next),
            locks: Arc::default(),
        })
    }

    /// (live, durable) length of `path`'s content.
    pub fn lens(&self, path: &Path) -> Option<(usize, usize)> {
        let st = self.state.lock().unwrap();
        st.live
            .get(path)
            .map(|&id| (st.inodes[id].live.len(), st.inodes[id].durable.len()))
    }
}

impl Storage for CrashStorage {
    fn create_dir_all(&self, _dir: &Path) -> Result<(), StorageError> {
        STORAGE.in_scope(|| Ok(()))
    }
    fn list(&self, dir: &Path) -> Result<Vec<String>, StorageError> {
        STORAGE.in_scope(|| {
            let st = self.state.lock().unwrap();
            Ok(st
                .live
                .keys()
                .filter(|p| p.parent() == Some(dir))
                .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
                .collect())
        })
    }
    fn exists(&self, path: &Path) -> Result<bool, StorageError> {
        STORAGE.in_scope(|| Ok(self.state.lock().unwrap().live.contains_key(path)))
    }
    fn read(&self, path: &Path) -> Result<Vec<u8>, StorageError> {
        STORAGE.in_scope(|| {
            let st = self.state.lock().unwrap();
            let id = *st
                .live
                .get(path)
                .ok_or_else(|| not_found(StorageOp::Read, path))?;
            Ok(st.inodes[id].live.clone())
        })
    }
    fn create(&self, path: &Path) -> Result<(), StorageError> {
        STORAGE.in_scope(|| {
            let mut st = self.state.lock().unwrap();
            st.inodes.push(Inode::default());
            let id = st.inodes.len() - 1;
            st.live.insert(path.to_path_buf(), id);
            Ok(())
        })
    }
    fn append(&self, path: &Path, data: &[u8]) -> Result<(), StorageError> {
        STORAGE.in_scope(|| {
            let mut st = self.state.lock().unwrap();
            let id = *st
                .live
                .get(path)
                .ok_or_else(|| not_found(StorageOp::Append, path))?;
            st.inodes[id].live.extend_from_slice(data);
            Ok(())
        })
    }
    fn sync(&self, path: &Path) -> Result<(), StorageError> {
        STORAGE.in_scope(|| {
            let mut st = self.state.lock().unwrap();
            let id = *st
                .live
                .get(path)
                .ok_or_else(|| not_found(StorageOp::Sync, path))?;
            if !st.frozen() {
                st.inodes[id].durable = st.inodes[id].live.clone();
            }
            st.syncs += 1;
            Ok(())
        })
    }
    fn sync_dir(&self, dir: &Path) -> Result<(), StorageError> {
        STORAGE.in_scope(|| {
            let mut st = self.state.lock().unwrap();
            if !st.frozen() {
                let st = &mut *st;
                st.durable.retain(|p, _| p.parent() != Some(dir));
                for (p, &id) in &st.live {
                    if p.parent() == Some(dir) {
                        st.durable.insert(p.clone(), id);
                    }
                }
            }
            st.syncs += 1;
            Ok(())
        })
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        STORAGE.in_scope(|| {
            let mut st = self.state.lock().unwrap();
            let id = st
                .live
                .remove(from)
                .ok_or_else(|| not_found(StorageOp::Rename, from))?;
            st.live.insert(to.to_path_buf(), id);
            Ok(())
        })
    }
    fn remove(&self, path: &Path) -> Result<(), StorageError> {
        STORAGE.in_scope(|| {
            self.state.lock().unwrap().live.remove(path);
            Ok(())
        })
    }
    fn truncate(&self, path: &Path, len: u64) -> Result<(), StorageError> {
        STORAGE.in_scope(|| {
            let mut st = self.state.lock().unwrap();
            let id = *st
                .live
                .get(path)
                .ok_or_else(|| not_found(StorageOp::Truncate, path))?;
            st.inodes[id].live.truncate(len as usize);
            Ok(())
        })
    }
    fn lock_dir(&self, dir: &Path) -> Result<DirLock, LockError> {
        STORAGE.in_scope(|| {
            if !self.locks.lock().unwrap().insert(dir.to_path_buf()) {
                return Err(LockError::Held {
                    holder: Some(std::process::id()),
                });
            }
            Ok(DirLock::new(CrashLock {
                locks: Arc::clone(&self.locks),
                dir: dir.to_path_buf(),
            }))
        })
    }
}

// === FaultyStorage ===

/// Wraps a storage; after `fail_after(n)` more operations (optionally only
/// those whose path contains a substring), every such operation fails with
/// an I/O error until `heal()`.
#[derive(Debug)]
pub struct FaultyStorage {
    inner: Arc<dyn Storage>,
    countdown: AtomicU64,
    armed: AtomicBool,
    filter: Mutex<Option<String>>,
    failures: AtomicU64,
    times: AtomicU64,
}

impl FaultyStorage {
    pub fn new(inner: Arc<dyn Storage>) -> Arc<Self> {
        Arc::new(FaultyStorage {
            inner,
            countdown: AtomicU64::new(0),
            armed: AtomicBool::new(false),
            filter: Mutex::new(None),
            failures: AtomicU64::new(0),
            times: AtomicU64::new(0),
        })
    }

    /// After `n` more matching operations, the next `times` matching ones
    /// fail.
    pub fn fail_after(&self, n: u64, times: u64, path_contains: Option<&str>) {
        *self.filter.lock().unwrap() = path_contains.map(str::to_owned);
        self.countdown.store(n, Ordering::SeqCst);
        self.times.store(times, Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
    }

    pub fn heal(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::SeqCst)
    }

    fn check(&self, op: StorageOp, path: &Path) -> Result<(), StorageError> {
        if !self.armed.load(Ordering::SeqCst) {
            return Ok(());
        }
        if let Some(f) = &*self.filter.lock().unwrap() {
            if !path.to_string_lossy().contains(f.as_str()) {
                return Ok(());
            }
        }
        if self
            .countdown
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Ok(());
        }
        if self
            .times
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            return Ok(());
        }
        self.failures.fetch_add(1, Ordering::SeqCst);
        let e = ckptdb::scopes::ERRORS
            .in_scope(|| io::Error::other("FaultyStorage: injected I/O error"));
        Err(StorageError::new(op, path, e))
    }
}

impl Storage for FaultyStorage {
    fn create_dir_all(&self, dir: &Path) -> Result<(), StorageError> {
        self.check(StorageOp::CreateDir, dir)?;
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> Result<Vec<String>, StorageError> {
        self.check(StorageOp::List, dir)?;
        self.inner.list(dir)
    }
    fn exists(&self, path: &Path) -> Result<bool, StorageError> {
        self.inner.exists(path)
    }
    fn read(&self, path: &Path) -> Result<Vec<u8>, StorageError> {
        self.check(StorageOp::Read, path)?;
        self.inner.read(path)
    }
    fn create(&self, path: &Path) -> Result<(), StorageError> {
        self.check(StorageOp::Create, path)?;
        self.inner.create(path)
    }
    fn append(&self, path: &Path, data: &[u8]) -> Result<(), StorageError> {
        self.check(StorageOp::Append, path)?;
        self.inner.append(path, data)
    }
    fn sync(&self, path: &Path) -> Result<(), StorageError> {
        self.check(StorageOp::Sync, path)?;
        self.inner.sync(path)
    }
    fn sync_dir(&self, dir: &Path) -> Result<(), StorageError> {
        self.check(StorageOp::SyncDir, dir)?;
        self.inner.sync_dir(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        self.check(StorageOp::Rename, to)?;
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> Result<(), StorageError> {
        self.check(StorageOp::Remove, path)?;
        self.inner.remove(path)
    }
    fn truncate(&self, path: &Path, len: u64) -> Result<(), StorageError> {
        self.check(StorageOp::Truncate, path)?;
        self.inner.truncate(path, len)
    }
    /// Not counted (the countdowns of existing tests predate the lock).
    fn lock_dir(&self, dir: &Path) -> Result<DirLock, LockError> {
        self.inner.lock_dir(dir)
    }
}
