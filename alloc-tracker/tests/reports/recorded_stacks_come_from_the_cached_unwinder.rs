//! Recorded call stacks come from the cached unwinder (no fallback on an
//! ordinary stack), reach deep enough past the allocator, name the same
//! functions as the old unwinder, and are cheap.

use std::hint::black_box;
use std::time::Instant;

use scope_alloc_tracker::leak::{LeakCheck, LeakReport};
use scope_alloc_tracker::sampling::{set_stack_unwinder, stack_capture_stats, StackUnwinder};
use scope_alloc_tracker::ScopeId;

/// Recurses `depth` frames, then leaks one box.
#[inline(never)]
fn nest_then_leak(depth: usize) {
    if depth == 0 {
        black_box(Box::leak(Box::new([3u8; 64])));
    } else {
        nest_then_leak(black_box(depth - 1));
    }
    black_box(());
}

fn leak_report(name: &str, depth: usize) -> LeakReport {
    let s = ScopeId::register(name, None).unwrap();
    let check = LeakCheck::begin(s);
    s.in_scope(|| nest_then_leak(depth));
    check.finish().unwrap_err()
}

// One test function: the unwinder knob and the counters are process-wide.
#[test]
fn cached_unwinder_names_the_same_frames_as_the_old_one_and_is_faster() {
    let _alone = crate::common::alone();
    set_stack_unwinder(StackUnwinder::Cached);
    let before = stack_capture_stats();
    let fast = leak_report("fast", 30);
    let after = stack_capture_stats();
    assert!(
        after.fast > before.fast,
        "the cached unwinder was not used: {before:?} -> {after:?}"
    );
    assert_eq!(
        after.fallback, before.fallback,
        "an ordinary stack fell back to the old unwinder"
    );
    // The walk stops 28 physical frames past the allocator's entry: the
    // report (the frames past the allocator, std's wrappers trimmed) keeps
    // at least 24, nearly all of them the recursion's.
    let frames = &fast.sites[0].frames;
    let nested = frames
        .iter()
        .filter(|f| f.function.contains("nest_then_leak"))
        .count();
    assert!(
        frames.len() >= 24 && nested >= 22,
        "fewer than 24 frames past the allocator:\n{fast}"
    );

    set_stack_unwinder(StackUnwinder::Fallback);
    let slow = leak_report("slow", 30);
    set_stack_unwinder(StackUnwinder::Cached);
    assert!(stack_capture_stats().fallback > after.fallback);
    // Same functions, frame for frame, up to the shorter walk's cut (the
    // cached walk's depth, or the old walk's 48 frames).
    let names = |r: &LeakReport| -> Vec<String> {
        r.sites[0]
            .frames
            .iter()
            .map(|f| f.function.clone())
            .filter(|f| !f.contains("cached_unwinder_names"))
            .take(30)
            .collect()
    };
    let same_prefix = |fast: &LeakReport, slow: &LeakReport| {
        let (f, s) = (names(fast), names(slow));
        let k = f.len().min(s.len());
        f[..k] == s[..k]
    };
    assert!(same_prefix(&fast, &slow), "\n{fast}\n{slow}");

    // A freshly spawned thread (its own stack bounds, a short stack that
    // ends in libc's thread start): still no fallback.
    let before = stack_capture_stats();
    let t = ScopeId::register("thread", None).unwrap();
    let check = LeakCheck::begin(t);
    std::thread::spawn(t.bind(|| nest_then_leak(2)))
        .join()
        .unwrap();
    let report = check.finish().unwrap_err();
    let after = stack_capture_stats();
    assert!(after.fast > before.fast);
    assert_eq!(
        after.fallback, before.fallback,
        "a thread's stack fell back"
    );
    assert!(report.mentions_function("nest_then_leak"), "{report}");

    // Alternating depths: shallower, deeper, the same, no recursion at all
    // and deeper again than the stack before, so that the callers the walk
    // predicts from the last capture are right only in part. (Each report
    // symbolises its stacks from scratch, about a second each in this
    // binary: five pairs.)
    for (i, depth) in [3, 30, 30, 0, 40].into_iter().enumerate() {
        set_stack_unwinder(StackUnwinder::Cached);
        let fast = leak_report(&format!("alt-fast-{i}"), depth);
        set_stack_unwinder(StackUnwinder::Fallback);
        let slow = leak_report(&format!("alt-slow-{i}"), depth);
        set_stack_unwinder(StackUnwinder::Cached);
        assert!(same_prefix(&fast, &slow), "depth {depth}\n{fast}\n{slow}");
    }

    // Recorded allocations: cached vs old unwinder, per alloc+free pair.
    let s = ScopeId::register("timing", None).unwrap();
    let time = |u: StackUnwinder| {
        set_stack_unwinder(u);
        let check = LeakCheck::begin(s);
        let n = 2000;
        let t = Instant::now();
        s.in_scope(|| {
            for i in 0..n {
                drop(black_box(Box::new(i)));
            }
        });
        let ns = t.elapsed().as_nanos() as f64 / n as f64;
        assert!(check.finish().is_ok());
        ns
    };
    time(StackUnwinder::Cached); // warm the rule cache
    let cached = time(StackUnwinder::Cached);
    let old = time(StackUnwinder::Fallback);
    set_stack_unwinder(StackUnwinder::Cached);
    eprintln!("recorded alloc+free pair: cached {cached:.0} ns, old {old:.0} ns");
    // Loose bound (debug build, shared machine): the benchmark has the figures.
    assert!(
        cached < old,
        "cached {cached:.0} ns is not faster than the old unwinder's {old:.0} ns"
    );
}
