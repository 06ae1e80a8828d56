//! Numbers: the per-thread counter shards, the plain snapshots read from
//! them, and jemalloc's own process figures for comparison.

#[cfg(feature = "jemalloc")]
mod jemalloc;
mod snapshot;

#[cfg(feature = "jemalloc")]
pub use jemalloc::JemallocStats;
pub use snapshot::{ScopeSnapshot, ScopeStats, Snapshot, PEAK_PRECISION_BYTES};

/// How many jemalloc arenas and tcaches [`Attribution::Hybrid`] has made,
/// and how often it had to fall back to a slower correct path (see
/// [`AttributionStats`]).
///
/// ```
/// use scope_alloc_tracker::{Jemalloc, Scope, TrackingAlloc};
///
/// #[global_allocator]
/// static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);
///
/// static CACHE: Scope = Scope::new("cache");
///
/// # fn main() {
/// // A 4096-byte buffer fills its size class: it goes to the scope's arena.
/// CACHE.in_scope(|| drop(std::hint::black_box(vec![0u8; 4096])));
/// let stats = scope_alloc_tracker::attribution_stats();
/// assert!(stats.arenas >= 1);
/// assert_eq!(stats.arena_failures, 0);
/// # }
/// ```
///
/// [`Attribution::Hybrid`]: crate::Attribution::Hybrid
/// [`AttributionStats`]: crate::AttributionStats
#[cfg(feature = "jemalloc")]
pub fn attribution_stats() -> crate::AttributionStats {
    crate::allocator::attribution_stats()
}
