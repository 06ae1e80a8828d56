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
//! # Call stacks
//!
//! A recorded allocation (every allocation of a scope under a recording
//! leak check, and each sample) keeps its call stack as up to 48 raw
//! return addresses; they are symbolised only when a report is built, with
//! inlined frames named from the debug information.
//!
//! - Capture (x86_64 Linux): the thread unwinds its own stack with the
//!   unwind rule of each return address cached in a lock-free table, filled
//!   from the `.eh_frame` of the objects loaded at first use. No
//!   allocation, no lock on a hit; about 7 ns per frame, some 30x faster
//!   than libgcc's unwinder. A stack through code loaded later, or that
//!   the cache cannot unwind past the allocator, is walked by
//!   `backtrace::trace` instead, counted in
//!   [`sampling::stack_capture_stats`]. Other platforms always use it.
//! - Symbolisation stops at the runtime's start frame (below it, libc's
//!   debug information would be parsed for nothing) and drops `backtrace`'s
//!   caches after each report: 9-10 MiB and 65-85 ms for a report of
//!   a release build, nearly whatever its number of sites, charged to the internal
//!   scope. `docs/attribution.md` has the measurements.
//!
//! # Leak trends
//!
//! A leak of a few hundred bytes per run passes any per-run check that
//! tolerates noise. A [`leak::Trend`] watches a scope at quiescent points
//! (`trend.observe()` after each run) and reports steady growth over its
//! last `N` points, with the sampled sites that grew:
//!
//! ```
//! # #[global_allocator]
//! # static A: alloc_tracker::TrackingAlloc<alloc_tracker::Jemalloc> =
//! #     alloc_tracker::TrackingAlloc::new(alloc_tracker::Jemalloc);
//! use alloc_tracker::leak::Trend;
//! use alloc_tracker::ScopeId;
//!
//! let results = ScopeId::register("checkpoint-results", None).unwrap();
//! let mut trend = Trend::options(results).points(8).min_slope_bytes(64).build().unwrap();
//! // after each checkpoint run:
//! if let Some(report) = trend.observe() {
//!     eprintln!("{report}");
//! }
//! ```
//!
//! # Budgets
//!
//! A [`Budget`] is a soft limit on a scope's live bytes, its children
//! included, set and changed at run time; the owner acts on
//! [`ScopeId::over_budget`] at safe points, and [`budget::watch`] runs
//! callbacks on a tracker thread. Crossing a budget never fails an
//! allocation and never runs user code in the allocator; a hard limit can
//! only refuse allocations inside a [`budget::fallible`] section (a
//! `try_reserve`), since refusing an infallible one aborts the process.
//! See [`budget`] for the semantics and the cost.
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
//! Memory: none. Over jemalloc (the default [`Attribution::Hybrid`]) every
//! block gets exactly the size class bare jemalloc gives its layout: a block
//! whose class has two bytes of slack carries its scope in a 2-byte trailer
//! there; a block that fills its class exactly (32 B, 64 B, 4 KiB, `Vec`
//! capacities) lives in a jemalloc arena of its scope, and its free finds the
//! scope from its address. Time: one thread-local read and a few counter
//! updates on a cache line owned by the thread (no shared read-modify-write)
//! per allocation and free, plus jemalloc's slower flag path (`mallocx` with
//! an arena and an explicit tcache) for exact fits in a scope. Over `System`
//! every block carries the trailer (and may take a larger size class). The
//! README has the measured ratios against bare jemalloc; `docs/attribution.md`
//! the designs measured.
//!
//! # Limitations
//!
//! - The cached unwinder knows the objects loaded when it first ran; a
//!   stack through a library `dlopen`ed later takes the slow unwinder.
//!   Two return addresses that share a slot and a 32-bit check in its rule
//!   table would share a rule: that stack could be wrong (reads stay within
//!   the thread's stack), never unsafe.
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
//! - (no flag) the cached stack unwinder is built on x86_64 Linux, where
//!   `gimli` parses `.eh_frame` on a cache miss.
//! - `serde`: `Serialize`/`Deserialize` for stats, frames, leak reports and
//!   the [`report::Report`] model.
//! - `json`: JSON output and input of reports (implies `serde`).
//! - `flamegraph`: SVG flame graphs of sampled and recorded sites
//!   (`inferno`).
//! - `signal`: a dumping thread that writes a report on `SIGUSR1`
//!   (`signal-hook`, unix only).
//! - `prometheus-client`: [`integrations::prometheus`], a
//!   `prometheus-client` collector of the per-scope figures.
//! - `metrics-http`: [`integrations::http`], a small built-in `/metrics`
//!   endpoint (`tiny_http`); implies `prometheus-client`.
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[allow(unsafe_code)]
mod allocator;
pub mod budget;
mod error;
// Integrations with outside tools (Prometheus, a `/metrics` endpoint), each
// behind its own feature; the core never imports them. Docs: integrations/mod.rs.
pub mod integrations;
pub mod leak;
pub mod report;
pub mod sampling;
mod scope;
mod stats;
mod thread_state;

#[cfg(feature = "jemalloc")]
pub use allocator::AttributionStats;
#[cfg(feature = "jemalloc")]
pub use allocator::Jemalloc;
pub use allocator::{Attribution, Backend, TrackingAlloc, UsableSizes};
pub use budget::Budget;
pub use error::ScopeTableFull;
pub use sampling::Frame;
pub use scope::{AllocScopeExt, InScope, Scope, ScopeGuard, ScopeId, MAX_SCOPES};
#[cfg(feature = "jemalloc")]
pub use stats::attribution_stats;
#[cfg(feature = "jemalloc")]
pub use stats::JemallocStats;
pub use stats::{ScopeSnapshot, ScopeStats, Snapshot, PEAK_PRECISION_BYTES};

#[cfg(all(test, feature = "jemalloc"))]
#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);
