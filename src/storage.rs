//! The storage seam: all engine I/O goes through [`Storage`].
//!
//! [`FileStorage`] is the real implementation. Tests swap in storages that
//! lose unsynced bytes on a simulated crash or fail I/O on a countdown
//! (`tests/common/mod.rs`), which is how the durability protocol is tested
//! without pulling power cords.
//!
//! The contract a `Storage` must honour is the one written in
//! `docs/design.md` ("Assumptions about the underlying media"): bytes are
//! durable once [`Storage::sync`] returned for their file, a created or
//! renamed name is durable once [`Storage::sync_dir`] returned for its
//! directory, and [`Storage::rename`] atomically replaces the target.
//! [`Storage::lock_dir`] gives one [`Db`](crate::Db) at a time the
//! directory.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{LockError, StorageError, StorageOp};
use crate::scopes::STORAGE;

/// Name of the lock file in a database directory. [`FileStorage`] holds
/// an exclusive `flock` on it while a [`Db`](crate::Db) is open and writes
/// the holder's process id in it (decimal, then a newline).
pub const LOCK_FILE: &str = "LOCK";

/// The exclusive lock on a database directory, taken by
/// [`Storage::lock_dir`]; dropping it releases the lock.
#[must_use = "the directory is unlocked when the DirLock is dropped"]
pub struct DirLock {
    _held: Box<dyn Any + Send + Sync>,
}

impl DirLock {
    /// Wraps whatever keeps the lock held (a locked file handle, a guard
    /// that unlocks in its `Drop`). Dropping the `DirLock` drops it.
    pub fn new(held: impl Any + Send + Sync) -> Self {
        // The lock lives as long as the database, like the storage's own
        // handles.
        crate::scopes::within(&STORAGE, || DirLock {
            _held: Box::new(held),
        })
    }
}

impl fmt::Debug for DirLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirLock").finish_non_exhaustive()
    }
}

/// Path-based file operations used by the engine.
///
/// Implementations must be usable from several threads at once. State an
/// implementation keeps across calls (open handles, caches, in-memory file
/// contents) must be allocated in [`STORAGE`](crate::scopes::STORAGE): the
/// calls run inside whatever scope the engine is in, a checkpoint run
/// included, and state kept from there would count as that run's leak.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> Result<(), StorageError>;
    /// File names (not paths) in `dir`, in no particular order.
    fn list(&self, dir: &Path) -> Result<Vec<String>, StorageError>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> Result<bool, StorageError>;
    /// The whole content of `path`.
    fn read(&self, path: &Path) -> Result<Vec<u8>, StorageError>;
    /// Creates `path` empty (truncating it if it exists).
    fn create(&self, path: &Path) -> Result<(), StorageError>;
    /// Appends `data` at the end of `path`, which must exist.
    fn append(&self, path: &Path, data: &[u8]) -> Result<(), StorageError>;
    /// Makes the content of `path` durable.
    fn sync(&self, path: &Path) -> Result<(), StorageError>;
    /// Makes the names in `dir` durable (creations, renames, removals).
    fn sync_dir(&self, dir: &Path) -> Result<(), StorageError>;
    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError>;
    /// Removes `path`. Removing a missing file is not an error.
    fn remove(&self, path: &Path) -> Result<(), StorageError>;
    /// Truncates `path` to `len` bytes.
    fn truncate(&self, path: &Path, len: u64) -> Result<(), StorageError>;
    /// Takes the exclusive lock on the database directory `dir` (which
    /// exists), without waiting: [`LockError::Held`] if another holder,
    /// in this process or another, has it. The lock must be released when
    /// the returned [`DirLock`] is dropped and when the holding process
    /// dies, however it dies.
    ///
    /// [`Db::open`](crate::Db::open) takes it before reading anything and
    /// holds it until the database is closed.
    fn lock_dir(&self, dir: &Path) -> Result<DirLock, LockError>;
}

/// [`Storage`] on the local file system.
///
/// Keeps append handles open (one per file) so WAL appends do not reopen
/// the segment for every record.
#[derive(Default)]
pub struct FileStorage {
    handles: Mutex<HashMap<PathBuf, File>>,
}

impl fmt::Debug for FileStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStorage").finish_non_exhaustive()
    }
}

