//! A [`prometheus_client`] collector of the per-scope figures (feature
//! `prometheus-client`).
//!
//! Register a [`ScopeCollector`] with the program's
//! [`Registry`]; every scrape reads
//! the scope counters once ([`Snapshot::take`]: no call stacks, no
//! symbolisation, charged to the tracker's own scope) and exports:
//!
//! | series | type | per scope |
//! | --- | --- | --- |
//! | `alloc_tracker_live_bytes{scope}` | gauge | requested bytes of live allocations, children not included |
//! | `alloc_tracker_live_allocations{scope}` | gauge | live allocations |
//! | `alloc_tracker_live_usable_bytes{scope}` | gauge | only when usable sizes are counted |
//! | `alloc_tracker_subtree_live_bytes{scope}` | gauge | live bytes including the scopes below (not for `[other]`) |
//! | `alloc_tracker_peak_bytes{scope}` | gauge | highest live bytes seen (not for `[other]`) |
//! | `alloc_tracker_allocations_total{scope}` | counter | allocations ever made |
//! | `alloc_tracker_allocated_bytes_total{scope}` | counter | bytes ever allocated |
//! | `alloc_tracker_frees_total{scope}` | counter | frees of the scope's allocations |
//! | `alloc_tracker_freed_bytes_total{scope}` | counter | their bytes |
//!
//! plus `alloc_tracker_tracked_live_bytes`, `alloc_tracker_overhead_live_bytes`
//! (the `alloc-tracker` scope's live bytes), `alloc_tracker_scopes` and
//! `alloc_tracker_other_scopes`, and jemalloc's `alloc_tracker_jemalloc_*_bytes`
//! figures when that backend is compiled in. The registry's prefix and
//! constant labels apply as usual.
//!
//! # Bounded cardinality
//!
//! Only the [`top`](ScopeCollector::top) scopes by own live bytes (default
//! [`ScopeCollector::DEFAULT_TOP`]) get their own `scope` label, plus the
//! scopes named with [`always`](ScopeCollector::always) (alert on those:
//! a scope that drains to zero would otherwise fall out of the top; they
//! are exported with zero figures until they are registered).
//! Every other scope that ever allocated is summed into one
//! `scope="[other]"` series ([`OTHER_SCOPE`]). Scopes move in and out of
//! the bucket as their live bytes change, so the bucket's counters can go
//! down between scrapes (Prometheus takes that as a counter reset).
//!
//! ```
//! # #[global_allocator]
//! # static A: alloc_tracker::TrackingAlloc<alloc_tracker::Jemalloc> =
//! #     alloc_tracker::TrackingAlloc::new(alloc_tracker::Jemalloc);
//! use alloc_tracker::integrations::prometheus::ScopeCollector;
//! use alloc_tracker::Scope;
//! use prometheus_client::registry::Registry;
//!
//! static CACHE: Scope = Scope::new("cache");
//! let kept = CACHE.in_scope(|| vec![0u8; 4096]);
//!
//! let mut registry = Registry::with_labels(
//!     [("service".into(), "db-1".into())].into_iter(),
//! );
//! ScopeCollector::new().top(10).always("checkpoint").register(&mut registry);
//!
//! let mut text = String::new();
//! prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
//! assert!(text.contains("alloc_tracker_live_bytes{service=\"db-1\",scope=\"cache\"} 4096\n"), "{text}");
//! assert!(text.contains("# TYPE alloc_tracker_allocations counter\n"));
//! assert!(text.ends_with("# EOF\n"));
//! # drop(kept);
//! ```

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::scope::ScopeId;
use crate::stats::{ScopeSnapshot, ScopeStats, Snapshot};
use crate::thread_state;

/// The `scope` label value of the bucket that sums every scope not
/// exported on its own.
pub const OTHER_SCOPE: &str = "[other]";

