//! A test file that forgot the `#[global_allocator]` line must not pass its
//! leak tests by accident. This file deliberately has NO
//! `#[global_allocator]`: every check in it must fail, naming the missing
//! line.

use std::error::Error;

use scope_alloc_tracker::leak::{self, LeakCause, LeakCheck};
use scope_alloc_tracker::{assert_scope_drained, NotInstalled, Scope};

static CACHE: Scope = Scope::new("cache");

const FIX: &str =
    "#[global_allocator] static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);";

#[test]
fn is_installed_says_no() {
    assert!(!scope_alloc_tracker::is_installed());
    let err = scope_alloc_tracker::ensure_installed().unwrap_err();
    assert_eq!(err, NotInstalled);
    assert!(err.to_string().contains(FIX), "{err}");
}

#[test]
#[should_panic(
    expected = "#[global_allocator] static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);"
)]
fn a_leaking_assertion_panics_naming_the_missing_line() {
    assert_scope_drained!(&CACHE, {
        Box::leak(Box::new([0u8; 4096]));
    });
}

#[test]
#[should_panic(expected = "alloc-tracker is not installed")]
fn even_a_clean_assertion_panics() {
    assert_scope_drained!(&CACHE, {
        drop(std::hint::black_box(vec![0u8; 16]));
    });
}

#[test]
#[should_panic(expected = "alloc-tracker is not installed")]
fn the_isolated_form_panics_too() {
    assert_scope_drained!(instance of &CACHE, {
        Box::leak(Box::new([0u8; 64]));
    });
}

#[test]
fn finish_returns_a_typed_not_installed_report() {
    let check = LeakCheck::begin(&CACHE);
    let kept = CACHE.in_scope(|| vec![1u8; 100]);
    let report = check.finish().unwrap_err();
    assert_eq!(report.cause, LeakCause::NotInstalled);
    assert_eq!(report.scope, "cache");
    let message = report.to_string();
    assert!(message.contains(FIX), "{message}");
    let source = report.source().expect("the cause is the source");
    assert!(source.downcast_ref::<NotInstalled>().is_some());
    drop(kept);

    let err = leak::check(&CACHE, || ()).unwrap_err();
    assert_eq!(err.cause, LeakCause::NotInstalled);
}

#[test]
fn is_drained_refuses_instead_of_reading_a_live_block_as_drained() {
    let check = LeakCheck::begin(&CACHE);
    let kept = CACHE.in_scope(|| std::hint::black_box(vec![1u8; 4096]));
    let err = check.is_drained().unwrap_err();
    assert_eq!(err, NotInstalled);
    assert!(err.to_string().contains(FIX), "{err}");
    drop(kept);
}

#[test]
fn a_trend_over_a_growing_scope_refuses_instead_of_reading_zeros() {
    let mut trend = leak::Trend::options(&CACHE).points(4).build().unwrap();
    let mut kept = Vec::new();
    for _ in 0..4 {
        kept.push(CACHE.in_scope(|| std::hint::black_box(vec![7u8; 10_000])));
        let report = trend
            .observe()
            .expect("every observation without the allocator is refused with a report");
        assert_eq!(report.cause, LeakCause::NotInstalled);
        assert!(report.to_string().contains(FIX), "{report}");
    }
    assert!(trend.live_bytes().is_empty(), "no zero points recorded");
    drop(kept);
}
