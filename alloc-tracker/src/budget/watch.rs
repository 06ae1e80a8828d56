//! Budget watchers: callbacks run on a tracker thread that polls the
//! crossing counters, never on an allocating thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{budgets, BudgetStatus};
use crate::hot::budget::{HIGH, OWNERS};
use crate::hot::thread_state;
use crate::scope::{ScopeId, MAX_SCOPES};

/// A budgeted scope crossed its soft limit since the watcher last looked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetEvent {
    /// The scope.
    pub scope: ScopeId,
    /// Its budget's figures when the watcher looked (it may be back under
    /// the limit by then).
    pub status: BudgetStatus,
    /// Crossings since the previous look (usually 1).
    pub new_crossings: u64,
}

/// A running watcher; dropping it stops and joins the thread.
#[derive(Debug)]
#[must_use = "the watcher stops when this handle is dropped"]
pub struct BudgetWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for BudgetWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Starts a thread (`alloc-tracker-budget`) that looks at every budget
/// each `every` and calls `on_event` for each scope that crossed its soft
/// limit since the previous look. Crossings made before the watcher
/// started are not reported. The callback runs on that thread, in no
/// scope; the watcher's own bookkeeping is charged to the tracker's
/// internal scope.
///
/// ```
/// # #[global_allocator]
/// # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
/// #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
/// use std::time::Duration;
/// let watch = scope_alloc_tracker::budget::watch(Duration::from_millis(50), |e| {
///     eprintln!("{} is over its budget: {:?}", e.scope.path(), e.status);
/// })
/// .unwrap();
/// drop(watch); // stops it
/// ```
///
/// # Errors
/// The thread could not be spawned.
pub fn watch(
    every: Duration,
    mut on_event: impl FnMut(BudgetEvent) + Send + 'static,
) -> std::io::Result<BudgetWatch> {
    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("alloc-tracker-budget".into())
        .spawn(move || {
            // Per index: the scope's owner count and the crossings seen
            // (a recycled id's new scope counts crossings from 0).
            let mut seen: Vec<(u32, u64)> = thread_state::internal(|| vec![(0, 0); MAX_SCOPES]);
            let owner = |i: usize| OWNERS[i].load(Ordering::Acquire);
            for (s, b) in thread_state::internal(budgets) {
                seen[s.index()] = (owner(s.index()), b.crossings);
            }
            while !stop_flag.load(Ordering::Relaxed) {
                std::thread::park_timeout(every);
                if stop_flag.load(Ordering::Relaxed) {
                    break;
                }
                let high = HIGH.load(Ordering::Relaxed).min(MAX_SCOPES);
                for (i, last) in seen.iter_mut().enumerate().take(high) {
                    // The owner is read before the status: only a release,
                    // a reuse of the id, a new budget and a crossing all
                    // between the two reads could be miscounted.
                    let now = owner(i);
                    let scope = ScopeId(i as u16);
                    let Some(status) = scope.budget_status() else {
                        continue;
                    };
                    if last.0 != now {
                        *last = (now, 0);
                    }
                    if status.crossings > last.1 {
                        let new_crossings = status.crossings - last.1;
                        last.1 = status.crossings;
                        on_event(BudgetEvent {
                            scope,
                            status,
                            new_crossings,
                        });
                    }
                }
            }
            thread_state::internal(|| drop(seen));
        })?;
    Ok(BudgetWatch {
        stop,
        thread: Some(thread),
    })
}
