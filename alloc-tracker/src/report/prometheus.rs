//! The Prometheus text exposition format (version 0.0.4).

use std::fmt::Write as _;
use std::io;

use super::model::Report;
use super::series::{self, Extras, MetricKind, SeriesOptions};
use crate::hot::thread_state;
use crate::scope::ScopeId;

/// Prefix of every metric name.
pub const METRIC_PREFIX: &str = "alloc_tracker_";

/// Escapes a label value: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub(crate) fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

impl Report {
    /// The report in the Prometheus text exposition format with the
    /// default [`SeriesOptions`]: see [`to_prometheus_with`](Self::to_prometheus_with).
    pub fn to_prometheus(&self) -> String {
        self.to_prometheus_with(&SeriesOptions::default())
    }

    /// The report in the Prometheus text exposition format: the same
    /// series as the `prometheus-client` collector
    /// (`integrations::prometheus`) writes, from the same code
    /// (`report/series.rs`): per-row gauges and counters labelled
    /// `scope="<path>"`, instances folded into their kind (bounded
    /// cardinality whatever the number of instances), the top rows plus
    /// `[other]` as `opts` says, the tracker's overhead, the site counts,
    /// jemalloc's figures and the untracked difference, each family with
    /// `# HELP` and `# TYPE` lines.
    ///
    /// The `*_usable_bytes` series are left out unless usable sizes are
    /// counted ([`UsableSizes::Count`](crate::UsableSizes::Count)).
    /// `alloc_tracker_overhead_live_bytes` is the `alloc-tracker` scope's
    /// `live_bytes` of the same report (the same read), and
    /// `alloc_tracker_sampled_sites` counts sampled sites only (recorded
    /// leak sites are `alloc_tracker_recorded_sites`). Write it to a file
    /// read by node_exporter's textfile collector, or serve it from a
    /// `/metrics` endpoint (feature `metrics-http`,
    /// [`integrations::http`](crate::integrations)).
    pub fn to_prometheus_with(&self, opts: &SeriesOptions) -> String {
        thread_state::internal(|| {
            let mut out = String::new();
            for f in series::families(self, opts, Extras { sites: true }) {
                let (kind, suffix) = match f.kind {
                    MetricKind::Gauge => ("gauge", ""),
                    MetricKind::Counter => ("counter", "_total"),
                };
                let name = format!("{METRIC_PREFIX}{}{suffix}", f.name);
                let _ = writeln!(out, "# HELP {name} {}", f.help);
                let _ = writeln!(out, "# TYPE {name} {kind}");
                for (labels, v) in &f.samples {
                    if labels.is_empty() {
                        let _ = writeln!(out, "{name} {v}");
                    } else {
                        let labels: Vec<String> = labels
                            .iter()
                            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                            .collect();
                        let _ = writeln!(out, "{name}{{{}}} {v}", labels.join(","));
                    }
                }
            }
            out
        })
    }

    /// Whether the figures include usable sizes (any usable byte counted).
    pub(crate) fn usable_sizes_counted(&self) -> bool {
        self.tracked.live_usable_bytes > 0 || self.tracked.total_usable_bytes > 0
    }

    /// The tracker's own live bytes as the scope table has them (the
    /// `alloc-tracker` scope), so every output agrees with it;
    /// [`Report::overhead`] when the scope is missing (hand-made reports).
    pub(crate) fn overhead_live_bytes(&self) -> u64 {
        self.scopes
            .iter()
            .find(|s| s.id == ScopeId::INTERNAL.as_u16() && s.path == "alloc-tracker")
            .map_or(self.overhead.live_bytes, |s| s.own.live_bytes)
    }

    /// Writes [`to_prometheus`](Self::to_prometheus).
    ///
    /// # Errors
    /// The writer's I/O error.
    pub fn write_prometheus(&self, w: &mut dyn io::Write) -> io::Result<()> {
        let text = self.to_prometheus();
        w.write_all(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_escaping() {
        assert_eq!(super::escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
