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
//! # static A: alloc_tracker::TrackingAlloc<alloc_tracker::Jemalloc> =
//! #     alloc_tracker::TrackingAlloc::new(alloc_tracker::Jemalloc);
//! use std::time::Duration;
//! use alloc_tracker::report::timeline::{MarkerStyle, Timeline, TimelineSampler};
//! use alloc_tracker::Scope;
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

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use plotters::prelude::*;

use super::text::human_bytes;
use crate::scope::ScopeId;
use crate::thread_state;

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

/// Line colours, one per series in order (then again from the start).
const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
];
const ALERT: RGBColor = RGBColor(214, 39, 40);
const MARKER_GREY: RGBColor = RGBColor(150, 150, 150);

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

    /// The data as CSV: a header `kind,seconds,name,live_bytes`, then one
    /// `point,<seconds>,<scope>,<bytes>` line per reading (by series, in
    /// time order) and one `marker,<seconds>,<label>,` line per marker.
    /// Seconds have microsecond precision; names with commas or quotes are
    /// quoted.
    pub fn to_csv(&self) -> String {
        thread_state::internal(|| {
            let mut out = String::from("kind,seconds,name,live_bytes\n");
            for s in &self.series {
                let name = csv_field(&s.scope);
                for p in &s.points {
                    out.push_str(&format!(
                        "point,{:.6},{name},{}\n",
                        p.at.as_secs_f64(),
                        p.live_bytes
                    ));
                }
            }
            for m in &self.markers {
                out.push_str(&format!(
                    "marker,{:.6},{},\n",
                    m.at.as_secs_f64(),
                    csv_field(&m.label)
                ));
            }
            out
        })
    }

    /// Writes [`to_csv`](Self::to_csv) to `path` (through a temporary file
    /// renamed over it).
    ///
    /// # Errors
    /// [`TimelineError::Io`] naming `path`.
    pub fn write_csv(&self, path: impl AsRef<Path>) -> Result<(), TimelineError> {
        let csv = self.to_csv();
        write_atomically(path.as_ref(), csv.as_bytes())
    }

    /// The chart as an SVG document: one line per series, markers as
    /// labelled vertical lines, time in seconds across, live bytes up
    /// ([`Scale`]), a legend naming the scopes.
    ///
    /// # Errors
    /// [`TimelineError::Draw`] if `plotters` fails (it does not for
    /// in-memory SVG).
    pub fn to_svg(&self) -> Result<String, TimelineError> {
        thread_state::internal(|| {
            let mut svg = String::new();
            self.draw(&mut svg)
                .map_err(|e| TimelineError::Draw(e.to_string()))?;
            Ok(svg)
        })
    }

    /// Writes [`to_svg`](Self::to_svg) to `path` (through a temporary file
    /// renamed over it).
    ///
    /// # Errors
    /// [`TimelineError::Io`] naming `path`, or [`TimelineError::Draw`].
    pub fn write_svg(&self, path: impl AsRef<Path>) -> Result<(), TimelineError> {
        let svg = self.to_svg()?;
        write_atomically(path.as_ref(), svg.as_bytes())
    }

    /// The vertical coordinate of `bytes`.
    fn y(&self, bytes: u64, floor: f64) -> f64 {
        match self.scale {
            Scale::Linear => bytes as f64,
            Scale::Log => (bytes.max(1) as f64).log2().max(floor),
        }
    }

    fn draw(&self, svg: &mut String) -> Result<(), Box<dyn std::error::Error + '_>> {
        let end = self
            .series
            .iter()
            .filter_map(|s| s.points.last().map(|p| p.at))
            .chain(self.markers.last().map(|m| m.at))
            .max()
            .unwrap_or_default()
            .as_secs_f64();
        let x_max = if end > 0.0 { end * 1.02 } else { 1.0 };
        let max = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.live_bytes))
            .max()
            .unwrap_or(0);
        let min_nonzero = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.live_bytes))
            .filter(|&b| b > 0)
            .min()
            .unwrap_or(1024);
        // Log scale: from the power of two at or below the smallest
        // non-zero reading (at most 1 KiB); zero is drawn there.
        let floor = (min_nonzero as f64).log2().floor().clamp(0.0, 10.0);
        let (y_min, y_max, y_desc) = match self.scale {
            Scale::Linear => (0.0, (max.max(1024) as f64) * 1.1, "live bytes"),
            Scale::Log => (
                floor,
                (max.max(1024) as f64).log2().ceil() + 0.5,
                "live bytes (log scale; zero drawn at the bottom)",
            ),
        };
        // Enough decimals for the time labels to differ.
        let decimals = (1.0 - x_max.log10().floor()).clamp(0.0, 6.0) as usize;
        let scale = self.scale;
        let y_label = move |v: &f64| -> String {
            match scale {
                Scale::Linear => human_bytes(v.max(0.0) as u64),
                Scale::Log if *v <= floor + 1e-9 => "0".to_string(),
                Scale::Log => human_bytes(v.exp2().round() as u64),
            }
        };

        let root = SVGBackend::with_string(svg, self.size).into_drawing_area();
        root.fill(&WHITE)?;
        // The legend gets its own column on the right, so it never hides
        // lines or marker labels.
        let legend_width = self
            .series
            .iter()
            .map(|s| s.scope.chars().count() as u32 * 8 + 50)
            .max()
            .unwrap_or(0)
            .min(self.size.0 / 3);
        let (plot, legend) = root.split_horizontally(self.size.0 - legend_width);
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, ("sans-serif", 22))
            .margin(12)
            .margin_top(28)
            .x_label_area_size(42)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..x_max, y_min..y_max)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc(y_desc)
            .y_label_formatter(&y_label)
            .x_label_formatter(&|v| format!("{v:.decimals$}"))
            .light_line_style(WHITE.mix(0.0))
            .label_style(("sans-serif", 13))
            .draw()?;

        for (i, m) in self.markers.iter().enumerate() {
            let x = m.at.as_secs_f64();
            let (colour, width) = match m.style {
                MarkerStyle::Plain => (MARKER_GREY, 1),
                MarkerStyle::Alert => (ALERT, 2),
            };
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x, y_min), (x, y_max)],
                colour.stroke_width(width),
            )))?;
            let font = ("sans-serif", 12).into_font().color(&colour);
            // Every other label a line lower, so neighbours do not overlap.
            let label_y = y_max - (y_max - y_min) * if i % 2 == 0 { 0.0 } else { 0.035 };
            chart.draw_series(std::iter::once(Text::new(
                m.label.clone(),
                (x, label_y),
                font,
            )))?;
        }

        for (i, s) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let points: Vec<(f64, f64)> = s
                .points
                .iter()
                .map(|p| (p.at.as_secs_f64(), self.y(p.live_bytes, floor)))
                .collect();
            chart.draw_series(LineSeries::new(points, colour.stroke_width(2)))?;
            let y = 60 + 22 * i as i32;
            legend.draw(&PathElement::new(
                vec![(4, y), (28, y)],
                colour.stroke_width(3),
            ))?;
            legend.draw(&Text::new(
                s.scope.clone(),
                (34, y - 7),
                ("sans-serif", 13).into_font(),
            ))?;
        }
        root.present()?;
        Ok(())
    }
}

