//! Drawing a timeline (an SVG line chart by `plotters`' SVG backend) and
//! exporting its data (CSV); both written to a file atomically.

use std::path::Path;

use plotters::prelude::*;

use super::{MarkerStyle, Scale, Timeline, TimelineError};
use crate::hot::thread_state;
use crate::report::text::human_bytes;

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

/// Writes `bytes` to `path` atomically (a temporary sibling renamed over
/// it).
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TimelineError> {
    thread_state::internal(|| {
        crate::report::atomic_file::write_atomically(path, |w| w.write_all(bytes)).map_err(
            |source| TimelineError::Io {
                path: path.to_path_buf(),
                source,
            },
        )
    })
}
