//! `Trend`: a slow leak seen across runs that each look clean.
//!
//! A [`LeakCheck`](super::LeakCheck) judges one unit of work. A leak of a
//! few hundred bytes per run stays under any tolerance that single runs
//! need, and a long-lived scope (a results list, a cache) is not expected
//! to drain at all; both show only as a staircase on a dashboard. A
//! `Trend` watches such a scope at successive quiescent points (after each
//! checkpoint run, say) and flags it when its live bytes grew at every one
//! of the last `N` points by at least a minimum slope, naming the sampled
//! call sites whose estimated live bytes grew between the first and the
//! last of them.
//!
//! ```text
//! live bytes
//!   ^                                  .----   <- point N: flagged
//!   |                          .-------'        growth >= slope * (N - 1),
//!   |                  .-------'                no step down
//!   |          .-------'
//!   |  .-------'   <- point 1
//!   +-----------------------------------------> observe() calls
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;

use super::report::LeakCause;
use crate::error::NotInstalled;
use crate::hot::thread_state;
use crate::sampling::{self, Frame, StackId};
use crate::scope::{registry, ScopeId};

/// Sampled live bytes per (scope, stack) at one point.
type Sites = HashMap<(ScopeId, StackId), (u64, u64)>;

/// The scope's figures at one observed point.
#[derive(Debug)]
struct Point {
    live_bytes: u64,
    live_allocs: u64,
    sites: Sites,
}

/// How a [`Trend`] judges growth. Made by [`Trend::options`].
#[derive(Debug, Clone, Copy)]
#[must_use = "call .build() to make the watcher"]
pub struct TrendOptions {
    scope: ScopeId,
    points: usize,
    min_slope_bytes: u64,
}

/// Why [`TrendOptions::build`] refused its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrendOptionsError {
    /// A trend needs at least two points; the value given.
    TooFewPoints(usize),
    /// A minimum slope of 0 would flag a flat scope.
    ZeroSlope,
}

impl fmt::Display for TrendOptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrendOptionsError::TooFewPoints(n) => {
                write!(f, "a trend needs at least 2 points, got {n}")
            }
            TrendOptionsError::ZeroSlope => {
                f.write_str("the minimum slope must be at least 1 byte per point")
            }
        }
    }
}

impl std::error::Error for TrendOptionsError {}

impl TrendOptions {
    /// How many successive points must show growth (default 6, at least 2).
    pub fn points(mut self, n: usize) -> Self {
        self.points = n;
        self
    }

    /// The least average growth per point, in bytes, that counts as a
    /// trend (default 1). Growth below it (a scope that creeps by a few
    /// bytes of bookkeeping) is not flagged.
    pub fn min_slope_bytes(mut self, bytes: u64) -> Self {
        self.min_slope_bytes = bytes;
        self
    }

    /// Makes the watcher.
    ///
    /// # Errors
    /// [`TrendOptionsError`] for fewer than 2 points or a zero slope.
    pub fn build(self) -> Result<Trend, TrendOptionsError> {
        if self.points < 2 {
            return Err(TrendOptionsError::TooFewPoints(self.points));
        }
        if self.min_slope_bytes == 0 {
            return Err(TrendOptionsError::ZeroSlope);
        }
        Ok(Trend {
            opts: self,
            points: VecDeque::new(),
            observed: 0,
        })
    }
}

/// Watches a scope (with its children) for steady growth across
/// quiescent points.
///
/// ```
/// # #[global_allocator]
/// # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
/// #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
/// use scope_alloc_tracker::leak::Trend;
/// use scope_alloc_tracker::ScopeId;
///
/// let results = ScopeId::register("results", None).unwrap();
/// let mut trend = Trend::options(results).points(4).min_slope_bytes(100).build().unwrap();
/// let mut kept = Vec::new();
/// let mut flagged = None;
/// for run in 0..6 {
///     // Each run keeps 300 bytes: a single run looks harmless.
///     results.in_scope(|| kept.push(vec![run as u8; 300]));
///     flagged = trend.observe().or(flagged);
/// }
/// let report = flagged.expect("steady growth over 4 points");
/// assert!(report.growth_bytes >= 900);
/// ```
///
/// Call [`observe`](Trend::observe) where the scope should be back to its
/// steady state: after a checkpoint run, between requests. The sites come
/// from sampling ([`sampling::set_sampling`](crate::sampling::set_sampling)),
/// which production runs leave on; with sampling off the trend is still
/// flagged, without sites. The watcher's own memory (one table of sampled
/// stacks per point kept) is charged to the tracker's internal scope.
#[derive(Debug)]
pub struct Trend {
    opts: TrendOptions,
    /// The last `opts.points` points, oldest first.
    points: VecDeque<Point>,
    observed: u64,
}

