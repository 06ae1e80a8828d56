//! Scopes carried through tokio tasks and rayon's stolen work; a tokio
//! service traced through the crate's tracing layer; leak checks on tokio's
//! multi-thread runtime and the default retention rules for tokio and
//! tracing-subscriber. One module per integration behaviour, each with
//! scopes of its own. Only one module installs the global tracing
//! subscriber (`tests/own_process/tracing_layer_enters_span_scopes.rs` installs another
//! one, in its own process).
#![cfg(feature = "jemalloc")]

mod default_retention_rules_for_tokio_and_tracing;
#[cfg(feature = "rayon")]
mod rayon_stolen_work_keeps_the_scope;
#[cfg(all(feature = "tokio", feature = "macros"))]
mod tokio_checks_work_on_a_multi_thread_runtime;
#[cfg(all(feature = "tokio", feature = "tracing"))]
mod tokio_service_requests_drain_and_planted_leaks_are_caught;
#[cfg(feature = "tokio")]
mod tokio_tasks_keep_the_spawners_scope;

use scope_alloc_tracker::{Jemalloc, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);
