//! Open-time recovery: manifest → chain → WAL replay.
//!
//! 1. Read `MANIFEST` (absent: empty database). Corrupt: typed error.
//! 2. Load the chain it registers: the base (global or compacted) image,
//!    then each incremental in order. A registered file that is missing or
//!    corrupt is a typed error naming the file and offset; there is no
//!    silent fallback to older state.
//! 3. Remove checkpoint files and temp files the manifest does not
//!    register (leftovers of a run that crashed before or after
//!    publication).
//! 4. Replay WAL records with LSN > the manifest's checkpoint LSN into the
//!    active memtable. A torn tail of the last segment (a bad record with
//!    no valid record after it, see `wal::reader`) is truncated; any other
//!    damage, or a gap between the checkpoint and the WAL, is a typed
//!    error.
//!
//! Transient work is charged to [`RECOVERY`]; the recovered table to the
//! memtable scope the caller gives (the database's own instance of
//! [`MEMTABLE`](crate::scopes::MEMTABLE)).

use std::path::{Path, PathBuf};

use crate::checkpoint::file::{self, Manifest, MANIFEST};
use crate::checkpoint::global::Base;
use crate::error::{Corruption, RecoveryError};
use crate::memtable::Memtable;
use scope_alloc_tracker::ScopeId;

use crate::scopes::{ENGINE, RECOVERY, WAL};
use crate::storage::Storage;
use crate::wal::reader::{scan_segment, Position};
use crate::wal::record::Op;
use crate::wal::{parse_segment_name, RecoveredWal, Segment};

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// LSN covered by the checkpoint chain.
    pub checkpoint_lsn: u64,
    /// Checkpoint files loaded, base first.
    pub chain_files: Vec<String>,
    /// WAL records replayed (LSN above the checkpoint).
    pub wal_records_replayed: u64,
    /// The torn WAL tail that was truncated, if any: file and offset of the
    /// first discarded byte.
    pub torn_tail: Option<(PathBuf, u64)>,
    /// Unregistered checkpoint or temp files removed.
    pub removed_files: Vec<String>,
    /// LSN of the last record recovered.
    pub last_lsn: u64,
}

/// The recovered state.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) manifest: Manifest,
    pub(crate) base: Base,
    pub(crate) active: Memtable,
    pub(crate) wal: RecoveredWal,
    pub(crate) report: RecoveryReport,
}

/// Recovers the database in `dir` (which exists; `Db::open` creates and
/// locks it first). The recovered base table and active memtable are
/// charged to `memtable`.
pub(crate) fn recover(
    storage: &dyn Storage,
    dir: &Path,
    memtable: ScopeId,
) -> Result<Recovered, RecoveryError> {
    let _scope = crate::scopes::enter(&RECOVERY);
    let names = storage.list(dir)?;
    let manifest = if names.iter().any(|n| n == MANIFEST) {
        let path = dir.join(MANIFEST);
        let data = storage.read(&path)?;
        let m = Manifest::decode(&path, &data).map_err(RecoveryError::CorruptManifest)?;
        crate::scopes::within(&ENGINE, || m.clone())
    } else {
        Manifest::default()
    };
    let mut report = crate::scopes::within(&ENGINE, || RecoveryReport {
        checkpoint_lsn: manifest.checkpoint_lsn,
        ..RecoveryReport::default()
    });

    let mut base = Base::new();
    for meta in &manifest.chain {
        let name = meta.name();
        let path = dir.join(&name);
        if !names.contains(&name) {
            return Err(RecoveryError::CorruptCheckpoint(Corruption::new(
                &path,
                0,
                "registered checkpoint file is missing",
            )));
        }
        let data = storage.read(&path)?;
        file::decode_data_file(&path, &data, meta, |k, v| {
            crate::scopes::within(memtable, || match v {
                Some(v) => {
                    base.insert(k.to_vec(), v.to_vec());
                }
                None => {
                    base.remove(k);
                }
            })
        })
        .map_err(RecoveryError::CorruptCheckpoint)?;
        crate::scopes::within(&ENGINE, || report.chain_files.push(name.clone()));
    }

    let registered: Vec<String> = manifest.chain.iter().map(|m| m.name()).collect();
    let mut removed_any = false;
    for name in &names {
        if file::is_checkpoint_file(name) && !registered.contains(name) {
            storage.remove(&dir.join(name))?;
            crate::scopes::within(&ENGINE, || report.removed_files.push(name.clone()));
            removed_any = true;
        }
    }
    if removed_any {
        storage.sync_dir(dir)?;
    }

    let ckpt = manifest.checkpoint_lsn;
    let mut segs: Vec<(u64, &String)> = names
        .iter()
        .filter_map(|n| parse_segment_name(n).map(|lsn| (lsn, n)))
        .collect();
    segs.sort();
    let mut active = Memtable::new();
    let mut segments: Vec<Segment> = Vec::new();
    let mut prev_last: Option<u64> = None;
    let mut last_lsn = ckpt;
    let mut wal_last: Option<u64> = None;
    let mut active_len = 0;
    let mut replayed = 0u64;
    for (i, (_, name)) in segs.iter().enumerate() {
        let path = dir.join(name);
        let position = if i + 1 == segs.len() {
            Position::Last
        } else {
            Position::Sealed
        };
        let data = storage.read(&path)?;
        let strict_prev = prev_last.filter(|&p| p >= ckpt);
        let end = scan_segment(&path, &data, position, strict_prev, |lsn, op| {
            if lsn > ckpt {
                replayed += 1;
                crate::scopes::within(memtable, || match op {
                    Op::Put { key, value } => {
                        active.insert(key.to_vec(), Some(value.to_vec()), lsn)
                    }
                    Op::Delete { key } => active.insert(key.to_vec(), None, lsn),
                });
            }
        })
        .map_err(RecoveryError::CorruptWal)?;
        let Some(first_lsn) = end.first_lsn else {
            // Torn segment header: the segment was being created.
            storage.remove(&path)?;
            storage.sync_dir(dir)?;
            crate::scopes::within(&ENGINE, || report.torn_tail = Some((path.clone(), 0)));
            continue;
        };
        let floor = ckpt.max(prev_last.unwrap_or(0));
        if first_lsn > floor + 1 {
            return Err(RecoveryError::CorruptWal(Corruption::new(
                &path,
                8,
                "gap in the WAL: records after the checkpoint are missing",
            )));
        }
        if end.torn {
            storage.truncate(&path, end.valid_len)?;
            storage.sync(&path)?;
            crate::scopes::within(&ENGINE, || {
                report.torn_tail = Some((path.clone(), end.valid_len))
            });
        }
        prev_last = end.last_lsn.or(first_lsn.checked_sub(1));
        if let Some(l) = end.last_lsn {
            wal_last = Some(l);
            last_lsn = last_lsn.max(l);
        }
        active_len = end.valid_len;
        crate::scopes::within(&WAL, || {
            segments.push(Segment {
                first_lsn,
                path: path.clone(),
            })
        });
    }
    report.wal_records_replayed = replayed;
    report.last_lsn = last_lsn;
    // The WAL can continue in its last segment only if that segment ends
    // exactly at the last recovered LSN.
    let continues = prev_last == Some(last_lsn) || (segments.is_empty() && wal_last.is_none());
    let wal = RecoveredWal {
        segments,
        active_len,
        last_lsn,
        continue_last: continues,
    };
    Ok(Recovered {
        manifest,
        base,
        active,
        wal,
        report,
    })
}