impl Trend {
    /// A watcher on `scope` with default options: 6 points, 1 byte per
    /// point.
    pub fn new(scope: impl Into<ScopeId>) -> Trend {
        Self::options(scope)
            .build()
            .expect("the default options are valid")
    }

    /// Options for a watcher on `scope`.
    pub fn options(scope: impl Into<ScopeId>) -> TrendOptions {
        TrendOptions {
            scope: scope.into(),
            points: 6,
            min_slope_bytes: 1,
        }
    }

    /// The watched scope.
    pub fn scope(&self) -> ScopeId {
        self.opts.scope
    }

    /// How many points were observed so far.
    pub fn observed(&self) -> u64 {
        self.observed
    }

    /// Live bytes (with children) at the points kept, oldest first.
    pub fn live_bytes(&self) -> Vec<u64> {
        thread_state::internal(|| self.points.iter().map(|p| p.live_bytes).collect())
    }

    /// Records the scope's live bytes and sampled sites now, and returns a
    /// report if the last `points` points show steady growth.
    ///
    /// When [`TrackingAlloc`](crate::TrackingAlloc) is not the global
    /// allocator every figure reads zero and no growth could ever show, so
    /// the watcher refuses: every call returns a report whose
    /// [`cause`](TrendReport::cause) is
    /// [`LeakCause::NotInstalled`] and whose message names the missing
    /// `#[global_allocator]` line, and no point is recorded.
    ///
    /// Cost: one read of the scope's counters, one pass over the live
    /// records; symbolisation (tens of ms) only when a trend is reported.
    pub fn observe(&mut self) -> Option<TrendReport> {
        let scope = self.opts.scope;
        if !super::is_installed() {
            return Some(TrendReport::not_installed(scope));
        }
        let now = scope.stats_with_children();
        thread_state::internal(|| {
            let members = registry::subtree(scope);
            let sites = sampling::sampled_by_stack(&members);
            self.points.push_back(Point {
                live_bytes: now.live_bytes,
                live_allocs: now.live_allocs,
                sites,
            });
            while self.points.len() > self.opts.points {
                self.points.pop_front();
            }
            self.observed += 1;
            self.verdict()
        })
    }

    /// Whether the kept points show steady growth, without observing.
    pub fn is_growing(&self) -> bool {
        self.growth().is_some()
    }

    /// Growth over the window, if it is a trend.
    fn growth(&self) -> Option<u64> {
        if self.points.len() < self.opts.points {
            return None;
        }
        let steady = self
            .points
            .iter()
            .zip(self.points.iter().skip(1))
            .all(|(a, b)| b.live_bytes > a.live_bytes);
        let first = self.points.front()?.live_bytes;
        let last = self.points.back()?.live_bytes;
        let growth = last.saturating_sub(first);
        let steps = (self.points.len() - 1) as u64;
        (steady && growth >= self.opts.min_slope_bytes * steps).then_some(growth)
    }

    fn verdict(&self) -> Option<TrendReport> {
        let growth = self.growth()?;
        let first = self.points.front()?;
        let last = self.points.back()?;
        let mut sites: Vec<GrowingSite> = last
            .sites
            .iter()
            .filter_map(|(key, &(bytes, samples))| {
                let (before, _) = first.sites.get(key).copied().unwrap_or_default();
                (bytes > before).then(|| GrowingSite {
                    scope: key.0.path(),
                    first_bytes: before,
                    last_bytes: bytes,
                    samples,
                    frames: sampling::resolve(key.1),
                })
            })
            .collect();
        sampling::release_symbol_cache();
        sites.sort_by_key(|s| std::cmp::Reverse(s.growth_bytes()));
        let steps = (self.points.len() - 1) as u64;
        Some(TrendReport {
            cause: LeakCause::Leaked,
            scope: self.opts.scope.path(),
            live_bytes: self.points.iter().map(|p| p.live_bytes).collect(),
            first_allocs: first.live_allocs,
            last_allocs: last.live_allocs,
            growth_bytes: growth,
            slope_bytes: growth / steps,
            sites,
        })
    }
}

