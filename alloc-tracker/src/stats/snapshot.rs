//! Plain-data snapshots of the counters.

use std::time::SystemTime;

use crate::hot::counters::{self, PEAK_SAMPLE_BYTES};
use crate::hot::thread_state;
use crate::scope::{registry, ScopeId};

/// One scope's figures at one moment (dhat's `HeapStats` vocabulary).
///
/// Requested bytes are what callers asked for; usable bytes are what the
/// backend reserved (jemalloc's size class of the request plus the 2-byte
/// tag), so `live_usable_bytes - live_bytes` is the size-class waste.
///
/// Live figures are exact whenever no allocation or free is in flight: they
/// are sums of per-thread counters with no batching. While other threads
/// run, a read may include a free's allocation but never a free without its
/// allocation, so live figures never go below zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ScopeStats {
    /// Bytes requested by allocations of this scope not yet freed.
    pub live_bytes: u64,
    /// Allocations of this scope not yet freed.
    pub live_allocs: u64,
    /// Bytes the backend reserved for those live allocations.
    pub live_usable_bytes: u64,
    /// Allocations ever made in this scope (a `realloc` counts as one free
    /// and one allocation, as jemalloc counts it).
    pub total_allocs: u64,
    /// Bytes requested by all those allocations.
    pub total_bytes: u64,
    /// Bytes the backend reserved for all those allocations.
    pub total_usable_bytes: u64,
    /// Frees of this scope's allocations, by any thread in any scope.
    pub total_frees: u64,
    /// Requested bytes of those frees.
    pub total_freed_bytes: u64,
    /// Highest live byte count seen.
    ///
    /// Precision: it is a lower bound of the true peak and misses it by
    /// less than 64 KiB (`PEAK_SAMPLE_BYTES`) per thread that allocated in
    /// the scope around the peak. Each thread re-samples the scope's live
    /// bytes after every 64 KiB it allocates there, and every `stats()`
    /// read samples too; an allocation of 64 KiB or more is always seen.
    ///
    /// For [`ScopeId::stats_with_children`] (and every `with_children`
    /// figure of snapshots and reports) it is an upper bound of the
    /// subtree's peak, also after instances were recycled: the scope's own
    /// peak, plus the bounds of its static children, plus for its
    /// instances the most that were ever unrecycled at once times the
    /// highest peak any of them reached (an instance's sampled peak plus
    /// one sampling step, capped by the bytes it ever allocated: a true
    /// bound for instances used by one thread at a time, as a request's
    /// is). A kind that served 10,000 requests, at most 64 at a time and
    /// none above 90 KB, reads at most its own peak plus 64 × 90 KB.
    pub peak_bytes: u64,
}

/// How far `peak_bytes` may be below the true peak, per allocating thread.
pub const PEAK_PRECISION_BYTES: u64 = PEAK_SAMPLE_BYTES;

impl ScopeStats {
    /// `id`'s own figures since it was (re)assigned.
    pub(crate) fn own(id: ScopeId) -> Self {
        let (baseline, _) = registry::baseline_and_retired(id);
        Self::from_totals(id, counters::read(id).minus(&baseline))
    }

    /// `id`'s own figures plus the totals of the recycled scopes that were
    /// below it (their live figures were zero when they were folded in):
    /// what a subtree sum adds for `id`.
    pub(crate) fn own_with_retired(id: ScopeId) -> Self {
        Self::own_and_with_retired(id).1
    }

    /// [`own`](Self::own) and [`own_with_retired`](Self::own_with_retired)
    /// from one read of the counters.
    pub(crate) fn own_and_with_retired(id: ScopeId) -> (Self, Self) {
        let (baseline, retired) = registry::baseline_and_retired(id);
        let own = Self::from_totals(id, counters::read(id).minus(&baseline));
        let mut s = own;
        s.total_allocs += retired.allocs;
        s.total_bytes += retired.alloc_bytes;
        s.total_usable_bytes += retired.alloc_usable;
        s.total_frees += retired.frees;
        s.total_freed_bytes += retired.free_bytes;
        (own, s)
    }

    /// The totals of recycled scopes as figures (nothing live).
    pub(crate) fn recycled(t: &counters::Totals) -> Self {
        ScopeStats {
            total_allocs: t.allocs,
            total_bytes: t.alloc_bytes,
            total_usable_bytes: t.alloc_usable,
            total_frees: t.frees,
            total_freed_bytes: t.free_bytes,
            ..ScopeStats::default()
        }
    }

    fn from_totals(id: ScopeId, t: counters::Totals) -> Self {
        let live_bytes = t.live_bytes();
        let peak = crate::hot::per_scope::peak(id);
        let peak_bytes = peak
            .fetch_max(live_bytes, std::sync::atomic::Ordering::Relaxed)
            .max(live_bytes);
        ScopeStats {
            live_bytes,
            live_allocs: t.live_allocs(),
            live_usable_bytes: t.live_usable(),
            total_allocs: t.allocs,
            total_bytes: t.alloc_bytes,
            total_usable_bytes: t.alloc_usable,
            total_frees: t.frees,
            total_freed_bytes: t.free_bytes,
            peak_bytes,
        }
    }

