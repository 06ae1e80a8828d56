//! The report model: one snapshot of the process as plain data.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::budget::BudgetStatus;
use crate::hot::thread_state;
use crate::leak::LeakReport;
use crate::sampling::{self, Frame};
use crate::scope::ScopeId;
use crate::stats::{ScopeStats, Snapshot};

/// Version of the report's data layout, written as `schema_version` in
/// every JSON report. It changes when a field changes meaning or is removed;
/// readers refuse other versions.
pub const SCHEMA_VERSION: u32 = 1;

/// One snapshot of the process: every scope as a tree, the call sites known
/// for each scope, the budgets and their events, jemalloc's own figures and
/// the tracker's overhead.
///
/// Take one with [`Report::take`]; render it with the `write_*`/`to_*`
/// methods or [`Report::write_format`]; compare two with [`Report::diff`].
/// `Display` is the human table ([`Report::write_text`]).
///
/// Built by hand (tests, tools reading JSON), start from
/// [`Report::default`] and push [`ScopeReport::new`]s and
/// [`SiteReport::new`]s.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Report {
    /// [`SCHEMA_VERSION`] of the code that made the report.
    pub schema_version: u32,
    /// When the report was taken, in milliseconds since the Unix epoch.
    pub timestamp_unix_ms: u64,
    /// The process id of the process it describes.
    pub pid: u32,
    /// Every registered scope, built-in ones first, in id order.
    pub scopes: Vec<ScopeReport>,
    /// Sum of every scope's own figures: everything the tracker counted
    /// (its own overhead included).
    pub tracked: ScopeStats,
    /// The tracker's own allocations: the figures of
    /// [`ScopeId::INTERNAL`] (dynamic scope names, sampled stacks, site
    /// tables, reports), the same read as the `alloc-tracker` row of
    /// [`scopes`](Self::scopes).
    pub overhead: ScopeStats,
    /// Call sites of live memory: sampled sites (estimated bytes) and the
    /// recorded sites of leak reports added with [`Report::add_leak`],
    /// most bytes first within each kind.
    pub sites: Vec<SiteReport>,
    /// jemalloc's own process figures; `None` without the `jemalloc`
    /// feature or when its statistics could not be read.
    pub jemalloc: Option<JemallocFigures>,
    /// Every scope with a budget ([`crate::budget`]) when the report was
    /// taken, in id order: its limits, live bytes and crossings. Empty when
    /// no budget is set, and in JSON reports written before budgets were
    /// reported (the field is optional there).
    #[cfg_attr(feature = "serde", serde(default))]
    pub budgets: Vec<BudgetReport>,
}

/// One budgeted scope of a [`Report`]: a [`BudgetStatus`] with the scope's
/// path (flattened into one object in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct BudgetReport {
    /// Path of the budgeted scope.
    pub scope: String,
    /// The budget's limits, live bytes, crossings and refusals when the
    /// report was taken.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub status: BudgetStatus,
}

impl BudgetReport {
    /// A budget entry for the scope at `path` with the given status.
    pub fn new(path: impl Into<String>, status: &BudgetStatus) -> BudgetReport {
        BudgetReport {
            scope: path.into(),
            status: *status,
        }
    }
}

/// One scope of a [`Report`].
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ScopeReport {
    /// Raw scope id ([`ScopeId::as_u16`]); only meaningful within one
    /// process run. Compare reports by [`path`](Self::path).
    pub id: u16,
    /// The scope's own name.
    pub name: String,
    /// Its names from the root, joined with `/`.
    pub path: String,
    /// Raw id of its parent.
    pub parent: Option<u16>,
    /// Its own figures (children not included).
    pub own: ScopeStats,
    /// Its figures including every scope below it (peak: sum of peaks).
    pub with_children: ScopeStats,
    /// Released while it still held blocks (a transient scope kept until
    /// they are freed); its `name` then ends with ` (released)`.
    #[cfg_attr(feature = "serde", serde(default))]
    pub released: bool,
    /// For a transient scope, the raw id of the static scope it stands
    /// for (see [`ScopeSnapshot::kind`](crate::ScopeSnapshot::kind)).
    #[cfg_attr(feature = "serde", serde(default))]
    pub kind: Option<u16>,
    /// The totals of this scope's recycled instances (transient scopes of
    /// this kind whose ids were recycled), listed nowhere else. With them,
    /// `with_children` is exactly `own + recycled + the with_children of
    /// every scope whose parent this is`; its `peak_bytes` is the highest
    /// own peak one of them reached.
    #[cfg_attr(feature = "serde", serde(default))]
    pub recycled: ScopeStats,
    /// How many recycled instances `recycled` sums.
    #[cfg_attr(feature = "serde", serde(default))]
    pub recycled_count: u64,
}