/// A sampled call site whose estimated live bytes grew over a trend.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct GrowingSite {
    /// Scope path the sampled blocks were allocated in.
    pub scope: String,
    /// Estimated live bytes from this site at the first point.
    pub first_bytes: u64,
    /// Estimated live bytes from this site at the last point.
    pub last_bytes: u64,
    /// Sampled blocks from this site still live at the last point.
    pub samples: u64,
    /// The call stack, innermost first, allocator frames trimmed.
    pub frames: Vec<Frame>,
}

impl GrowingSite {
    /// Estimated growth between the first and the last point.
    pub fn growth_bytes(&self) -> u64 {
        self.last_bytes.saturating_sub(self.first_bytes)
    }

    /// The innermost frame that is program code rather than std.
    pub fn origin(&self) -> Option<&Frame> {
        crate::sampling::origin(&self.frames)
    }
}

/// Steady growth of a scope over the last points of a [`Trend`].
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct TrendReport {
    /// Why the trend was reported: steady growth
    /// ([`LeakCause::Leaked`]), or a watcher that cannot see anything
    /// because the tracker is not the global allocator
    /// ([`LeakCause::NotInstalled`]; every figure is then empty).
    #[cfg_attr(feature = "serde", serde(default))]
    pub cause: LeakCause,
    /// Path of the watched scope.
    pub scope: String,
    /// Live bytes (with children) at each point, oldest first.
    pub live_bytes: Vec<u64>,
    /// Live allocations at the first point.
    pub first_allocs: u64,
    /// Live allocations at the last point.
    pub last_allocs: u64,
    /// Live bytes gained from the first to the last point.
    pub growth_bytes: u64,
    /// Average growth per point, in bytes.
    pub slope_bytes: u64,
    /// Sampled sites whose estimated live bytes grew, most growth first.
    /// Empty when sampling is off or caught none of the growth.
    pub sites: Vec<GrowingSite>,
}

impl TrendReport {
    /// The report of a watcher that cannot run (tracker not installed).
    fn not_installed(scope: ScopeId) -> TrendReport {
        TrendReport {
            cause: LeakCause::NotInstalled,
            scope: scope.path(),
            live_bytes: Vec::new(),
            first_allocs: 0,
            last_allocs: 0,
            growth_bytes: 0,
            slope_bytes: 0,
            sites: Vec::new(),
        }
    }

    /// Whether any growing site's stack names a function containing `name`.
    pub fn mentions_function(&self, name: &str) -> bool {
        self.sites
            .iter()
            .any(|s| s.frames.iter().any(|f| f.function.contains(name)))
    }
}

/// How many frames of each site `Display` prints.
const SHOWN_FRAMES: usize = 6;

impl fmt::Display for TrendReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.cause == LeakCause::NotInstalled {
            return writeln!(
                f,
                "trend on scope `{}` cannot run: {NotInstalled}",
                self.scope
            );
        }
        writeln!(
            f,
            "growing scope `{}`: +{} B over {} points (about {} B per point; {} -> {} live allocations); live bytes {:?}",
            self.scope,
            self.growth_bytes,
            self.live_bytes.len(),
            self.slope_bytes,
            self.first_allocs,
            self.last_allocs,
            self.live_bytes
        )?;
        if self.sites.is_empty() {
            writeln!(
                f,
                "  no sampled site grew (sampling off, or too coarse for this growth)"
            )?;
        }
        for (i, s) in self.sites.iter().enumerate() {
            writeln!(
                f,
                "  #{} ~{} B -> ~{} B (+{} B estimated, {} samples) in `{}`, allocated from {}",
                i + 1,
                s.first_bytes,
                s.last_bytes,
                s.growth_bytes(),
                s.samples,
                s.scope,
                s.origin()
                    .map_or("an unknown site".to_string(), |o| o.to_string())
            )?;
            let start = s.frames.iter().position(|fr| !fr.is_std()).unwrap_or(0);
            for fr in s.frames.iter().skip(start).take(SHOWN_FRAMES) {
                writeln!(f, "      {fr}")?;
            }
        }
        Ok(())
    }
}
