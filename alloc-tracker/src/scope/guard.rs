//! Entering and leaving scopes on the current thread.

use std::marker::PhantomData;

use super::ScopeId;
use crate::hot::thread_state;

/// Keeps a scope current; dropping it restores the scope that was current
/// before, also when unwinding from a panic.
///
/// The guard must be dropped on the thread that made it, so it is not
/// `Send`:
///
/// ```compile_fail
/// use scope_alloc_tracker::ScopeId;
/// let g = ScopeId::UNSCOPED.enter();
/// std::thread::spawn(move || drop(g));
/// ```
///
/// Holding it across an `.await` would leak the scope into whatever else
/// the executor polls on that thread; use
/// [`in_alloc_scope`](crate::AllocScopeExt::in_alloc_scope) for futures.
#[must_use = "the scope is exited when the guard is dropped"]
#[derive(Debug)]
pub struct ScopeGuard {
    previous: ScopeId,
    entered: ScopeId,
    /// `!Send`, but `Sync` (a `&ScopeGuard` cannot exit the scope).
    _not_send: PhantomData<std::sync::MutexGuard<'static, ()>>,
}

impl ScopeGuard {
    pub(crate) fn enter(scope: ScopeId) -> Self {
        let previous = thread_state::replace_scope(scope);
        Self {
            previous,
            entered: scope,
            _not_send: PhantomData,
        }
    }

    /// The scope this guard entered.
    pub fn scope(&self) -> ScopeId {
        self.entered
    }

    /// Ends this guard out of order, while `next` (entered after it) is
    /// still active: `next` will restore what this guard would have, and
    /// this one restores nothing. For integrations whose enters and exits
    /// are not strictly nested (span exits).
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(crate) fn hand_over(self, next: &mut ScopeGuard) {
        next.previous = self.previous;
        std::mem::forget(self);
    }
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        let exited = thread_state::replace_scope(self.previous);
        debug_assert!(
            exited == self.entered || std::thread::panicking(),
            "scope guards dropped out of order: exiting {:?} but {:?} is current",
            self.entered,
            exited
        );
    }
}
