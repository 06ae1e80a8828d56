//! Reports: the text, JSON, Prometheus, SVG and pprof formats, diffs,
//! dumps from inside a scope, timelines, the metrics endpoint, instances
//! folded into their kind, sampled sites, recorded stacks and their
//! symbols. One module per behaviour. (The cached-memory figures, which
//! depend on every arena the process made, are checked in a binary of their
//! own: `tests/own_process/report_names_cached_memory_and_agrees_on_overhead.rs`.)
//!
//! Every test takes `common::shared()`, or `common::alone()` if it changes
//! a process-wide setting (sampling, stack unwinder, symboliser) or reads
//! process-wide counters or figures.
#![cfg(feature = "jemalloc")]

mod common;

#[cfg(feature = "prometheus-client")]
mod instances_fold_into_their_kind_in_metrics_and_reports;
#[cfg(feature = "metrics-http")]
mod metrics_endpoint_serves_openmetrics;
#[cfg(feature = "pprof")]
mod pprof_profile_decodes_independently;
mod predicted_callers_are_checked_against_the_stack;
mod recorded_stacks_come_from_the_cached_unwinder;
mod report_diff_lists_growth_and_shrinkage;
mod report_dump_leaves_user_scopes_unchanged;
mod report_formats_parse_back;
mod report_symbols_name_inlined_and_other_unit_frames;
mod sampling_estimates_live_bytes_per_site;
#[cfg(all(feature = "timeline", feature = "json"))]
mod timeline_agrees_with_report;

use scope_alloc_tracker::{Jemalloc, TrackingAlloc};

/// Usable sizes not counted: the metrics tests check that no usable-bytes
/// series is exported then.
#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);
