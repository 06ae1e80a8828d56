//! Leak trends in production leak mode, the engine side.
//!
//! A run's own leak check judges the `checkpoint` scope, which must drain
//! after every run. Long-lived scopes are not expected to drain: the
//! `ckptdb/checkpoint-results` scope holds what runs hand back, a cache
//! holds what it caches. A slow leak there (a few hundred bytes a run)
//! passes every single-run check and shows only as a staircase on a
//! dashboard. In [`LeakMode::Production`](crate::LeakMode::Production) the
//! engine therefore watches `checkpoint-results`, and every scope marked
//! with [`OptionsBuilder::watch_flat_scope`](crate::OptionsBuilder::watch_flat_scope),
//! with an [`scope_alloc_tracker::leak::Trend`] observed after each checkpoint
//! run. A trend (live bytes grew at each of the last
//! [`trend_points`](crate::OptionsBuilder::trend_points) runs, by at least
//! [`trend_min_slope_bytes`](crate::OptionsBuilder::trend_min_slope_bytes)
//! a run on average) is logged with `tracing` (with the sampled sites that
//! grew), counted in [`DbStats::trends_flagged`](crate::DbStats), and
//! handed back in [`CheckpointReport::trends`](crate::CheckpointReport).
//! After a report the scope's window starts again, so a leak that goes on
//! is reported once every `trend_points` runs, not after every run.
//!
//! The sites come from the tracker's allocation sampling, which the
//! program turns on (`scope_alloc_tracker::sampling::set_sampling`); with
//! sampling off a trend is still flagged, without sites.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use scope_alloc_tracker::leak::{Trend, TrendReport};
use scope_alloc_tracker::ScopeId;

use crate::options::Options;
use crate::scopes::CHECKPOINT_RESULTS;

/// The trend watchers of one database.
#[derive(Debug)]
pub(crate) struct Trends {
    points: usize,
    min_slope_bytes: u64,
    watched: Mutex<Vec<Trend>>,
    pub(crate) flagged: AtomicU64,
}

impl Trends {
    /// Watchers on `checkpoint-results` and the scopes the options mark
    /// flat (none outside production leak mode).
    pub(crate) fn new(opts: &Options) -> Self {
        let mut scopes: Vec<ScopeId> = Vec::new();
        if opts.leak_mode == crate::LeakMode::Production {
            scopes.push(CHECKPOINT_RESULTS.id());
            for s in &opts.flat_scopes {
                if !scopes.contains(s) {
                    scopes.push(*s);
                }
            }
        }
        let t = Trends {
            points: opts.trend_points,
            min_slope_bytes: opts.trend_min_slope_bytes,
            watched: Mutex::new(Vec::new()),
            flagged: AtomicU64::new(0),
        };
        let watched = scopes.into_iter().map(|s| t.watcher(s)).collect();
        *t.watched.lock().unwrap_or_else(|e| e.into_inner()) = watched;
        t
    }

    fn watcher(&self, scope: ScopeId) -> Trend {
        Trend::options(scope)
            .points(self.points)
            .min_slope_bytes(self.min_slope_bytes)
            .build()
            .unwrap_or_else(|_| Trend::new(scope))
    }

    /// Observes every watched scope (call at a quiescent point: after a
    /// checkpoint run); returns the trends flagged now, and logs and
    /// counts them.
    pub(crate) fn observe(&self) -> Vec<TrendReport> {
        // Without the tracker a trend cannot run (every figure reads zero;
        // `Trend::observe` says so each time): the database warned once at
        // open that its runs are unchecked, which covers the trends too.
        if !scope_alloc_tracker::is_installed() {
            return Vec::new();
        }
        let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        let mut flagged = Vec::new();
        for t in watched.iter_mut() {
            if let Some(report) = t.observe() {
                tracing::warn!(
                    scope = %report.scope,
                    growth_bytes = report.growth_bytes,
                    slope_bytes = report.slope_bytes,
                    "{report}"
                );
                self.flagged.fetch_add(1, Ordering::Relaxed);
                // Start the window again: reported once per `points` runs.
                *t = self.watcher(t.scope());
                flagged.push(report);
            }
        }
        flagged
    }
}