/// Quotes a CSV field when it needs it.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes `bytes` to a temporary sibling of `path`, then renames it over
/// `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TimelineError> {
    thread_state::internal(|| {
        let io_err = |source| TimelineError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut tmp_name = path.file_name().map(|n| n.to_os_string()).ok_or_else(|| {
            io_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the path has no file name",
            ))
        })?;
        tmp_name.push(format!(".tmp-timeline-{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let written = (|| {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, path)
        })();
        written.map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(e)
        })
    })
}

/// State shared with the sampling thread.
#[derive(Debug)]
struct Shared {
    timeline: Mutex<Timeline>,
    stop: Mutex<bool>,
    wake: Condvar,
    scopes: Vec<ScopeId>,
}

impl Shared {
    fn sample(&self) {
        // Readings of one round share one instant.
        let mut t = self.timeline.lock().unwrap_or_else(PoisonError::into_inner);
        t.sample(&self.scopes);
    }
}

/// A background thread that adds a reading of some scopes to a
/// [`Timeline`] at a fixed interval, and takes markers and extra readings
/// from other threads meanwhile. [`stop`](Self::stop) returns the timeline;
/// dropping the sampler stops the thread too.
#[derive(Debug)]
pub struct TimelineSampler {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl TimelineSampler {
    /// Starts sampling `scopes` (live bytes with children) into
    /// `timeline` every `every` (at least 1 ms), beginning now.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn start(
        timeline: Timeline,
        scopes: &[ScopeId],
        every: Duration,
    ) -> io::Result<TimelineSampler> {
        let every = every.max(Duration::from_millis(1));
        let shared = thread_state::internal(|| {
            Arc::new(Shared {
                timeline: Mutex::new(timeline),
                stop: Mutex::new(false),
                wake: Condvar::new(),
                scopes: scopes.to_vec(),
            })
        });
        shared.sample();
        let s = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("alloc-tracker-timeline".to_string())
            .spawn(move || {
                // Everything this thread allocates goes through
                // `Timeline`'s methods, which charge the tracker's scope.
                let mut next = Instant::now() + every;
                loop {
                    let stop = s.stop.lock().unwrap_or_else(PoisonError::into_inner);
                    let wait = next.saturating_duration_since(Instant::now());
                    let (stop, _) = s
                        .wake
                        .wait_timeout_while(stop, wait, |stop| !*stop)
                        .unwrap_or_else(PoisonError::into_inner);
                    if *stop {
                        return;
                    }
                    drop(stop);
                    s.sample();
                    next += every;
                    let now = Instant::now();
                    if next < now {
                        // Fell behind (a stalled machine): skip, do not
                        // burst.
                        next = now + every;
                    }
                }
            })?;
        Ok(TimelineSampler {
            shared,
            thread: Some(thread),
        })
    }

    /// Adds a reading of the sampled scopes now (e.g. right after a
    /// checkpoint run).
    pub fn sample_now(&self) {
        self.shared.sample();
    }

    /// Adds a marker now.
    pub fn mark(&self, label: impl Into<String>, style: MarkerStyle) {
        self.with(|t| t.mark(label, style));
    }

    /// Runs `f` on the timeline (the sampling thread waits meanwhile).
    pub fn with<R>(&self, f: impl FnOnce(&mut Timeline) -> R) -> R {
        let mut t = self
            .shared
            .timeline
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut t)
    }

    /// Stops the thread (it finishes the reading it is taking, if any)
    /// and returns the timeline.
    pub fn stop(mut self) -> Timeline {
        self.halt();
        let mut t = self
            .shared
            .timeline
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        thread_state::internal(|| std::mem::take(&mut *t))
    }

    fn halt(&mut self) {
        *self
            .shared
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TimelineSampler {
    fn drop(&mut self) {
        self.halt();
    }
}
