//! Leak checks: planted leaks caught with their sites, concurrent and
//! overlapping checks, the quiescence wait, trends and steady states, the
//! default rule for libtest's captured output, and the test attribute. One
//! module per behaviour, each with scopes of its own. The checks whose
//! verdicts depend on a reachability scan run in `tests/reachability/`.
//!
//! Every test takes `common::shared()`, or `common::alone()` if it changes
//! the sampling interval, which is process-wide.
#![cfg(feature = "jemalloc")]

mod common;

mod concurrent_checks_of_one_static_scope_use_instances;
mod concurrent_checks_report_only_the_leaking_scope;
mod default_retention_rule_allows_captured_test_output;
mod leak_sites_never_name_the_tracker;
#[cfg(feature = "macros")]
mod overlapping_checks_of_one_scope_say_so;
mod planted_leaks_are_caught_with_their_sites;
mod quiescence_wait_bounds_late_frees;
mod slow_leak_is_caught_by_its_trend;
mod steady_state_passes_a_bounded_cache_and_fails_a_growing_leak;
#[cfg(feature = "macros")]
mod test_attribute_checks_each_test_in_its_own_instance;

use scope_alloc_tracker::{Jemalloc, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);
