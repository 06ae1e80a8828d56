//! Read-only inspection of a data directory: what is on disk, and what
//! recovery would do with it, without changing a byte.
//!
//! [`inspect`] reads the directory listing, the manifest, the header of
//! every checkpoint file and every WAL segment, tests whether a `Db` holds
//! the directory's lock ([`LockState`]), then runs the engine's own
//! recovery against a *dry-run* [`Storage`]: reads go to the file system,
//! while every mutation recovery would make (truncating a torn WAL tail,
//! removing an unregistered checkpoint file) is recorded as a
//! [`PlannedAction`] instead of performed. The answer is therefore exactly
//! what [`Db::open`](crate::Db::open) would do, and the directory (file set,
//! contents and modification times) is left as it was.
//!
//! ```no_run
//! let inspection = ckptdb::inspect::inspect("/var/lib/my-db")?;
//! if let Ok(plan) = &inspection.recovery {
//!     println!("replays {} WAL records", plan.report.wal_records_replayed);
//! }
//! # Ok::<(), ckptdb::StorageError>(())
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::checkpoint::file::{
    self, FileKind, FileMeta, Manifest, HEADER_LEN, MANIFEST, MANIFEST_TMP,
};
use crate::error::{Corruption, LockError, RecoveryError, StorageError, StorageOp};
use crate::recovery::{self, RecoveryReport};
use crate::storage::{DirLock, FileStorage, Storage, LOCK_FILE};
use crate::wal::parse_segment_name;
use crate::wal::reader::{scan_segment, Position};
use crate::wal::record::read_u64;

/// What a file in the data directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileRole {
    /// `MANIFEST`: names the current checkpoint chain.
    Manifest,
    /// `MANIFEST.tmp`: a manifest being published (a crash leftover when
    /// no run is active).
    ManifestTemp,
    /// `ckpt-<id>.dat`: a checkpoint data file.
    Checkpoint,
    /// `ckpt-<id>.dat.tmp`: a checkpoint data file being written.
    CheckpointTemp,
    /// `wal-<first lsn>.log`: a write-ahead log segment.
    WalSegment,
    /// `LOCK`: locked while a `Db` has the directory open (inspection
    /// only tests the lock: [`Inspection::lock`]).
    Lock,
    /// Anything else (not the engine's).
    Other,
}

/// One file of the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirFile {
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// What it is.
    pub role: FileRole,
}

/// One checkpoint file registered in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChainEntry {
    /// Kind, id and LSN range, as the manifest registers them.
    pub meta: FileMeta,
    /// File name.
    pub name: String,
    /// Size on disk; `None` if the file is missing.
    pub bytes: Option<u64>,
    /// Entry count from the file's header, when the header is readable
    /// (only the header is read here; recovery validates the whole file).
    pub entries: Option<u64>,
}

/// The decoded manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManifestInfo {
    /// Publication counter.
    pub generation: u64,
    /// Every write with an LSN up to this one is in the chain.
    pub checkpoint_lsn: u64,
    /// Id the next checkpoint file will get.
    pub next_file_id: u64,
    /// The chain, base first.
    pub chain: Vec<ChainEntry>,
}

/// The manifest as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestState {
    /// No `MANIFEST`: no checkpoint was ever published.
    Absent,
    /// A valid manifest.
    Valid(ManifestInfo),
    /// A manifest that does not validate.
    Corrupt(Corruption),
}

/// One WAL segment, scanned record by record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WalSegment {
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// First LSN the segment header announces (`None`: torn header).
    pub first_lsn: Option<u64>,
    /// LSN of its last valid record.
    pub last_lsn: Option<u64>,
    /// Valid records.
    pub records: u64,
    /// Offset of the first byte of a torn tail, if it has one (only the
    /// newest segment may).
    pub torn_at: Option<u64>,
    /// Damage that is not a torn tail.
    pub corruption: Option<Corruption>,
}

/// A change recovery would make to the directory at open.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlannedAction {
    /// Remove a file (an unregistered checkpoint file, a temp file, a
    /// segment with a torn header).
    Remove {
        /// File name.
        file: String,
    },
    /// Truncate a file (a torn WAL tail).
    Truncate {
        /// File name.
        file: String,
        /// Length it would be cut to.
        len: u64,
    },
    /// Any other write.
    Other {
        /// The operation.
        op: StorageOp,
        /// File name.
        file: String,
    },
}

/// What [`Db::open`](crate::Db::open) would do with the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryPlan {
    /// Recovery's own report: checkpoint LSN, files loaded, WAL records
    /// replayed, torn tail, files removed, last LSN.
    pub report: RecoveryReport,
    /// Live keys after recovery (checkpointed image plus replayed WAL).
    pub keys: u64,
    /// Changes recovery would make, in order.
    pub actions: Vec<PlannedAction>,
}

