//! The Prometheus series of a [`Report`]: one selection of rows and one
//! list of families, written by both exporters ([`Report::to_prometheus`],
//! the classic text format, and the `prometheus-client` collector of
//! `integrations::prometheus`, OpenMetrics).
//!
//! # One series per kind, whatever the request rate
//!
//! Instances are folded into their kind: `request#7` counts as `request`,
//! `request#7/parse` as `request/parse`, and the totals of recycled
//! instances stay in their kind's row, so counters never fall when an
//! instance goes. The rows are then the static scope tree, whose size the
//! program's code fixes: a service that makes one instance per request has
//! as many series after 10,000 requests as after one. Of those rows, the
//! [`top`](SeriesOptions::top) by own live bytes and the
//! [`always`](SeriesOptions::always) ones are exported under their own
//! `scope` label, the rest summed into `scope="[other]"`.
//!
//! Long-lived instances (one per database, per tenant) can be exported on
//! their own, opt-in and capped: [`SeriesOptions::instances_of`] adds the
//! `alloc_tracker_instance_*{scope, instance}` families (the instance's
//! serial number as `instance`, the oldest first up to the cap), which are
//! not part of the per-scope families, so a `sum` over those never counts an
//! instance twice.

use super::model::{Report, ScopeReport, SiteSource};
use crate::stats::ScopeStats;

/// The `scope` label value of the bucket that sums every row not exported
/// on its own.
pub const OTHER_SCOPE: &str = "[other]";

/// Which rows a Prometheus export names.
///
/// A row is a static scope with its instances folded in (`request#7`
/// counts as `request`, `request#7/parse` as `request/parse`, recycled
/// instances' totals included), so the number of series is fixed by the
/// program's static scopes, whatever the request rate. The
/// [`top`](Self::top) rows by own live bytes and the [`always`](Self::always)
/// rows get their own `scope` label, the rest are summed into
/// `scope="[other]"`; [`instances_of`](Self::instances_of) adds capped
/// per-instance series for long-lived instances.
///
/// ```
/// use scope_alloc_tracker::report::SeriesOptions;
/// let opts = SeriesOptions::new().top(10).always("checkpoint").instances_of("db", 8);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesOptions {
    top: usize,
    always: Vec<String>,
    instances: Vec<(String, usize)>,
}

impl Default for SeriesOptions {
    fn default() -> Self {
        SeriesOptions::new()
    }
}

impl SeriesOptions {
    /// How many rows get their own `scope` label by default.
    pub const DEFAULT_TOP: usize = 20;

    /// The [`DEFAULT_TOP`](Self::DEFAULT_TOP) rows by own live bytes plus
    /// `[other]`, no per-instance series.
    pub fn new() -> SeriesOptions {
        SeriesOptions {
            top: Self::DEFAULT_TOP,
            always: Vec::new(),
            instances: Vec::new(),
        }
    }

    /// Export the `n` rows with the most own live bytes on their own (ties:
    /// the path first in byte order); sum the rest into `[other]`.
    #[must_use]
    pub fn top(mut self, n: usize) -> Self {
        self.top = n;
        self
    }

    /// Always export the row with this path (`checkpoint`, `service/cache`)
    /// on its own, whatever its size, with zero figures before the scope is
    /// registered (so an alert on it has a series from the first scrape);
    /// it does not count against [`top`](Self::top).
    #[must_use]
    pub fn always(mut self, path: impl Into<String>) -> Self {
        self.always.push(path.into());
        self
    }

    /// Also export the live instances of the kind at `kind_path` (`db`) in
    /// the `alloc_tracker_instance_*` families, the `cap` oldest ones: for
    /// long-lived instances only (one per database), never per request.
    #[must_use]
    pub fn instances_of(mut self, kind_path: impl Into<String>, cap: usize) -> Self {
        self.instances.push((kind_path.into(), cap));
        self
    }
}

/// A metric's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetricKind {
    Gauge,
    Counter,
}

