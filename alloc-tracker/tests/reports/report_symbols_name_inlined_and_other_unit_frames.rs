//! The per-unit symboliser names what reports need — an inlined function
//! (its own frame, with file and line), and a function compiled into
//! another compilation unit (`alloc`'s `format_inner`, which `format!`
//! calls) — and names every frame exactly as `backtrace` does.

use std::hint::black_box;

use scope_alloc_tracker::leak::{LeakCheck, LeakReport};
use scope_alloc_tracker::sampling::{set_symboliser, Frame, Symboliser};
use scope_alloc_tracker::ScopeId;

#[inline(always)]
fn inlined_leaker(n: u8) {
    black_box(Box::leak(vec![n; 48].into_boxed_slice()));
}

#[inline(never)]
fn calls_the_inlined_leaker() {
    inlined_leaker(black_box(5));
}

#[inline(never)]
fn leaks_a_formatted_string() {
    // `format!` with an argument calls `alloc::fmt::format::format_inner`,
    // compiled in the `alloc` crate's own unit.
    std::mem::forget(black_box(format!("leaked {}", black_box(1234567))));
}

fn report(name: &str) -> LeakReport {
    let s = ScopeId::register(name, None).unwrap();
    let check = LeakCheck::begin(s);
    s.in_scope(|| {
        calls_the_inlined_leaker();
        leaks_a_formatted_string();
    });
    check.finish().expect_err("two planted leaks")
}

/// Every frame (function, file, line) of every site, sites by size.
fn frames(r: &LeakReport) -> Vec<Vec<Frame>> {
    let mut sites: Vec<_> = r.sites.iter().collect();
    sites.sort_by_key(|s| s.bytes);
    sites.into_iter().map(|s| s.frames.clone()).collect()
}

// One test function: the symboliser knob is process-wide.
#[test]
fn inlined_and_other_unit_frames_are_named_as_backtrace_names_them() {
    let _alone = crate::common::alone();
    // One call site for both, so that the stacks are the same.
    let reports = [Symboliser::PerUnit, Symboliser::Backtrace].map(|s| {
        set_symboliser(s);
        report(&format!("{s:?}"))
    });
    set_symboliser(Symboliser::PerUnit);
    let [ours, theirs] = reports;

    assert!(ours.mentions_function("inlined_leaker"), "{ours}");
    assert!(ours.mentions_function("calls_the_inlined_leaker"), "{ours}");
    assert!(ours.mentions_function("format_inner"), "{ours}");
    assert!(ours.mentions_function("leaks_a_formatted_string"), "{ours}");
    let inlined = ours
        .sites
        .iter()
        .flat_map(|s| &s.frames)
        .find(|f| f.function.ends_with("inlined_leaker"))
        .unwrap();
    assert!(
        inlined
            .file
            .as_deref()
            .is_some_and(|f| f.ends_with("report_symbols_name_inlined_and_other_unit_frames.rs"))
            && inlined.line.is_some(),
        "{inlined:?}"
    );
    // The two leaks come from different lines, so the stacks differ only
    // there: same frames, names, files and lines as `backtrace` gives.
    assert_eq!(frames(&ours), frames(&theirs), "\n{ours}\n{theirs}");
}
