//! The write-ahead log: append-only segment files, a sync policy, rotation,
//! and truncation of segments covered by a durable checkpoint.
//!
//! - `record`: the byte format of segment headers and records.
//! - `reader`: replay and the torn-tail policy.
//!
//! Segments are named `wal-<first lsn, 20 digits>.log`. Every write gets the
//! next LSN. Segment bookkeeping is charged to the
//! [`WAL`](crate::scopes::WAL) scope.

pub(crate) mod reader;
pub(crate) mod record;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::error::StorageError;
use crate::options::SyncPolicy;
use crate::scopes::WAL;
use crate::storage::Storage;
use record::{encode_record, encode_segment_header, Op};

/// File name of the segment starting at `first_lsn`.
pub(crate) fn segment_name(first_lsn: u64) -> String {
    format!("wal-{first_lsn:020}.log")
}

/// The first LSN of a segment file name, if it is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if digits.len() != 20 {
        return None;
    }
    digits.parse().ok()
}

/// A segment on disk.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub(crate) first_lsn: u64,
    pub(crate) path: PathBuf,
}

/// What recovery found, handed to [`Wal::resume`].
#[derive(Debug)]
pub(crate) struct RecoveredWal {
    /// Valid segments, oldest first.
    pub(crate) segments: Vec<Segment>,
    /// Length of the valid part of the last segment.
    pub(crate) active_len: u64,
    /// LSN of the last valid record (or the checkpoint LSN if higher).
    pub(crate) last_lsn: u64,
    /// Whether appends may continue in the last segment (it ends exactly
    /// at `last_lsn`); otherwise a new segment is started.
    pub(crate) continue_last: bool,
}

/// The log. Callers serialise access (the `Db` holds it in a mutex).
#[derive(Debug)]
pub(crate) struct Wal {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    segments: Vec<Segment>,
    active_len: u64,
    next_lsn: u64,
    synced_lsn: u64,
    unsynced: u32,
    first_unsynced_at: Option<Instant>,
    policy: SyncPolicy,
    segment_bytes: u64,
    poisoned: bool,
    buf: Vec<u8>,
}

impl Wal {
    /// Continues the log recovered at open; starts a first segment if none.
    pub(crate) fn resume(
        storage: Arc<dyn Storage>,
        dir: &Path,
        recovered: RecoveredWal,
        policy: SyncPolicy,
        segment_bytes: u64,
    ) -> Result<Self, StorageError> {
        let mut wal = crate::scopes::within(&WAL, || Wal {
            storage,
            dir: dir.to_path_buf(),
            segments: recovered.segments,
            active_len: recovered.active_len,
            next_lsn: recovered.last_lsn + 1,
            synced_lsn: recovered.last_lsn,
            unsynced: 0,
            first_unsynced_at: None,
            policy,
            segment_bytes,
            poisoned: false,
            buf: Vec::with_capacity(4096),
        });
        if wal.segments.is_empty() || !recovered.continue_last {
            wal.start_segment()?;
        }
        Ok(wal)
    }

    fn start_segment(&mut self) -> Result<(), StorageError> {
        let first_lsn = self.next_lsn;
        let path = self.dir.join(segment_name(first_lsn));
        self.storage.create(&path)?;
        self.storage
            .append(&path, &encode_segment_header(first_lsn))?;
        self.storage.sync(&path)?;
        self.storage.sync_dir(&self.dir)?;
        crate::scopes::within(&WAL, || self.segments.push(Segment { first_lsn, path }));
        self.active_len = record::SEGMENT_HEADER_LEN as u64;
        Ok(())
    }

    fn active(&self) -> &Path {
        // `resume` guarantees a segment; an empty list is unreachable but
        // must not panic.
        self.segments
            .last()
            .map_or(self.dir.as_path(), |s| s.path.as_path())
    }

    /// Appends `op`, returning its LSN; syncs according to the policy.
    pub(crate) fn append(&mut self, op: &Op<'_>) -> Result<u64, StorageError> {
        let _scope = crate::scopes::enter(&WAL);
        if self.active_len >= self.segment_bytes {
            self.rotate()?;
        }
        let lsn = self.next_lsn;
        self.buf.clear();
        encode_record(&mut self.buf, lsn, op);
        if let Err(e) = self.storage.append(self.active(), &self.buf) {
            self.poisoned = true;
            return Err(e);
        }
        self.active_len += self.buf.len() as u64;
        self.next_lsn += 1;
        self.unsynced += 1;
        self.first_unsynced_at.get_or_insert_with(Instant::now);
        if self.buf.capacity() > 1 << 20 {
            self.buf = Vec::with_capacity(4096);
        }
        match self.policy {
            SyncPolicy::EveryWrite => self.sync()?,
            SyncPolicy::GroupCommit { max_batch, .. } if self.unsynced >= max_batch => {
                self.sync()?
            }
            _ => self.sync_if_due()?,
        }
        Ok(lsn)
    }

    /// Whether an earlier append or sync failed.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Fsyncs the active segment if there are unsynced records.
    pub(crate) fn sync(&mut self) -> Result<(), StorageError> {
        if self.unsynced == 0 {
            return Ok(());
        }
        if let Err(e) = self.storage.sync(self.active()) {
            self.poisoned = true;
            return Err(e);
        }
        self.synced_lsn = self.next_lsn - 1;
        self.unsynced = 0;
        self.first_unsynced_at = None;
        Ok(())
    }

    /// Group commit: fsyncs if the oldest unsynced record is older than
    /// the policy's delay.
    pub(crate) fn sync_if_due(&mut self) -> Result<(), StorageError> {
        if let (SyncPolicy::GroupCommit { max_delay, .. }, Some(t)) =
            (self.policy, self.first_unsynced_at)
        {
            if t.elapsed() >= max_delay {
                return self.sync();
            }
        }
        Ok(())
    }

    /// Seals the active segment (synced) and starts a new one at the next
    /// LSN. No-op if the active segment holds no record.
    pub(crate) fn rotate(&mut self) -> Result<(), StorageError> {
        let _scope = crate::scopes::enter(&WAL);
        if self.active_len <= record::SEGMENT_HEADER_LEN as u64 {
            return Ok(());
        }
        self.sync()?;
        self.start_segment()
    }

    /// LSN of the last record written.
    pub(crate) fn last_lsn(&self) -> u64 {
        self.next_lsn - 1
    }

    /// LSN of the last record known durable.
    pub(crate) fn synced_lsn(&self) -> u64 {
        self.synced_lsn
    }

    /// Number of segment files.
    pub(crate) fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Segments whose records all have LSN <= `lsn` (never the active one).
    pub(crate) fn covered_segments(&self, lsn: u64) -> Vec<PathBuf> {
        let n = self.segments.len();
        self.segments
            .windows(2)
            .take(n.saturating_sub(1))
            .filter(|w| w[1].first_lsn <= lsn + 1)
            .map(|w| w[0].path.clone())
            .collect()
    }

    /// Forgets segments that were deleted from disk.
    pub(crate) fn forget_segments(&mut self, removed: &[PathBuf]) {
        self.segments.retain(|s| !removed.contains(&s.path));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("wal-1.log"), None);
        assert_eq!(parse_segment_name("ckpt-00000000000000000001.dat"), None);
    }
}
