//! Numbers: the per-thread counter shards, the plain snapshots read from
//! them, and jemalloc's own process figures for comparison.

pub(crate) mod counters;
#[cfg(feature = "jemalloc")]
mod jemalloc;
mod snapshot;

#[cfg(feature = "jemalloc")]
pub use jemalloc::JemallocStats;
pub use snapshot::{ScopeSnapshot, ScopeStats, Snapshot, PEAK_PRECISION_BYTES};
