//! REPORT FORMATS: one snapshot of the process, for people and tools.
//!
//! - [`Report`]: every scope as a tree (own and including-children live
//!   bytes and allocations, totals, peak), the call sites of live memory
//!   (sampled, and optionally the exact sites of a
//!   [`LeakReport`](crate::leak::LeakReport)), jemalloc's own figures with
//!   the untracked difference, the budgets ([`BudgetReport`]: limits, live
//!   bytes, crossings, refusals), the timestamp, the process id and the
//!   tracker's own overhead. Take one with [`Report::take`].
//! - Formats ([`Format`]): the human table (`Display`,
//!   [`Report::write_text`]), JSON ([`Report::to_json`], feature `json`,
//!   readable back with [`Report::from_json`]), folded stacks
//!   ([`Report::to_folded`]), an SVG flame graph
//!   ([`Report::write_flamegraph`], feature `flamegraph`) and the
//!   Prometheus text format ([`Report::to_prometheus`]); with feature
//!   `pprof`, gzipped pprof heap profiles (`Report::to_pprof`, module
//!   `report::pprof`).
//! - [`Report::diff`]: what grew and shrank between two reports.
//! - Over time (feature `timeline`): live bytes per scope as an SVG line
//!   chart with markers (module `report::timeline`).
//! - Dumps: on demand ([`dump`]), at exit, periodically and on SIGUSR1
//!   ([`Dumps::builder`], or [`dump_triggers_from_env`] driven by
//!   `ALLOC_TRACKER_DUMP=path`).
//!
//! Taking, rendering and writing a report allocate, but all of it is
//! charged to the tracker's own scope ([`ScopeId::INTERNAL`](crate::ScopeId::INTERNAL),
//! reported as `overhead`), so a report never changes the figures of the
//! scopes it describes, even when taken from inside one.
//!
//! Real outputs of `cargo run -p scope-alloc-tracker --example report_demo
//! --all-features` are in the repository's `docs/report-demo.*`.
//!
//! # The human table
//!
//! ```
//! # #[global_allocator]
//! # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
//! #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
//! use scope_alloc_tracker::report::Report;
//! use scope_alloc_tracker::Scope;
//!
//! static CACHE: Scope = Scope::new("cache");
//! let kept = CACHE.in_scope(|| vec![0u8; 4096]);
//!
//! let report = Report::take();
//! let text = report.to_string();
//! assert!(text.contains("cache"));
//! assert!(text.contains("4.0 KiB"));
//! println!("{text}");
//! # drop(kept);
//! ```
//!
//! which prints something like
//!
//! ```text
//! scope          live  live allocs  incl. children     peak  allocated  allocs
//! -------------  ----  -----------  --------------  -------  ---------  ------
//! cache       4.0 KiB            1         4.0 KiB  4.0 KiB    4.0 KiB       1
//! ```
//!
//! # JSON (feature `json`)
//!
//! ```
//! # #[cfg(feature = "json")] {
//! use scope_alloc_tracker::report::{Report, SCHEMA_VERSION};
//!
//! let report = Report::take();
//! let json = report.to_json();
//! assert!(json.contains("\"schema_version\""));
//! let back = Report::from_json(&json).unwrap();
//! assert_eq!(back, report);
//! assert_eq!(back.schema_version, SCHEMA_VERSION);
//! # }
//! ```
//!
//! # Folded stacks and flame graphs
//!
//! One line per call site, `scope;outermost;…;innermost bytes`, for
//! `inferno-flamegraph` or `flamegraph.pl`; with the `flamegraph` feature
//! [`Report::write_flamegraph`] renders the SVG directly.
//!
//! The graph draws every exact live byte once. Per scope: recorded leak
//! sites (a `leak:scope` tower) first, with their exact bytes; then the
//! sampled sites, whose estimates are scaled down proportionally when
//! they add up to more than the live bytes left (never scaled up); then
//! `[unsampled]` with the rest. So no frame is wider than the scope's
//! exact live bytes, and the graph's total is the tracked live total
//! ([`Report::to_folded`] has the details).
//!
//! ```
//! use scope_alloc_tracker::report::{Report, SiteReport, SiteSource};
//!
//! let mut report = Report::default();
//! report.sites.push(SiteReport::new(
//!     "checkpoint",
//!     SiteSource::Sampled,
//!     &["alloc::vec::Vec<T>::with_capacity", "ckptdb::flush", "main"],
//!     8192,
//!     2,
//! ));
//! assert_eq!(
//!     report.to_folded(),
//!     "checkpoint;main;ckptdb::flush;alloc::vec::Vec<T>::with_capacity 8192\n"
//! );
//! # #[cfg(feature = "flamegraph")]
//! let svg = report.to_flamegraph_svg().unwrap();
//! # #[cfg(feature = "flamegraph")]
//! assert!(svg.contains("ckptdb::flush"));
//! ```
//!
//! # Prometheus
//!
//! ```
//! use scope_alloc_tracker::report::{Report, ScopeReport};
//!
//! let mut report = Report::default();
//! let mut scope = ScopeReport::new(3, "checkpoint", None);
//! scope.own.live_bytes = 4096;
//! scope.own.total_allocs = 1;
//! scope.with_children = scope.own;
//! report.scopes.push(scope);
//! let text = report.to_prometheus();
//! assert!(text.contains("# TYPE alloc_tracker_live_bytes gauge\n"));
//! assert!(text.contains("alloc_tracker_live_bytes{scope=\"checkpoint\"} 4096\n"));
//! assert!(text.contains("alloc_tracker_allocations_total{scope=\"checkpoint\"} 1\n"));
//! ```
//!
//! # Diff
//!
//! ```
//! # #[global_allocator]
//! # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
//! #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
//! use scope_alloc_tracker::report::Report;
//! use scope_alloc_tracker::Scope;
//!
//! static GROWING: Scope = Scope::new("growing");
//! let before = Report::take();
//! let v = GROWING.in_scope(|| vec![0u8; 1000]);
//! let diff = Report::take().diff(&before);
//! assert_eq!(diff.scope("growing").unwrap().live_bytes, 1000);
//! println!("{diff}");
//! # drop(v);
//! ```
//!
//! # Dumps
//!
//! ```
//! use scope_alloc_tracker::report::{dump, Format};
//!
//! let path = std::env::temp_dir().join(format!("report-doc-{}.txt", std::process::id()));
//! dump(&path, Format::Text)?;
//! assert!(std::fs::read_to_string(&path)?.contains("allocation report"));
//! # std::fs::remove_file(&path)?;
//! // A bad path is an error naming it, never a panic.
//! let err = dump("/nonexistent-dir/report.txt", Format::Text).unwrap_err();
//! assert!(err.to_string().contains("/nonexistent-dir/report.txt"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! At startup, [`dump_triggers_from_env`] reads:
//!
//! | variable | meaning |
//! | --- | --- |
//! | `ALLOC_TRACKER_DUMP` | report file; dumps at exit when set |
//! | `ALLOC_TRACKER_DUMP_FORMAT` | `text`, `json`, `folded`, `svg`, `prometheus`, `pprof` (default: from the extension) |
//! | `ALLOC_TRACKER_DUMP_EVERY` | also dump periodically: `30`, `1.5s`, `500ms`, `5m` ([`parse_duration`]) |
//! | `ALLOC_TRACKER_DUMP_SIGNAL` | `1`: also dump on SIGUSR1 (unix, feature `signal`) |
//! | `ALLOC_TRACKER_DUMP_AT_EXIT` | `0`: no dump at exit |
//!
//! Everything is checked when it is read, before any work: a value that
//! does not parse, `_EVERY`, `_SIGNAL=1` or `_FORMAT` without
//! `ALLOC_TRACKER_DUMP`, a report path that is a directory or whose
//! directory does not exist are [`EnvError`]s naming the variable, its
//! value and the accepted forms.
//!
//! Dumps never leave a partial or mixed report at the path: every dump
//! writes its own temporary file (`<path>.tmp-<pid>-<n>`), syncs it and
//! renames it over the path; the triggers (exit, periodic, SIGUSR1) write
//! one at a time, and at exit the periodic and SIGUSR1 threads are stopped
//! before the exit dump is written.

