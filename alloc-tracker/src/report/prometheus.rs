//! The Prometheus text exposition format (version 0.0.4).

use std::fmt::Write as _;
use std::io;

use super::model::Report;
use crate::stats::ScopeStats;
use crate::thread_state;

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

/// One per-scope metric: name (without prefix), type, help, and the field
/// it reads.
struct ScopeMetric {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    children: bool,
    get: fn(&ScopeStats) -> u64,
}

const SCOPE_METRICS: &[ScopeMetric] = &[
    ScopeMetric {
        name: "live_bytes",
        kind: "gauge",
        help: "Bytes requested by live allocations of the scope, children not included.",
        children: false,
        get: |s| s.live_bytes,
    },
    ScopeMetric {
        name: "live_allocations",
        kind: "gauge",
        help: "Live allocations of the scope, children not included.",
        children: false,
        get: |s| s.live_allocs,
    },
    ScopeMetric {
        name: "live_usable_bytes",
        kind: "gauge",
        help: "Bytes the backend reserved for the live allocations of the scope (0 unless usable sizes are counted).",
        children: false,
        get: |s| s.live_usable_bytes,
    },
    ScopeMetric {
        name: "subtree_live_bytes",
        kind: "gauge",
        help: "Bytes requested by live allocations of the scope and every scope below it.",
        children: true,
        get: |s| s.live_bytes,
    },
    ScopeMetric {
        name: "peak_bytes",
        kind: "gauge",
        help: "Highest live byte count seen in the scope (a lower bound, within 64 KiB per thread).",
        children: false,
        get: |s| s.peak_bytes,
    },
    ScopeMetric {
        name: "allocations_total",
        kind: "counter",
        help: "Allocations ever made in the scope (a realloc counts as a free and an allocation).",
        children: false,
        get: |s| s.total_allocs,
    },
    ScopeMetric {
        name: "allocated_bytes_total",
        kind: "counter",
        help: "Bytes requested by all allocations ever made in the scope.",
        children: false,
        get: |s| s.total_bytes,
    },
    ScopeMetric {
        name: "frees_total",
        kind: "counter",
        help: "Frees of the scope's allocations, by any thread in any scope.",
        children: false,
        get: |s| s.total_frees,
    },
    ScopeMetric {
        name: "freed_bytes_total",
        kind: "counter",
        help: "Requested bytes of the frees of the scope's allocations.",
        children: false,
        get: |s| s.total_freed_bytes,
    },
];

impl Report {
    /// The report in the Prometheus text exposition format: per-scope
    /// gauges and counters labelled `scope="<path>"`, the tracker's
    /// overhead, jemalloc's figures and the untracked difference, each
    /// family with `# HELP` and `# TYPE` lines.
    ///
    /// Scopes that never allocated are left out. Write it to a file read
    /// by node_exporter's textfile collector, or serve it from a
    /// `/metrics` endpoint.
    pub fn to_prometheus(&self) -> String {
        thread_state::internal(|| {
            let mut out = String::new();
            let scopes: Vec<_> = self
                .scopes
                .iter()
                .filter(|s| s.with_children.total_allocs > 0 || s.with_children.live_bytes > 0)
                .collect();
            for m in SCOPE_METRICS {
                let _ = writeln!(out, "# HELP {METRIC_PREFIX}{} {}", m.name, m.help);
                let _ = writeln!(out, "# TYPE {METRIC_PREFIX}{} {}", m.name, m.kind);
                for s in &scopes {
                    let stats = if m.children { &s.with_children } else { &s.own };
                    let _ = writeln!(
                        out,
                        "{METRIC_PREFIX}{}{{scope=\"{}\"}} {}",
                        m.name,
                        escape_label(&s.path),
                        (m.get)(stats)
                    );
                }
            }
            let mut single = |name: &str, kind: &str, help: &str, value: i64| {
                let _ = writeln!(out, "# HELP {METRIC_PREFIX}{name} {help}");
                let _ = writeln!(out, "# TYPE {METRIC_PREFIX}{name} {kind}");
                let _ = writeln!(out, "{METRIC_PREFIX}{name} {value}");
            };
            single(
                "tracked_live_bytes",
                "gauge",
                "Bytes requested by all live allocations the tracker counted.",
                self.tracked.live_bytes as i64,
            );
            single(
                "overhead_live_bytes",
                "gauge",
                "Live bytes of the tracker's own allocations (the alloc-tracker scope).",
                self.overhead.live_bytes as i64,
            );
            single(
                "sampled_sites",
                "gauge",
                "Call sites listed in the report.",
                self.sites.len() as i64,
            );
            if let Some(j) = &self.jemalloc {
                for (name, help, v) in [
                    (
                        "allocated",
                        "Bytes in live allocations (stats.allocated).",
                        j.allocated,
                    ),
                    ("active", "Bytes in active pages (stats.active).", j.active),
                    (
                        "resident",
                        "Bytes in physically resident pages (stats.resident).",
                        j.resident,
                    ),
                    (
                        "mapped",
                        "Bytes in active extents mapped by jemalloc (stats.mapped).",
                        j.mapped,
                    ),
                    (
                        "retained",
                        "Bytes of virtual memory retained for reuse (stats.retained).",
                        j.retained,
                    ),
                    (
                        "metadata",
                        "Bytes of jemalloc's own metadata (stats.metadata).",
                        j.metadata,
                    ),
                ] {
                    single(
                        &format!("jemalloc_{name}_bytes"),
                        "gauge",
                        &format!("jemalloc, process-wide: {help}"),
                        v as i64,
                    );
                }
                single(
                    "untracked_bytes",
                    "gauge",
                    "jemalloc's allocated bytes minus the tracker's live bytes (usable bytes if counted, else requested bytes).",
                    j.untracked_bytes,
                );
            }
            out
        })
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
