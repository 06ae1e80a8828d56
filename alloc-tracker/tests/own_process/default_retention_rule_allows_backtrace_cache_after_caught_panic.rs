//! A caught `panic!` inside a checked scope with `RUST_BACKTRACE=1` leaves
//! std's backtrace caches (the panic hook symbolises the stack once and
//! keeps the parsed debug info). The default rule `std-backtrace-cache`
//! allows them; the check passes. (The rule off:
//! `default_retention_rule_off_reports_backtrace_cache.rs`.)
//! `RUST_BACKTRACE` is process-wide: the test runs in a process of its own.
#![cfg(feature = "jemalloc")]

use rusty_fork::rusty_fork_test;
use scope_alloc_tracker::leak::LeakCheck;
use scope_alloc_tracker::ScopeId;

rusty_fork_test! {
    #[test]
    fn caught_panic_with_backtrace_passes_under_the_default_rule() {
        std::env::set_var("RUST_BACKTRACE", "1");
        let s = ScopeId::register("caught-panic", None).unwrap();
        let check = LeakCheck::begin(s);
        s.in_scope(|| {
            let r = std::panic::catch_unwind(|| panic!("planted panic {}", std::hint::black_box(3)));
            assert!(r.is_err());
        });
        let d = check.finish().unwrap_or_else(|r| panic!("{r}"));
        let a = d
            .allowed
            .iter()
            .find(|a| a.rule == "std-backtrace-cache")
            .unwrap_or_else(|| panic!("the backtrace cache was not allowed:\n{d}"));
        // Tens of KB (release, no debug info) to tens of MB (debug binary).
        assert!(a.bytes > 10_000 && a.allocs > 50, "{d}");
        eprintln!("allowed: {} B in {} allocations", a.bytes, a.allocs);
    }
}
