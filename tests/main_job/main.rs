//! The main binary (`ckptdb`) run as a subprocess, one test binary:
//! options, runs, inspection, budgets, trends, metrics, timelines.

// Like every test binary of the engine: a test added here that opens a
// `Db` in strict leak mode needs the tracker installed.
#[global_allocator]
static GLOBAL: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
    scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);

#[path = "../common/mod.rs"]
mod common;

mod main_job_bad_options;
mod main_job_inspect;
mod main_job_memory_budgets;
mod main_job_reports_a_slow_leak_trend;
mod main_job_run;
mod main_job_serves_metrics;
mod main_job_timeline;
