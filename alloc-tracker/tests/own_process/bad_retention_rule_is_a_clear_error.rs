//! A bad rule source (bad syntax in `ALLOC_TRACKER_RETAIN`, a missing file
//! named by `ALLOC_TRACKER_RETAIN_FILE`, an unknown default's name) makes
//! the check report a distinct cause with the line and the problem; it
//! never panics in `finish` and never passes. One test, in a process of its
//! own: the variables are process-wide.
#![cfg(feature = "jemalloc")]

use rusty_fork::rusty_fork_test;
use scope_alloc_tracker::leak::{LeakCause, LeakCheck, RETAIN_ENV, RETAIN_FILE_ENV};
use scope_alloc_tracker::ScopeId;

fn finish_clean_check(name: &str) -> scope_alloc_tracker::leak::LeakReport {
    let s = ScopeId::register(name, None).unwrap();
    let check = LeakCheck::begin(s);
    s.in_scope(|| drop(std::hint::black_box(vec![0u8; 8])));
    check.finish().expect_err("a bad rule source never passes")
}

rusty_fork_test! {
    #[test]
    fn bad_rule_sources_are_reported_with_their_line_and_problem() {
        std::env::set_var(RETAIN_ENV, "site:ok_rule <= 1KiB\nsite:page_cache <= 64 MB");
        let r = finish_clean_check("bad-syntax");
        assert_eq!(r.cause, LeakCause::BadRetainRules);
        let e = r.rule_error.clone().expect("the error is in the report");
        assert_eq!(e.origin, RETAIN_ENV);
        assert_eq!(e.line, 2);
        let text = r.to_string();
        assert!(text.contains("cannot run"), "{text}");
        assert!(text.contains("unknown unit `MB`"), "{text}");
        assert!(text.contains("line 2"), "{text}");
        assert!(std::error::Error::source(&r).is_some());

        std::env::set_var(RETAIN_ENV, "site:no_bound_given");
        let r = finish_clean_check("no-bound");
        assert!(r.to_string().contains("missing bound"), "{r}");
        std::env::remove_var(RETAIN_ENV);

        std::env::set_var(RETAIN_FILE_ENV, "/nonexistent/retain-rules.txt");
        let r = finish_clean_check("missing-file");
        assert_eq!(r.cause, LeakCause::BadRetainRules);
        assert!(r.to_string().contains("cannot read the file"), "{r}");
        assert!(
            r.to_string().contains("/nonexistent/retain-rules.txt"),
            "{r}"
        );
        std::env::remove_var(RETAIN_FILE_ENV);

        let s = ScopeId::register("unknown-default", None).unwrap();
        let check = LeakCheck::options(s)
            .without_default("no-such-default")
            .begin();
        let r = check
            .finish()
            .expect_err("an unknown default's name is an error");
        assert_eq!(r.cause, LeakCause::BadRetainRules);
        assert!(r.to_string().contains("no default rule is named"), "{r}");

        // With the variables gone, the same clean check passes.
        let s = ScopeId::register("clean-again", None).unwrap();
        let check = LeakCheck::begin(s);
        s.in_scope(|| drop(std::hint::black_box(vec![0u8; 8])));
        check.finish().unwrap();
    }
}
