//! Leaks that nothing can reach any more (`Box::leak` whose reference was
//! dropped, `mem::forget` of a `Vec`, `Rc` cycles) are reported
//! unreachable by the reachability scan of the failed check, and such a
//! check ends its quiescence wait early: no thread can free them any more.
//! Checks that do not scan, or that ask for the whole wait, wait it out.
//!
//! Each test runs in a process of its own: the early end needs a scan that
//! saw the whole process, and a test starting meanwhile (a new thread, new
//! memory) would deny it; and with two tests in one process, libtest
//! starts the next test's thread while a check runs, and then about one
//! run in ten found a planted block held by "unrecorded heap in scope-less
//! memory" in all three tries of a test (stale copies in jemalloc's memory
//! of the other threads; the scan's documented error towards "reachable");
//! one test at a time, none in 25.
#![cfg(feature = "jemalloc")]

use std::cell::RefCell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::Duration;

use rusty_fork::rusty_fork_test;
use scope_alloc_tracker::leak::{
    LeakCheck, LeakCheckOptions, LeakReport, QuiescenceEnd, Reachability, Sites,
    DEFAULT_QUIESCENCE, EARLY_SCAN_AFTER,
};
use scope_alloc_tracker::Scope;

static LOST: Scope = Scope::new("reach-lost");

/// Runs `plant` in a fresh instance of `LOST` under a check and returns the
/// failed check's report.
fn check(plant: fn()) -> LeakReport {
    let instance = LOST.instance().unwrap();
    let check = LeakCheck::begin(&instance);
    instance.in_scope(plant);
    check
        .finish()
        .expect_err("the planted leak must fail the check")
}

/// [`check`] until the scan finds the planted `bytes` unreachable (see
/// [`until_unreachable`]).
fn check_until_unreachable(plant: fn(), bytes: u64) -> LeakReport {
    until_unreachable(|o| o, plant, bytes, DEFAULT_QUIESCENCE)
}

fn assert_all_unreachable(report: &LeakReport, bytes: u64, allocs: u64) {
    let r = report.reachability.as_ref().expect("a failed check scans");
    assert_eq!(r.error, None, "{report}");
    assert_eq!(r.total.unreachable_bytes, bytes, "{report}");
    assert_eq!(r.total.unreachable_allocs, allocs, "{report}");
    assert_eq!(r.total.reachable_bytes, 0, "{report}");
    assert!(r.total.holders.is_empty(), "{report}");
    assert!(r.scanned_bytes > 0, "{report}");
    let per_site: u64 = report
        .sites
        .iter()
        .map(|s| s.reach.as_ref().unwrap().unreachable_bytes)
        .sum();
    assert_eq!(per_site, bytes, "{report}");
    assert!(report.to_string().contains("UNREACHABLE"), "{report}");
}

#[inline(never)]
fn leak_box_and_drop_the_reference() {
    let r: &'static mut [u8; 200] = Box::leak(Box::new([7u8; 200]));
    black_box(&*r);
}

rusty_fork_test! {
    #[test]
    fn box_leak_whose_reference_was_dropped_is_unreachable() {
        let report = check_until_unreachable(leak_box_and_drop_the_reference, 200);
        assert_all_unreachable(&report, 200, 1);
    }
}

#[inline(never)]
fn forget_a_vec() {
    let v: Vec<u64> = black_box((0..100).collect());
    std::mem::forget(v);
}

rusty_fork_test! {
    #[test]
    fn forgotten_vec_is_unreachable() {
        let report = check_until_unreachable(forget_a_vec, 800);
        assert_all_unreachable(&report, 800, 1);
    }
}

struct Node {
    next: RefCell<Option<Rc<Node>>>,
    _payload: [u64; 4],
}

