// Own test binary: stale addresses in freed memory of other tests make lost blocks look reachable.
//! Leaks that nothing can reach any more (`Box::leak` whose reference was
//! dropped, `mem::forget` of a `Vec`, `Rc` cycles) are reported
//! unreachable by the reachability scan of the failed check.
#![cfg(feature = "jemalloc")]

use std::cell::RefCell;
use std::hint::black_box;
use std::rc::Rc;

use scope_alloc_tracker::leak::{LeakCheck, LeakReport, Reachability};
use scope_alloc_tracker::{Jemalloc, Scope, TrackingAlloc};

/// One check at a time: a scan reads the whole process, and another test's
/// report being built meanwhile holds copies of block addresses.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

static LOST: Scope = Scope::new("reach-lost");

/// Runs `plant` in a fresh instance of `LOST` under a check and returns the
/// failed check's report.
fn check(plant: fn()) -> LeakReport {
    let _one_at_a_time = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let instance = LOST.instance().unwrap();
    let check = LeakCheck::begin(&instance);
    instance.in_scope(plant);
    check
        .finish()
        .expect_err("the planted leak must fail the check")
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

#[test]
fn box_leak_whose_reference_was_dropped_is_unreachable() {
    let report = check(leak_box_and_drop_the_reference);
    assert_all_unreachable(&report, 200, 1);
}

#[inline(never)]
fn forget_a_vec() {
    let v: Vec<u64> = black_box((0..100).collect());
    std::mem::forget(v);
}

#[test]
fn forgotten_vec_is_unreachable() {
    let report = check(forget_a_vec);
    assert_all_unreachable(&report, 800, 1);
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

#[test]
fn rc_cycle_of_two_is_unreachable() {
    let report = check(rc_cycle_of_two);
    assert_all_unreachable(&report, 2 * NODE_BYTES, 2);
}

#[test]
fn rc_cycle_of_ten_is_unreachable() {
    let report = check(rc_cycle_of_ten);
    assert_all_unreachable(&report, 10 * NODE_BYTES, 10);
}

#[test]
fn reachability_off_scans_nothing() {
    let instance = LOST.instance().unwrap();
    let check = LeakCheck::options(&instance)
        .reachability(Reachability::Off)
        .begin();
    instance.in_scope(forget_a_vec);
    let report = check.finish().unwrap_err();
    assert!(report.reachability.is_none());
    assert!(report.sites.iter().all(|s| s.reach.is_none()));
}

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