/// One family: its name without the `_total` a counter's samples get,
/// help, type, and samples (label pairs and value).
#[derive(Debug)]
pub(crate) struct Family {
    pub(crate) name: String,
    pub(crate) help: &'static str,
    pub(crate) kind: MetricKind,
    pub(crate) samples: Vec<(Vec<(&'static str, String)>, i64)>,
}

/// One row: a static scope with its instances folded in.
#[derive(Debug, Clone, Default)]
struct Row {
    path: String,
    /// Own figures of the scope and every instance of it, the totals of
    /// recycled instances included.
    own: ScopeStats,
    /// The static scope's figures with children (instances included);
    /// `peak_bytes` is the subtree's upper bound.
    with_children: ScopeStats,
    /// Instances in use (made and not released yet).
    instances: u64,
}

/// `request#7/parse` → `request/parse`.
pub(crate) fn kind_path(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg.rfind('#') {
            Some(i) if seg[i + 1..].bytes().all(|b| b.is_ascii_digit()) && i + 1 < seg.len() => {
                &seg[..i]
            }
            _ => seg,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn add(a: &mut ScopeStats, b: &ScopeStats) {
    a.live_bytes += b.live_bytes;
    a.live_allocs += b.live_allocs;
    a.live_usable_bytes += b.live_usable_bytes;
    a.total_allocs += b.total_allocs;
    a.total_bytes += b.total_bytes;
    a.total_usable_bytes += b.total_usable_bytes;
    a.total_frees += b.total_frees;
    a.total_freed_bytes += b.total_freed_bytes;
}

fn is_instance(s: &ScopeReport) -> bool {
    s.kind.is_some() && s.path.rsplit('/').next().is_some_and(|l| l.contains('#'))
}

fn rows(report: &Report) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for s in &report.scopes {
        let key = kind_path(&s.path);
        let i = match rows.iter().position(|r| r.path == key) {
            Some(i) => i,
            None => {
                rows.push(Row {
                    path: key,
                    ..Row::default()
                });
                rows.len() - 1
            }
        };
        let r = &mut rows[i];
        add(&mut r.own, &s.own);
        add(&mut r.own, &s.recycled);
        if s.kind.is_none() {
            r.with_children = s.with_children;
        }
        if is_instance(s) && !s.released {
            r.instances += 1;
        }
    }
    rows
}

/// The rows exported on their own (pinned first, then by own live bytes)
/// and those summed into `[other]`.
fn select(report: &Report, opts: &SeriesOptions) -> (Vec<Row>, Vec<Row>) {
    let mut pinned = Vec::new();
    let mut ranked = Vec::new();
    for r in rows(report) {
        if opts.always.contains(&r.path) {
            pinned.push(r);
        } else if r.with_children.total_allocs > 0
            || r.with_children.live_bytes > 0
            || r.own.total_allocs > 0
        {
            ranked.push(r);
        }
    }
    for p in &opts.always {
        if !pinned.iter().any(|r| &r.path == p) {
            pinned.push(Row {
                path: p.clone(),
                ..Row::default()
            });
        }
    }
    ranked.sort_by(|a, b| {
        b.own
            .live_bytes
            .cmp(&a.own.live_bytes)
            .then_with(|| a.path.cmp(&b.path))
    });
    let rest = ranked.split_off(opts.top.min(ranked.len()));
    pinned.extend(ranked);
    (pinned, rest)
}

/// One per-row family.
struct RowFamily {
    name: &'static str,
    help: &'static str,
    kind: MetricKind,
    /// Exported for the `[other]` bucket (sums make sense).
    summable: bool,
    /// Only when usable sizes are counted.
    usable: bool,
    get: fn(&Row) -> u64,
}

const ROW_FAMILIES: &[RowFamily] = &[
    RowFamily {
        name: "live_bytes",
        help: "Bytes requested by live allocations of the scope and its instances, children not included.",
        kind: MetricKind::Gauge,
        summable: true,
        usable: false,
        get: |r| r.own.live_bytes,
    },
    RowFamily {
        name: "live_allocations",
        help: "Live allocations of the scope and its instances, children not included.",
        kind: MetricKind::Gauge,
        summable: true,
        usable: false,
        get: |r| r.own.live_allocs,
    },
    RowFamily {
        name: "live_usable_bytes",
        help: "Bytes the backend reserved for the live allocations of the scope and its instances (size classes plus tags).",
        kind: MetricKind::Gauge,
        summable: true,
        usable: true,
        get: |r| r.own.live_usable_bytes,
    },
    RowFamily {
        name: "subtree_live_bytes",
        help: "Bytes requested by live allocations of the scope, its instances and every scope below them.",
        kind: MetricKind::Gauge,
        summable: false,
        usable: false,
        get: |r| r.with_children.live_bytes,
    },
    RowFamily {
        name: "peak_bytes",
        help: "Upper bound of the peak live bytes of the scope with its instances and children (recycled instances included).",
        kind: MetricKind::Gauge,
        summable: false,
        usable: false,
        get: |r| r.with_children.peak_bytes,
    },
    RowFamily {
        name: "live_instances",
        help: "Instances of the scope in use (made and not released yet): with none, the row's live bytes are held by released instances or the scope itself.",
        kind: MetricKind::Gauge,
        summable: false,
        usable: false,
        get: |r| r.instances,
    },
    RowFamily {
        name: "allocations",
        help: "Allocations ever made in the scope and its instances, recycled ones included (a realloc counts as a free and an allocation).",
        kind: MetricKind::Counter,
        summable: true,
        usable: false,
        get: |r| r.own.total_allocs,
    },
    RowFamily {
        name: "allocated_bytes",
        help: "Bytes requested by all allocations ever made in the scope and its instances.",
        kind: MetricKind::Counter,
        summable: true,
        usable: false,
        get: |r| r.own.total_bytes,
    },
    RowFamily {
        name: "frees",
        help: "Frees of the allocations of the scope and its instances, by any thread in any scope.",
        kind: MetricKind::Counter,
        summable: true,
        usable: false,
        get: |r| r.own.total_frees,
    },
    RowFamily {
        name: "freed_bytes",
        help: "Requested bytes of the frees of the allocations of the scope and its instances.",
        kind: MetricKind::Counter,
        summable: true,
        usable: false,
        get: |r| r.own.total_freed_bytes,
    },
];

/// What else the series include.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Extras {
    /// The `sampled_sites` / `recorded_sites` gauges (the report carries
    /// its sites).
    pub(crate) sites: bool,
}

/// Every family of `report` under `opts`, names without the prefix
/// `alloc_tracker_`.
pub(crate) fn families(report: &Report, opts: &SeriesOptions, extras: Extras) -> Vec<Family> {
    let (own, other) = select(report, opts);
    let usable = report.usable_sizes_counted();
    let mut out = Vec::new();
    for f in ROW_FAMILIES.iter().filter(|f| usable || !f.usable) {
        let mut samples: Vec<(Vec<(&'static str, String)>, i64)> = own
            .iter()
            .map(|r| (vec![("scope", r.path.clone())], (f.get)(r) as i64))
            .collect();
        if f.summable && !other.is_empty() {
            let sum: u64 = other.iter().map(|r| (f.get)(r)).sum();
            samples.push((vec![("scope", OTHER_SCOPE.to_string())], sum as i64));
        }
        out.push(Family {
            name: f.name.to_string(),
            help: f.help,
            kind: f.kind,
            samples,
        });
    }
    instance_families(report, opts, &mut out);
    let single = |name: &str, help: &'static str, v: i64| Family {
        name: name.to_string(),
        help,
        kind: MetricKind::Gauge,
        samples: vec![(Vec::new(), v)],
    };
    out.push(single(
        "tracked_live_bytes",
        "Bytes requested by all live allocations the tracker counted.",
        report.tracked.live_bytes as i64,
    ));
    out.push(single(
        "overhead_live_bytes",
        "Live bytes of the tracker's own allocations: live_bytes of the alloc-tracker scope.",
        report.overhead_live_bytes() as i64,
    ));
    out.push(single(
        "scopes",
        "Rows (static scopes, instances folded in) that ever allocated.",
        (own.len() + other.len()) as i64,
    ));
    out.push(single(
        "other_scopes",
        "Rows summed into the scope=\"[other]\" series instead of exported on their own.",
        other.len() as i64,
    ));
    if extras.sites {
        let sampled = report
            .sites
            .iter()
            .filter(|s| s.source == SiteSource::Sampled)
            .count();
        out.push(single(
            "sampled_sites",
            "Sampled call sites of live memory in the report.",
            sampled as i64,
        ));
        out.push(single(
            "recorded_sites",
            "Call sites recorded by leak checks and added to the report.",
            (report.sites.len() - sampled) as i64,
        ));
    }
    if let Some(j) = &report.jemalloc {
        for (name, help, v) in [
            (
                "allocated",
                "jemalloc, process-wide: Bytes in live allocations (stats.allocated).",
                j.allocated,
            ),
            (
                "active",
                "jemalloc, process-wide: Bytes in active pages (stats.active).",
                j.active,
            ),
            (
                "resident",
                "jemalloc, process-wide: Bytes in physically resident pages (stats.resident).",
                j.resident,
            ),
            (
                "mapped",
                "jemalloc, process-wide: Bytes in active extents mapped by jemalloc (stats.mapped).",
                j.mapped,
            ),
            (
                "retained",
                "jemalloc, process-wide: Bytes of virtual memory retained for reuse (stats.retained).",
                j.retained,
            ),
            (
                "metadata",
                "jemalloc, process-wide: Bytes of jemalloc's own metadata (stats.metadata).",
                j.metadata,
            ),
        ] {
            out.push(single(&format!("jemalloc_{name}_bytes"), help, v as i64));
        }
        out.push(single(
            "untracked_bytes",
            "jemalloc's allocated bytes minus the tracker's live bytes (usable bytes if counted, else requested bytes): bytes in no live tracked block, mostly free blocks held in thread caches (alloc_tracker_jemalloc_cached_bytes); the rest is live memory the tracker did not count.",
            j.untracked_bytes,
        ));
        out.push(single(
            "jemalloc_cached_bytes",
            "jemalloc, process-wide: free blocks held in thread caches for reuse, the tracker's per-(thread, scope) tcaches included (stats.arenas.<all>.tcache_bytes); counted in jemalloc_allocated_bytes.",
            j.cached_bytes as i64,
        ));
    }
    out
}

/// The opt-in per-instance families.
fn instance_families(report: &Report, opts: &SeriesOptions, out: &mut Vec<Family>) {
    if opts.instances.is_empty() {
        return;
    }
    let mut picked: Vec<(&str, u64, &ScopeReport)> = Vec::new();
    for (kind, cap) in &opts.instances {
        let mut of_kind: Vec<(u64, &ScopeReport)> = report
            .scopes
            .iter()
            .filter(|s| is_instance(s) && kind_path(&s.path) == *kind)
            .filter_map(|s| {
                let last = s.path.rsplit('/').next()?;
                let serial = last[last.rfind('#')? + 1..].parse().ok()?;
                Some((serial, s))
            })
            .collect();
        of_kind.sort_by_key(|(serial, _)| *serial);
        picked.extend(
            of_kind
                .into_iter()
                .take(*cap)
                .map(|(serial, s)| (kind.as_str(), serial, s)),
        );
    }
    type Get = fn(&ScopeReport) -> u64;
    let fams: [(&str, &'static str, MetricKind, Get); 4] = [
        (
            "instance_live_bytes",
            "Bytes requested by live allocations of one instance and the scopes below it (opt-in, long-lived instances only).",
            MetricKind::Gauge,
            |s| s.with_children.live_bytes,
        ),
        (
            "instance_peak_bytes",
            "Upper bound of the peak live bytes of one instance with the scopes below it.",
            MetricKind::Gauge,
            |s| s.with_children.peak_bytes,
        ),
        (
            "instance_allocations",
            "Allocations made in one instance and the scopes below it.",
            MetricKind::Counter,
            |s| s.with_children.total_allocs,
        ),
        (
            "instance_allocated_bytes",
            "Bytes requested by the allocations made in one instance and the scopes below it.",
            MetricKind::Counter,
            |s| s.with_children.total_bytes,
        ),
    ];
    for (name, help, kind, get) in fams {
        out.push(Family {
            name: name.to_string(),
            help,
            kind,
            samples: picked
                .iter()
                .map(|(k, serial, s)| {
                    (
                        vec![
                            ("scope", (*k).to_string()),
                            ("instance", serial.to_string()),
                        ],
                        get(s) as i64,
                    )
                })
                .collect(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_numbers_fold_into_their_kind() {
        assert_eq!(kind_path("request#7/parse"), "request/parse");
        assert_eq!(kind_path("a/request#12"), "a/request");
        assert_eq!(kind_path("plain"), "plain");
        // Not an instance number: kept.
        assert_eq!(kind_path("odd#/x#y"), "odd#/x#y");
    }
}