#[inline(never)]
fn rc_cycle(n: usize) {
    let first = Rc::new(Node {
        next: RefCell::new(None),
        _payload: [1; 4],
    });
    let mut prev = first.clone();
    for _ in 1..n {
        let node = Rc::new(Node {
            next: RefCell::new(None),
            _payload: [2; 4],
        });
        *prev.next.borrow_mut() = Some(node.clone());
        prev = node;
    }
    *prev.next.borrow_mut() = Some(first.clone());
    black_box(&first);
}

#[inline(never)]
fn rc_cycle_of_two() {
    rc_cycle(2);
}

#[inline(never)]
fn rc_cycle_of_ten() {
    rc_cycle(10);
}

/// `RcBox<Node>`: two counts, the `RefCell<Option<Rc>>` and the payload.
const NODE_BYTES: u64 = (std::mem::size_of::<Node>() + 16) as u64;

rusty_fork_test! {
    #[test]
    fn rc_cycle_of_two_is_unreachable() {
        let report = check_until_unreachable(rc_cycle_of_two, 2 * NODE_BYTES);
        assert_all_unreachable(&report, 2 * NODE_BYTES, 2);
    }
}

rusty_fork_test! {
    #[test]
    fn rc_cycle_of_ten_is_unreachable() {
        let report = check_until_unreachable(rc_cycle_of_ten, 10 * NODE_BYTES);
        assert_all_unreachable(&report, 10 * NODE_BYTES, 10);
    }
}

rusty_fork_test! {
    #[test]
    fn reachability_off_scans_nothing_and_waits_the_whole_quiescence() {
        let instance = LOST.instance().unwrap();
        let check = LeakCheck::options(&instance)
            .reachability(Reachability::Off)
            .begin();
        instance.in_scope(forget_a_vec);
        let report = check.finish().unwrap_err();
        assert!(report.reachability.is_none());
        assert!(report.sites.iter().all(|s| s.reach.is_none()));
        // Without a scan nothing says the vector is lost: the whole wait.
        assert!(report.waited >= DEFAULT_QUIESCENCE, "{report}");
    }
}

/// Loose bounds on a noisy machine: an early end comes after the first
/// moments of the wait and one scan, far from the quiescence time.
const LONG_WAIT: Duration = Duration::from_secs(2);

/// A box of a size of its own (so jemalloc does not hand it an address
/// that the harness or an earlier test used and may keep a stale copy of).
#[inline(never)]
fn leak_a_box_of_its_own_size() {
    black_box(Box::leak(Box::new([8u8; 2344])));
}

/// Checks `plant` under `options` until the scan finds its blocks
/// unreachable (at most three times) and returns that report. A stale copy
/// of a block's address (freed heap memory, a dead slot of a thread's
/// frames: the scan's documented error in the other direction) can keep it
/// reachable on a run; such a run must have waited the whole `wait`. Each
/// run's blocks stay leaked, so the next run's are at new addresses.
fn until_unreachable(
    options: fn(LeakCheckOptions) -> LeakCheckOptions,
    plant: fn(),
    bytes: u64,
    wait: Duration,
) -> LeakReport {
    let mut last = String::new();
    for _ in 0..3 {
        let instance = LOST.instance().unwrap();
        let check = options(LeakCheck::options(&instance).quiescence(wait)).begin();
        instance.in_scope(plant);
        let report = check.finish().unwrap_err();
        assert_eq!(report.leaked_bytes, bytes, "{report}");
        let r = &report.reachability.as_ref().expect("a failed check scans");
        if r.total.unreachable_bytes == bytes {
            return report;
        }
        assert!(report.waited >= wait, "held, yet did not wait: {report}");
        last = report.to_string();
    }
    panic!("the planted leak was never found unreachable in three runs; last:\n{last}");
}

rusty_fork_test! {
    #[test]
    fn an_unreachable_leak_fails_without_waiting_out_the_quiescence() {
        for (plant, bytes) in [
            (leak_a_box_of_its_own_size as fn(), 2344),
            (forget_a_vec, 800),
        ] {
            let report = until_unreachable(|o| o, plant, bytes, LONG_WAIT);
            assert_all_unreachable(&report, bytes, 1);
            assert!(report.waited >= EARLY_SCAN_AFTER, "{report}");
            assert!(report.waited < LONG_WAIT / 2, "{report}");
        }
    }
}

