//! Exact per-scope allocation accounting as a drop-in `#[global_allocator]`.
//!
//! `alloc-tracker` wraps jemalloc (or the system allocator) and charges
//! every allocation to the *scope* (subsystem) current on the allocating
//! thread, and every free back to the scope that made the allocation,
//! whichever thread frees it. Per-scope live bytes and allocations are exact
//! at any moment; a [`LeakCheck`](leak::LeakCheck) around a unit of work
//! says whether its scope drained and, if not, which call sites hold the
//! bytes and, from a LeakSanitizer-style scan of the process's memory,
//! which of them nothing can reach any more (definitely lost) and what
//! still holds the others ([`leak::Reachability`], `docs/reachability.md`).
//!
//! # Setup
//!
//! ```
//! use scope_alloc_tracker::{Jemalloc, TrackingAlloc};
//!
//! #[global_allocator]
//! static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);
//! # fn main() {}
//! ```
//!
//! `TrackingAlloc::new(std::alloc::System)` wraps the platform allocator
//! instead. `.usable_sizes(UsableSizes::Count)` also counts the bytes the
//! backend really reserves (jemalloc's size classes, computed
//! arithmetically), at a cost measured in the repository's `docs/overhead.md`.
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
//! # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
//! #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
//! use scope_alloc_tracker::{Scope, ScopeId};
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
//! The table holds [`MAX_SCOPES`] (4096) scopes at once. Permanent scopes
//! (statics, [`ScopeId::register`]) are never removed; transient ones
//! ([`ScopeInstance`]) give their ids back once released and drained (next
//! section). When no id is free, [`ScopeId::register`] returns
//! [`ScopeTableFull`] and a static [`Scope`] used for the first time counts
//! in [`ScopeId::OVERFLOW`]: counted, never lost, and said once per scope on
//! standard error and in [`Snapshot::overflowed_scopes`].
//!
//! Names: [`ScopeId::try_register`] and [`ScopeId::get_or_register`]
//! refuse empty names and names containing `/` (the path separator) or `#`
//! (the instance marker) with a [`ScopeError`]; `try_register` refuses a
//! sibling's name, `get_or_register` returns that sibling (one path, one
//! scope, as for two statics of one name and parent).
//! [`ScopeId::register`] takes any name and gives a duplicate a distinct
//! path (`name~2`).
//!
//! # Instances and transient scopes
//!
//! A static scope is a *kind* (`checkpoint`); an *instance* of it is a
//! transient scope with figures of its own, made at run time per unit of
//! work (per test, request, query, connection, `Db` handle) and released
//! when its [`ScopeInstance`] handle is dropped. Think of tracing's span
//! tree or ClickHouse's per-query memory trackers under the global one.
//!
//! ```
//! # #[global_allocator]
//! # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
//! #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
//! use scope_alloc_tracker::{Scope, ScopeId};
//!
//! static REQUEST: Scope = Scope::new("request");
//! static PARSE: Scope = Scope::child_of(&REQUEST, "parse");
//!
//! fn handle(body: &str) -> usize {
//!     // Code written for the static scopes; inside an instance they
//!     // stand for the instance's own scopes.
//!     PARSE.in_scope(|| body.split(',').map(str::to_owned).collect::<Vec<_>>().len())
//! }
//!
//! // One transient scope per request: `request#1`, `request#2`, ...
//! let req = REQUEST.instance().unwrap();
//! let n = req.in_scope(|| {
//!     assert_eq!(ScopeId::from(&PARSE).path(), format!("request#{}/parse", req.serial()));
//!     handle("a,b,c")
//! });
//! assert_eq!(n, 3);
//! assert!(req.stats_with_children().total_allocs > 0);
//! assert_eq!(req.stats_with_children().live_bytes, 0);
//! // The kind's figures with children include every instance.
//! assert!(REQUEST.stats_with_children().total_allocs >= req.stats_with_children().total_allocs);
//! drop(req); // released; its id is recycled
//! ```
//!
//! - **What a kind's figures are.** `KIND.stats()`: what was allocated with
//!   the kind itself current, never inside an instance.
//!   `KIND.stats_with_children()`: that, its static children, every
//!   instance (live or released) and the scopes below them, plus the totals
//!   of instances already recycled (totals stay monotonic).
//! - **Paths.** An instance is `kind#n`, `n` counting that kind's instances
//!   from 1 (`checkpoint#12`); scopes below it follow
//!   (`checkpoint#12/collect`). Reports list instances under their kind.
//! - **Static scopes inside an instance.** Entering the kind itself inside
//!   one of its instances stays in the instance; entering a static child of
//!   the kind enters a transient scope made for it below the instance (on
//!   first use, released with the instance). [`Scope::current_id`] and
//!   `ScopeId::from(&scope)` give that resolution; [`Scope::id`] is always
//!   the static scope. An explicit [`ScopeId`] is entered as given.
//! - **Release.** Dropping the handle (or [`ScopeInstance::release`])
//!   releases the instance and the scopes below it. A scope that still
//!   holds blocks stays in the table, marked released
//!   ([`ScopeId::is_released`], [`ScopeSnapshot::released`], `(released)`
//!   after its name in reports), still counted under its kind, and keeps
//!   receiving the frees of its blocks; once its live figures are zero its
//!   totals are folded into its parent and its id is recycled (checked when
//!   ids are needed). An id is never reused while a block tagged with it is
//!   live.
//! - **Recycled ids start at zero.** Counters are monotonic per id; a
//!   recycled id's totals at recycling become its baseline, subtracted when
//!   figures are read (the allocation path is unchanged).
//! - **Cost.** Making and releasing an instance takes the table's lock (not
//!   on the allocation path); entering a static scope costs one more
//!   relaxed load while instances exist.
//! - **Rule.** Do not enter a released instance's id (a copied [`ScopeId`]
//!   kept past the handle): once recycled, it names another scope.
//!
//! For names known only at run time, [`ScopeId::get_or_register`] gives the
//! kind and [`ScopeId::instance`] its instances.
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
//!   allocation. A program (or `tests/*.rs` file: each is its own crate)
//!   *without* the `#[global_allocator]` line counts nothing at all:
//!   [`is_installed`] says so, and every leak check fails loudly, naming
//!   the missing line, rather than passing on all-zero figures
//!   ([`NotInstalled`]). Memory allocated by C code through `malloc` is not seen
//!   (jemalloc is linked with a `_rjem_` prefix); compare
//!   [`Snapshot::jemalloc`] with [`Snapshot::tracked`] to see untracked
//!   bytes.
//! - Frees made by other threads' TLS destructors while a thread exits are
//!   counted like any other free.
//! - A block allocated in scope A and freed while scope B is current lowers
//!   A's live figures and raises A's `total_frees`; B is untouched.
//!
//! # Handing a block to another scope
//!
//! A block stays charged to the scope that allocated it. When code you own
//! keeps a block on purpose beyond the unit of work that made it (a cache
//! inserting a page read by a query), hand it over:
//! `cache.insert(id, CACHE.adopt(page))` ([`Scope::adopt`],
//! [`hand_over()`]). `Box`, `Vec`, `String` and unique `Arc`/`Rc` move into a
//! block of the target scope (one allocation, one copy, one free), exact on
//! every placement; a shared `Arc` is refused with the value given back.
//! The query's leak check then passes, and the cache's scope holds the page
//! until it is freed, on whatever thread. See [`hand_over`](mod@hand_over).
//!
//! # Threads and async
//!
//! The current scope is per thread. Carry it into spawned threads and
//! thread-pool jobs with [`Scope::bind`] / [`ScopeId::bind`]; run futures
//! in a scope with [`AllocScopeExt::in_alloc_scope`] (a [`ScopeId`],
//! `&Scope` or `&ScopeInstance`), which enters the scope on every poll and
//! while the future is dropped, so bytes freed on cancellation land in the
//! right scope. Never hold a [`ScopeGuard`] across `.await` (it is
//! `!Send`; `clippy.toml` lists it under `await-holding-invalid-types`).
//! An async leak check is one expression:
//! [`leak::check_async(scope, fut).await`](leak::check_async), or
//! `assert_scope_drained!(instance of &KIND, async { .. }).await`.
//!
//! # Tokio and rayon
//!
//! Executors run work on whichever thread is free, in whatever scope that
//! thread is in:
//!
//! - **tokio** (feature `tokio`, [`integrations::tokio`]): `tokio::spawn`
//!   does not carry the scope; [`integrations::tokio::spawn`] does (the
//!   task is polled, on any worker, and dropped in the spawner's scope, and
//!   tasks it spawns the same way inherit it again); so do `spawn_in` and
//!   `spawn_blocking`.
//! - **rayon** (feature `rayon`, [`integrations::rayon`]): binding the
//!   closure given to `pool.install` covers only the work that stays on the
//!   installing thread; stolen items go to the thief's scope (on a busy
//!   pool, most of the work: figures in `docs/attribution.md`). Put
//!   `.in_current_scope()` (or `.in_alloc_scope(scope)`) on the parallel
//!   iterator: every item, partial result and reduction after it runs in
//!   the scope on any worker, so a leak in stolen work is caught. `join`,
//!   `spawn` and `install` there bind their closures.
//!
//! **Runtime warm-up.** Runtimes allocate some of their own state lazily
//! (tokio's per-worker defer list and queues, blocking-pool threads,
//! rayon's registry), charged to whatever scope is current when it happens:
//! the first scope that makes a fresh runtime do something. A leak check
//! around the first async work on a fresh runtime can fail with a few
//! hundred bytes whose sites are inside `tokio::runtime`. Warm the runtime
//! up first, outside the checked scope, with
//! [`integrations::tokio::warm_up`] (or `warm_up_async` from a task): one
//! task per worker held together by a barrier (each spawning tasks that
//! yield), and one `spawn_blocking`; a warm-up without tasks that yield
//! leaves a worker's defer list to grow inside the first check (tested on
//! a series of fresh runtimes; see `docs/attribution.md`). To
//! tell runtime state from a leak: its sites are in the runtime's own
//! frames, and it stays small when the same work runs again and again in
//! the scope, while a leak grows with every run in proportion to the work.
//!
//! **Late frees.** A worker frees a finished task's cell a little after
//! the task's output was delivered, and any work handed to another thread
//! can free after the code that waits for it has moved on. Every check
//! therefore waits, bounded by [`leak::DEFAULT_QUIESCENCE`] (1 s), for the
//! scope to drain before it declares a leak; a check that drains returns
//! at once, and a failing check stops waiting as soon as a reachability
//! scan finds its whole excess unreachable (nothing can free it any more;
//! [`leak::QuiescenceEnd`]), so only failing checks whose excess is still
//! held pay the whole wait. Reports give the time waited.
//! `docs/leak-checks.md` ("Async and tokio") has the details.
//!
//! **Async tests on tokio.** `#[scope_alloc_tracker::test(tokio)]` (features
//! `macros` and `tokio`; `worker_threads = N`, default 2) runs an
//! `async fn` test on a fresh multi-thread runtime built and warmed up
//! outside the check; its workers run in the test's instance, so a leak in
//! a task spawned with a plain `tokio::spawn` fails the test. It does not
//! combine with `#[tokio::test]` (a compile error says so, in either
//! order):
//!
//! ```compile_fail
//! # #[global_allocator]
//! # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
//! #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
//! #[scope_alloc_tracker::test]
//! #[tokio::test(flavor = "multi_thread")]
//! async fn combined() {}
//! # fn main() {}
//! ```
//!
//! ```compile_fail
//! # #[global_allocator]
//! # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
//! #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
//! #[tokio::test(flavor = "multi_thread")]
//! #[scope_alloc_tracker::test]
//! async fn combined() {}
//! # fn main() {}
//! ```
//!
//! # tracing
//!
//! With the feature `tracing`, [`integrations::tracing::AllocScopeLayer`]
//! is a `tracing_subscriber::Layer` that enters a scope for each span that
//! names one (`info_span!("run", alloc_scope = "checkpoint")`, or by span
//! name when configured), on every enter of the span, on whatever thread:
//! `.instrument(span)` is all a tracing user writes, across `.await` and
//! task migration. Scopes of nested spans nest (`job/parse`).
//!
//! ```ignore
//! use scope_alloc_tracker::integrations::tracing::AllocScopeLayer;
//! use tracing::Instrument;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! tracing::subscriber::set_global_default(tracing_subscriber::registry().with(AllocScopeLayer::new()))?;
//! let span = tracing::info_span!("checkpoint run", alloc_scope = "checkpoint");
//! run_checkpoint().instrument(span).await; // allocations charged to `checkpoint`
//! ```
//!
//! # Leak testing
//!
//! ```
//! # #[global_allocator]
//! # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
//! #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
//! use scope_alloc_tracker::{assert_scope_drained, Scope};
//!
//! static CHECKPOINT: Scope = Scope::new("checkpoint");
//!
//! // A fresh instance of CHECKPOINT: concurrent tests checking the same
//! // static scope never see each other's allocations.
//! let sum = assert_scope_drained!(instance of &CHECKPOINT, {
//!     (0..100).map(|i| vec![i; 10]).count()
//! });
//! assert_eq!(sum, 100);
//! ```
//!
//! Check a static scope itself (`assert_scope_drained!(&CHECKPOINT, ..)`)
//! only when nothing else can allocate in it meanwhile; the `instance of`
//! form is the one for tests. A check refuses to pass when the tracker is
//! not installed (see "Attribution rules").
//!
//! With the feature `macros`, `#[scope_alloc_tracker::test]` does this for a
//! whole test, sync or `async` (driven on the test's thread by a small
//! executor; `#[scope_alloc_tracker::test(tokio)]` runs it on a tokio
//! multi-thread runtime instead, see "Tokio and rayon"): the body runs in
//! a fresh instance of `test/<function name>`, which must drain, or the
//! test fails with the leak report
//! (`tests/leaks/test_attribute_checks_each_test_in_its_own_instance.rs`):
//!
//! ```ignore
//! #[scope_alloc_tracker::test]
//! fn checkpoint_gives_back_its_memory() {
//!     run_checkpoint();
//! }
//!
//! #[scope_alloc_tracker::test]
//! async fn handler_gives_back_its_memory() {
//!     handle(request()).await;
//! }
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
//!       scope_alloc_tracker::scope::ScopeId::in_scope at src/scope/mod.rs:77
//!       scope_alloc_tracker::scope::Scope::in_scope at src/scope/mod.rs:269
//!       leak_demo::main at examples/leak_demo.rs:39
//!   #2 96 B in 1 allocation(s) (sizes [96]) in `checkpoint/collect`, allocated from leak_demo::flush_batch at examples/leak_demo.rs:32
//! ```
//!
//! Site #2 is the static list's own buffer, which grew inside the scope:
//! every byte the scope kept is attributed to a call site. Checks on different scopes run
//! concurrently in one test binary; a check on a parent covers its
//! children; every check waits, bounded (1 s by default,
//! [`LeakCheckOptions::quiescence`](leak::LeakCheckOptions::quiescence)),
//! for frees made late by background threads, unless a scan finds that
//! nothing holds the excess any more;
//! [`tolerance_bytes`](leak::LeakCheckOptions::tolerance_bytes) allows memory
//! retained on purpose, reported as `retained_bytes`, never hidden.
//!
//! ## Retention on purpose: caches, pools, runtimes
//!
//! An engine's page cache filled during a commit is not a leak. Declare it
//! with a bounded rule ([`leak::Retain`], like LeakSanitizer's
//! suppressions, also from `ALLOC_TRACKER_RETAIN` or a file named by
//! `ALLOC_TRACKER_RETAIN_FILE`); each retained block is then judged on its
//! own: matched by a rule within its bound, it is allowed retention,
//! listed apart in the report; otherwise, or beyond the bound, a leak:
//!
//! ```
//! # #[global_allocator]
//! # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
//! #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
//! use scope_alloc_tracker::leak::{LeakCheck, Retain};
//! use scope_alloc_tracker::Scope;
//!
//! static COMMIT: Scope = Scope::new("doc-commit");
//! let check = LeakCheck::options(&COMMIT)
//!     .retain(Retain::site("redb::tree_store::page_store").up_to(64 << 20).named("page-cache"))
//!     .begin();
//! COMMIT.in_scope(|| drop(vec![0u8; 100])); // the commit
//! let drained = check.finish().unwrap();
//! assert_eq!(drained.unused_rules[0].rule, "page-cache"); // nothing cached this time
//! ```
//!
//! Default rules ([`leak::default_rules`]) allow what tokio,
//! tracing-subscriber, std's panic hook and libtest keep on purpose; each
//! can be turned off. A rule that matched nothing is reported as unused; a
//! check that overlapped another check of the same scope says so.
//! [`leak::SteadyState`] runs an operation again and again after a warm-up
//! and fails when the scope keeps growing. `docs/leak-checks.md` says what
//! each verdict means and how each can err.
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
//! - Capture (x86_64 Linux): the thread unwinds its own stack with the unwind
//!   rule of each return address cached in a lock-free table, filled from the
//!   `.eh_frame` of the objects loaded at first use. No allocation, no lock on
//!   a hit, and a small fraction of the time of libgcc's unwinder
//!   (`docs/attribution.md`, "Call stacks"). A stack through code loaded later,
//!   or that the cache cannot unwind past the allocator, is walked by
//!   `backtrace::trace` instead, counted in
//!   [`sampling::stack_capture_stats`]. Other platforms always use it.
//! - Trimming: a site's stack starts at the caller of the allocator. The
//!   allocator's own frames are recognised by address (its code's ranges
//!   from the executable's symbol table), not by the names the debug
//!   information gives them, so `debug = "line-tables-only"`, `"limited"`,
//!   `true` and `false` trim alike; [`leak::LeakSite::origin`] is never a
//!   tracker frame ([`sampling::Frame::is_tracker`]).
//! - Symbolisation stops at the runtime's start frame (below it, libc's
//!   debug information would be parsed for nothing), parses only the
//!   compilation units a report's frames fall in, and drops its caches
//!   after each report; what it allocates is charged to the internal
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
//! # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
//! #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
//! use scope_alloc_tracker::leak::Trend;
//! use scope_alloc_tracker::ScopeId;
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
//! See [`budget`] for the semantics and the cost. Reports list every
//! budgeted scope with its limits, live bytes and crossings
//! ([`report::BudgetReport`]).
//!
//! # Reading figures and reports
//!
//! [`ScopeId::stats`] sums one scope's per-thread counters;
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
//! repository's `docs/overhead.md` has the measured ratios against bare
//! jemalloc; `docs/attribution.md` the designs measured.
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
//! - A block whose only pointer is hidden (XOR-ed, tagged in high bits,
//!   kept only past its end) looks unreachable to the reachability scan:
//!   a failing check then ends its quiescence wait early, and a late free
//!   of that block by another thread no longer makes the check pass. Ask
//!   such a check for the whole wait with
//!   [`QuiescenceEnd::Full`](leak::QuiescenceEnd::Full).
//! - More than 128 simultaneously live threads share an overflow counter
//!   shard updated with atomic read-modify-writes (slower, still exact).
//! - `peak_bytes` is a lower bound within [`PEAK_PRECISION_BYTES`] per
//!   thread of the true peak (see [`ScopeStats::peak_bytes`]).
//! - A rayon parallel iterator without `.in_current_scope()` charges the
//!   items other workers steal to their scope, not the caller's; a
//!   `tokio::spawn`ed task (rather than `integrations::tokio::spawn`) runs
//!   in its worker's scope.
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
//! - `tokio`: [`integrations::tokio`], spawn helpers whose tasks keep the
//!   spawner's scope.
//! - `rayon`: [`integrations::rayon`], a parallel-iterator adaptor and
//!   `join`/`spawn`/`install` helpers whose work keeps the scope when
//!   stolen.
//! - `tracing`: [`integrations::tracing`], a `tracing_subscriber::Layer`
//!   that enters a scope per span.
//! - `macros`: `#[scope_alloc_tracker::test]` (the `scope-alloc-tracker-macros` crate).
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// `unsafe` is denied but in four modules, each for its own concern and
// each with its own allow and `// SAFETY:` arguments: `allocator` (blocks,
// tags, arenas, exit hooks), `sampling::unwind::raw` (registers, stack
// reads, loaded modules), `sampling::mapped` (read-only file mappings) and
// `leak::reach::{raw, stop}` (reading memory and stopping threads for the
// reachability scan). The data plane (`hot`) has none.
#[allow(unsafe_code)]
mod allocator;
pub mod budget;
mod error;
pub mod hand_over;
mod hot;
// Integrations with outside tools (Prometheus, a `/metrics` endpoint), each
// behind its own feature; the core never imports them. Docs: integrations/mod.rs.
pub mod integrations;
pub mod leak;
pub mod report;
pub mod sampling;
mod scope;
mod stats;

