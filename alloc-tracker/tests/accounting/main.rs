//! Exact accounting on the allocator's hot path: allocations, frees and
//! reallocations of every size, alignment and placement, across threads
//! and thread exit, scopes entered, nested and handed over, peaks and
//! budgets. One module per behaviour; each registers scopes of its own, so
//! the modules' tests run side by side in one process. The tests that
//! depend on the whole scope table run in `tests/scope_table/`.
#![cfg(feature = "jemalloc")]

#[path = "../hand_over_cases/mod.rs"]
mod hand_over_cases;

mod budget_is_charged_by_the_allocator;
mod cross_thread_free_credits_origin_scope;
mod failed_allocation_leaves_counters_unchanged;
mod fast_and_general_paths_free_each_others_blocks;
mod futures_and_threads_carry_their_scope;
mod hand_over_moves_blocks_between_scopes;
mod multithreaded_stress_returns_to_baseline;
mod nested_scopes_restore_on_drop_and_panic;
mod odd_alignments_round_trip;
mod peak_bytes_is_within_stated_precision;
mod realloc_across_placements_keeps_scope_and_bytes;
mod realloc_keeps_origin_scope;
mod tag_costs_no_memory;
mod thread_exit_frees_in_tls_destructor;
mod usable_bytes_match_jemalloc_thread_counters;

use scope_alloc_tracker::{Jemalloc, TrackingAlloc, UsableSizes};

/// Usable sizes counted: several modules check them against jemalloc's own
/// size classes and per-thread counters.
#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> =
    TrackingAlloc::new(Jemalloc).usable_sizes(UsableSizes::Count);