/// Whether a [`Db`](crate::Db) has the directory open, from a
/// non-blocking test of the lock on its [`LOCK`](LOCK_FILE) file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockState {
    /// No `LOCK` file: the database is not open (no `Db` opened the
    /// directory since it was created, or the file was removed).
    NoLockFile,
    /// Nobody holds the lock: the database is not open.
    Free,
    /// Someone holds the lock: the database is open, in this process or
    /// another, and the files may change while they are inspected.
    Held {
        /// The holder's process id as written in the file (`None`: the
        /// file holds no pid, e.g. the holder has not written it yet).
        holder: Option<u32>,
    },
    /// The lock could not be tested (the file could not be opened, or the
    /// file system refused the lock call): the error, in words.
    Unknown(String),
}

/// The result of [`inspect`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Inspection {
    /// The inspected directory.
    pub dir: PathBuf,
    /// Every file, by name.
    pub files: Vec<DirFile>,
    /// The manifest.
    pub manifest: ManifestState,
    /// WAL segments, oldest first.
    pub wal: Vec<WalSegment>,
    /// Whether the database is open.
    pub lock: LockState,
    /// What recovery would do, or why it would fail.
    pub recovery: Result<RecoveryPlan, RecoveryError>,
}

impl Inspection {
    /// Whether the directory holds no engine file at all.
    pub fn is_empty(&self) -> bool {
        self.files.iter().all(|f| f.role == FileRole::Other)
    }
}

/// Inspects the data directory `dir` without modifying it.
///
/// # Errors
/// [`StorageError`] if `dir` is missing, not a directory, or cannot be
/// listed. Damage inside the directory is not an error here: it is reported
/// in the [`Inspection`].
pub fn inspect(dir: impl AsRef<Path>) -> Result<Inspection, StorageError> {
    let dir = dir.as_ref();
    let storage = DryRun::default();
    let meta = fs::metadata(dir).map_err(|e| StorageError::new(StorageOp::Metadata, dir, e))?;
    if !meta.is_dir() {
        return Err(StorageError::new(
            StorageOp::List,
            dir,
            io::Error::other("not a directory"),
        ));
    }
    let mut names = storage.list(dir)?;
    names.sort();
    let files = names
        .iter()
        .map(|name| {
            let bytes = fs::metadata(dir.join(name)).map_or(0, |m| m.len());
            DirFile {
                name: name.clone(),
                bytes,
                role: role(name),
            }
        })
        .collect::<Vec<_>>();
    let size_of = |name: &str| files.iter().find(|f| f.name == name).map(|f| f.bytes);

    let manifest = if names.iter().any(|n| n == MANIFEST) {
        let path = dir.join(MANIFEST);
        let data = storage.read(&path)?;
        match Manifest::decode(&path, &data) {
            Ok(m) => ManifestState::Valid(ManifestInfo {
                generation: m.generation,
                checkpoint_lsn: m.checkpoint_lsn,
                next_file_id: m.next_file_id,
                chain: m
                    .chain
                    .iter()
                    .map(|meta| {
                        let name = meta.name();
                        ChainEntry {
                            meta: *meta,
                            bytes: size_of(&name),
                            entries: header_entries(&dir.join(&name)),
                            name,
                        }
                    })
                    .collect(),
            }),
            Err(c) => ManifestState::Corrupt(c),
        }
    } else {
        ManifestState::Absent
    };

    let mut segs: Vec<(u64, &String)> = names
        .iter()
        .filter_map(|n| parse_segment_name(n).map(|lsn| (lsn, n)))
        .collect();
    segs.sort();
    let mut wal = Vec::with_capacity(segs.len());
    for (i, (_, name)) in segs.iter().enumerate() {
        let path = dir.join(name);
        let data = storage.read(&path)?;
        let position = if i + 1 == segs.len() {
            Position::Last
        } else {
            Position::Sealed
        };
        let mut records = 0u64;
        let mut seg = WalSegment {
            name: (*name).clone(),
            bytes: data.len() as u64,
            first_lsn: None,
            last_lsn: None,
            records: 0,
            torn_at: None,
            corruption: None,
        };
        match scan_segment(&path, &data, position, None, |_, _| records += 1) {
            Ok(end) => {
                seg.first_lsn = end.first_lsn;
                seg.last_lsn = end.last_lsn;
                seg.torn_at = end.torn.then_some(end.valid_len);
            }
            Err(c) => seg.corruption = Some(c),
        }
        seg.records = records;
        wal.push(seg);
    }

    let lock = lock_state(dir);

    // Read-only, no `Db`: the recovered table goes to the memtable kind.
    let recovery = recovery::recover(&storage, dir, crate::scopes::MEMTABLE.id()).map(|rec| {
        let mut keys = rec.base.len() as u64;
        for (k, e) in rec.active.iter() {
            match (rec.base.contains_key(k), e.value.is_some()) {
                (false, true) => keys += 1,
                (true, false) => keys -= 1,
                _ => {}
            }
        }
        RecoveryPlan {
            report: rec.report,
            keys,
            actions: storage.take_planned(),
        }
    });

    Ok(Inspection {
        dir: dir.to_path_buf(),
        files,
        manifest,
        wal,
        lock,
        recovery,
    })
}

