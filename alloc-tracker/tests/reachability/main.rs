//! Leak checks whose verdicts rest on a reachability scan: reachable
//! blocks name their holder, the conservative scan errs only in the
//! documented directions, retention rules allow reachable caches only, a
//! held excess keeps a failing check waiting its whole quiescence time. A
//! scan stops the process and reads every stack and static: a block
//! address left on another test's stack, or held by a report being built
//! meanwhile, makes a leaked block look reachable. So each test runs in a
//! child process of its own (`rusty_fork_test!`), where nothing else runs;
//! two of them run at once, and most of their time is quiescence waits.
//!
//! `tests/own_process/unreachable_leaks_are_definitely_lost.rs` asserts that every
//! planted leak is found unreachable, at once: the freed heap memory that
//! other tests leave behind (stale addresses in blocks reused later) made it
//! find some reachable. The verdicts on a real engine
//! (`tests/real_engine_verdicts.rs`) run each test in a process of its own
//! too.
#![cfg(feature = "jemalloc")]

mod conservative_scan_errs_in_the_documented_directions;
mod held_excess_keeps_the_quiescence_wait;
mod reachable_blocks_name_their_holder;
mod retention_rules_allow_a_cache_but_catch_leaks;

use scope_alloc_tracker::{Jemalloc, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);