/// One per-scope series family.
struct Family {
    /// Name without the `_total` a counter gets from the encoder.
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    /// Read from the figures including children.
    children: bool,
    /// Exported for the `[other]` bucket (sums make sense).
    summable: bool,
    /// Only when usable sizes are counted.
    usable: bool,
    get: fn(&ScopeStats) -> u64,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "alloc_tracker_live_bytes",
        help: "Bytes requested by live allocations of the scope, children not included.",
        kind: MetricType::Gauge,
        children: false,
        summable: true,
        usable: false,
        get: |s| s.live_bytes,
    },
    Family {
        name: "alloc_tracker_live_allocations",
        help: "Live allocations of the scope, children not included.",
        kind: MetricType::Gauge,
        children: false,
        summable: true,
        usable: false,
        get: |s| s.live_allocs,
    },
    Family {
        name: "alloc_tracker_live_usable_bytes",
        help: "Bytes the backend reserved for the live allocations of the scope (size classes plus tags).",
        kind: MetricType::Gauge,
        children: false,
        summable: true,
        usable: true,
        get: |s| s.live_usable_bytes,
    },
    Family {
        name: "alloc_tracker_subtree_live_bytes",
        help: "Bytes requested by live allocations of the scope and every scope below it.",
        kind: MetricType::Gauge,
        children: true,
        summable: false,
        usable: false,
        get: |s| s.live_bytes,
    },
    Family {
        name: "alloc_tracker_peak_bytes",
        help: "Highest live byte count seen in the scope (a lower bound, within 64 KiB per thread).",
        kind: MetricType::Gauge,
        children: false,
        summable: false,
        usable: false,
        get: |s| s.peak_bytes,
    },
    Family {
        name: "alloc_tracker_allocations",
        help: "Allocations ever made in the scope (a realloc counts as a free and an allocation).",
        kind: MetricType::Counter,
        children: false,
        summable: true,
        usable: false,
        get: |s| s.total_allocs,
    },
    Family {
        name: "alloc_tracker_allocated_bytes",
        help: "Bytes requested by all allocations ever made in the scope.",
        kind: MetricType::Counter,
        children: false,
        summable: true,
        usable: false,
        get: |s| s.total_bytes,
    },
    Family {
        name: "alloc_tracker_frees",
        help: "Frees of the scope's allocations, by any thread in any scope.",
        kind: MetricType::Counter,
        children: false,
        summable: true,
        usable: false,
        get: |s| s.total_frees,
    },
    Family {
        name: "alloc_tracker_freed_bytes",
        help: "Requested bytes of the frees of the scope's allocations.",
        kind: MetricType::Counter,
        children: false,
        summable: true,
        usable: false,
        get: |s| s.total_freed_bytes,
    },
];

/// Exports the per-scope figures on every scrape; see the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct ScopeCollector {
    top: usize,
    always: Vec<String>,
}

impl Default for ScopeCollector {
    fn default() -> Self {
        ScopeCollector::new()
    }
}

impl ScopeCollector {
    /// How many scopes get their own series by default.
    pub const DEFAULT_TOP: usize = 20;

    /// A collector of the [`DEFAULT_TOP`](Self::DEFAULT_TOP) scopes by
    /// live bytes plus `[other]`.
    pub fn new() -> ScopeCollector {
        ScopeCollector {
            top: Self::DEFAULT_TOP,
            always: Vec::new(),
        }
    }

    /// Export the `n` scopes with the most own live bytes on their own
    /// (ties: lower scope id first); sum the rest into `[other]`.
    #[must_use]
    pub fn top(mut self, n: usize) -> Self {
        self.top = n;
        self
    }

    /// Always export the scope with this path (`checkpoint`,
    /// `service/cache`) on its own, whatever its size, and with zero
    /// figures before it is registered (so an alert on it has a series from
    /// the first scrape); it does not count against [`top`](Self::top).
    #[must_use]
    pub fn always(mut self, path: impl Into<String>) -> Self {
        self.always.push(path.into());
        self
    }

    /// Registers the collector with `registry`.
    pub fn register(self, registry: &mut Registry) {
        registry.register_collector(Box::new(self));
    }

    /// The scopes exported on their own (path, own figures, figures with
    /// children), and the own figures of those summed into `[other]`.
    /// Pinned scopes not registered yet are exported with zero figures.
    fn select<'s>(&'s self, snap: &'s Snapshot) -> (Vec<Exported<'s>>, Vec<&'s ScopeStats>) {
        let mut pinned: Vec<Exported<'s>> = Vec::new();
        let mut ranked: Vec<&ScopeSnapshot> = Vec::new();
        for s in &snap.scopes {
            if self.always.contains(&s.path) {
                pinned.push((&s.path, s.own, s.with_children));
            } else if s.own.total_allocs > 0 || s.own.live_bytes > 0 {
                ranked.push(s);
            }
        }
        for p in &self.always {
            if !pinned.iter().any(|(path, ..)| *path == p.as_str()) {
                pinned.push((p, ScopeStats::default(), ScopeStats::default()));
            }
        }
        ranked.sort_by_key(|s| (std::cmp::Reverse(s.own.live_bytes), s.id.as_u16()));
        let rest = ranked.split_off(self.top.min(ranked.len()));
        pinned.extend(
            ranked
                .into_iter()
                .map(|s| (s.path.as_str(), s.own, s.with_children)),
        );
        (pinned, rest.into_iter().map(|s| &s.own).collect())
    }
}

