//! Work handed to a background thread may free a little later: a check
//! waits, bounded by its quiescence timeout, before declaring a leak.

use std::sync::mpsc;
use std::time::Duration;

use scope_alloc_tracker::leak::LeakCheck;
use scope_alloc_tracker::ScopeId;

/// Sends a buffer made in `scope` to a thread that frees it after `delay`.
fn free_later(scope: ScopeId, delay: Duration) -> std::thread::JoinHandle<()> {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let buf: Vec<u8> = rx.recv().unwrap();
        std::thread::sleep(delay);
        drop(buf);
    });
    tx.send(scope.in_scope(|| vec![5u8; 4096])).unwrap();
    h
}

#[test]
fn passes_when_the_late_free_comes_within_the_timeout() {
    let _shared = crate::common::shared();
    let scope = ScopeId::register("late-but-in-time", None).unwrap();
    let check = LeakCheck::options(scope)
        .quiescence(Duration::from_secs(10))
        .begin();
    let h = free_later(scope, Duration::from_millis(100));
    let drained = check.finish().expect("freed within the timeout");
    assert!(
        drained.waited >= Duration::from_millis(50),
        "{:?}",
        drained.waited
    );
    assert!(drained.waited < Duration::from_secs(10));
    h.join().unwrap();
}

#[test]
fn fails_when_the_free_comes_after_the_timeout() {
    let _shared = crate::common::shared();
    let scope = ScopeId::register("too-late", None).unwrap();
    let check = LeakCheck::options(scope)
        .quiescence(Duration::from_millis(30))
        .begin();
    let h = free_later(scope, Duration::from_millis(1500));
    let report = check.finish().expect_err("still live after the timeout");
    assert_eq!(report.leaked_bytes, 4096);
    assert!(
        report.waited >= Duration::from_millis(30),
        "{:?}",
        report.waited
    );
    assert!(report.to_string().contains("waited"), "{report}");
    h.join().unwrap();
    assert_eq!(scope.stats().live_bytes, 0);
}

#[test]
fn tolerated_bytes_are_reported_as_retained_not_hidden() {
    let _shared = crate::common::shared();
    let scope = ScopeId::register("warm-cache", None).unwrap();
    let check = LeakCheck::options(scope).tolerance_bytes(1024).begin();
    // black_box: an allocation only dropped could be optimised away.
    let cache = scope.in_scope(|| std::hint::black_box(vec![0u8; 500]));
    let drained = check.finish().expect("within tolerance");
    assert_eq!(drained.retained_bytes, 500);
    let check = LeakCheck::options(scope).tolerance_bytes(100).begin();
    let more = scope.in_scope(|| std::hint::black_box(vec![0u8; 500]));
    let report = check.finish().expect_err("over tolerance");
    assert_eq!(report.leaked_bytes, 500);
    drop((cache, more));
}
