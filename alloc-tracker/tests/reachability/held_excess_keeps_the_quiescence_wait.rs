//! A failing check ends its quiescence wait early only when a scan finds
//! every block of its excess unreachable. While something still holds a
//! block (a static, a value alive in the caller, a thread that will free it
//! late), the check waits the whole time, as it would without the scan: a
//! late free then still passes. Its report reuses the early scan only when
//! the scope did not change since: a block allocated after that scan gets
//! a verdict from a new one. (The early end itself is shown where
//! unreachable verdicts are reliable, in its own process:
//! `tests/own_process/unreachable_leaks_are_definitely_lost.rs`.)

use std::hint::black_box;
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use rusty_fork::rusty_fork_test;
use scope_alloc_tracker::leak::{LeakCheck, EARLY_SCAN_AFTER};
use scope_alloc_tracker::{Scope, ScopeId};

static KEPT: Scope = Scope::new("reach-kept");

// Every block here has a jemalloc size class no other test of this binary
// uses (1280, 1536, 1792, 2048, 2560, 3584, 5120 B): an address one of
// them had, left on a thread stack that glibc then gives to the next test
// thread, would hold another test's block at that address.

/// Long enough that an early end (after `EARLY_SCAN_AFTER` and one scan)
/// is told from the whole wait on a noisy machine.
const WAIT: Duration = Duration::from_secs(1);

static HOLDER: Mutex<Option<Box<[u8; 1500]>>> = Mutex::new(None);

#[inline(never)]
fn keep_in_a_static() {
    *HOLDER.lock().unwrap() = Some(black_box(Box::new([4u8; 1500])));
}

rusty_fork_test! {
    #[test]
    fn an_excess_held_by_a_static_waits_the_whole_quiescence() {
        let instance = KEPT.instance().unwrap();
        let check = LeakCheck::options(&instance).quiescence(WAIT).begin();
        instance.in_scope(keep_in_a_static);
        let report = check.finish().unwrap_err();
        *HOLDER.lock().unwrap() = None;
        assert_eq!(report.leaked_bytes, 1500, "{report}");
        let r = report.reachability.as_ref().expect("a failed check scans");
        assert_eq!(r.total.reachable_bytes, 1500, "{report}");
        assert!(report.waited >= WAIT, "{report}");
    }
}

/// A value the caller still owns.
struct Session {
    buf: Vec<u8>,
    id: u64,
}

#[inline(never)]
fn open_session() -> Session {
    Session {
        buf: black_box(vec![1u8; 1700]),
        id: 7,
    }
}

rusty_fork_test! {
    #[test]
    fn an_excess_held_by_a_live_value_of_the_caller_waits_the_whole_quiescence() {
        let instance = KEPT.instance().unwrap();
        let check = LeakCheck::options(&instance).quiescence(WAIT).begin();
        let session = instance.in_scope(open_session);
        let report = check.finish().unwrap_err();
        // The session is alive across `finish`: its buffer is held.
        let session = black_box(session);
        assert_eq!((session.id, session.buf.len()), (7, 1700));
        assert_eq!(report.leaked_bytes, 1700, "{report}");
        let r = report.reachability.as_ref().expect("a failed check scans");
        assert_eq!(r.total.reachable_bytes, 1700, "{report}");
        assert!(report.waited >= WAIT, "{report}");
        drop(session);
    }
}

#[inline(never)]
fn lose_one_and_keep_one() -> Vec<u8> {
    black_box(Box::leak(black_box(Box::new([5u8; 2000]))));
    black_box(vec![6u8; 2400])
}

rusty_fork_test! {
    #[test]
    fn an_excess_partly_held_waits_the_whole_quiescence() {
        let instance = KEPT.instance().unwrap();
        let check = LeakCheck::options(&instance).quiescence(WAIT).begin();
        let kept = instance.in_scope(lose_one_and_keep_one);
        let report = check.finish().unwrap_err();
        assert_eq!(black_box(&kept).len(), 2400);
        // The lost box alone fails the check, but the held vector could still
        // be freed by the time the wait ends: the report waits to say so.
        assert_eq!(report.leaked_bytes, 4400, "{report}");
        assert!(report.waited >= WAIT, "{report}");
        drop(kept);
    }
}

rusty_fork_test! {
    #[test]
    fn a_block_another_thread_frees_late_still_passes() {
        let wait = Duration::from_secs(2);
        let late = Duration::from_millis(300);
        let instance = KEPT.instance().unwrap();
        let check = LeakCheck::options(&instance).quiescence(wait).begin();
        // The thread (made outside the scope) holds the only pointer to the
        // block, on its stack, while it sleeps past the early scan.
        let (tx, rx) = mpsc::channel::<Box<[u8; 3500]>>();
        let t = std::thread::spawn(move || {
            let block = rx.recv().unwrap();
            std::thread::sleep(late);
            drop(block);
        });
        tx.send(instance.in_scope(|| black_box(Box::new([9u8; 3500]))))
            .unwrap();
        let drained = check
            .finish()
            .expect("the thread frees the block within the wait");
        assert!(
            drained.waited >= late - Duration::from_millis(50),
            "{drained}"
        );
        assert!(drained.waited > EARLY_SCAN_AFTER, "{drained}");
        assert!(drained.waited < wait, "{drained}");
        t.join().unwrap();
    }
}

rusty_fork_test! {
    #[test]
    fn a_block_allocated_after_the_early_scan_has_a_verdict_in_the_report() {
        let instance = KEPT.instance().unwrap();
        let scope = ScopeId::from(&instance);
        let check = LeakCheck::options(&instance).quiescence(WAIT).begin();
        let first = instance.in_scope(|| black_box(vec![2u8; 1200]));
        // Well after the early scan, a thread allocates a second block in the
        // scope and holds it until the check is over: the figures changed, so
        // the report must come from a scan made after it, not the early one.
        let (made, wait_made) = mpsc::channel::<()>();
        let (done, wait_done) = mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let second = scope.in_scope(|| black_box(vec![3u8; 5000]));
            made.send(()).unwrap();
            wait_done.recv().unwrap();
            drop(second);
        });
        let report = check.finish().unwrap_err();
        wait_made.recv().unwrap();
        done.send(()).unwrap();
        t.join().unwrap();
        assert_eq!(black_box(&first).len(), 1200);
        assert_eq!(report.leaked_bytes, 1200 + 5000, "{report}");
        let r = report.reachability.as_ref().expect("a failed check scans");
        assert_eq!(r.total.reachable_bytes, 1200 + 5000, "{report}");
        assert!(report.waited >= WAIT, "{report}");
    }
}