/// Tests the lock on `dir/LOCK` without waiting and without changing the
/// directory: the file is opened read-only (never created, unlike
/// [`FileStorage::lock_dir`]) and a *shared* `flock` is tried, which fails
/// while a `Db` holds its exclusive one and does not conflict with another
/// inspection. When it succeeds the lock is released at once (the file is
/// closed on return); a `Db::open` of the directory at that very moment
/// would be refused as if the directory were open.
fn lock_state(dir: &Path) -> LockState {
    use std::io::Read as _;
    let path = dir.join(LOCK_FILE);
    let mut file = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return LockState::NoLockFile,
        Err(e) => return LockState::Unknown(format!("cannot open {}: {e}", path.display())),
    };
    // Through the trait: std's inherent `File::try_lock_shared` is newer
    // than our rust-version.
    match fs4::FileExt::try_lock_shared(&file) {
        Ok(()) => LockState::Free,
        Err(fs4::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let holder = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            LockState::Held { holder }
        }
        Err(fs4::TryLockError::Error(e)) => {
            LockState::Unknown(format!("cannot test the lock on {}: {e}", path.display()))
        }
    }
}

fn role(name: &str) -> FileRole {
    if name == MANIFEST {
        FileRole::Manifest
    } else if name == MANIFEST_TMP {
        FileRole::ManifestTemp
    } else if name == LOCK_FILE {
        FileRole::Lock
    } else if parse_segment_name(name).is_some() {
        FileRole::WalSegment
    } else if file::is_checkpoint_file(name) {
        if name.ends_with(".tmp") {
            FileRole::CheckpointTemp
        } else {
            FileRole::Checkpoint
        }
    } else {
        FileRole::Other
    }
}

/// The entry count in a checkpoint file's header, if the header is
/// readable and its checksum matches.
fn header_entries(path: &Path) -> Option<u64> {
    use std::io::Read as _;
    let mut h = [0u8; HEADER_LEN];
    fs::File::open(path).ok()?.read_exact(&mut h).ok()?;
    let crc = u32::from_le_bytes([h[44], h[45], h[46], h[47]]);
    (h[0..4] == file::MAGIC && crc == crc32fast::hash(&h[0..44])).then(|| read_u64(&h, 32))
}

/// A [`Storage`] that reads the real file system (through [`FileStorage`])
/// and records, instead of performing, every change.
#[derive(Debug, Default)]
struct DryRun {
    reads: FileStorage,
    planned: Mutex<Vec<PlannedAction>>,
}

impl DryRun {
    fn plan(&self, action: PlannedAction) {
        self.planned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(action);
    }

    fn take_planned(&self) -> Vec<PlannedAction> {
        std::mem::take(&mut *self.planned.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

impl Storage for DryRun {
    fn create_dir_all(&self, dir: &Path) -> Result<(), StorageError> {
        if dir.is_dir() {
            Ok(())
        } else {
            Err(StorageError::new(
                StorageOp::CreateDir,
                dir,
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "no such directory (inspection creates nothing)",
                ),
            ))
        }
    }

    fn list(&self, dir: &Path) -> Result<Vec<String>, StorageError> {
        self.reads.list(dir)
    }

    fn exists(&self, path: &Path) -> Result<bool, StorageError> {
        self.reads.exists(path)
    }

    fn read(&self, path: &Path) -> Result<Vec<u8>, StorageError> {
        self.reads.read(path)
    }

    fn create(&self, path: &Path) -> Result<(), StorageError> {
        self.plan(PlannedAction::Other {
            op: StorageOp::Create,
            file: file_name(path),
        });
        Ok(())
    }

    fn append(&self, path: &Path, _data: &[u8]) -> Result<(), StorageError> {
        self.plan(PlannedAction::Other {
            op: StorageOp::Append,
            file: file_name(path),
        });
        Ok(())
    }

    fn sync(&self, _path: &Path) -> Result<(), StorageError> {
        Ok(())
    }

    fn sync_dir(&self, _dir: &Path) -> Result<(), StorageError> {
        Ok(())
    }

    fn rename(&self, from: &Path, _to: &Path) -> Result<(), StorageError> {
        self.plan(PlannedAction::Other {
            op: StorageOp::Rename,
            file: file_name(from),
        });
        Ok(())
    }

    fn remove(&self, path: &Path) -> Result<(), StorageError> {
        self.plan(PlannedAction::Remove {
            file: file_name(path),
        });
        Ok(())
    }

    fn truncate(&self, path: &Path, len: u64) -> Result<(), StorageError> {
        self.plan(PlannedAction::Truncate {
            file: file_name(path),
            len,
        });
        Ok(())
    }

    /// Never called (inspection runs recovery, not `Db::open`); it would
    /// take no lock: inspection writes nothing and must work while the
    /// database is open.
    fn lock_dir(&self, _dir: &Path) -> Result<DirLock, LockError> {
        Ok(DirLock::new(()))
    }
}

/// The kind of a checkpoint file, in words.
pub fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Incremental => "incremental",
        FileKind::Global => "global",
        FileKind::Compacted => "compacted",
    }
}
