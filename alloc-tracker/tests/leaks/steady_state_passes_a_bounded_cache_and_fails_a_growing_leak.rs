//! Steady-state checks: an operation run again and again after a warm-up. A
//! bounded cache passes once full; a leak of a few bytes a run fails within
//! the documented `window - 1` measured runs, naming the growing site; a
//! bound on what the scope keeps ("at most one compacted file") fails once
//! exceeded.

// Helpers return the check's result as is, report included.
#![allow(clippy::result_large_err)]

use std::collections::VecDeque;
use std::hint::black_box;

use scope_alloc_tracker::leak::{SteadyCause, SteadyState};
use scope_alloc_tracker::ScopeId;

fn scope(name: &str) -> ScopeId {
    ScopeId::register(name, None).unwrap()
}

/// An LRU-ish cache of at most `cap` 1 KiB entries.
struct Cache {
    cap: usize,
    entries: VecDeque<Vec<u8>>,
}

impl Cache {
    fn new(cap: usize) -> Cache {
        Cache {
            cap,
            entries: VecDeque::with_capacity(cap + 1),
        }
    }

    #[inline(never)]
    fn insert(&mut self, key: u8) {
        self.entries.push_back(black_box(vec![key; 1024]));
        if self.entries.len() > self.cap {
            self.entries.pop_front();
        }
    }
}

fn run_cache(
    name: &str,
    warm_up: usize,
) -> Result<scope_alloc_tracker::leak::Steady, scope_alloc_tracker::leak::SteadyStateReport> {
    let s = scope(name);
    let mut cache = s.in_scope(|| Cache::new(8));
    let mut key = 0u8;
    SteadyState::options(s).warm_up(warm_up).runs(20).check(|| {
        key = key.wrapping_add(1);
        cache.insert(key);
    })
}

#[test]
fn bounded_cache_passes_once_full() {
    let _shared = crate::common::shared();
    // Filled by the warm-up: flat from the first measured run.
    let steady = run_cache("steady-cache-warm", 8).unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(steady.runs, 20);
    assert!(
        steady.retained_bytes[0] >= 8 * 1024,
        "{:?}",
        steady.retained_bytes
    );
    assert_eq!(steady.retained_bytes[19], steady.retained_bytes[0]);
    // Still filling for 4 measured runs (fewer than window - 1 = 5): the
    // growth stops before the window is all growth, so it passes too.
    let steady = run_cache("steady-cache-filling", 4).unwrap_or_else(|r| panic!("{r}"));
    assert!(steady.retained_bytes[3] > steady.retained_bytes[0]);
    assert_eq!(steady.retained_bytes[19], steady.retained_bytes[4]);
}

#[test]
fn cache_still_filling_for_a_whole_window_is_flagged_as_documented() {
    let _shared = crate::common::shared();
    // Five measured runs of filling (window - 1) look like a leak: the
    // documented limit; the cure is a longer warm-up.
    let r = run_cache("steady-cache-cold", 3).expect_err("growth over the whole window");
    assert_eq!(r.cause, SteadyCause::Growing);
    assert_eq!(r.runs, 5, "{r}");
    assert!(r.mentions_function("Cache::insert"), "{r}");
}

#[inline(never)]
fn handle_request(log: &mut Vec<&'static [u8; 16]>) {
    // The planted leak: a 16 B block kept per request.
    log.push(black_box(Box::leak(Box::new([3u8; 16]))));
}

#[test]
fn leak_of_a_few_bytes_a_run_fails_within_the_window() {
    let _shared = crate::common::shared();
    let s = scope("steady-leak");
    let mut log = Vec::with_capacity(64);
    let mut cache = s.in_scope(|| Cache::new(4));
    let mut key = 0u8;
    let window = 6;
    let report = SteadyState::options(s)
        .warm_up(4)
        .runs(20)
        .window(window)
        .check(|| {
            key = key.wrapping_add(1);
            cache.insert(key);
            handle_request(&mut log);
        })
        .expect_err("16 B a run is a leak");
    assert_eq!(report.cause, SteadyCause::Growing);
    assert!(
        report.runs < window,
        "caught after {} runs:\n{report}",
        report.runs
    );
    let growth = report.growth.as_ref().expect("the trend");
    assert!(growth.growth_bytes >= 16 * (window as u64 - 1), "{report}");
    assert!(report.mentions_function("handle_request"), "{report}");
    // The cache, full after the warm-up, is flat (its entries made in the
    // window may be listed among the kept blocks); the leak's site holds
    // 16 B per run of the window.
    let site = report
        .sites
        .iter()
        .find(|s| {
            s.frames
                .iter()
                .any(|f| f.function.contains("handle_request"))
        })
        .unwrap();
    assert_eq!(site.bytes, 16 * (window as u64 - 1), "{report}");
    assert!(report.to_string().contains("keeps growing"), "{report}");
}

#[test]
fn retained_bytes_over_the_bound_fail() {
    let _shared = crate::common::shared();
    let s = scope("steady-bound");
    let mut files: Vec<Vec<u8>> = Vec::with_capacity(16);
    // "At most one compacted file" of 4 KiB, but compaction keeps the old.
    let report = SteadyState::options(s)
        .warm_up(1)
        .runs(10)
        .bound_bytes(6 << 10)
        .check(|| files.push(black_box(vec![0u8; 4096])))
        .expect_err("the second file is over the bound");
    assert_eq!(report.cause, SteadyCause::OverBound(6 << 10));
    assert_eq!(report.runs, 1, "{report}");
}

#[test]
fn bad_options_are_reported_not_panicked() {
    let _shared = crate::common::shared();
    let s = scope("steady-bad");
    let r = SteadyState::options(s)
        .runs(3)
        .window(6)
        .check(|| ())
        .unwrap_err();
    assert!(matches!(r.cause, SteadyCause::InvalidOptions(_)), "{r}");
    assert!(r.to_string().contains("needs at least 5 runs"), "{r}");
    let r = SteadyState::options(s).window(1).check(|| ()).unwrap_err();
    assert!(matches!(r.cause, SteadyCause::InvalidOptions(_)), "{r}");
}