    pub(crate) fn sum(members: impl Iterator<Item = ScopeStats>) -> Self {
        members.fold(ScopeStats::default(), |a, b| ScopeStats {
            live_bytes: a.live_bytes + b.live_bytes,
            live_allocs: a.live_allocs + b.live_allocs,
            live_usable_bytes: a.live_usable_bytes + b.live_usable_bytes,
            total_allocs: a.total_allocs + b.total_allocs,
            total_bytes: a.total_bytes + b.total_bytes,
            total_usable_bytes: a.total_usable_bytes + b.total_usable_bytes,
            total_frees: a.total_frees + b.total_frees,
            total_freed_bytes: a.total_freed_bytes + b.total_freed_bytes,
            peak_bytes: a.peak_bytes + b.peak_bytes,
        })
    }
}

/// One scope in a [`Snapshot`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ScopeSnapshot {
    /// The scope.
    pub id: ScopeId,
    /// Its own name.
    pub name: &'static str,
    /// Its names from the root, joined with `/`.
    pub path: String,
    /// Its parent.
    pub parent: Option<ScopeId>,
    /// Its own figures.
    pub own: ScopeStats,
    /// Its figures including all scopes below it (and the totals of
    /// recycled instances that were below it).
    pub with_children: ScopeStats,
    /// Released while it still held blocks: kept until they are freed
    /// (see [`ScopeInstance`](crate::ScopeInstance)).
    pub released: bool,
    /// For a transient scope, the static scope it stands for: the kind of
    /// an instance (`request` for `request#7`), the static child a scope
    /// below an instance was made for (`request/parse` for
    /// `request#7/parse`).
    pub kind: Option<ScopeId>,
    /// The work of transient scopes of this kind that were recycled (their
    /// live figures were zero): counted in `with_children`, listed nowhere
    /// else. Its `peak_bytes` is the highest own peak one of them reached.
    pub recycled: ScopeStats,
    /// How many transient scopes were folded into `recycled`.
    pub recycled_count: u64,
}

/// Every scope's figures, read one after the other, plus jemalloc's process
/// figures when that backend is compiled in.
///
/// ```
/// let snap = scope_alloc_tracker::Snapshot::take();
/// assert!(snap.scopes.iter().any(|s| s.name == "unscoped"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Snapshot {
    /// When the snapshot was taken.
    pub taken_at: SystemTime,
    /// All registered scopes, built-in ones first, in id order.
    pub scopes: Vec<ScopeSnapshot>,
    /// Sum of every scope's own figures: everything this tracker counted
    /// (recycled scopes' totals included).
    pub tracked: ScopeStats,
    /// Static scopes that were first used when the scope table was full
    /// and so count in [`ScopeId::OVERFLOW`] (each is also reported once on
    /// standard error).
    pub overflowed_scopes: u32,
    /// jemalloc's own figures, if available.
    #[cfg(feature = "jemalloc")]
    pub jemalloc: Option<super::JemallocStats>,
}

impl Snapshot {
    /// Reads all scopes. Its allocations are charged to
    /// [`ScopeId::INTERNAL`].
    pub fn take() -> Snapshot {
        thread_state::internal(|| {
            #[cfg(feature = "jemalloc")]
            let jemalloc = super::JemallocStats::read().ok();
            let ids: Vec<ScopeId> = registry::all();
            let (own, with_retired): (Vec<ScopeStats>, Vec<ScopeStats>) = ids
                .iter()
                .map(|&id| ScopeStats::own_and_with_retired(id))
                .unzip();
            let parents: Vec<Option<ScopeId>> = ids.iter().map(|id| id.parent()).collect();
            // Each scope's figures are added to itself and its ancestors.
            let mut pos = vec![usize::MAX; crate::MAX_SCOPES];
            for (i, id) in ids.iter().enumerate() {
                pos[id.index()] = i;
            }
            let bounds = registry::peak_bounds();
            let mut with_children = vec![ScopeStats::default(); ids.len()];
            for (i, st) in with_retired.iter().enumerate() {
                let mut at = Some(i);
                let mut steps = 0;
                while let Some(j) = at {
                    with_children[j] = ScopeStats::sum([with_children[j], *st].into_iter());
                    steps += 1;
                    at = parents[j]
                        .map(|p| pos[p.index()])
                        .filter(|&k| k != usize::MAX && steps <= ids.len());
                }
            }
            let scopes = ids
                .iter()
                .zip(&own)
                .zip(with_children)
                .map(|((&id, &own_stats), mut with_children)| {
                    with_children.peak_bytes = bounds
                        .get(id.index())
                        .copied()
                        .unwrap_or(with_children.peak_bytes)
                        .max(with_children.live_bytes);
                    let (recycled_count, retired, recycled_peak) = registry::recycled(id);
                    ScopeSnapshot {
                        id,
                        name: id.name(),
                        path: id.path(),
                        parent: id.parent(),
                        own: own_stats,
                        with_children,
                        released: id.is_released(),
                        kind: registry::info(id).and_then(|i| i.kind),
                        recycled: ScopeStats {
                            peak_bytes: recycled_peak,
                            ..ScopeStats::recycled(&retired)
                        },
                        recycled_count,
                    }
                })
                .collect();
            Snapshot {
                taken_at: SystemTime::now(),
                scopes,
                tracked: ScopeStats::sum(with_retired.into_iter()),
                overflowed_scopes: registry::overflowed(),
                #[cfg(feature = "jemalloc")]
                jemalloc,
            }
        })
    }

    /// The entry of `id`, if it was registered when the snapshot was taken.
    pub fn scope(&self, id: ScopeId) -> Option<&ScopeSnapshot> {
        self.scopes.iter().find(|s| s.id == id)
    }
}
