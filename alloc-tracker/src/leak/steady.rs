//! `SteadyState`: run an operation again and again after a warm-up, and
//! fail when the scope's retained bytes keep growing (the form of "after
//! N checkpoints, at most one compacted file").
//!
//! A bounded cache fills during the warm-up (or the first runs) and then
//! stays flat: it passes. A leak grows the scope at every run: the
//! [`Trend`](super::Trend) over the retained bytes after each run sees
//! growth at every one of its last `window` points and the check fails,
//! naming the sites (recorded exactly during the measured runs) of the
//! blocks the runs of the window kept.
//!
//! ```text
//! retained   warm-up | measured runs
//!   ^                |          .--.--.--.--   leak: +N B at every run,
//!   |        .--.--.-|--.--.--'                 flagged after `window` runs
//!   |     .--'       |  ___________________     bounded cache: flat, passes
//!   |  .--'          | /
//!   +-------------------------------------------> runs
//! ```

use std::fmt;

use super::check::LeakCheck;
use super::options::Sites;
use super::report::{group_sites, LeakSite};
use super::retain::Defaults;
use super::trend::{Trend, TrendReport};
use super::verdict;
use crate::error::NotInstalled;
use crate::hot::thread_state;
use crate::sampling;
use crate::scope::{registry, ScopeId};

/// Steady-state checks: see [`SteadyState::options`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SteadyState;

/// How a steady-state check runs and judges. Made by
/// [`SteadyState::options`].
#[derive(Debug, Clone, Copy)]
#[must_use = "call .check(op) to run the check"]
pub struct SteadyStateOptions {
    scope: ScopeId,
    warm_up: usize,
    runs: usize,
    window: usize,
    min_slope_bytes: u64,
    bound_bytes: Option<u64>,
}

impl SteadyState {
    /// Options for a steady-state check of `op` in `scope`: by default 3
    /// warm-up runs, then up to 20 measured runs; fails when the retained
    /// bytes grew at each of the last 6 runs (window) by at least 1 byte
    /// per run on average.
    ///
    /// **How fast a leak is caught**: a leak of `n >= min_slope_bytes`
    /// bytes per run, in a scope whose other retention is flat once warm,
    /// fails after at most `window - 1` measured runs (5 by default): the
    /// first point of the trend is taken after the warm-up, before the
    /// first measured run.
    ///
    /// **How a cache can look like a leak**: a cache still filling for
    /// `window - 1` measured runs in a row grows at every point of the
    /// window and is flagged; give a warm-up long enough to fill it (or a
    /// larger window). A leak hidden by a scope whose bytes also fall now
    /// and then (entries of varying size evicted) breaks the run of growth
    /// and is not flagged until the window sees growth at every point; use
    /// [`bound_bytes`](SteadyStateOptions::bound_bytes) for a hard limit.
    ///
    /// ```
    /// # #[global_allocator]
    /// # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
    /// #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
    /// use scope_alloc_tracker::leak::SteadyState;
    /// use scope_alloc_tracker::ScopeId;
    /// use std::collections::VecDeque;
    ///
    /// let scope = ScopeId::register("doc-steady", None).unwrap();
    /// // A cache of at most 4 entries: it grows during the warm-up only.
    /// let mut cache: VecDeque<Vec<u8>> = VecDeque::new();
    /// let steady = SteadyState::options(scope)
    ///     .warm_up(4)
    ///     .runs(10)
    ///     .check(|| {
    ///         cache.push_back(vec![0u8; 100]);
    ///         if cache.len() > 4 {
    ///             cache.pop_front();
    ///         }
    ///     })
    ///     .unwrap();
    /// assert_eq!(steady.runs, 10);
    ///
    /// let mut leaked = Vec::new();
    /// let report = SteadyState::options(scope)
    ///     .check(|| leaked.push(Box::new(0u64)))
    ///     .unwrap_err();
    /// assert!(report.runs <= 5, "{report}");
    /// ```
    pub fn options(scope: impl Into<ScopeId>) -> SteadyStateOptions {
        SteadyStateOptions {
            scope: scope.into(),
            warm_up: 3,
            runs: 20,
            window: 6,
            min_slope_bytes: 1,
            bound_bytes: None,
        }
    }
}