mod atomic_file;
mod diff;
mod dump;
mod folded;
#[cfg(feature = "json")]
mod json;
mod model;
#[cfg(feature = "pprof")]
pub mod pprof;
mod prometheus;
pub(crate) mod series;
mod text;
#[cfg(feature = "timeline")]
pub mod timeline;
mod triggers;

pub use diff::{ReportDiff, ScopeDelta, SiteDelta};
pub use dump::{dump, DumpError, Format};
pub use folded::{LEAK_ROOT_PREFIX, REACHABLE_FRAME, UNREACHABLE_FRAME, UNSAMPLED_FRAME};
pub use model::{
    BudgetReport, JemallocFigures, Report, ScopeReport, SiteReport, SiteSource, UntrackedBasis,
    SCHEMA_VERSION,
};
pub use prometheus::METRIC_PREFIX;
pub use series::{SeriesOptions, OTHER_SCOPE};
pub use text::human_bytes;
pub use triggers::{
    dump_triggers_from_env, parse_duration, DumpHandle, Dumps, DumpsBuilder, EnvError,
    OptionsError, DURATION_FORMS, ENV_DUMP, ENV_DUMP_AT_EXIT, ENV_DUMP_AT_PEAK, ENV_DUMP_EVERY,
    ENV_DUMP_FORMAT, ENV_DUMP_SIGNAL,
};