rusty_fork_test! {
    #[test]
    fn asking_for_the_full_wait_waits_it_out_even_for_an_unreachable_leak() {
        let wait = Duration::from_millis(400);
        let report = until_unreachable(
            |o| o.quiescence_end(QuiescenceEnd::Full),
            leak_a_box_of_its_own_size,
            2344,
            wait,
        );
        // Found lost, yet the whole wait was paid, as asked.
        assert!(report.waited >= wait, "{report}");
    }
}

rusty_fork_test! {
    #[test]
    fn a_check_without_sites_waits_the_whole_quiescence() {
        let wait = Duration::from_millis(400);
        let instance = LOST.instance().unwrap();
        let check = LeakCheck::options(&instance)
            .quiescence(wait)
            .sites(Sites::Off)
            .begin();
        instance.in_scope(leak_box_and_drop_the_reference);
        let report = check.finish().unwrap_err();
        // No records, no scan: nothing tells that the box is lost.
        assert_eq!(report.leaked_bytes, 200, "{report}");
        assert!(report.reachability.is_none(), "{report}");
        assert!(report.waited >= wait, "{report}");
    }
}

rusty_fork_test! {
    #[test]
    fn the_process_report_carries_each_leak_sites_reachability() {
        let leak = check(leak_box_and_drop_the_reference);
        let report = scope_alloc_tracker::report::Report::take().with_leak(&leak);
        let site = report
            .sites
            .iter()
            .find(|s| s.source == scope_alloc_tracker::report::SiteSource::Recorded)
            .expect("the leak's site is in the report");
        let reach = site
            .reach
            .as_ref()
            .expect("the site keeps its reachability");
        // The classification the check made, carried over as it is (whether
        // this scan found the block unreachable is the other tests' business).
        assert_eq!(Some(reach), leak.sites[0].reach.as_ref());
        assert_eq!(reach.unreachable_bytes + reach.reachable_bytes, 200);
        let text = report.to_string();
        let line = format!(
            "unreachable {} in {}, reachable {} in {}",
            scope_alloc_tracker::report::human_bytes(reach.unreachable_bytes),
            reach.unreachable_allocs,
            scope_alloc_tracker::report::human_bytes(reach.reachable_bytes),
            reach.reachable_allocs
        );
        assert!(text.contains(&line), "{text}");
        // Folded stacks (and the flame graph drawn from them): the site under
        // a frame that says which of its bytes are unreachable.
        let folded = report.to_folded();
        let lines: Vec<&str> = folded
            .lines()
            .filter(|l| l.starts_with(scope_alloc_tracker::report::LEAK_ROOT_PREFIX))
            .collect();
        let part = |frame: &str| -> u64 {
            lines
                .iter()
                .filter(|l| l.split(';').nth(1) == Some(frame))
                .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
                .sum()
        };
        assert_eq!(
            part(scope_alloc_tracker::report::UNREACHABLE_FRAME),
            reach.unreachable_bytes,
            "{folded}"
        );
        assert_eq!(
            part(scope_alloc_tracker::report::REACHABLE_FRAME),
            reach.reachable_bytes,
            "{folded}"
        );
        #[cfg(feature = "json")]
        {
            let back = scope_alloc_tracker::report::Report::from_json(&report.to_json()).unwrap();
            assert_eq!(back, report);
        }
        #[cfg(feature = "pprof")]
        {
            // The profile's string table has the label and its value.
            let proto = report.to_pprof_proto();
            let has = |s: &str| proto.windows(s.len()).any(|w| w == s.as_bytes());
            let verdict = match (reach.unreachable_allocs, reach.reachable_allocs) {
                (_, 0) => "unreachable",
                (0, _) => "reachable",
                _ => "mixed",
            };
            assert!(has("reach") && has(verdict));
        }
    }
}
