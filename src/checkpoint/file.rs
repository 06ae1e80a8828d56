//! Checkpoint data files and the manifest: byte formats, encode/decode, and
//! the temp-file → fsync → rename → directory-fsync publication.
//!
//! ```text
//! data file ckpt-<id>.dat
//! header (48 bytes)
//! +-------+-------+------+------+--------+-----------+---------+---------+------+------------+
//! | magic |version| kind | rsvd | file id| lsn_start | lsn_end | entries | rsvd | header crc |
//! |   4   |   2   |  1   |  1   |   8    |     8     |    8    |    8    |  4   |     4      |
//! +-------+-------+------+------+--------+-----------+---------+---------+------+------------+
//! header crc = crc32(bytes 0..44)
//! entries, sorted by key, each:
//!   tag u8 (1 = put, 2 = tombstone) ‖ key_len u32 ‖ [val_len u32] ‖ key ‖ [value]
//! footer (8 bytes): crc32(entries) u32 ‖ b"CKEN"
//!
//! MANIFEST
//! +-------+-------+------+------------+----------------+--------------+-------+
//! | magic |version| rsvd | generation | checkpoint_lsn | next_file_id | count |
//! |   4   |   2   |  2   |     8      |       8        |      8       |   4   |
//! +-------+-------+------+------------+----------------+--------------+-------+
//! count × { kind u8 ‖ file id u64 ‖ lsn_start u64 ‖ lsn_end u64 }  (25 bytes each)
//! crc32(everything before) u32
//! ```
//!
//! All integers are little-endian.

use std::path::{Path, PathBuf};

use crate::error::{Corruption, StorageError};
use crate::storage::Storage;
use crate::wal::record::{read_u32, read_u64};

/// Data file magic.
pub(crate) const MAGIC: [u8; 4] = *b"CKPT";
/// Data file footer magic.
pub(crate) const FOOTER_MAGIC: [u8; 4] = *b"CKEN";
/// Manifest magic.
pub(crate) const MANIFEST_MAGIC: [u8; 4] = *b"CKMF";
/// Format version of both files.
pub(crate) const FORMAT_VERSION: u16 = 1;
/// Data file header length.
pub(crate) const HEADER_LEN: usize = 48;
/// Data file footer length.
pub(crate) const FOOTER_LEN: usize = 8;
/// Manifest file name.
pub(crate) const MANIFEST: &str = "MANIFEST";
/// Manifest temp name.
pub(crate) const MANIFEST_TMP: &str = "MANIFEST.tmp";
const MANIFEST_HEADER_LEN: usize = 36;
const MANIFEST_ENTRY_LEN: usize = 25;

const TAG_PUT: u8 = 1;
const TAG_TOMBSTONE: u8 = 2;

/// What a checkpoint file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// Changes in `(previous fence, lsn_end]`, tombstones included.
    Incremental = 1,
    /// Full image up to `lsn_end`, written by a global checkpoint.
    Global = 2,
    /// Full image up to `lsn_end`, written by GC from a chain.
    Compacted = 3,
}

impl FileKind {
    fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(FileKind::Incremental),
            2 => Some(FileKind::Global),
            3 => Some(FileKind::Compacted),
            _ => None,
        }
    }

    /// Whether the file is a full image (a chain base).
    pub fn is_base(self) -> bool {
        !matches!(self, FileKind::Incremental)
    }
}

/// A registered checkpoint file (no heap data: its name is derived).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    /// Kind.
    pub kind: FileKind,
    /// Unique id, increasing.
    pub id: u64,
    /// First LSN covered (0 for full images).
    pub lsn_start: u64,
    /// Last LSN covered (the fence).
    pub lsn_end: u64,
}

impl FileMeta {
    /// File name.
    pub fn name(&self) -> String {
        data_name(self.id)
    }
}

/// File name of data file `id`.
pub(crate) fn data_name(id: u64) -> String {
    format!("ckpt-{id:020}.dat")
}

