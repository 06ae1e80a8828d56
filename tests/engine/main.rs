//! The storage engine's integration tests, one binary: checkpoints and
//! their leak verdicts, budgets, GC, recovery, corruption, bad input. Each
//! module was a test file of its own; they share this process, its tracking
//! allocator and the helpers of `common`.
//!
//! Tests that spawn child processes are elsewhere (`main_job`,
//! `second_open_of_a_directory_is_refused`, `crash`): a child forked
//! while another test holds a database's LOCK file keeps a copy of that
//! descriptor until its `exec`, and that test's reopen then finds the
//! directory locked.

use scope_alloc_tracker::{Jemalloc, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

#[path = "../common/mod.rs"]
mod common;

mod bad_input_never_panics;
mod checkpoint_failure_rolls_back;
mod checkpoint_over_budget_rolls_back_and_retries;
mod checkpoint_scope_drains;
mod corrupt_checkpoint_is_an_error;
mod gc_over_checkpoint_budget_is_deferred;
mod injected_checkpoint_leak_is_reported;
mod memtable_budget_drives_flushes;
mod model_matches_btreemap;
mod recovery_after_torn_wal_tail;
mod slow_leak_trend_is_caught;
mod two_databases_checkpoint_concurrently;
mod two_databases_have_their_own_memtable_budget;
mod wal_damage_is_corruption_unless_torn_tail;
