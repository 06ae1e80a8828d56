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
//! # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
//! #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
//! use scope_alloc_tracker::integrations::tokio::spawn;
//! use scope_alloc_tracker::{Scope, ScopeId};
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
//! **Warm-up.** A runtime allocates some of its own state lazily, per
//! worker (the defer list of tasks that yield, queues, the blocking pool's
//! first thread), charged to whatever scope is current when it happens.
//! [`warm_up`] (from outside the runtime) or [`warm_up_async`] (from a task)
//! makes it exist before a leak check: one task per worker held together by
//! a barrier, so that every worker runs one, each yielding a few times,
//! and one `spawn_blocking`. Tasks that only yield, without the barrier,
//! may all run on one or two workers and leave the others cold: their
//! lazy state is then made during a check and charged to its scope
//! (figures in `docs/attribution.md`, "Runtimes' own state").
//! `#[scope_alloc_tracker::test(tokio)]` calls it for its runtime.

use std::future::Future;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ::tokio::runtime::Handle;
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

/// Tasks each warm-up task spawns on its worker, each yielding twice: more
/// than a worker polls between two parks.
const YIELDING_TASKS: usize = 128;

/// How long [`warm_up`] waits for every worker to take part.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`warm_up`] waits for a task to start before it spawns another
/// (an empty one) to wake a worker again.
const NUDGE_AFTER: Duration = Duration::from_millis(50);

/// [`warm_up`] could not run a task on every worker in time (a worker
/// blocked by other work, or `warm_up` called on a worker thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WarmUpIncomplete {
    /// Workers of the runtime.
    pub workers: usize,
    /// Warm-up tasks that finished before the timeout.
    pub finished: usize,
}

impl std::fmt::Display for WarmUpIncomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the tokio runtime's warm-up ran {} of {} worker tasks within {:?}: a worker is blocked \
             (call `warm_up` from outside the runtime, or `warm_up_async` from a task)",
            self.finished, self.workers, WARM_UP_TIMEOUT
        )
    }
}

impl std::error::Error for WarmUpIncomplete {}

/// A count that threads wait on until it reaches a target, with a timeout
/// (a `std::sync::Barrier` would wait forever if a worker never came).
struct Count {
    n: Mutex<usize>,
    changed: Condvar,
}

impl Count {
    fn new() -> Arc<Count> {
        Arc::new(Count {
            n: Mutex::new(0),
            changed: Condvar::new(),
        })
    }

    fn add(&self) {
        *self.n.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.changed.notify_all();
    }

    /// Waits until the count is at least `target` or `deadline` passes;
    /// the count then.
    fn wait_for(&self, target: usize, deadline: Instant) -> usize {
        let mut n = self.n.lock().unwrap_or_else(PoisonError::into_inner);
        while *n < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            n = self
                .changed
                .wait_timeout(n, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *n
    }
}

/// Makes the runtime behind `handle` allocate its lazily made per-worker
/// state now: one task per worker, spawned one at a time and held
/// together by a barrier (so that each worker runs one; a blocked worker
/// cannot take a second), each then spawning 128 tasks that yield twice
/// (the defer list of tasks that yield grows to the most one tick holds),
/// twice over, then one `spawn_blocking`.
/// Call it before a leak check, outside the checked scope, from a thread
/// that is not one of the runtime's workers (the test's thread before
/// `block_on`); from inside a task use [`warm_up_async`].
///
/// ```
/// # #[global_allocator]
/// # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
/// #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
/// use scope_alloc_tracker::integrations::tokio::{spawn, warm_up};
/// use scope_alloc_tracker::{assert_scope_drained, Scope};
///
/// static REQUEST: Scope = Scope::new("doc-request");
/// let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
/// warm_up(rt.handle()).unwrap();
/// rt.block_on(assert_scope_drained!(instance of &REQUEST, async move {
///     spawn(async { vec![0u8; 100].len() }).await.unwrap()
/// }));
/// ```
///
/// # Errors
/// [`WarmUpIncomplete`] when not every worker ran its task within 10 s.
pub fn warm_up(handle: &Handle) -> Result<(), WarmUpIncomplete> {
    let workers = handle.metrics().num_workers().max(1);
    let deadline = Instant::now() + WARM_UP_TIMEOUT;
    let nudged = Count::new();
    let mut nudges = 0;
    for _round in 0..2 {
        let arrived = Count::new();
        let finished = Count::new();
        for k in 0..workers {
            let (here, finished) = (arrived.clone(), finished.clone());
            drop(handle.spawn(async move {
                let arrived = here;
                // The barrier: this worker is busy until every worker has
                // a task, so the others must take theirs.
                arrived.add();
                arrived.wait_for(workers, deadline);
                // Many tasks yielding on this worker in one tick: its defer
                // list grows to the most a tick can hold (the worker parks,
                // draining it, every 61 polls), so no later burst of
                // yielding tasks grows it inside a check.
                let kids: Vec<_> = (0..YIELDING_TASKS)
                    .map(|_| {
                        ::tokio::spawn(async {
                            for _ in 0..2 {
                                ::tokio::task::yield_now().await;
                            }
                        })
                    })
                    .collect();
                for kid in kids {
                    let _ = kid.await;
                }
                finished.add();
            }));
            // One task at a time, each spawned once the last one holds its
            // worker: the injection queue then never holds two of them, so
            // no worker takes two in one batch into its own queue, where
            // a parked worker that nobody wakes would not steal the second
            // (spawned together, about one warm-up of 30 on a fresh
            // 2-worker runtime timed out so). A remote spawn while the
            // other workers are held should wake a parked one; when the
            // task has not started after `NUDGE_AFTER` (once in about
            // 10,000 warm-ups), an empty task spawned wakes one again.
            loop {
                let now = Instant::now();
                let wait_until = deadline.min(now + NUDGE_AFTER);
                if arrived.wait_for(k + 1, wait_until) > k || now >= deadline {
                    break;
                }
                nudges += 1;
                let nudged = nudged.clone();
                drop(handle.spawn(async move { nudged.add() }));
            }
        }
        let done = finished.wait_for(workers, deadline);
        if done < workers {
            return Err(WarmUpIncomplete {
                workers,
                finished: done,
            });
        }
    }
    if nudged.wait_for(nudges, deadline) < nudges {
        return Err(WarmUpIncomplete {
            workers,
            finished: workers,
        });
    }
    let blocked = Count::new();
    let b = blocked.clone();
    drop(handle.spawn_blocking(move || b.add()));
    if blocked.wait_for(1, deadline) < 1 {
        return Err(WarmUpIncomplete {
            workers,
            finished: workers,
        });
    }
    Ok(())
}

/// [`warm_up`] of the current runtime, from inside a task (a
/// `#[tokio::test(flavor = "multi_thread")]`): it runs on a blocking
/// thread, so that no worker is held waiting for the others.
///
/// ```
/// # #[global_allocator]
/// # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
/// #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
/// let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
/// rt.block_on(async {
///     scope_alloc_tracker::integrations::tokio::warm_up_async().await.unwrap();
/// });
/// ```
///
/// # Errors
/// [`WarmUpIncomplete`] as [`warm_up`].
///
/// # Panics
/// As `tokio::task::spawn_blocking`: when called outside a tokio runtime.
pub async fn warm_up_async() -> Result<(), WarmUpIncomplete> {
    let handle = Handle::current();
    let workers = handle.metrics().num_workers();
    ::tokio::task::spawn_blocking(move || warm_up(&handle))
        .await
        .unwrap_or(Err(WarmUpIncomplete {
            workers,
            finished: 0,
        }))
}
