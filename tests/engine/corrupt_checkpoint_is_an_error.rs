//! A corrupt checkpoint file or manifest is a typed error naming the file
//! and offset, never a panic, never silent data loss.

use crate::common;

use ckptdb::{CheckpointKind, Db, OpenError, RecoveryError};

fn setup() -> tempfile::TempDir {
    let dir = common::tempdir();
    let db = Db::open(dir.path(), common::test_options().build().unwrap()).unwrap();
    for i in 0..50u32 {
        db.put(format!("k{i}").as_bytes(), b"value").unwrap();
    }
    db.checkpoint_now(CheckpointKind::Global).unwrap();
    db.put(b"later", b"x").unwrap();
    db.checkpoint_now(CheckpointKind::Incremental).unwrap();
    db.close().unwrap();
    dir
}

fn open_err(dir: &std::path::Path) -> OpenError {
    Db::open(dir, common::test_options().build().unwrap()).unwrap_err()
}

#[test]
fn every_byte_flip_in_a_checkpoint_file_is_detected() {
    let _serial = common::serial();
    let dir = setup();
    let files: Vec<String> = common::files(dir.path())
        .into_iter()
        .filter(|n| n.starts_with("ckpt-"))
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    for name in &files {
        let path = dir.path().join(name);
        let good = std::fs::read(&path).unwrap();
        for i in (0..good.len()).step_by(7) {
            let mut bad = good.clone();
            bad[i] ^= 0x55;
            std::fs::write(&path, &bad).unwrap();
            let err = open_err(dir.path());
            let OpenError::Recovery(RecoveryError::CorruptCheckpoint(c)) = &err else {
                panic!("byte {i} of {name}: {err}");
            };
            assert_eq!(c.path, path);
        }
        std::fs::write(&path, &good[..good.len() / 2]).unwrap();
        assert!(matches!(
            open_err(dir.path()),
            OpenError::Recovery(RecoveryError::CorruptCheckpoint(_))
        ));
        std::fs::remove_file(&path).unwrap();
        let err = open_err(dir.path());
        assert!(err.to_string().contains("missing"), "{err}");
        std::fs::write(&path, &good).unwrap();
    }
    let db = Db::open(dir.path(), common::test_options().build().unwrap()).unwrap();
    assert_eq!(db.scan(..).len(), 51);
}

#[test]
fn corrupt_manifest_is_a_typed_error() {
    let _serial = common::serial();
    let dir = setup();
    let path = dir.path().join("MANIFEST");
    let good = std::fs::read(&path).unwrap();
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        let err = open_err(dir.path());
        let OpenError::Recovery(RecoveryError::CorruptManifest(c)) = &err else {
            panic!("byte {i}: {err}");
        };
        assert_eq!(c.path, path);
    }
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(
        open_err(dir.path()),
        OpenError::Recovery(RecoveryError::CorruptManifest(_))
    ));
}
