//! A [`prometheus_client`] collector of the per-scope figures (feature
//! `prometheus-client`).
//!
//! Register a [`ScopeCollector`] with the program's
//! [`Registry`]; every scrape reads
//! the scope counters once (no call stacks, no symbolisation, charged to
//! the tracker's own scope) and exports the same series as
//! [`Report::to_prometheus`](crate::report::Report::to_prometheus), written
//! by the same code (`report::series`). A *row* is a static scope with its
//! instances folded in (`request#7` counts as `request`, `request#7/parse`
//! as `request/parse`, recycled instances' totals included):
//!
//! | series | type | per row |
//! | --- | --- | --- |
//! | `alloc_tracker_live_bytes{scope}` | gauge | requested bytes of live allocations of the scope and its instances, children not included |
//! | `alloc_tracker_live_allocations{scope}` | gauge | live allocations |
//! | `alloc_tracker_live_usable_bytes{scope}` | gauge | only when usable sizes are counted |
//! | `alloc_tracker_subtree_live_bytes{scope}` | gauge | live bytes including the scopes below (not for `[other]`) |
//! | `alloc_tracker_peak_bytes{scope}` | gauge | upper bound of the subtree's peak, recycled instances included (not for `[other]`) |
//! | `alloc_tracker_live_instances{scope}` | gauge | instances in use, made and not released (not for `[other]`) |
//! | `alloc_tracker_allocations_total{scope}` | counter | allocations ever made, recycled instances included |
//! | `alloc_tracker_allocated_bytes_total{scope}` | counter | bytes ever allocated |
//! | `alloc_tracker_frees_total{scope}` | counter | frees of the row's allocations |
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
//! Instances never get a `scope` series of their own, so a service that
//! makes one instance per request exports as many series after 10,000
//! requests as after one, and an alert on `scope="request"` sees every
//! request. Long-lived instances (one per database) can be exported in
//! the `alloc_tracker_instance_*{scope, instance}` families, opt-in and
//! capped ([`instances_of`](ScopeCollector::instances_of)).
//!
//! Only the [`top`](ScopeCollector::top) rows by own live bytes (default
//! [`ScopeCollector::DEFAULT_TOP`]) get their own `scope` label, plus the
//! rows named with [`always`](ScopeCollector::always) (alert on those:
//! a scope that drains to zero would otherwise fall out of the top; they
//! are exported with zero figures until they are registered).
//! Every other row that ever allocated is summed into one
//! `scope="[other]"` series ([`OTHER_SCOPE`]). Rows move in and out of
//! the bucket as their live bytes change, so the bucket's counters can go
//! down between scrapes (Prometheus takes that as a counter reset).
//!
//! ```
//! # #[global_allocator]
//! # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
//! #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
//! use scope_alloc_tracker::integrations::prometheus::ScopeCollector;
//! use scope_alloc_tracker::Scope;
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

use crate::hot::thread_state;
use crate::report::series::{self, Extras, MetricKind};
use crate::report::{Report, SeriesOptions};

/// The `scope` label value of the bucket that sums every row not exported
/// on its own.
pub const OTHER_SCOPE: &str = crate::report::OTHER_SCOPE;

/// Exports the per-scope figures on every scrape; see the
/// [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct ScopeCollector {
    opts: SeriesOptions,
}

impl ScopeCollector {
    /// How many rows get their own series by default.
    pub const DEFAULT_TOP: usize = SeriesOptions::DEFAULT_TOP;

    /// A collector of the [`DEFAULT_TOP`](Self::DEFAULT_TOP) rows by
    /// live bytes plus `[other]`.
    pub fn new() -> ScopeCollector {
        ScopeCollector::default()
    }

    /// A collector with these options (the same as
    /// [`Report::to_prometheus_with`] takes).
    pub fn with_options(opts: SeriesOptions) -> ScopeCollector {
        ScopeCollector { opts }
    }

    /// Export the `n` rows with the most own live bytes on their own;
    /// sum the rest into `[other]` ([`SeriesOptions::top`]).
    #[must_use]
    pub fn top(mut self, n: usize) -> Self {
        self.opts = self.opts.top(n);
        self
    }

    /// Always export the row with this path on its own, with zero figures
    /// before it is registered ([`SeriesOptions::always`]).
    #[must_use]
    pub fn always(mut self, path: impl Into<String>) -> Self {
        self.opts = self.opts.always(path);
        self
    }

    /// Also export the `cap` oldest live instances of the kind at
    /// `kind_path` in the `alloc_tracker_instance_*` families
    /// ([`SeriesOptions::instances_of`]).
    #[must_use]
    pub fn instances_of(mut self, kind_path: impl Into<String>, cap: usize) -> Self {
        self.opts = self.opts.instances_of(kind_path, cap);
        self
    }

    /// Registers the collector with `registry`.
    pub fn register(self, registry: &mut Registry) {
        registry.register_collector(Box::new(self));
    }
}

impl Collector for ScopeCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        thread_state::internal(|| {
            let report = Report::without_sites();
            for f in series::families(&report, &self.opts, Extras { sites: false }) {
                let name = format!("alloc_tracker_{}", f.name);
                let kind = match f.kind {
                    MetricKind::Gauge => MetricType::Gauge,
                    MetricKind::Counter => MetricType::Counter,
                };
                let mut m = enc.encode_descriptor(&name, f.help, None, kind)?;
                for (labels, v) in &f.samples {
                    let labels: Vec<(&str, &str)> =
                        labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    let mut s = m.encode_family(&labels)?;
                    match f.kind {
                        MetricKind::Counter => {
                            s.encode_counter::<NoLabelSet, u64, u64>(&(*v as u64), None)?
                        }
                        MetricKind::Gauge => s.encode_gauge(v)?,
                    }
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scope;

    #[test]
    fn instances_export_one_series_per_kind() {
        static KIND: Scope = Scope::new("collector-unit-kind");
        let mut registry = Registry::default();
        ScopeCollector::new().register(&mut registry);
        let mut held = Vec::new();
        for _ in 0..5 {
            let i = KIND.instance().unwrap();
            held.push((i.in_scope(|| vec![0u8; 100]), i));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("alloc_tracker_live_bytes{scope=\"collector-unit-kind\"} 500\n"),
            "{text}"
        );
        assert!(!text.contains("collector-unit-kind#"), "{text}");
        drop(held);
    }
}
