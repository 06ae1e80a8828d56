//! Tests that each need a process of their own, because what they set or
//! fill is process-wide:
//!
//! - the retention rules read from `ALLOC_TRACKER_RETAIN(_FILE)` and the
//!   leak directory from `ALLOC_TRACKER_LEAK_DIR`, by every check of the
//!   process;
//! - `RUST_BACKTRACE`, which std reads once per process;
//! - the one scope table, filled;
//! - jemalloc's process-wide figures, which every arena made so far moves;
//! - the one global tracing subscriber;
//! - the conservative scan, which reads stale addresses left in freed
//!   memory by other tests.
//!
//! Each test runs in a child process: `rusty_fork_test!` runs this binary
//! again with only that test selected and fails when the child fails,
//! with the child's output. One binary rather than one per file: each
//! binary links jemalloc and the whole dependency tree again.
#![cfg(feature = "jemalloc")]

mod bad_retention_rule_is_a_clear_error;
mod default_retention_rule_allows_backtrace_cache_after_caught_panic;
mod default_retention_rule_off_reports_backtrace_cache;
mod leak_assert_saves_json_report;
mod report_names_cached_memory_and_agrees_on_overhead;
mod retention_rules_from_env_and_file_apply;
mod static_scope_landing_in_overflow_is_reported_once;
mod tracing_layer_enters_span_scopes;
mod unreachable_leaks_are_definitely_lost;

use scope_alloc_tracker::{Jemalloc, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);
