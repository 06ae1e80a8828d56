//! libtest captures each test's output in a buffer it keeps until the test
//! ends; a `println!` (or a panic message) inside a checked scope grows it
//! there. The default rule `libtest-output-capture` allows that growth and
//! nothing else: a `Display` impl that leaks while printed is still a leak.
//! Run under libtest's default capture (`cargo test`, not `--nocapture`).

use std::fmt;
use std::hint::black_box;

use scope_alloc_tracker::leak::{LeakCheck, RuleSource};
use scope_alloc_tracker::ScopeId;

#[test]
fn captured_println_is_allowed_by_the_default_rule() {
    let _shared = crate::common::shared();
    let s = ScopeId::register("println-on", None).unwrap();
    let check = LeakCheck::begin(s);
    s.in_scope(|| println!("progress: {}", black_box(42)));
    let d = check.finish().unwrap_or_else(|r| panic!("{r}"));
    let a = d
        .allowed
        .iter()
        .find(|a| a.rule == "libtest-output-capture")
        .unwrap_or_else(|| {
            panic!("the capture buffer was not allowed (run without --nocapture):\n{d}")
        });
    assert_eq!(a.source, RuleSource::Default);
}

#[test]
fn captured_println_is_a_leak_with_the_rule_off() {
    let _shared = crate::common::shared();
    let s = ScopeId::register("println-off", None).unwrap();
    let check = LeakCheck::options(s)
        .without_default("libtest-output-capture")
        .begin();
    s.in_scope(|| println!("progress: {}", black_box(43)));
    let r = check
        .finish()
        .expect_err("the capture buffer is reported (run without --nocapture)");
    assert!(r.mentions_function("as std::io::Write>::write"), "{r}");
}

struct LeaksWhenShown;

impl fmt::Display for LeaksWhenShown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kept: &'static mut [u8] = Box::leak(black_box(vec![5u8; 77]).into_boxed_slice());
        write!(f, "{}", kept.len())
    }
}

#[test]
fn a_display_impl_leaking_inside_println_is_still_a_leak() {
    let _shared = crate::common::shared();
    let s = ScopeId::register("println-display-leak", None).unwrap();
    let check = LeakCheck::begin(s);
    s.in_scope(|| println!("shown: {}", LeaksWhenShown));
    let r = check.finish().expect_err("the Display impl's leak fails");
    assert_eq!(r.leaked_bytes, 77, "{r}");
    assert!(r.mentions_function("LeaksWhenShown"), "{r}");
}