impl ScopeReport {
    /// A scope entry with all figures zero; `name` is the last segment of
    /// `path`.
    pub fn new(id: u16, path: impl Into<String>, parent: Option<u16>) -> ScopeReport {
        let path = path.into();
        let name = path.rsplit('/').next().unwrap_or_default().to_string();
        ScopeReport {
            id,
            name,
            path,
            parent,
            own: ScopeStats::default(),
            with_children: ScopeStats::default(),
            released: false,
            kind: None,
            recycled: ScopeStats::default(),
            recycled_count: 0,
        }
    }
}

/// Where a [`SiteReport`]'s figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum SiteSource {
    /// Byte-interval sampling ([`sampling::set_sampling`]): `bytes` is an
    /// unbiased estimate of the live bytes allocated at the site, `allocs`
    /// the number of live samples.
    #[default]
    Sampled,
    /// A leak check's exact records ([`LeakReport`]): `bytes` and `allocs`
    /// are exact counts of leaked allocations.
    Recorded,
}

/// Live memory of one call site in one scope.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct SiteReport {
    /// Path of the scope the allocations were made in.
    pub scope: String,
    /// Whether the figures are sampled estimates or exact records.
    pub source: SiteSource,
    /// Live bytes from this site (estimated when sampled).
    pub bytes: u64,
    /// Live samples (sampled) or live allocations (recorded).
    pub allocs: u64,
    /// The call stack, innermost frame first, allocator frames trimmed.
    pub frames: Vec<Frame>,
    /// For a recorded leak site whose check scanned: which of its blocks
    /// nothing points to and what holds the others
    /// ([`LeakSite::reach`](crate::leak::LeakSite::reach)).
    #[cfg_attr(feature = "serde", serde(default))]
    pub reach: Option<crate::leak::SiteReach>,
}

impl SiteReport {
    /// A site with the given function names, innermost first (no file or
    /// line information).
    pub fn new(
        scope: impl Into<String>,
        source: SiteSource,
        functions: &[&str],
        bytes: u64,
        allocs: u64,
    ) -> SiteReport {
        SiteReport {
            scope: scope.into(),
            source,
            bytes,
            allocs,
            frames: functions
                .iter()
                .map(|f| Frame {
                    function: (*f).to_string(),
                    file: None,
                    line: None,
                })
                .collect(),
            reach: None,
        }
    }

    /// The innermost frame that is program code rather than `std`/`core`/
    /// `alloc`, or the innermost frame.
    pub fn origin(&self) -> Option<&Frame> {
        crate::sampling::origin(&self.frames)
    }
}

/// What jemalloc's own process-wide figures are compared against to get
/// [`JemallocFigures::untracked_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum UntrackedBasis {
    /// The tracker's live usable bytes (size classes plus tags), counted
    /// when the allocator uses
    /// [`UsableSizes::Count`](crate::UsableSizes::Count): the same unit as
    /// jemalloc's `allocated`.
    #[default]
    UsableBytes,
    /// The tracker's live *requested* bytes, because usable bytes were not
    /// counted ([`UsableSizes::Skip`](crate::UsableSizes::Skip)); the
    /// difference then also includes size-class rounding of tracked blocks.
    RequestedBytes,
}

