//! Exact per-scope allocation accounting as a drop-in `#[global_allocator]`.
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[allow(unsafe_code)]
mod allocator;
mod error;
mod sampling;
mod scope;
mod stats;
mod thread_state;

pub use allocator::{Backend, TrackingAlloc, UsableSizes};
#[cfg(feature = "jemalloc")]
pub use allocator::Jemalloc;
pub use error::ScopeTableFull;
pub use scope::{AllocScopeExt, InScope, Scope, ScopeGuard, ScopeId, MAX_SCOPES};
#[cfg(feature = "jemalloc")]
pub use stats::JemallocStats;
pub use stats::{ScopeSnapshot, ScopeStats, Snapshot};

#[cfg(all(test, feature = "jemalloc"))]
#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);
