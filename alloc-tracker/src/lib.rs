//! Exact per-scope allocation accounting as a drop-in `#[global_allocator]`.
//!
//! `alloc-tracker` wraps jemalloc (or the system allocator) and charges
//! every allocation to the *scope* (subsystem) current on the allocating
//! thread, and every free back to the scope that made the allocation,
//! whichever thread frees it. Per-scope live bytes and allocations are exact
//! at any moment; a [`LeakCheck`](leak::LeakCheck) around a unit of work
//! says whether its scope drained and, if not, which call sites hold the
//! bytes.
//!
//! # Setup
//!
//! ```
//! use alloc_tracker::{Jemalloc, TrackingAlloc};
//!
//! #[global_allocator]
//! static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);
//! # fn main() {}
//! ```
//!
//! `TrackingAlloc::new(std::alloc::System)` wraps the platform allocator
//! instead. `.usable_sizes(UsableSizes::Count)` also counts the bytes the
//! backend really reserves (jemalloc's size classes, computed
//! arithmetically), at a cost measured in the README.
//!
//! # Scopes
//!
//! Declare scopes as statics (registered on first use) or register them at
//! run time; give them parents to form a tree. Entering one returns a
//! guard that restores the previous scope when dropped, also while
//! unwinding.
//!
//! ```
//! # #[global_allocator]
//! # static A: alloc_tracker::TrackingAlloc<alloc_tracker::Jemalloc> =
//! #     alloc_tracker::TrackingAlloc::new(alloc_tracker::Jemalloc);
//! use alloc_tracker::{Scope, ScopeId};
//!
//! static CHECKPOINT: Scope = Scope::new("checkpoint");
//! static COLLECT: Scope = Scope::child_of(&CHECKPOINT, "collect");
//!
//! let batch = COLLECT.in_scope(|| vec![0u8; 4096]);
//! assert_eq!(COLLECT.stats().live_bytes, 4096);
//! assert_eq!(CHECKPOINT.id().stats_with_children().live_bytes, 4096);
//!
//! // Freed outside the scope, on another thread: still credited to it.
//! std::thread::spawn(move || drop(batch)).join().unwrap();
//! assert_eq!(COLLECT.stats().live_bytes, 0);
//!
//! // Scopes made at run time, e.g. one per test.
//! let job = ScopeId::register("job-42", Some(CHECKPOINT.id())).unwrap();
//! assert_eq!(job.path(), "checkpoint/job-42");
//! ```
//!
//! The table holds [`MAX_SCOPES`] (4096) scopes, never freed. When it is
//! full, [`ScopeId::register`] returns [`ScopeTableFull`] and a static
//! [`Scope`] used for the first time counts in [`ScopeId::OVERFLOW`]:
//! counted, never lost.
//!
//! # Attribution rules
//!
//! - An allocation is charged to the scope current on the allocating thread
//!   ([`ScopeId::UNSCOPED`] outside any scope). Its free is credited to that
//!   same scope, whatever thread frees it and whatever scope is current then.
//! - `realloc` keeps the block in its original scope; it counts as one free
//!   of the old size and one allocation of the new size, as jemalloc counts
//!   it, and keeps jemalloc's in-place growth (no copy added).
//! - Allocations the tracker makes for itself (dynamic scope names, site
//!   tables, reports) go to [`ScopeId::INTERNAL`] and never recurse into
//!   sampling or recording.
//! - Allocated before the allocator was installed: cannot happen for a
//!   `#[global_allocator]`, which serves the whole program from its first
//!   allocation. Memory allocated by C code through `malloc` is not seen
//!   (jemalloc is linked with a `_rjem_` prefix); compare
//!   [`Snapshot::jemalloc`] with [`Snapshot::tracked`] to see untracked
//!   bytes.
//! - Frees made by other threads' TLS destructors while a thread exits are
//!   counted like any other free.
//! - A block allocated in scope A and freed while scope B is current lowers
//!   A's live figures and raises A's `total_frees`; B is untouched.
//!
//! # Threads and async
//!
//! The current scope is per thread. Carry it into spawned threads and
//! thread-pool jobs with [`ScopeId::bind`]; run futures in a scope with
//! [`AllocScopeExt::in_alloc_scope`], which enters the scope on every poll
//! and while the future is dropped, so bytes freed on cancellation land in
//! the right scope. Never hold a [`ScopeGuard`] across `.await` (it is
//! `!Send`; `clippy.toml` lists it under `await-holding-invalid-types`).
//!
//! # Leak testing
//!
//! ```
//! # #[global_allocator]
//! # static A: alloc_tracker::TrackingAlloc<alloc_tracker::Jemalloc> =
//! #     alloc_tracker::TrackingAlloc::new(alloc_tracker::Jemalloc);
//! use alloc_tracker::{assert_scope_drained, ScopeId};
//!
//! let scope = ScopeId::register("my-test", None).unwrap();
//! let sum = assert_scope_drained!(scope, { (0..100).map(|i| vec![i; 10]).count() });
//! assert_eq!(sum, 100);
//! ```
//!
//! A failing check panics with a report that names the call sites still
//! holding bytes (see [`leak::LeakReport`]). This one is from a real run of
//! `examples/leak_demo.rs`, whose batch flush keeps large batches in a
//! static list (paths shortened):
//!
//! ```text
//! leak in scope `checkpoint`: 4896 B in 3 allocations still live (expected baseline 0 B in 0 allocs; now 4896 B in 3 allocs; waited 430ns)
//!   during the check: 4 allocs / 5056 B allocated, 1 frees (0 by another thread or scope)
//!   #1 4800 B in 2 allocation(s) (sizes [3200, 1600]) in `checkpoint/collect`, allocated from leak_demo::encode_batch at examples/leak_demo.rs:21
//!       (8 std frames inside)
//!       leak_demo::encode_batch at examples/leak_demo.rs:21
//!       leak_demo::main::{{closure}} at examples/leak_demo.rs:41
//!       alloc_tracker::scope::ScopeId::in_scope at src/scope/mod.rs:77
//!       alloc_tracker::scope::Scope::in_scope at src/scope/mod.rs:269
//!       leak_demo::main at examples/leak_demo.rs:39
//!   #2 96 B in 1 allocation(s) (sizes [96]) in `checkpoint/collect`, allocated from leak_demo::flush_batch at examples/leak_demo.rs:32
//! ```
//!
//! Site #2 is the static list's own buffer, which grew inside the scope:
//! every byte the scope kept is attributed to a call site. Checks on different scopes run
//! concurrently in one test binary; a check on a parent covers its
//! children; [`LeakCheckOptions::quiescence`](leak::LeakCheckOptions::quiescence)
//! waits, bounded, for frees made late by background threads;
//! [`tolerance_bytes`](leak::LeakCheckOptions::tolerance_bytes) allows memory
//! retained on purpose, reported as `retained_bytes`, never hidden.
//!
//! # Sampling
//!
//! [`sampling::set_sampling`] turns on byte-interval sampling (default
//! interval 512 KiB, like jemalloc's `lg_prof_sample=19`):
//! [`sampling::sampled_sites`] then estimates each site's live bytes per
//! scope, cheaply enough for production.
//!
//! # Reading figures and reports
//!
//! [`ScopeId::stats`] sums per-thread counters (about a microsecond);
//! [`Snapshot::take`] reads every scope plus jemalloc's own process figures.
//! [`report::Report::take`] builds the whole picture (scope tree, sampled
//! sites, jemalloc figures and the untracked difference, the tracker's own
//! overhead) and writes it as a text table, JSON, folded stacks, an SVG
//! flame graph or Prometheus text; [`report::Dumps`] writes it on demand,
//! at exit, periodically or on `SIGUSR1`. Building and writing a report is
//! charged to the tracker's internal scope, never to the scopes it reports.
//!
//! # Overhead
//!
//! Per allocation: a 2-byte tag after the block (free when it fits in the
//! size class's slack, one size class step when the request fills its class
//! exactly), one thread-local read, and a few counter updates on a cache
//! line owned by the thread (no shared read-modify-write). The README has
//! the measured ratios against bare jemalloc.
//!
//! # Limitations
//!
//! - Allocating or freeing from a signal handler that interrupted the same
//!   thread's allocation may lose that one update (as with most
//!   allocators, allocating in signal handlers is not supported).
//! - A thread spawned while a scope is current charges std's bookkeeping
//!   for it (its handle, the boxed closure) to that scope, and the thread
//!   may release its handle in its TLS destructors, just after `join` has
//!   returned. Spawn from outside the checked scope and carry the scope
//!   into the thread with [`ScopeId::bind`], or give the check a
//!   quiescence wait.
//! - More than 128 simultaneously live threads share an overflow counter
//!   shard updated with atomic read-modify-writes (slower, still exact).
//! - `peak_bytes` is a lower bound within [`PEAK_PRECISION_BYTES`] per
//!   thread of the true peak (see [`ScopeStats::peak_bytes`]).
//! - Usable sizes follow jemalloc's size classes for 4 KiB pages; other
//!   page sizes make only the `*_usable_bytes` figures approximate.
//!
//! # Feature flags
//!
//! - `jemalloc` (default): the [`Jemalloc`] backend and [`JemallocStats`].
//! - `serde`: `Serialize`/`Deserialize` for stats, frames, leak reports and
//!   the [`report::Report`] model.
//! - `json`: JSON output and input of reports (implies `serde`).
//! - `flamegraph`: SVG flame graphs of sampled and recorded sites
//!   (`inferno`).
//! - `signal`: a dumping thread that writes a report on `SIGUSR1`
//!   (`signal-hook`, unix only).
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[allow(unsafe_code)]
mod allocator;
mod error;
pub mod integrations;
pub mod leak;
pub mod report;
pub mod sampling;
mod scope;
mod stats;
mod thread_state;

#[cfg(feature = "jemalloc")]
pub use allocator::Jemalloc;
pub use allocator::{Backend, TrackingAlloc, UsableSizes};
pub use error::{NotInstalled, ScopeError, ScopeTableFull};
pub use leak::{ensure_installed, is_installed};
pub use sampling::Frame;
#[doc(hidden)]
pub use scope::ToScopeId;
pub use scope::{
    AllocScopeExt, InScope, ReleasedWithLiveBlocks, Scope, ScopeGuard, ScopeId, ScopeInstance,
    MAX_SCOPES,
};

/// Runs a test in a fresh scope instance and asserts it drained: see
/// [`alloc_tracker_macros::test`] and the crate documentation's "Test
/// attribute" section.
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use alloc_tracker_macros::test;

/// What the macros of this crate expand to call; not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::leak::test_attr::{run_async_test, run_test};
}
#[cfg(feature = "jemalloc")]
pub use stats::JemallocStats;
pub use stats::{ScopeSnapshot, ScopeStats, Snapshot, PEAK_PRECISION_BYTES};

#[cfg(all(test, feature = "jemalloc"))]
#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);
