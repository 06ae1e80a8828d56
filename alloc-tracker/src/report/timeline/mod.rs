//! Memory over time (feature `timeline`): live bytes per scope as a line
//! chart, with markers for events such as checkpoint runs.
//!
//! A [`Timeline`] holds points (time since its start, scope, live bytes)
//! and named [`Marker`]s. Fill it by hand ([`Timeline::record`],
//! [`Timeline::mark`]), by reading scopes now ([`Timeline::sample`]), or
//! from a background thread that samples every few milliseconds
//! ([`TimelineSampler`]). Draw it with [`Timeline::write_svg`] (an SVG line
//! chart rendered by `plotters`' SVG backend: no fonts or system libraries
//! are needed, the viewer draws the text) and export its data with
//! [`Timeline::write_csv`].
//!
//! Everything a timeline allocates (its points, the picture) is charged to
//! the tracker's own scope, like reports, so sampling a scope does not
//! change it.
//!
//! ```
//! # #[global_allocator]
//! # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
//! #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
//! use std::time::Duration;
//! use scope_alloc_tracker::report::timeline::{MarkerStyle, Timeline, TimelineSampler};
//! use scope_alloc_tracker::Scope;
//!
//! static CACHE: Scope = Scope::new("cache");
//!
//! let sampler = TimelineSampler::start(
//!     Timeline::new().title("cache memory"),
//!     &[CACHE.id()],
//!     Duration::from_millis(5),
//! )?;
//! let kept = CACHE.in_scope(|| vec![0u8; 1 << 20]);
//! sampler.sample_now();
//! sampler.mark("filled", MarkerStyle::Plain);
//! drop(kept);
//! sampler.sample_now();
//! let timeline = sampler.stop();
//!
//! let cache = timeline.series_of("cache").unwrap();
//! assert!(cache.points.iter().any(|p| p.live_bytes >= 1 << 20));
//! assert_eq!(cache.points.last().unwrap().live_bytes, 0);
//! let svg = timeline.to_svg()?;
//! assert!(svg.starts_with("<svg") && svg.contains("filled"));
//! assert!(timeline.to_csv().starts_with("kind,seconds,name,live_bytes\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

//!
//! The module's files: here the timeline's data and how it is filled;
//! `render` draws it (SVG) and exports it (CSV); `sampler` fills it from a
//! background thread.

mod render;
mod sampler;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::hot::thread_state;
use crate::scope::ScopeId;
pub use sampler::TimelineSampler;

/// One reading of one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Point {
    /// Time since the timeline started.
    pub at: Duration,
    /// Live bytes of the scope (including its children when read by
    /// [`Timeline::sample`]).
    pub live_bytes: u64,
}

/// The points of one scope, in time order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Series {
    /// The scope's path (or any name given to [`Timeline::record`]).
    pub scope: String,
    /// Its readings, oldest first.
    pub points: Vec<Point>,
}

/// How a [`Marker`] is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MarkerStyle {
    /// A thin grey vertical line.
    #[default]
    Plain,
    /// A thick red vertical line, for what went wrong (a leaking run).
    Alert,
}

/// A named moment, drawn as a labelled vertical line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Marker {
    /// Time since the timeline started.
    pub at: Duration,
    /// The label drawn at the top of the line.
    pub label: String,
    /// How it is drawn.
    pub style: MarkerStyle,
}

/// The vertical axis of the picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Scale {
    /// Bytes from zero; small scopes next to large ones are flat lines.
    Linear,
    /// Powers of two: scopes of KiB and of hundreds of MiB side by side,
    /// and a scope that should drain but keeps a few MiB stands clearly
    /// above the bottom line (where zero is drawn). The default.
    #[default]
    Log,
}

/// Live bytes per scope over time, plus markers; see the module
/// documentation.
#[derive(Debug, Clone)]
pub struct Timeline {
    started: Instant,
    title: String,
    scale: Scale,
    size: (u32, u32),
    series: Vec<Series>,
    markers: Vec<Marker>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline::new()
    }
}

