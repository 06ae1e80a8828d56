//! The scope table as a whole: transient scopes and the recycling of their
//! ids, budgets that must not follow a recycled id, and snapshots of every
//! scope with jemalloc's process figures. These tests wait for a given id to
//! come back, count the scopes in the table, list every budget or compare
//! process-wide figures, so any other test registering scopes, making
//! instances or allocating meanwhile would disturb them: every test here
//! takes `common::one_at_a_time()`, and no other test shares the process.
#![cfg(feature = "jemalloc")]

mod common;

mod recycled_scope_id_is_charged_to_its_new_budgets;
mod recycled_scope_id_starts_without_a_budget;
mod released_scope_keeps_live_blocks_accounted;
mod snapshot_lists_scopes_and_jemalloc_figures;
mod transient_scopes_recycle_ids_and_stay_exact;

use scope_alloc_tracker::{Jemalloc, TrackingAlloc, UsableSizes};

/// Usable sizes counted: the snapshot tests check them against jemalloc's
/// process figures.
#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> =
    TrackingAlloc::new(Jemalloc).usable_sizes(UsableSizes::Count);
