//! This test binary deliberately has NO `#[global_allocator]` line: the
//! tracker counts nothing here, so a checkpoint leak check could only pass
//! blindly. Strict leak mode refuses to open (a typed error naming the
//! missing line, before touching the directory); production mode opens,
//! says so once, and reports its runs as unchecked rather than drained.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use ckptdb::{CheckpointKind, Db, Drain, LeakMode, OpenError};

#[test]
fn strict_mode_open_is_refused_naming_the_missing_global_allocator_line() {
    assert!(!scope_alloc_tracker::is_installed());
    let tmp = common::tempdir();
    let dir = tmp.path().join("db");
    let opts = common::test_options()
        .leak_mode(LeakMode::Strict)
        .build()
        .unwrap();
    let err = Db::open(&dir, opts).unwrap_err();
    assert!(matches!(err, OpenError::TrackerNotInstalled(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("#[global_allocator]"), "{msg}");
    assert!(msg.contains("TrackingAlloc"), "{msg}");
    assert!(msg.contains("strict leak mode"), "{msg}");
    // Refused before anything was created.
    assert!(!dir.exists());
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// The only test of this binary that opens in production mode: the warning
// is once per process.
#[test]
fn production_mode_opens_warns_once_and_reports_runs_unchecked() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        for round in 0..2u8 {
            let tmp = common::tempdir();
            let opts = common::test_options()
                .leak_mode(LeakMode::Production)
                .build()
                .unwrap();
            let db = Db::open(tmp.path(), opts).unwrap();
            db.put(b"k", &[round; 64]).unwrap();
            let report = db.checkpoint_now(CheckpointKind::Incremental).unwrap();
            assert_eq!(report.drain, Drain::Unchecked, "{report:?}");
            assert!(!report.drained());
            assert!(!report.empty);
            let stats = db.stats();
            assert_eq!(stats.leaks_detected, 0);
            assert_eq!(stats.checkpoints_ok, 1);
            db.close().unwrap();
            let db = Db::open(
                tmp.path(),
                common::test_options()
                    .leak_mode(LeakMode::Production)
                    .build()
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(db.get(b"k"), Some(vec![round; 64]));
        }
    });
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text.matches("is not installed").count(),
        1,
        "warned once for four opens:\n{text}"
    );
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("#[global_allocator]"), "{text}");
    assert!(text.contains("NOT leak-checked"), "{text}");
}