/// Temp name of data file `id`.
pub(crate) fn data_tmp_name(id: u64) -> String {
    format!("ckpt-{id:020}.dat.tmp")
}

/// Whether `name` is a checkpoint data file or temp file (or the manifest
/// temp), i.e. a file the checkpointer owns.
pub(crate) fn is_checkpoint_file(name: &str) -> bool {
    (name.starts_with("ckpt-") && (name.ends_with(".dat") || name.ends_with(".dat.tmp")))
        || name == MANIFEST_TMP
}

/// One entry to write: key and value (`None` = tombstone).
pub(crate) type EntryRef<'a> = (&'a [u8], Option<&'a [u8]>);

/// Encodes a batch of entries (the body of a data file, or part of it).
#[inline(never)]
pub(crate) fn encode_batch(entries: &[EntryRef<'_>]) -> Vec<u8> {
    let size: usize = entries
        .iter()
        .map(|(k, v)| 9 + k.len() + v.map_or(0, <[u8]>::len))
        .sum();
    let mut out = Vec::with_capacity(size);
    for (k, v) in entries {
        match v {
            Some(v) => {
                out.push(TAG_PUT);
                out.extend_from_slice(&(k.len() as u32).to_le_bytes());
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(k);
                out.extend_from_slice(v);
            }
            None => {
                out.push(TAG_TOMBSTONE);
                out.extend_from_slice(&(k.len() as u32).to_le_bytes());
                out.extend_from_slice(k);
            }
        }
    }
    out
}

/// Encodes the data file header.
pub(crate) fn encode_header(meta: &FileMeta, entries: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC);
    h[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[6] = meta.kind as u8;
    h[8..16].copy_from_slice(&meta.id.to_le_bytes());
    h[16..24].copy_from_slice(&meta.lsn_start.to_le_bytes());
    h[24..32].copy_from_slice(&meta.lsn_end.to_le_bytes());
    h[32..40].copy_from_slice(&entries.to_le_bytes());
    let crc = crc32fast::hash(&h[0..44]);
    h[44..48].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Encodes the footer for a body with checksum `crc`.
pub(crate) fn encode_footer(crc: u32) -> [u8; FOOTER_LEN] {
    let mut f = [0u8; FOOTER_LEN];
    f[0..4].copy_from_slice(&crc.to_le_bytes());
    f[4..8].copy_from_slice(&FOOTER_MAGIC);
    f
}

/// Validates a whole data file against its manifest entry, then calls `f`
/// for each entry in order.
pub(crate) fn decode_data_file<'a>(
    path: &Path,
    data: &'a [u8],
    expected: &FileMeta,
    mut f: impl FnMut(&'a [u8], Option<&'a [u8]>),
) -> Result<u64, Corruption> {
    let corrupt = |offset: usize, reason| Corruption::new(path, offset as u64, reason);
    if data.len() < HEADER_LEN + FOOTER_LEN {
        return Err(corrupt(data.len(), "checkpoint file is truncated"));
    }
    if data[0..4] != MAGIC {
        return Err(corrupt(0, "bad checkpoint magic"));
    }
    if u16::from_le_bytes([data[4], data[5]]) != FORMAT_VERSION {
        return Err(corrupt(4, "unsupported checkpoint format version"));
    }
    if read_u32(data, 44) != crc32fast::hash(&data[0..44]) {
        return Err(corrupt(44, "checkpoint header checksum mismatch"));
    }
    let found = FileMeta {
        kind: FileKind::from_u8(data[6]).ok_or_else(|| corrupt(6, "unknown checkpoint kind"))?,
        id: read_u64(data, 8),
        lsn_start: read_u64(data, 16),
        lsn_end: read_u64(data, 24),
    };
    if found != *expected {
        return Err(corrupt(6, "checkpoint header does not match the manifest"));
    }
    let count = read_u64(data, 32);
    let body_end = data.len() - FOOTER_LEN;
    if data[body_end + 4..] != FOOTER_MAGIC {
        return Err(corrupt(body_end + 4, "bad checkpoint footer magic"));
    }
    if read_u32(data, body_end) != crc32fast::hash(&data[HEADER_LEN..body_end]) {
        return Err(corrupt(body_end, "checkpoint body checksum mismatch"));
    }
    let mut off = HEADER_LEN;
    let mut n = 0u64;
    let mut prev: Option<&'a [u8]> = None;
    while off < body_end {
        let tag = data[off];
        let need = |len: usize| off.checked_add(len).filter(|&e| e <= body_end);
        let fixed = if tag == TAG_PUT { 9 } else { 5 };
        if tag != TAG_PUT && tag != TAG_TOMBSTONE {
            return Err(corrupt(off, "unknown checkpoint entry tag"));
        }
        need(fixed).ok_or_else(|| corrupt(off, "checkpoint entry runs past the body"))?;
        let klen = read_u32(data, off + 1) as usize;
        let vlen = if tag == TAG_PUT {
            read_u32(data, off + 5) as usize
        } else {
            0
        };
        let end = need(fixed + klen + vlen)
            .ok_or_else(|| corrupt(off, "checkpoint entry runs past the body"))?;
        let key = &data[off + fixed..off + fixed + klen];
        if prev.is_some_and(|p| p >= key) {
            return Err(corrupt(off, "checkpoint keys out of order"));
        }
        let value = (tag == TAG_PUT).then(|| &data[off + fixed + klen..end]);
        f(key, value);
        prev = Some(key);
        n += 1;
        off = end;
    }
    if n != count {
        return Err(corrupt(32, "checkpoint entry count mismatch"));
    }
    Ok(n)
}

/// The manifest's content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// Incremented at each publication.
    pub(crate) generation: u64,
    /// Every write with LSN <= this is in the chain.
    pub(crate) checkpoint_lsn: u64,
    /// Id of the next data file.
    pub(crate) next_file_id: u64,
    /// The chain: at most one base (first), then incrementals in LSN order.
    pub(crate) chain: Vec<FileMeta>,
}

