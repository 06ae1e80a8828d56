//! Exact per-scope allocation accounting as a drop-in `#[global_allocator]`.
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[allow(unsafe_code)]
mod allocator;
mod error;
pub mod leak;
pub mod sampling;
mod scope;
mod stats;
mod thread_state;

#[cfg(feature = "jemalloc")]
pub use allocator::Jemalloc;
pub use allocator::{Backend, TrackingAlloc, UsableSizes};
pub use error::ScopeTableFull;
pub use sampling::Frame;
pub use scope::{AllocScopeExt, InScope, Scope, ScopeGuard, ScopeId, MAX_SCOPES};
#[cfg(feature = "jemalloc")]
pub use stats::JemallocStats;
pub use stats::{ScopeSnapshot, ScopeStats, Snapshot, PEAK_PRECISION_BYTES};

#[cfg(all(test, feature = "jemalloc"))]
#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);