#[cfg(feature = "jemalloc")]
pub use allocator::AttributionStats;
#[cfg(feature = "jemalloc")]
pub use allocator::Jemalloc;
pub use allocator::{Attribution, Backend, TrackingAlloc, UsableSizes};
pub use budget::Budget;
pub use error::{NotInstalled, ScopeError, ScopeTableFull};
pub use hand_over::{hand_over, HandOver};
pub use leak::{ensure_installed, is_installed};
pub use sampling::Frame;
#[doc(hidden)]
pub use scope::ToScopeId;
pub use scope::{
    AllocScopeExt, InScope, ReleasedWithLiveBlocks, Scope, ScopeGuard, ScopeId, ScopeInstance,
    MAX_SCOPES,
};

/// Runs a test in a fresh scope instance and asserts it drained: see
/// [`scope_alloc_tracker_macros::test`] and the crate documentation's "Test
/// attribute" section.
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use scope_alloc_tracker_macros::test;

/// What the macros of this crate expand to call; not public API.
#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "tokio")]
    pub use crate::leak::test_attr::run_tokio_test;
    pub use crate::leak::test_attr::{run_async_test, run_test};
}
#[cfg(feature = "jemalloc")]
pub use stats::attribution_stats;
#[cfg(feature = "jemalloc")]
pub use stats::JemallocStats;
pub use stats::{ScopeSnapshot, ScopeStats, Snapshot, PEAK_PRECISION_BYTES};

#[cfg(all(test, feature = "jemalloc"))]
#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

/// The Rust code blocks of the crate's README, compiled and run as doctests
/// with warnings denied. They install `Jemalloc`, hence the feature.
#[cfg(all(doctest, feature = "jemalloc"))]
#[doc = include_str!("../README.md")]
#[doc(test(attr(deny(warnings))))]
mod readme_doctests {}