/// A scope exported on its own: path, own figures, figures with children.
type Exported<'s> = (&'s str, ScopeStats, ScopeStats);

/// A gauge without labels.
fn single(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: i64) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    m.encode_gauge(&v)
}

impl Collector for ScopeCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        thread_state::internal(|| {
            let snap = Snapshot::take();
            let (own, other) = self.select(&snap);
            let usable = snap.tracked.live_usable_bytes > 0 || snap.tracked.total_usable_bytes > 0;
            for f in FAMILIES.iter().filter(|f| usable || !f.usable) {
                let mut m = enc.encode_descriptor(f.name, f.help, None, f.kind)?;
                let mut series = |scope: &str, v: u64| -> fmt::Result {
                    let labels = [("scope", scope)];
                    let mut s = m.encode_family(&labels)?;
                    match f.kind {
                        MetricType::Counter => s.encode_counter::<NoLabelSet, u64, u64>(&v, None),
                        _ => s.encode_gauge(&v),
                    }
                };
                for (path, own, with_children) in &own {
                    let stats = if f.children { with_children } else { own };
                    series(path, (f.get)(stats))?;
                }
                if f.summable && !other.is_empty() {
                    series(OTHER_SCOPE, other.iter().map(|s| (f.get)(s)).sum())?;
                }
            }
            let internal = snap
                .scopes
                .iter()
                .find(|s| s.id == ScopeId::INTERNAL)
                .map_or(0, |s| s.own.live_bytes);
            let active = snap
                .scopes
                .iter()
                .filter(|s| s.own.total_allocs > 0 || s.own.live_bytes > 0)
                .count();
            for (name, help, v) in [
                (
                    "alloc_tracker_tracked_live_bytes",
                    "Bytes requested by all live allocations the tracker counted.",
                    snap.tracked.live_bytes as i64,
                ),
                (
                    "alloc_tracker_overhead_live_bytes",
                    "Live bytes of the tracker's own allocations: live_bytes of the alloc-tracker scope.",
                    internal as i64,
                ),
                (
                    "alloc_tracker_scopes",
                    "Scopes that ever allocated.",
                    active as i64,
                ),
                (
                    "alloc_tracker_other_scopes",
                    "Scopes summed into the scope=\"[other]\" series instead of exported on their own.",
                    other.len() as i64,
                ),
            ] {
                single(&mut enc, name, help, v)?;
            }
            #[cfg(feature = "jemalloc")]
            if let Some(j) = &snap.jemalloc {
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
                    (
                        "cached",
                        "Free blocks held in thread caches for reuse, the tracker's per-(thread, scope) tcaches included (stats.arenas.<all>.tcache_bytes); counted in allocated.",
                        j.tcache_bytes,
                    ),
                ] {
                    single(
                        &mut enc,
                        &format!("alloc_tracker_jemalloc_{name}_bytes"),
                        &format!("jemalloc, process-wide: {help}"),
                        v as i64,
                    )?;
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_n_plus_other_and_pinned_scopes() {
        let c = ScopeCollector::new().top(1).always("never-registered");
        let snap = Snapshot::take();
        let (own, other) = c.select(&snap);
        let active = snap
            .scopes
            .iter()
            .filter(|s| s.own.total_allocs > 0 || s.own.live_bytes > 0)
            .count();
        // The pinned scope (zero figures: not registered) plus the top one.
        assert_eq!(own.len(), 1 + 1.min(active));
        assert_eq!(
            own[0],
            (
                "never-registered",
                ScopeStats::default(),
                ScopeStats::default()
            )
        );
        assert_eq!(own.len() - 1 + other.len(), active);
        let max = snap.scopes.iter().map(|s| s.own.live_bytes).max().unwrap();
        assert_eq!(own[1].1.live_bytes, max);
    }
}
