//! Retention rules given outside the code: inline in
//! `ALLOC_TRACKER_RETAIN` and in the file named by
//! `ALLOC_TRACKER_RETAIN_FILE` (LSan-like lines, `#` comments). The
//! variables are process-wide, so one test, in a process of its own, sets them
//! in turn.
#![cfg(feature = "jemalloc")]
// Helpers return the check's result as is, report included.
#![allow(clippy::result_large_err)]

use std::hint::black_box;
use std::sync::Mutex;

use rusty_fork::rusty_fork_test;
use scope_alloc_tracker::leak::{LeakCheck, RuleSource, RETAIN_ENV, RETAIN_FILE_ENV};
use scope_alloc_tracker::ScopeId;

static INTERNED: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());

#[inline(never)]
fn intern_string_from_env_test(len: usize) {
    let s = black_box(vec![b'x'; len].into_boxed_slice());
    INTERNED.lock().unwrap().push(s);
}

fn run(
    name: &str,
    len: usize,
) -> Result<scope_alloc_tracker::leak::Drained, scope_alloc_tracker::leak::LeakReport> {
    let s = ScopeId::register(name, None).unwrap();
    // The interning table's own buffer, made outside the check.
    INTERNED.lock().unwrap().reserve(16);
    let check = LeakCheck::begin(s);
    s.in_scope(|| intern_string_from_env_test(len));
    check.finish()
}

rusty_fork_test! {
    #[test]
    fn rules_from_the_env_var_and_from_a_file_allow_retention() {
        // No rule: a leak.
        std::env::remove_var(RETAIN_ENV);
        std::env::remove_var(RETAIN_FILE_ENV);
        let r = run("env-none", 100).expect_err("no rule, a leak");
        assert!(r.mentions_function("intern_string_from_env_test"), "{r}");

        // Inline: two rules separated by `;`, one of them matching.
        std::env::set_var(
            RETAIN_ENV,
            "site:intern_string_from_env_test <= 1KiB name=interned ; site:nothing_matches_this <= 1",
        );
        let d = run("env-inline", 100).unwrap_or_else(|r| panic!("{r}"));
        assert_eq!(d.allowed.len(), 1, "{d}");
        assert_eq!(d.allowed[0].rule, "interned");
        assert_eq!(d.allowed[0].source, RuleSource::Env);
        assert_eq!(d.allowed[0].bound_bytes, 1024);
        assert_eq!(d.unused_rules.len(), 1, "{d}");
        assert_eq!(d.unused_rules[0].source, RuleSource::Env);
        // Over the bound from the env var: a leak.
        let r = run("env-inline-over", 2000).expect_err("over the env rule's bound");
        assert_eq!(r.leaked_bytes, 2000, "{r}");
        std::env::remove_var(RETAIN_ENV);

        // A file with comments and a blank line.
        let path = std::env::temp_dir().join(format!("retain-rules-{}.txt", std::process::id()));
        std::fs::write(
            &path,
            "# interned strings live for the process\n\n\
             site:intern_string_from_env_test <= 4 KiB   # bounded by the test\n",
        )
        .unwrap();
        std::env::set_var(RETAIN_FILE_ENV, &path);
        let d = run("env-file", 3000).unwrap_or_else(|r| panic!("{r}"));
        assert_eq!(d.allowed[0].source, RuleSource::File, "{d}");
        assert_eq!(d.allowed[0].bound_bytes, 4096);
        assert_eq!(d.allowed[0].rule, "site:intern_string_from_env_test");
        std::env::remove_var(RETAIN_FILE_ENV);
        std::fs::remove_file(&path).unwrap();
    }
}
