//! The default retention rules for tokio and tracing-subscriber, against
//! the real crates: the retention occurs and is reported allowed under its
//! rule; with the rule off, the same retention is a leak with its site.
//! Per-thread state is made once per thread, so each case runs on a fresh
//! thread that lives until its check is over.

// Helpers return the check's result as is, report included.
#![allow(clippy::result_large_err)]

use std::hint::black_box;
use std::time::Duration;

use scope_alloc_tracker::leak::{
    Defaults, Drained, LeakCheck, LeakCheckOptions, LeakReport, RuleSource,
};
use scope_alloc_tracker::ScopeId;

enum Rule {
    On,
    Off(&'static str),
    AllOff,
}

fn options(s: ScopeId, rule: &Rule) -> LeakCheckOptions {
    let o = LeakCheck::options(s).quiescence(Duration::from_millis(500));
    match rule {
        Rule::On => o,
        Rule::Off(name) => o.without_default(*name),
        Rule::AllOff => o.default_rules(Defaults::Off),
    }
}

fn assert_allowed(d: &Drained, rule: &str) {
    let a = d
        .allowed
        .iter()
        .find(|a| a.rule == rule)
        .unwrap_or_else(|| panic!("rule `{rule}` allowed nothing:\n{d}"));
    assert_eq!(a.source, RuleSource::Default);
    assert!(a.bytes > 0 && a.bytes <= a.bound_bytes, "{d}");
    assert!(
        d.unused_rules.is_empty(),
        "defaults are never listed unused:\n{d}"
    );
}

fn assert_leak_names(r: &LeakReport, function: &str) {
    assert!(
        r.mentions_function(function),
        "no site names `{function}`:\n{r}"
    );
    assert!(r.allowed.is_empty(), "{r}");
}

/// A current-thread runtime made and dropped inside the scope, on a fresh
/// thread: `block_on` leaves the thread's parker.
fn park_thread_case(name: &str, rule: Rule) -> Result<Drained, LeakReport> {
    let s = ScopeId::register(name, None).unwrap();
    std::thread::spawn(move || {
        let check = options(s, &rule).begin();
        s.in_scope(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async { black_box(1) });
        });
        check.finish()
    })
    .join()
    .unwrap()
}

#[test]
fn tokio_park_thread_is_allowed_by_default_and_a_leak_when_off() {
    let d = park_thread_case("park-on", Rule::On).unwrap_or_else(|r| panic!("{r}"));
    assert_allowed(&d, "tokio-park-thread");
    let r = park_thread_case("park-off", Rule::Off("tokio-park-thread")).unwrap_err();
    assert_leak_names(&r, "tokio::runtime::park::ParkThread::new");
    let r = park_thread_case("park-all-off", Rule::AllOff).unwrap_err();
    assert_leak_names(&r, "tokio::runtime::park::ParkThread::new");
}

/// `spawn_blocking` inside the scope on a runtime made outside it starts a
/// pool thread, which the pool keeps.
fn blocking_pool_case(name: &str, rule: Rule) -> Result<Drained, LeakReport> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let s = ScopeId::register(name, None).unwrap();
    let check = options(s, &rule).begin();
    s.in_scope(|| {
        rt.block_on(async { tokio::task::spawn_blocking(|| black_box(2)).await.unwrap() });
    });
    let r = check.finish();
    drop(rt);
    r
}

#[test]
fn tokio_blocking_pool_thread_is_allowed_by_default_and_a_leak_when_off() {
    let d = blocking_pool_case("pool-on", Rule::On).unwrap_or_else(|r| panic!("{r}"));
    assert_allowed(&d, "tokio-blocking-pool-thread");
    let r = blocking_pool_case("pool-off", Rule::Off("tokio-blocking-pool-thread")).unwrap_err();
    assert_leak_names(&r, "tokio::runtime::blocking::pool::Spawner::spawn_thread");
}

/// The first span entered on a fresh thread, inside the scope.
fn tracing_case(name: &str, rule: Rule) -> Result<Drained, LeakReport> {
    let s = ScopeId::register(name, None).unwrap();
    std::thread::spawn(move || {
        let registry = tracing_subscriber::registry();
        tracing::subscriber::with_default(registry, || {
            let check = options(s, &rule).begin();
            s.in_scope(|| {
                let span = tracing::info_span!("request", id = black_box(7));
                let _e = span.enter();
                let inner = tracing::info_span!("inner");
                let _i = inner.enter();
            });
            check.finish()
        })
    })
    .join()
    .unwrap()
}

#[test]
fn tracing_subscriber_thread_buffers_are_allowed_by_default_and_a_leak_when_off() {
    let d = tracing_case("tracing-on", Rule::On).unwrap_or_else(|r| panic!("{r}"));
    assert_allowed(&d, "tracing-subscriber-thread-buffers");
    let r = tracing_case(
        "tracing-off",
        Rule::Off("tracing-subscriber-thread-buffers"),
    )
    .unwrap_err();
    assert_leak_names(&r, "tracing_subscriber::registry");
}

/// A default rule never hides a user's leak made beside the runtime.
#[test]
fn a_leak_beside_tokio_retention_still_fails() {
    let s = ScopeId::register("park-and-leak", None).unwrap();
    let r = std::thread::spawn(move || {
        let check = LeakCheck::begin(s);
        s.in_scope(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async { black_box(Box::leak(Box::new([1u8; 48]))) });
        });
        check.finish()
    })
    .join()
    .unwrap()
    .expect_err("the 48 B leak fails");
    assert_eq!(r.leaked_bytes, 48, "{r}");
    assert!(
        r.allowed.iter().any(|a| a.rule == "tokio-park-thread"),
        "{r}"
    );
}
