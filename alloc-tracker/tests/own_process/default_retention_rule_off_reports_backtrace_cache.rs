//! With the default rule `std-backtrace-cache` turned off (here from the
//! environment, `ALLOC_TRACKER_RETAIN=-default:std-backtrace-cache`), a
//! caught `panic!` with `RUST_BACKTRACE=1` inside a checked scope is
//! reported as a leak at std's symboliser: the retention the rule hides is
//! real. `RUST_BACKTRACE` is process-wide: the test runs in a process of its own.
#![cfg(feature = "jemalloc")]

use rusty_fork::rusty_fork_test;
use scope_alloc_tracker::leak::{LeakCheck, RETAIN_ENV};
use scope_alloc_tracker::ScopeId;

rusty_fork_test! {
    #[test]
    fn caught_panic_with_backtrace_is_a_leak_with_the_rule_off() {
        std::env::set_var("RUST_BACKTRACE", "1");
        std::env::set_var(RETAIN_ENV, "-default:std-backtrace-cache");
        let s = ScopeId::register("caught-panic-rule-off", None).unwrap();
        let check = LeakCheck::begin(s);
        s.in_scope(|| {
            let r = std::panic::catch_unwind(|| panic!("planted panic {}", std::hint::black_box(4)));
            assert!(r.is_err());
        });
        let r = check.finish().expect_err("the backtrace cache is reported");
        assert!(r.leaked_bytes > 10_000, "{r}");
        assert!(r.mentions_function("std::backtrace_rs::"), "{r}");
        assert!(
            r.allowed.iter().all(|a| a.rule != "std-backtrace-cache"),
            "{r}"
        );
    }
}
