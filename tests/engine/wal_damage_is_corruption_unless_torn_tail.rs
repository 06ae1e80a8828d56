//! Issue 13, item 2: a bad WAL record is a torn tail only where nothing
//! valid can follow it (the newest segment, no valid record frame after
//! it). Bit flips in the length, checksum, LSN and payload of the first, a
//! middle and the last record of a sealed and of the newest segment; every
//! one except in the newest segment's last record is `CorruptWal` naming
//! the file and the record's offset, and changes nothing on disk.
//!
//! Reproduces the finding: a flipped length in the middle of the
//! newest segment was taken for a torn tail and 46 acknowledged records
//! after it were silently dropped.

use crate::common;

use std::path::{Path, PathBuf};

use ckptdb::{Db, OpenError, RecoveryError};

const HEADER: usize = 24;
const FRAME: usize = 16;
const WRITES: u32 = 100;

fn open(dir: &Path) -> Result<Db, OpenError> {
    Db::open(
        dir,
        common::test_options()
            .wal_segment_bytes(4096)
            .build()
            .unwrap(),
    )
}

fn key(i: u64) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

/// A database of `WRITES` puts (LSN n sets `key-n`) in two or more 4 KiB
/// segments; returns the segment paths, oldest first.
fn pristine(dir: &Path) -> Vec<PathBuf> {
    let db = open(dir).unwrap();
    for lsn in 1..=u64::from(WRITES) {
        assert_eq!(db.put(&key(lsn), &[lsn as u8; 40]).unwrap(), lsn);
    }
    db.close().unwrap();
    let segs: Vec<PathBuf> = common::files(dir)
        .into_iter()
        .filter(|n| n.starts_with("wal-"))
        .map(|n| dir.join(n))
        .collect();
    assert!(segs.len() >= 2, "{segs:?}");
    segs
}

/// (offset, LSN) of every record of a segment, from the frame lengths.
fn records(data: &[u8]) -> Vec<(usize, u64)> {
    let mut out = Vec::new();
    let mut off = HEADER;
    while off < data.len() {
        let len = u32::from_le_bytes(data[off..off + 4].try_into().unwrap()) as usize;
        let lsn = u64::from_le_bytes(data[off + 8..off + 16].try_into().unwrap());
        out.push((off, lsn));
        off += FRAME + len;
    }
    out
}

/// A fresh copy of the database files of `from` in a new directory.
fn copy(from: &Path) -> tempfile::TempDir {
    let to = common::tempdir();
    for name in common::files(from) {
        if name != ckptdb::LOCK_FILE {
            std::fs::copy(from.join(&name), to.path().join(&name)).unwrap();
        }
    }
    to
}

#[test]
fn flips_are_corruption_except_in_the_newest_segments_last_record() {
    let _serial = common::serial();
    let src = common::tempdir();
    let segs = pristine(src.path());
    let sealed = segs[segs.len() - 2].clone();
    let newest = segs[segs.len() - 1].clone();
    // (what, byte offset in the record, xor mask)
    let flips: [(&str, usize, u8); 6] = [
        ("length +-1", 0, 0x01),
        ("length +256", 1, 0x01),
        ("length huge", 3, 0x80),
        ("checksum", 5, 0x04),
        ("lsn", 8, 0x02),
        ("payload", FRAME + 9, 0x10),
    ];
    let mut cases = 0;
    for seg in [&sealed, &newest] {
        let data = std::fs::read(seg).unwrap();
        let recs = records(&data);
        assert!(
            recs.len() >= 3,
            "{} has {} records",
            seg.display(),
            recs.len()
        );
        let is_newest = seg == &newest;
        for (which, &(off, lsn)) in [
            ("first", &recs[0]),
            ("middle", &recs[recs.len() / 2]),
            ("last", &recs[recs.len() - 1]),
        ] {
            for (field, at, mask) in flips {
                let case = format!(
                    "{field} of the {which} record (LSN {lsn}) of the {} segment",
                    if is_newest { "newest" } else { "sealed" }
                );
                let dir = copy(src.path());
                let path = dir.path().join(seg.file_name().unwrap());
                let mut bad = data.clone();
                bad[off + at] ^= mask;
                std::fs::write(&path, &bad).unwrap();
                let result = open(dir.path());
                if is_newest && which == "last" {
                    // Indistinguishable from a torn write of the last
                    // record: cut off, everything before it kept.
                    let db = result.unwrap_or_else(|e| panic!("{case}: {e}"));
                    let report = db.recovery_report();
                    assert_eq!(report.torn_tail, Some((path.clone(), off as u64)), "{case}");
                    assert_eq!(db.get(&key(lsn)), None, "{case}");
                    assert!(db.get(&key(lsn - 1)).is_some(), "{case}");
                    assert_eq!(db.stats().last_lsn, lsn - 1, "{case}");
                } else {
                    let err = result.err().unwrap_or_else(|| panic!("{case}: opened"));
                    let OpenError::Recovery(RecoveryError::CorruptWal(c)) = &err else {
                        panic!("{case}: expected CorruptWal, got {err}");
                    };
                    assert_eq!(c.path, path, "{case}: {err}");
                    assert_eq!(c.offset, off as u64, "{case}: {err}");
                    assert!(err.to_string().contains(&path.display().to_string()));
                    assert_eq!(std::fs::read(&path).unwrap(), bad, "{case}: file changed");
                }
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 2 * 3 * flips.len());
}

#[test]
fn every_cut_of_the_last_record_recovers_the_prefix() {
    let _serial = common::serial();
    let src = common::tempdir();
    let segs = pristine(src.path());
    let newest = segs.last().unwrap();
    let data = std::fs::read(newest).unwrap();
    let &(off, lsn) = records(&data).last().unwrap();
    assert_eq!(lsn, u64::from(WRITES));
    for cut in off..data.len() {
        // A torn write: a prefix of the record, alone or followed by zeros.
        for zeros in [0, 1, FRAME + 3, 4096] {
            let dir = copy(src.path());
            let path = dir.path().join(newest.file_name().unwrap());
            let mut torn = data[..cut].to_vec();
            torn.resize(cut + zeros, 0);
            std::fs::write(&path, &torn).unwrap();
            let db = open(dir.path()).unwrap_or_else(|e| panic!("cut {cut} + {zeros}: {e}"));
            let expect_torn = cut > off || zeros > 0;
            assert_eq!(
                db.recovery_report().torn_tail,
                expect_torn.then(|| (path.clone(), off as u64)),
                "cut {cut} + {zeros} zeros"
            );
            assert_eq!(db.stats().last_lsn, lsn - 1);
            assert_eq!(db.get(&key(lsn)), None);
            assert_eq!(db.scan(..).len(), WRITES as usize - 1);
            // The log goes on after the cut.
            assert_eq!(db.put(b"after", b"1").unwrap(), lsn);
            drop(db);
            let db = open(dir.path()).unwrap();
            assert_eq!(db.get(b"after").as_deref(), Some(&b"1"[..]));
        }
    }
}