impl SteadyStateOptions {
    /// Runs before measuring (default 3): long enough to fill the caches.
    pub fn warm_up(mut self, runs: usize) -> Self {
        self.warm_up = runs;
        self
    }

    /// Measured runs at most (default 20); the check stops at the first
    /// growth found.
    pub fn runs(mut self, runs: usize) -> Self {
        self.runs = runs;
        self
    }

    /// Successive points (the one after the warm-up, then one per run)
    /// that must all show growth (default 6, at least 2, at most
    /// `runs + 1`).
    pub fn window(mut self, points: usize) -> Self {
        self.window = points;
        self
    }

    /// The least average growth per run, in bytes, that counts (default 1).
    pub fn min_slope_bytes(mut self, bytes: u64) -> Self {
        self.min_slope_bytes = bytes;
        self
    }

    /// Fails as soon as the scope keeps more than `bytes` (over what it
    /// held before the warm-up) after a run, growing or not ("at most one
    /// compacted file").
    pub fn bound_bytes(mut self, bytes: u64) -> Self {
        self.bound_bytes = Some(bytes);
        self
    }

    /// Runs `op` inside the scope `warm_up` times, then up to `runs` times
    /// more, watching the scope's retained bytes after each run.
    ///
    /// # Errors
    /// A [`SteadyStateReport`]: growth at every point of the window, more
    /// than the bound retained, the tracker not installed, or bad options
    /// (see its [`cause`](SteadyStateReport::cause)).
    #[allow(clippy::result_large_err)] // a failed check's report, made once
    pub fn check<R>(self, mut op: impl FnMut() -> R) -> Result<Steady, SteadyStateReport> {
        let mut report = SteadyStateReport {
            cause: SteadyCause::Growing,
            scope: self.scope.path(),
            warm_up: self.warm_up,
            runs: 0,
            retained_bytes: Vec::new(),
            growth: None,
            sites: Vec::new(),
        };
        if !super::is_installed() {
            report.cause = SteadyCause::NotInstalled;
            return Err(report);
        }
        let trend = Trend::options(self.scope)
            .points(self.window)
            .min_slope_bytes(self.min_slope_bytes)
            .build();
        let mut trend = match trend {
            Ok(t) if self.window <= self.runs + 1 => t,
            Ok(_) => {
                report.cause = SteadyCause::InvalidOptions(format!(
                    "a window of {} points needs at least {} runs, got {}",
                    self.window,
                    self.window - 1,
                    self.runs
                ));
                return Err(report);
            }
            Err(e) => {
                report.cause = SteadyCause::InvalidOptions(e.to_string());
                return Err(report);
            }
        };
        let start = self.scope.stats_with_children().live_bytes;
        for _ in 0..self.warm_up {
            drop(self.scope.in_scope(&mut op));
        }
        // Records every allocation of the measured runs, for the sites.
        let recording = LeakCheck::options(self.scope)
            .sites(Sites::Record)
            .default_rules(Defaults::Off)
            .begin();
        // The seq at which each point's run began, for the window's sites.
        let mut run_seqs = vec![sampling::records_seq()];
        trend.observe();
        for run in 1..=self.runs {
            drop(self.scope.in_scope(&mut op));
            let live = self.scope.stats_with_children().live_bytes;
            report.runs = run;
            report.retained_bytes.push(live.saturating_sub(start));
            run_seqs.push(sampling::records_seq());
            let grew = trend.observe();
            let over = self
                .bound_bytes
                .is_some_and(|b| live.saturating_sub(start) > b);
            if grew.is_some() || over {
                if over {
                    report.cause = SteadyCause::OverBound(self.bound_bytes.unwrap_or(0));
                }
                report.growth = grew;
                // The runs of the window: the last `window - 1`.
                let from = run_seqs[run_seqs.len().saturating_sub(self.window)];
                report.sites = window_sites(self.scope, from);
                drop(recording);
                return Err(report);
            }
        }
        drop(recording);
        Ok(Steady {
            runs: report.runs,
            retained_bytes: report.retained_bytes,
        })
    }