/// A timeline could not be drawn or written.
#[derive(Debug)]
#[non_exhaustive]
pub enum TimelineError {
    /// Writing the file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The chart could not be drawn (a `plotters` error, as text).
    Draw(String),
}

impl fmt::Display for TimelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimelineError::Io { path, source } => {
                write!(
                    f,
                    "cannot write the timeline to {}: {source}",
                    path.display()
                )
            }
            TimelineError::Draw(e) => write!(f, "cannot draw the timeline: {e}"),
        }
    }
}

impl std::error::Error for TimelineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TimelineError::Io { source, .. } => Some(source),
            TimelineError::Draw(_) => None,
        }
    }
}
impl Timeline {
    /// An empty timeline starting now, 1200×600 pixels, log scale.
    pub fn new() -> Timeline {
        Timeline {
            started: Instant::now(),
            title: "live bytes per scope".to_string(),
            scale: Scale::default(),
            size: (1200, 600),
            series: Vec::new(),
            markers: Vec::new(),
        }
    }

    /// Sets the chart's title.
    #[must_use]
    pub fn title(mut self, title: impl Into<String>) -> Timeline {
        self.title = title.into();
        self
    }

    /// Sets the vertical scale ([`Scale::Log`] by default).
    #[must_use]
    pub fn scale(mut self, scale: Scale) -> Timeline {
        self.scale = scale;
        self
    }

    /// Sets the picture's size in pixels (each at least 200).
    #[must_use]
    pub fn size(mut self, width: u32, height: u32) -> Timeline {
        self.size = (width.max(200), height.max(200));
        self
    }

    /// Time since the timeline started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Adds a reading of `scope` now.
    pub fn record(&mut self, scope: &str, live_bytes: u64) {
        let at = self.elapsed();
        self.record_at(at, scope, live_bytes);
    }

    /// Adds a reading of `scope` at `at` after the start. Readings of a
    /// series are kept in time order.
    pub fn record_at(&mut self, at: Duration, scope: &str, live_bytes: u64) {
        thread_state::internal(|| {
            let i = match self.series.iter().position(|s| s.scope == scope) {
                Some(i) => i,
                None => {
                    self.series.push(Series {
                        scope: scope.to_string(),
                        points: Vec::new(),
                    });
                    self.series.len() - 1
                }
            };
            let points = &mut self.series[i].points;
            let pos = points.partition_point(|p| p.at <= at);
            points.insert(pos, Point { at, live_bytes });
        })
    }

    /// Reads the live bytes (children included) of every scope in `scopes`
    /// now, and adds them under their paths at the same instant.
    pub fn sample(&mut self, scopes: &[ScopeId]) {
        let at = self.elapsed();
        for &scope in scopes {
            let live = scope.stats_with_children().live_bytes;
            let path = scope.path();
            self.record_at(at, &path, live);
        }
    }

    /// Adds a marker now.
    pub fn mark(&mut self, label: impl Into<String>, style: MarkerStyle) {
        let at = self.elapsed();
        self.mark_at(at, label, style);
    }

    /// Adds a marker at `at` after the start.
    pub fn mark_at(&mut self, at: Duration, label: impl Into<String>, style: MarkerStyle) {
        thread_state::internal(|| {
            let label = label.into();
            let pos = self.markers.partition_point(|m| m.at <= at);
            self.markers.insert(pos, Marker { at, label, style });
        })
    }

    /// Every series, in the order their scopes were first recorded.
    pub fn series(&self) -> &[Series] {
        &self.series
    }

    /// The series of one scope path.
    pub fn series_of(&self, scope: &str) -> Option<&Series> {
        self.series.iter().find(|s| s.scope == scope)
    }

    /// Every marker, in time order.
    pub fn markers(&self) -> &[Marker] {
        &self.markers
    }
}