/// jemalloc's process-wide statistics beside the tracker's total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct JemallocFigures {
    /// `stats.allocated`: bytes in live allocations (usable sizes), ours
    /// and everyone else's.
    pub allocated: u64,
    /// `stats.active`: bytes in active pages.
    pub active: u64,
    /// `stats.resident`: bytes in physically resident pages.
    pub resident: u64,
    /// `stats.mapped`: bytes in active extents mapped by jemalloc.
    pub mapped: u64,
    /// `stats.retained`: bytes of virtual memory retained for reuse.
    pub retained: u64,
    /// `stats.metadata`: bytes of jemalloc's own metadata.
    pub metadata: u64,
    /// `stats.arenas.<all>.tcache_bytes`: free blocks held in thread
    /// caches for reuse, the threads' own tcaches and the tracker's
    /// per-(thread, scope) tcaches of its scope arenas. jemalloc counts
    /// them in `allocated`; no program holds them. 0 in reports written
    /// before this figure was read.
    #[cfg_attr(feature = "serde", serde(default))]
    pub cached_bytes: u64,
    /// `allocated` minus the tracker's live bytes in the unit named by
    /// [`untracked_basis`](Self::untracked_basis): bytes jemalloc counts as
    /// allocated that are in no live tracked block. Mostly
    /// [`cached_bytes`](Self::cached_bytes) (free blocks in thread caches,
    /// which the tracker's per-scope tcaches multiply); the rest,
    /// [`untracked_live_bytes`](Self::untracked_live_bytes), is live
    /// memory the tracker did not count (allocations made before it was
    /// installed, C code calling jemalloc directly, …). With
    /// [`UntrackedBasis::RequestedBytes`] it also includes the size-class
    /// rounding of tracked blocks. It can be slightly negative: the
    /// figures are read one after the other while other threads allocate,
    /// and the tracker computes usable sizes arithmetically from
    /// jemalloc's size classes rather than asking jemalloc.
    pub untracked_bytes: i64,
    /// Which tracker figure `untracked_bytes` was computed from.
    pub untracked_basis: UntrackedBasis,
}

impl JemallocFigures {
    /// Fills in the untracked difference of jemalloc's `allocated` against
    /// the tracker's `tracked` figures.
    #[cfg_attr(not(feature = "jemalloc"), allow(dead_code))]
    fn compare(mut self, tracked: &ScopeStats) -> Self {
        let (basis, ours) = if tracked.live_usable_bytes > 0 || tracked.total_usable_bytes > 0 {
            (UntrackedBasis::UsableBytes, tracked.live_usable_bytes)
        } else {
            (UntrackedBasis::RequestedBytes, tracked.live_bytes)
        };
        self.untracked_basis = basis;
        self.untracked_bytes = self.allocated as i64 - ours as i64;
        self
    }

    /// [`untracked_bytes`](Self::untracked_bytes) less the free blocks in
    /// thread caches ([`cached_bytes`](Self::cached_bytes)): live memory
    /// jemalloc handed out that the tracker did not count.
    pub fn untracked_live_bytes(&self) -> i64 {
        self.untracked_bytes - self.cached_bytes as i64
    }
}

// === impl Report ===

impl Report {
    /// Reads every scope, the sampled sites, the budgets and jemalloc's
    /// figures.
    ///
    /// Everything it allocates is charged to [`ScopeId::INTERNAL`], so
    /// taking a report does not change the figures of the scopes it
    /// reports on.
    pub fn take() -> Report {
        thread_state::internal(|| {
            let overhead = ScopeId::INTERNAL.stats();
            let snap = Snapshot::take();
            let sites = sampling::sampled_sites()
                .into_iter()
                .map(|s| SiteReport {
                    scope: s.scope.path(),
                    source: SiteSource::Sampled,
                    bytes: s.estimated_bytes,
                    allocs: s.samples,
                    frames: s.frames,
                    reach: None,
                })
                .collect();
            let budgets = crate::budget::budgets()
                .into_iter()
                .map(|(scope, status)| BudgetReport::new(scope.path(), &status))
                .collect();
            let mut report = Report::from_parts(snap, sites, overhead);
            report.budgets = budgets;
            // The header's overhead is the `alloc-tracker` row of the same
            // snapshot, so that every format shows one figure.
            report.overhead = report.overhead_own();
            report
        })
    }

    /// Every scope and jemalloc's figures, without sites or budgets: what
    /// a metrics scrape needs, without symbolising anything.
    #[cfg_attr(not(feature = "prometheus-client"), allow(dead_code))]
    pub(crate) fn without_sites() -> Report {
        thread_state::internal(|| {
            let overhead = ScopeId::INTERNAL.stats();
            Report::from_parts(Snapshot::take(), Vec::new(), overhead)
        })
    }

    /// The `alloc-tracker` row's own figures, or [`Report::overhead`] when
    /// the report has no such row.
    fn overhead_own(&self) -> ScopeStats {
        self.scopes
            .iter()
            .find(|s| s.id == ScopeId::INTERNAL.as_u16() && s.path == "alloc-tracker")
            .map_or(self.overhead, |s| s.own)
    }

