//! The Prometheus text exposition format (version 0.0.4).

use std::fmt::Write as _;
use std::io;

use super::model::{Report, SiteSource};
use crate::scope::ScopeId;
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
    /// Only written when usable sizes are counted (else it reads 0).
    usable: bool,
    get: fn(&ScopeStats) -> u64,
}

const SCOPE_METRICS: &[ScopeMetric] = &[
    ScopeMetric {
        name: "live_bytes",
        kind: "gauge",
        help: "Bytes requested by live allocations of the scope, children not included.",
        children: false,
        usable: false,
        get: |s| s.live_bytes,
    },
    ScopeMetric {
        name: "live_allocations",
        kind: "gauge",
        help: "Live allocations of the scope, children not included.",
        children: false,
        usable: false,
        get: |s| s.live_allocs,
    },
    ScopeMetric {
        name: "live_usable_bytes",
        kind: "gauge",
        help: "Bytes the backend reserved for the live allocations of the scope (size classes plus tags).",
        children: false,
        usable: true,
        get: |s| s.live_usable_bytes,
    },
    ScopeMetric {
        name: "subtree_live_bytes",
        kind: "gauge",
        help: "Bytes requested by live allocations of the scope and every scope below it.",
        children: true,
        usable: false,
        get: |s| s.live_bytes,
    },
    ScopeMetric {
        name: "peak_bytes",
        kind: "gauge",
        help: "Highest live byte count seen in the scope (a lower bound, within 64 KiB per thread).",
        children: false,
        usable: false,
        get: |s| s.peak_bytes,
    },
    ScopeMetric {
        name: "allocations_total",
        kind: "counter",
        help: "Allocations ever made in the scope (a realloc counts as a free and an allocation).",
        children: false,
        usable: false,
        get: |s| s.total_allocs,
    },
    ScopeMetric {
        name: "allocated_bytes_total",
        kind: "counter",
        help: "Bytes requested by all allocations ever made in the scope.",
        children: false,
        usable: false,
        get: |s| s.total_bytes,
    },
    ScopeMetric {
        name: "frees_total",
        kind: "counter",
        help: "Frees of the scope's allocations, by any thread in any scope.",
        children: false,
        usable: false,
        get: |s| s.total_frees,
    },
    ScopeMetric {
        name: "freed_bytes_total",
        kind: "counter",
        help: "Requested bytes of the frees of the scope's allocations.",
        children: false,
        usable: false,
        get: |s| s.total_freed_bytes,
    },
];

impl Report {
    /// The report in the Prometheus text exposition format: per-scope
    /// gauges and counters labelled `scope="<path>"`, the tracker's
    /// overhead, jemalloc's figures and the untracked difference, each
    /// family with `# HELP` and `# TYPE` lines.
    ///
    /// Scopes that never allocated are left out, and so are the
    /// `*_usable_bytes` series unless usable sizes are counted
    /// ([`UsableSizes::Count`](crate::UsableSizes::Count)).
    /// `alloc_tracker_overhead_live_bytes` is the `alloc-tracker` scope's
    /// `live_bytes` of the same report (the same read), and
    /// `alloc_tracker_sampled_sites` counts sampled sites only (recorded
    /// leak sites are `alloc_tracker_recorded_sites`). Write it to a file
    /// read by node_exporter's textfile collector, or serve it from a
    /// `/metrics` endpoint (feature `metrics-http`,
    /// [`integrations::http`](crate::integrations)).
    pub fn to_prometheus(&self) -> String {
        thread_state::internal(|| {
            let mut out = String::new();
            let scopes: Vec<_> = self
                .scopes
                .iter()
                .filter(|s| s.with_children.total_allocs > 0 || s.with_children.live_bytes > 0)
                .collect();
            let usable_counted = self.usable_sizes_counted();
            for m in SCOPE_METRICS.iter().filter(|m| usable_counted || !m.usable) {
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
                "Live bytes of the tracker's own allocations: live_bytes of the alloc-tracker scope.",
                self.overhead_live_bytes() as i64,
            );
            let sampled = self
                .sites
                .iter()
                .filter(|s| s.source == SiteSource::Sampled)
                .count();
            single(
                "sampled_sites",
                "gauge",
                "Sampled call sites of live memory in the report.",
                sampled as i64,
            );
            single(
                "recorded_sites",
                "gauge",
                "Call sites recorded by leak checks and added to the report.",
                (self.sites.len() - sampled) as i64,
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
                    "jemalloc's allocated bytes minus the tracker's live bytes (usable bytes if counted, else requested bytes): bytes in no live tracked block, mostly free blocks held in thread caches (alloc_tracker_jemalloc_cached_bytes); the rest is live memory the tracker did not count.",
                    j.untracked_bytes,
                );
                single(
                    "jemalloc_cached_bytes",
                    "gauge",
                    "jemalloc, process-wide: free blocks held in thread caches for reuse, the tracker's per-(thread, scope) tcaches included (stats.arenas.<all>.tcache_bytes); counted in jemalloc_allocated_bytes.",
                    j.cached_bytes as i64,
                );
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
