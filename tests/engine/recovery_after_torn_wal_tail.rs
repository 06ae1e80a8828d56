//! A torn WAL tail (partial last record) is tolerated and truncated;
//! corruption in the middle of the log is a typed error naming the file
//! and offset.

use crate::common;

use std::path::PathBuf;

use ckptdb::{Db, OpenError, RecoveryError};

fn last_segment(dir: &std::path::Path) -> PathBuf {
    let name = common::files(dir)
        .into_iter()
        .rfind(|n| n.starts_with("wal-"))
        .unwrap();
    dir.join(name)
}

fn write_keys(dir: &std::path::Path, n: u32) {
    let db = Db::open(dir, common::test_options().build().unwrap()).unwrap();
    for i in 0..n {
        db.put(format!("k{i}").as_bytes(), &[i as u8; 40]).unwrap();
    }
    db.close().unwrap();
}

#[test]
fn every_cut_inside_the_last_record_is_tolerated() {
    let _serial = common::serial();
    let dir = common::tempdir();
    write_keys(dir.path(), 5);
    let seg = last_segment(dir.path());
    let full = std::fs::read(&seg).unwrap();
    let record = (full.len() - 24) / 5;
    for cut in (full.len() - record + 1)..full.len() {
        std::fs::write(&seg, &full[..cut]).unwrap();
        let db = Db::open(dir.path(), common::test_options().build().unwrap()).unwrap();
        let torn = db.recovery_report().torn_tail.clone();
        assert_eq!(torn, Some((seg.clone(), (full.len() - record) as u64)));
        assert_eq!(db.get(b"k3").as_deref(), Some(&[3u8; 40][..]));
        assert_eq!(db.get(b"k4"), None, "cut {cut}");
        drop(db);
        // The tail was truncated on disk.
        assert_eq!(
            std::fs::metadata(&seg).unwrap().len() as usize,
            full.len() - record
        );
        std::fs::write(&seg, &full).unwrap();
    }
    // After truncation, new writes continue the log.
    std::fs::write(&seg, &full[..full.len() - 3]).unwrap();
    let db = Db::open(dir.path(), common::test_options().build().unwrap()).unwrap();
    db.put(b"new", b"1").unwrap();
    drop(db);
    let db = Db::open(dir.path(), common::test_options().build().unwrap()).unwrap();
    assert_eq!(db.get(b"new").as_deref(), Some(&b"1"[..]));
    assert_eq!(db.recovery_report().torn_tail, None);
}

#[test]
fn corruption_in_the_middle_is_a_typed_error() {
    let _serial = common::serial();
    let dir = common::tempdir();
    write_keys(dir.path(), 5);
    let seg = last_segment(dir.path());
    let mut data = std::fs::read(&seg).unwrap();
    let record = (data.len() - 24) / 5;
    let offset = 24 + record; // second record
    data[offset + 20] ^= 0xff;
    std::fs::write(&seg, &data).unwrap();
    let err = Db::open(dir.path(), common::test_options().build().unwrap()).unwrap_err();
    let OpenError::Recovery(RecoveryError::CorruptWal(c)) = &err else {
        panic!("expected a corrupt WAL error, got {err}");
    };
    assert_eq!(c.path, seg);
    assert_eq!(c.offset, offset as u64);
    assert!(
        err.to_string().contains(&seg.display().to_string()),
        "{err}"
    );
    // Nothing was modified: the same error again.
    assert!(Db::open(dir.path(), common::test_options().build().unwrap()).is_err());
}
