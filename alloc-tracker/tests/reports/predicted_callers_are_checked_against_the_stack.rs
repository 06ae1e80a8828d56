//! The unwinder predicts each frame's caller from the last stack it saw
//! through that frame, and must still record the real one. One helper
//! allocates for three callers, each at three recursion depths, in a
//! pseudo-random order: every prediction of the helper's caller and of the
//! recursion's exit is wrong often, and every leak site must still carry
//! exactly its own allocations.

use std::collections::HashMap;
use std::hint::black_box;

use scope_alloc_tracker::leak::LeakCheck;
use scope_alloc_tracker::sampling::{set_stack_unwinder, stack_capture_stats, StackUnwinder};
use scope_alloc_tracker::ScopeId;

#[inline(never)]
fn shared_helper(tag: u8) {
    black_box(Box::leak(Box::new([tag; 48])));
    black_box(());
}

#[inline(never)]
fn recurse_then_help(depth: usize, tag: u8) {
    if depth == 0 {
        shared_helper(tag);
    } else {
        recurse_then_help(black_box(depth - 1), tag);
    }
    black_box(());
}

#[inline(never)]
fn caller_one(depth: usize) {
    recurse_then_help(depth, 1);
    black_box(());
}

#[inline(never)]
fn caller_two(depth: usize) {
    recurse_then_help(depth, 2);
    black_box(());
}

#[inline(never)]
fn caller_three(depth: usize) {
    recurse_then_help(depth, 3);
    black_box(());
}

/// A caller's name and the caller.
type Caller = (&'static str, fn(usize));

const CALLERS: [Caller; 3] = [
    ("caller_one", caller_one),
    ("caller_two", caller_two),
    ("caller_three", caller_three),
];

/// A pseudo-random plan of (caller, depth) calls.
fn plan(seed: u64, calls: usize) -> Vec<(usize, usize)> {
    let mut x = seed;
    (0..calls)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x % 3) as usize, ((x >> 8) % 3) as usize)
        })
        .collect()
}

/// Runs each plan on a thread of its own, all at once (the plans are made
/// outside the scope: nothing but the helper allocates in it), and checks
/// that the leak report's sites hold exactly the calls of each (caller,
/// depth).
fn check_plans(name: &str, plans: &[Vec<(usize, usize)>]) {
    set_stack_unwinder(StackUnwinder::Cached);
    let scope = ScopeId::register(name, None).unwrap();
    let mut expected: HashMap<(&str, usize), u64> = HashMap::new();
    for &(caller, depth) in plans.iter().flatten() {
        *expected.entry((CALLERS[caller].0, depth)).or_default() += 1;
    }
    let calls = plans.iter().map(Vec::len).sum::<usize>() as u64;
    let before = stack_capture_stats();
    let check = LeakCheck::begin(scope);
    std::thread::scope(|s| {
        for plan in plans {
            s.spawn(move || {
                scope.in_scope(|| {
                    for &(caller, depth) in plan {
                        CALLERS[caller].1(depth);
                    }
                })
            });
        }
    });
    let report = check.finish().expect_err("planted leaks");
    let after = stack_capture_stats();
    assert_eq!(after.fallback, before.fallback, "{before:?} -> {after:?}");
    assert!(after.fast >= before.fast + calls, "{before:?} -> {after:?}");

    let mut found: HashMap<(&str, usize), u64> = HashMap::new();
    for site in &report.sites {
        let callers: Vec<&str> = CALLERS
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| site.frames.iter().any(|f| f.function.contains(name)))
            .collect();
        assert_eq!(callers.len(), 1, "one caller per site:\n{report}");
        assert!(
            site.frames
                .iter()
                .any(|f| f.function.contains("shared_helper")),
            "{report}"
        );
        // The recursion's frames: the call from the caller and one per level.
        let depth = site
            .frames
            .iter()
            .filter(|f| f.function.contains("recurse_then_help"))
            .count()
            - 1;
        *found.entry((callers[0], depth)).or_default() += site.allocs;
    }
    assert_eq!(found, expected, "\n{report}");
}

#[test]
fn every_site_keeps_exactly_its_own_allocations_when_callers_change() {
    let _alone = crate::common::alone();
    check_plans("predicted-callers", &[plan(0x2545_f491_4f6c_dd1d, 600)]);
}

/// Two threads walk through the same frames with other callers at the same
/// time: each rewrites the edges the other relies on.
#[test]
fn threads_that_rewrite_each_others_predictions_still_record_their_own_stacks() {
    let _alone = crate::common::alone();
    check_plans(
        "predicted-callers-threads",
        &[
            plan(0x2545_f491_4f6c_dd1d, 2000),
            plan(0x9e37_79b9_7f4a_7c15, 2000),
        ],
    );
}
