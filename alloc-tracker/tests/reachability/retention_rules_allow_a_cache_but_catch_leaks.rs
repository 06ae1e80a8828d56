//! Declared retention: a bounded cache that a rule allows passes, and every
//! leak still fails with its site: a leak beside the cache, a leak through
//! the cache's own code path once over the rule's bound, and a stale rule
//! is reported.

use std::hint::black_box;
use std::sync::Mutex;

use rusty_fork::rusty_fork_test;
use scope_alloc_tracker::leak::{LeakCheck, Retain, RuleSource};
use scope_alloc_tracker::ScopeId;

/// A page cache owned by the "engine", filled inside the checked scope.
static PAGE_CACHE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// Reads a page into the cache: the page is allocated here.
#[inline(never)]
fn page_cache_insert(len: usize) {
    let page = black_box(vec![0u8; len]);
    let mut c = PAGE_CACHE.lock().unwrap();
    c.reserve(64); // the cache's own table, made once
    c.push(page);
}

#[inline(never)]
fn user_code_keeps(bytes: usize) {
    black_box(Box::leak(vec![1u8; bytes].into_boxed_slice()));
}

#[inline(never)]
fn commit(pages: usize) {
    for _ in 0..pages {
        page_cache_insert(black_box(4096));
    }
}

fn scope(name: &str) -> ScopeId {
    ScopeId::register(name, None).unwrap()
}

const CACHE_RULE_BOUND: u64 = 64 << 10;

fn cache_rule() -> Retain {
    Retain::site("page_cache_insert")
        .up_to(CACHE_RULE_BOUND)
        .named("page-cache")
}

rusty_fork_test! {
    #[test]
    fn allowed_cache_passes_and_is_listed_with_its_rule() {
        let s = scope("retain-cache-passes");
        let check = LeakCheck::options(s).retain(cache_rule()).begin();
        s.in_scope(|| commit(4));
        let drained = check.finish().unwrap_or_else(|r| panic!("{r}"));
        let a = drained
            .allowed
            .iter()
            .find(|a| a.rule == "page-cache")
            .expect("the cache rule is listed");
        assert_eq!(a.bound_bytes, CACHE_RULE_BOUND);
        assert_eq!(a.source, RuleSource::Code);
        assert!(a.bytes >= 4 * 4096, "{drained}");
        assert_eq!(a.beyond_bound_allocs, 0);
        assert!(
            a.sites.iter().any(|s| s
                .frames
                .iter()
                .any(|f| f.function.contains("page_cache_insert"))),
            "{drained}"
        );
        assert!(drained.unused_rules.is_empty(), "{drained}");
        assert!(
            drained.to_string().contains("allowed retention"),
            "{drained}"
        );
    }
}

rusty_fork_test! {
    #[test]
    fn without_the_rule_the_same_cache_is_a_leak() {
        let s = scope("retain-cache-no-rule");
        let check = LeakCheck::begin(s);
        s.in_scope(|| commit(2));
        let report = check.finish().expect_err("no rule: the cache is a leak");
        assert!(report.mentions_function("page_cache_insert"), "{report}");
        assert!(report.allowed.is_empty());
    }
}

rusty_fork_test! {
    #[test]
    fn leak_beside_an_allowed_cache_fails_with_its_site() {
        let s = scope("retain-leak-beside");
        let check = LeakCheck::options(s).retain(cache_rule()).begin();
        s.in_scope(|| {
            commit(3);
            user_code_keeps(300);
        });
        let report = check.finish().expect_err("the user's leak must fail");
        assert_eq!(report.leaked_bytes, 300, "{report}");
        assert_eq!(report.leaked_allocs, 1, "{report}");
        assert!(report.sites_exact, "{report}");
        assert_eq!(report.sites.len(), 1, "{report}");
        assert!(report.mentions_function("user_code_keeps"), "{report}");
        assert!(!report.mentions_function("page_cache_insert"), "{report}");
        // The cache is listed apart, as allowed.
        assert!(report.allowed.iter().any(|a| a.rule == "page-cache"));
        let text = report.to_string();
        assert!(text.contains("allowed retention (not a leak)"), "{text}");
    }
}

rusty_fork_test! {
    #[test]
    fn leak_hiding_behind_the_caches_bound_is_caught_once_over_it() {
        let s = scope("retain-over-bound");
        // 64 KiB allow 16 pages of 4 KiB; the 17th..20th are leaks.
        let check = LeakCheck::options(s).retain(cache_rule()).begin();
        s.in_scope(|| commit(20));
        let report = check.finish().expect_err("pages beyond the bound leak");
        let a = report
            .allowed
            .iter()
            .find(|a| a.rule == "page-cache")
            .expect("the rule is listed");
        assert!(a.bytes <= CACHE_RULE_BOUND, "{report}");
        assert!(a.beyond_bound_allocs >= 4, "{report}");
        assert!(report.leaked_bytes >= 4 * 4096, "{report}");
        let beyond = report
            .sites
            .iter()
            .find(|s| s.beyond_rule.as_deref() == Some("page-cache"))
            .expect("a site beyond the rule's bound");
        assert!(beyond
            .frames
            .iter()
            .any(|f| f.function.contains("page_cache_insert")));
        assert!(report
            .to_string()
            .contains("beyond the bound of rule `page-cache`"));
    }
}