    /// [`check`](Self::check), panicking with the report on failure.
    ///
    /// # Panics
    /// When the check fails; the message is the [`SteadyStateReport`].
    #[track_caller]
    pub fn assert_steady<R>(self, op: impl FnMut() -> R) -> Steady {
        match self.check(op) {
            Ok(s) => s,
            Err(r) => panic!("{r}"),
        }
    }
}

/// The blocks still live that runs from `from_seq` on kept, by site.
fn window_sites(scope: ScopeId, from_seq: u64) -> Vec<LeakSite> {
    let members = registry::subtree(scope);
    let blocks = verdict::gather(from_seq, &members);
    thread_state::internal(|| {
        let sites = group_sites(
            blocks
                .iter()
                .map(|b| (b.scope, b.stack, b.size, None, (b.hidden_addr, b.seq))),
            sampling::resolve,
            None,
        );
        sampling::release_symbol_cache();
        sites
    })
}

/// A steady-state check that passed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Steady {
    /// Measured runs made.
    pub runs: usize,
    /// Bytes the scope kept after each measured run, over what it held
    /// before the warm-up.
    pub retained_bytes: Vec<u64>,
}

/// Why a steady-state check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum SteadyCause {
    /// The retained bytes grew at every point of the window.
    Growing,
    /// The scope kept more than this bound after a run.
    OverBound(u64),
    /// [`TrackingAlloc`](crate::TrackingAlloc) is not the global allocator.
    NotInstalled,
    /// The options cannot make a check (the message says why).
    InvalidOptions(String),
}

/// What a failed steady-state check found.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct SteadyStateReport {
    /// Why it failed.
    pub cause: SteadyCause,
    /// Path of the checked scope.
    pub scope: String,
    /// Warm-up runs made.
    pub warm_up: usize,
    /// Measured runs made before it failed.
    pub runs: usize,
    /// Bytes the scope kept after each measured run, over what it held
    /// before the warm-up.
    pub retained_bytes: Vec<u64>,
    /// The trend that flagged the growth (live bytes at each point).
    pub growth: Option<TrendReport>,
    /// Blocks still live that the runs of the window kept, by site (exact:
    /// every allocation of the measured runs is recorded).
    pub sites: Vec<LeakSite>,
}

impl SteadyStateReport {
    /// Whether any site's stack names a function containing `name`.
    pub fn mentions_function(&self, name: &str) -> bool {
        self.sites
            .iter()
            .any(|s| s.frames.iter().any(|f| f.function.contains(name)))
    }
}

impl fmt::Display for SteadyStateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            SteadyCause::NotInstalled => {
                return writeln!(
                    f,
                    "steady-state check on scope `{}` cannot run: {NotInstalled}",
                    self.scope
                )
            }
            SteadyCause::InvalidOptions(why) => {
                return writeln!(
                    f,
                    "steady-state check on scope `{}` cannot run: {why}",
                    self.scope
                )
            }
            SteadyCause::Growing => writeln!(
                f,
                "scope `{}` keeps growing: after {} warm-up and {} measured runs it kept {:?} B (after each run)",
                self.scope, self.warm_up, self.runs, self.retained_bytes
            )?,
            SteadyCause::OverBound(b) => writeln!(
                f,
                "scope `{}` kept more than its bound of {b} B: after {} warm-up and {} measured runs it kept {:?} B (after each run)",
                self.scope, self.warm_up, self.runs, self.retained_bytes
            )?,
        }
        if let Some(g) = &self.growth {
            write!(f, "  {g}")?;
        }
        for (i, s) in self.sites.iter().enumerate() {
            writeln!(
                f,
                "  kept by the last runs: #{} {} B in {} allocation(s) in `{}`, allocated from {}",
                i + 1,
                s.bytes,
                s.allocs,
                s.scope,
                s.origin()
                    .map_or("an unknown site".to_string(), |o| o.to_string())
            )?;
            let start = s.frames.iter().position(|fr| !fr.is_std()).unwrap_or(0);
            for fr in s.frames.iter().skip(start).take(6) {
                writeln!(f, "      {fr}")?;
            }
        }
        Ok(())
    }
}
