//! Tokio tasks that keep the scope of the code that spawned them.
//!
//! `tokio::spawn` runs its future on whatever worker picks it up, in
//! whatever scope that worker is in. [`spawn`] wraps the future with
//! [`in_alloc_scope`](crate::AllocScopeExt::in_alloc_scope) for the scope
//! current at the call, so the task allocates in it on every poll, on any
//! worker, and frees its state in it when cancelled. A task spawned with
//! [`spawn`] from inside such a task inherits the scope again (nested
//! spawns); a plain `tokio::spawn` does not.
//!
//! ```
//! # #[global_allocator]
//! # static A: alloc_tracker::TrackingAlloc<alloc_tracker::Jemalloc> =
//! #     alloc_tracker::TrackingAlloc::new(alloc_tracker::Jemalloc);
//! use alloc_tracker::integrations::tokio::spawn;
//! use alloc_tracker::{Scope, ScopeId};
//!
//! static HANDLER: Scope = Scope::new("doc-handler");
//! let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
//! let scope = rt.block_on(async {
//!     let task = HANDLER.in_scope(|| spawn(async { ScopeId::current() }));
//!     task.await.unwrap()
//! });
//! assert_eq!(scope, HANDLER.id());
//! ```
//!
//! See the crate documentation's "Tokio and rayon" section for the
//! runtime's own lazily allocated state (warm the runtime up before a leak
//! check).

use std::future::Future;

use ::tokio::task::JoinHandle;

use crate::{AllocScopeExt, InScope, ScopeId};

/// `tokio::spawn`, the task running in the scope current now.
///
/// # Panics
/// As `tokio::spawn`: when called outside a tokio runtime.
#[track_caller]
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    ::tokio::spawn(fut.in_alloc_scope(ScopeId::current()))
}

/// `tokio::spawn`, the task running in `scope`.
///
/// # Panics
/// As `tokio::spawn`: when called outside a tokio runtime.
#[track_caller]
pub fn spawn_in<F>(scope: impl Into<ScopeId>, fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    ::tokio::spawn(fut.in_alloc_scope(scope))
}

/// `tokio::task::spawn_blocking`, the closure running in the scope current
/// now.
///
/// # Panics
/// As `tokio::task::spawn_blocking`: when called outside a tokio runtime.
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    ::tokio::task::spawn_blocking(ScopeId::current().bind(f))
}

/// The future `fut` in the scope current now: what [`spawn`] spawns, for
/// other executors' spawn functions (`JoinSet::spawn`, `LocalSet`).
pub fn in_current_scope<F: Future>(fut: F) -> InScope<F> {
    fut.in_alloc_scope(ScopeId::current())
}