rusty_fork_test! {
    #[test]
    fn rule_that_matched_nothing_is_reported_unused() {
        let s = scope("retain-unused");
        let check = LeakCheck::options(s)
            .retain(cache_rule())
            .retain(Retain::site("no_such_function_anywhere").up_to(1024))
            .begin();
        s.in_scope(|| commit(1));
        let drained = check.finish().unwrap_or_else(|r| panic!("{r}"));
        assert_eq!(drained.unused_rules.len(), 1, "{drained}");
        assert_eq!(
            drained.unused_rules[0].rule,
            "site:no_such_function_anywhere"
        );
        assert!(drained.to_string().contains("matched nothing"), "{drained}");

        // Also when the scope kept nothing at all.
        let check = LeakCheck::options(s).retain(cache_rule()).begin();
        s.in_scope(|| drop(black_box(vec![0u8; 10])));
        let drained = check.finish().unwrap();
        assert_eq!(drained.unused_rules[0].rule, "page-cache");
    }
}

rusty_fork_test! {
    #[test]
    fn scope_rule_allows_a_child_scope_only() {
        let s = scope("retain-scope-rule");
        let cache = ScopeId::register("cache", Some(s)).unwrap();
        let check = LeakCheck::options(s)
            .retain(Retain::scope(cache).up_to(1 << 20))
            .begin();
        s.in_scope(|| {
            // Kept by the cache (reachable from a static): allowed by the rule.
            cache.in_scope(|| KEPT.lock().unwrap().push(black_box(vec![2u8; 500])));
            user_code_keeps(70);
        });
        let report = check.finish().expect_err("the block outside `cache` leaks");
        assert_eq!(report.leaked_bytes, 70, "{report}");
        assert!(report.allowed[0].bytes >= 500, "{report}");
        // Free the static's buffer, not just its elements: a cleared buffer
        // keeps the freed blocks' addresses, and a block later allocated at one
        // of them (in another module's test) would look reachable to a scan.
        *KEPT.lock().unwrap() = Vec::new();
    }
}

static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

rusty_fork_test! {
    #[test]
    fn blocks_without_records_cannot_be_allowed() {
        let s = scope("retain-sites-off");
        let check = LeakCheck::options(s)
            .sites(scope_alloc_tracker::leak::Sites::Off)
            .retain(cache_rule())
            .begin();
        s.in_scope(|| commit(1));
        let report = check.finish().expect_err("unrecorded blocks stay leaks");
        assert!(report.leaked_bytes >= 4096, "{report}");
        assert!(report.allowed.is_empty());
    }
}

rusty_fork_test! {
    #[test]
    fn is_drained_applies_the_rules() {
        let s = scope("retain-is-drained");
        let check = LeakCheck::options(s).retain(cache_rule()).begin();
        s.in_scope(|| commit(2));
        assert!(check.is_drained().unwrap());
        s.in_scope(|| user_code_keeps(10));
        assert!(!check.is_drained().unwrap());
    }
}

rusty_fork_test! {
    #[cfg(feature = "json")]
    #[test]
    fn allowed_retention_and_unused_rules_round_trip_through_json() {
        let s = scope("retain-json");
        let check = LeakCheck::options(s)
            .retain(cache_rule())
            .retain(Retain::site("stale_rule_for_json").up_to(8))
            .begin();
        s.in_scope(|| {
            commit(1);
            user_code_keeps(33);
        });
        let report = check.finish().expect_err("33 B leak");
        let json = serde_json::to_string(&report).unwrap();
        let back: scope_alloc_tracker::leak::LeakReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back.leaked_bytes, 33);
        assert_eq!(back.allowed, report.allowed);
        assert_eq!(back.allowed[0].rule, "page-cache");
        assert_eq!(back.unused_rules[0].rule, "site:stale_rule_for_json");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["allowed"][0]["source"], "code");
        assert_eq!(v["unused_rules"][0]["bound_bytes"], 8);
    }
}

/// Allocates a page through the cache's own code path and forgets it: the
/// cache never holds it.
#[inline(never)]
fn page_cache_insert_forgotten(len: usize) {
    let page = black_box(vec![0u8; len]);
    std::mem::forget(page);
}

#[inline(never)]
fn commit_and_lose_one_page(pages: usize) {
    commit(pages);
    page_cache_insert_forgotten(black_box(4096));
}

rusty_fork_test! {
    #[test]
    fn an_unreachable_block_is_a_leak_even_within_an_allowed_sites_bound() {
        let s = scope("retain-unreachable-in-bound");
        // The rule matches both functions ("page_cache_insert" is a prefix of
        // the forgetting one), and the bound has room for every page.
        let check = LeakCheck::options(s).retain(cache_rule()).begin();
        s.in_scope(|| commit_and_lose_one_page(2));
        let report = check
            .finish()
            .expect_err("the forgotten page is held by nothing: a leak whatever the rule says");
        assert_eq!(report.leaked_bytes, 4096, "{report}");
        assert!(
            report.mentions_function("page_cache_insert_forgotten"),
            "{report}"
        );
        let summary = report.reachability.as_ref().expect("the check scanned");
        assert_eq!(summary.total.unreachable_bytes, 4096, "{report}");
        // The cached pages stay allowed.
        assert!(
            report
                .allowed
                .iter()
                .any(|a| a.rule == "page-cache" && a.bytes >= 2 * 4096),
            "{report}"
        );
    }
}