impl Manifest {
    /// Encodes the manifest.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(MANIFEST_HEADER_LEN + self.chain.len() * MANIFEST_ENTRY_LEN + 4);
        out.extend_from_slice(&MANIFEST_MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&self.checkpoint_lsn.to_le_bytes());
        out.extend_from_slice(&self.next_file_id.to_le_bytes());
        out.extend_from_slice(&(self.chain.len() as u32).to_le_bytes());
        for m in &self.chain {
            out.push(m.kind as u8);
            out.extend_from_slice(&m.id.to_le_bytes());
            out.extend_from_slice(&m.lsn_start.to_le_bytes());
            out.extend_from_slice(&m.lsn_end.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and validates a manifest.
    pub(crate) fn decode(path: &Path, data: &[u8]) -> Result<Manifest, Corruption> {
        let corrupt = |offset: usize, reason| Corruption::new(path, offset as u64, reason);
        if data.len() < MANIFEST_HEADER_LEN + 4 {
            return Err(corrupt(data.len(), "manifest is truncated"));
        }
        if data[0..4] != MANIFEST_MAGIC {
            return Err(corrupt(0, "bad manifest magic"));
        }
        if u16::from_le_bytes([data[4], data[5]]) != FORMAT_VERSION {
            return Err(corrupt(4, "unsupported manifest format version"));
        }
        let count = read_u32(data, 32) as usize;
        let body = count
            .checked_mul(MANIFEST_ENTRY_LEN)
            .and_then(|b| b.checked_add(MANIFEST_HEADER_LEN))
            .filter(|&end| end + 4 == data.len())
            .ok_or_else(|| corrupt(32, "manifest length does not match its entry count"))?;
        if read_u32(data, body) != crc32fast::hash(&data[..body]) {
            return Err(corrupt(body, "manifest checksum mismatch"));
        }
        let mut chain = Vec::with_capacity(count);
        for i in 0..count {
            let off = MANIFEST_HEADER_LEN + i * MANIFEST_ENTRY_LEN;
            let kind = FileKind::from_u8(data[off])
                .ok_or_else(|| corrupt(off, "unknown checkpoint kind in manifest"))?;
            chain.push(FileMeta {
                kind,
                id: read_u64(data, off + 1),
                lsn_start: read_u64(data, off + 9),
                lsn_end: read_u64(data, off + 17),
            });
        }
        let m = Manifest {
            generation: read_u64(data, 8),
            checkpoint_lsn: read_u64(data, 16),
            next_file_id: read_u64(data, 24),
            chain,
        };
        if m.chain_problem().is_some() {
            return Err(corrupt(
                MANIFEST_HEADER_LEN,
                "manifest chain is inconsistent",
            ));
        }
        Ok(m)
    }

    /// Why the chain is malformed, if it is: more than one base, a base not
    /// first, LSN ranges not increasing, or ids not below `next_file_id`.
    pub(crate) fn chain_problem(&self) -> Option<&'static str> {
        let mut prev_end: Option<u64> = None;
        for (i, m) in self.chain.iter().enumerate() {
            if m.kind.is_base() && i != 0 {
                return Some("a base checkpoint is not first in the chain");
            }
            if m.id >= self.next_file_id {
                return Some("file id not below next_file_id");
            }
            if let Some(p) = prev_end {
                if m.lsn_start != p + 1 || m.lsn_end < p {
                    return Some("chain LSN ranges are not contiguous");
                }
            }
            prev_end = Some(m.lsn_end);
        }
        if prev_end.is_some_and(|e| e != self.checkpoint_lsn) {
            return Some("checkpoint_lsn is not the end of the chain");
        }
        None
    }
}

/// Writes the manifest: `MANIFEST.tmp`, fsync, rename over `MANIFEST`,
/// fsync the directory. Returns after the rename; `Err` from the rename or
/// earlier means the old manifest is still the current one.
pub(crate) fn write_manifest_tmp(
    storage: &dyn Storage,
    dir: &Path,
    manifest: &Manifest,
) -> Result<PathBuf, StorageError> {
    let tmp = dir.join(MANIFEST_TMP);
    storage.create(&tmp)?;
    storage.append(&tmp, &manifest.encode())?;
    storage.sync(&tmp)?;
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_file_round_trips_and_detects_flips() {
        let meta = FileMeta {
            kind: FileKind::Incremental,
            id: 3,
            lsn_start: 5,
            lsn_end: 9,
        };
        let entries: Vec<EntryRef<'_>> = vec![(b"a", Some(b"1")), (b"b", None), (b"c", Some(b""))];
        let body = encode_batch(&entries);
        let mut file = encode_header(&meta, 3).to_vec();
        file.extend_from_slice(&body);
        file.extend_from_slice(&encode_footer(crc32fast::hash(&body)));
        let mut seen = Vec::new();
        decode_data_file(Path::new("x"), &file, &meta, |k, v| {
            seen.push((k.to_vec(), v.map(<[u8]>::to_vec)))
        })
        .unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[1], (b"b".to_vec(), None));
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x10;
            assert!(
                decode_data_file(Path::new("x"), &bad, &meta, |_, _| {}).is_err(),
                "{i}"
            );
        }
    }

    #[test]
    fn manifest_round_trips_and_rejects_truncation() {
        let m = Manifest {
            generation: 2,
            checkpoint_lsn: 20,
            next_file_id: 3,
            chain: vec![
                FileMeta {
                    kind: FileKind::Global,
                    id: 1,
                    lsn_start: 0,
                    lsn_end: 10,
                },
                FileMeta {
                    kind: FileKind::Incremental,
                    id: 2,
                    lsn_start: 11,
                    lsn_end: 20,
                },
            ],
        };
        let bytes = m.encode();
        assert_eq!(Manifest::decode(Path::new("M"), &bytes).unwrap(), m);
        for cut in 0..bytes.len() {
            assert!(Manifest::decode(Path::new("M"), &bytes[..cut]).is_err());
        }
    }
}