    fn from_parts(snap: Snapshot, sites: Vec<SiteReport>, overhead: ScopeStats) -> Report {
        let timestamp_unix_ms = snap
            .taken_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        #[cfg(feature = "jemalloc")]
        let jemalloc = snap.jemalloc.map(|j| {
            JemallocFigures {
                allocated: j.allocated,
                active: j.active,
                resident: j.resident,
                mapped: j.mapped,
                retained: j.retained,
                metadata: j.metadata,
                cached_bytes: j.tcache_bytes,
                ..JemallocFigures::default()
            }
            .compare(&snap.tracked)
        });
        #[cfg(not(feature = "jemalloc"))]
        let jemalloc = None;
        let scopes = snap
            .scopes
            .into_iter()
            .map(|s| ScopeReport {
                id: s.id.as_u16(),
                // The path's last segment: `checkpoint#12` for an instance.
                name: match (s.path.rsplit('/').next().unwrap_or(s.name), s.released) {
                    (last, true) => format!("{last} (released)"),
                    (last, false) => last.to_string(),
                },
                path: s.path,
                parent: s.parent.map(ScopeId::as_u16),
                own: s.own,
                with_children: s.with_children,
                released: s.released,
                kind: s.kind.map(ScopeId::as_u16),
                recycled: s.recycled,
                recycled_count: s.recycled_count,
            })
            .collect();
        Report {
            schema_version: SCHEMA_VERSION,
            timestamp_unix_ms,
            pid: std::process::id(),
            scopes,
            tracked: snap.tracked,
            overhead,
            sites,
            jemalloc,
            budgets: Vec::new(),
        }
    }

    /// Adds the recorded sites of a leak check's report
    /// ([`SiteSource::Recorded`]).
    pub fn add_leak(&mut self, leak: &LeakReport) {
        thread_state::internal(|| {
            self.sites.extend(leak.sites.iter().map(|s| SiteReport {
                scope: s.scope.clone(),
                source: SiteSource::Recorded,
                bytes: s.bytes,
                allocs: s.allocs,
                frames: s.frames.clone(),
                reach: s.reach.clone(),
            }));
        })
    }

    /// [`add_leak`](Self::add_leak) in builder style.
    #[must_use]
    pub fn with_leak(mut self, leak: &LeakReport) -> Report {
        self.add_leak(leak);
        self
    }

    /// The first scope with this path.
    pub fn scope(&self, path: &str) -> Option<&ScopeReport> {
        self.scopes.iter().find(|s| s.path == path)
    }

    /// The budget of the scope with this path, if it had one.
    pub fn budget(&self, path: &str) -> Option<&BudgetReport> {
        self.budgets.iter().find(|b| b.scope == path)
    }

    /// The sites of the scope with this path.
    pub fn sites_in<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a SiteReport> + 'a {
        self.sites.iter().filter(move |s| s.scope == path)
    }

    /// When the report was taken.
    pub fn taken_at(&self) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_millis(self.timestamp_unix_ms)
    }

    /// The scopes in tree order: each scope followed by its children,
    /// siblings by live bytes including children, largest first. Returns
    /// each scope with its depth (0 for roots). Scopes whose parent is
    /// missing from the report are treated as roots.
    pub fn tree(&self) -> Vec<(usize, &ScopeReport)> {
        let known = |id: u16| self.scopes.iter().any(|s| s.id == id);
        let key = |s: &&ScopeReport| (std::cmp::Reverse(s.with_children.live_bytes), s.id);
        let mut roots: Vec<&ScopeReport> = self
            .scopes
            .iter()
            .filter(|s| s.parent.is_none_or(|p| !known(p) || p == s.id))
            .collect();
        roots.sort_by_key(key);
        let mut out = Vec::with_capacity(self.scopes.len());
        let mut stack: Vec<(usize, &ScopeReport)> =
            roots.into_iter().rev().map(|s| (0, s)).collect();
        while let Some((depth, s)) = stack.pop() {
            if out.len() > self.scopes.len() {
                break; // a cycle in hand-made data
            }
            out.push((depth, s));
            let mut children: Vec<&ScopeReport> = self
                .scopes
                .iter()
                .filter(|c| c.parent == Some(s.id) && c.id != s.id)
                .collect();
            children.sort_by_key(key);
            stack.extend(children.into_iter().rev().map(|c| (depth + 1, c)));
        }
        out
    }
}