impl FileStorage {
    /// A new storage with no open handles.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_handle<R>(
        &self,
        path: &Path,
        op: StorageOp,
        f: impl FnOnce(&mut File) -> io::Result<R>,
    ) -> Result<R, StorageError> {
        let mut handles = self.handles.lock().unwrap_or_else(|e| e.into_inner());
        if !handles.contains_key(path) {
            let file = OpenOptions::new()
                .append(true)
                .open(path)
                .map_err(|e| StorageError::new(op, path, e))?;
            // The handle table outlives whatever operation opened the file
            // (a checkpoint run, say): charge it to the storage scope.
            crate::scopes::within(&STORAGE, || handles.insert(path.to_path_buf(), file));
        }
        let file = handles
            .get_mut(path)
            .ok_or_else(|| StorageError::new(op, path, io::ErrorKind::NotFound.into()))?;
        f(file).map_err(|e| StorageError::new(op, path, e))
    }

    fn forget(&self, path: &Path) {
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path);
    }
}

impl Storage for FileStorage {
    fn create_dir_all(&self, dir: &Path) -> Result<(), StorageError> {
        fs::create_dir_all(dir).map_err(|e| StorageError::new(StorageOp::CreateDir, dir, e))
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>, StorageError> {
        let err = |e| StorageError::new(StorageOp::List, dir, e);
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn exists(&self, path: &Path) -> Result<bool, StorageError> {
        path.try_exists()
            .map_err(|e| StorageError::new(StorageOp::Metadata, path, e))
    }

    fn read(&self, path: &Path) -> Result<Vec<u8>, StorageError> {
        let err = |e| StorageError::new(StorageOp::Read, path, e);
        let mut file = File::open(path).map_err(err)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).map_err(err)?;
        Ok(buf)
    }

    fn create(&self, path: &Path) -> Result<(), StorageError> {
        self.forget(path);
        File::create(path)
            .map(drop)
            .map_err(|e| StorageError::new(StorageOp::Create, path, e))
    }

    fn append(&self, path: &Path, data: &[u8]) -> Result<(), StorageError> {
        self.with_handle(path, StorageOp::Append, |f| f.write_all(data))
    }

    fn sync(&self, path: &Path) -> Result<(), StorageError> {
        self.with_handle(path, StorageOp::Sync, |f| f.sync_all())
    }

    fn sync_dir(&self, dir: &Path) -> Result<(), StorageError> {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StorageError::new(StorageOp::SyncDir, dir, e))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<(), StorageError> {
        self.forget(from);
        self.forget(to);
        fs::rename(from, to).map_err(|e| StorageError::new(StorageOp::Rename, from, e))
    }

    fn remove(&self, path: &Path) -> Result<(), StorageError> {
        self.forget(path);
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::new(StorageOp::Remove, path, e)),
        }
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<(), StorageError> {
        self.forget(path);
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(len))
            .map_err(|e| StorageError::new(StorageOp::Truncate, path, e))
    }

    /// `flock(LOCK_EX | LOCK_NB)` on `dir/LOCK` (created if missing, never
    /// removed). The kernel releases it when the file is closed, so a
    /// process that dies leaves a lock file that blocks nobody. flock
    /// belongs to the open file description: two opens in one process
    /// conflict as two processes do. After taking it, the holder's pid
    /// replaces the file's content; a refused opener reads it back for
    /// the error. Not reliable on network file systems that do not
    /// implement flock.
    fn lock_dir(&self, dir: &Path) -> Result<DirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let err = |op, e| StorageError::new(op, &path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| err(StorageOp::Create, e))?;
        // Called through the trait: std's inherent `File::try_lock` is
        // newer than our rust-version.
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let holder = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                return Err(LockError::Held { holder });
            }
            Err(fs4::TryLockError::Error(e)) => return Err(err(StorageOp::Lock, e).into()),
        }
        // The pid is informational (the flock is what excludes), so it is
        // not fsynced.
        let pid = std::process::id().to_string() + "\n";
        file.set_len(0)
            .and_then(|()| file.write_all(pid.as_bytes()))
            .map_err(|e| err(StorageOp::Append, e))?;
        Ok(DirLock::new(file))
    }
}
