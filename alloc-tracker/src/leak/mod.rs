//! THE LEAK CHECKER: did a unit of work give back what it allocated in its
//! scope, and if not, where were the leaked bytes allocated?
//!
//! - [`LeakCheck`]: begin on a scope, run the work, [`finish`](LeakCheck::finish).
//! - [`LeakReport`]: what is still live, grouped by call site.
//! - [`assert_scope_drained!`](crate::assert_scope_drained): the one-line
//!   test assertion, also for a fresh instance and for async blocks.
//! - [`Trend`]: a slow leak across runs that each pass, from a scope's live
//!   bytes at successive quiescent points, with the sampled sites that grew.
//! - [`Retain`]: declared retention (a bounded cache is not a leak), from
//!   code, `ALLOC_TRACKER_RETAIN` or a rules file; [`default_rules`] for
//!   what runtimes keep on purpose. The report lists
//!   [`AllowedRetention`] apart from the leaks, and [`UnusedRule`]s.
//! - [`SteadyState`]: an operation run again and again after a warm-up
//!   must stop growing the scope.
//! - [`check_async`]: an async leak check in one expression.
//! - [`is_installed`]: checks refuse to run without the allocator.
//! - [`Reachability`]: a failed check that records sites scans the
//!   process's memory, LeakSanitizer-style, and splits the retained blocks
//!   into unreachable (definitely lost: a leak whatever any rule says) and
//!   reachable, with what holds them ([`Holder`]: a static, a recorded
//!   block of another scope, a thread's stack, unrecorded heap memory),
//!   grouped in [`LeakReport::reachability`] and per [`LeakSite::reach`].
//!   The scan is conservative; `docs/reachability.md` says how it can err
//!   in each direction and what it costs.
//! - [`QuiescenceEnd`]: a failing check stops waiting for late frees as
//!   soon as a scan finds its whole excess unreachable (nothing can free
//!   it any more), or always waits its whole quiescence time.

mod check;
mod defaults;
mod installed;
mod options;
mod overlap;
pub(crate) mod reach;
mod report;
mod retain;
mod steady;
mod trend;
mod verdict;

#[doc(hidden)]
pub mod test_attr;

pub use check::{Drained, LeakCheck};
pub use defaults::default_rules;
pub use installed::{ensure_installed, is_installed};
pub use options::{
    Expect, LeakCheckOptions, QuiescenceEnd, Sites, DEFAULT_QUIESCENCE, EARLY_SCAN_AFTER,
};
pub use reach::{Holder, HolderGroup, HolderKind, ReachSummary, Reachability, SiteReach};
pub use report::{AllowedRetention, LeakCause, LeakReport, LeakSite, UnusedRule};
pub use retain::{
    rules_from_env, Defaults, Retain, RetainRuleError, RetainWithoutBound, RuleSet, RuleSource,
    DEFAULT_NAMES, RETAIN_ENV, RETAIN_FILE_ENV,
};
pub use steady::{Steady, SteadyCause, SteadyState, SteadyStateOptions, SteadyStateReport};
pub use trend::{GrowingSite, Trend, TrendOptions, TrendOptionsError, TrendReport};

use std::future::Future;

use crate::{AllocScopeExt, ScopeId};

/// Runs `work` inside `scope` under a leak check with default options and
/// returns its result, or the report if the scope kept bytes.
///
/// ```
/// # #[global_allocator]
/// # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
/// #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
/// let scope = scope_alloc_tracker::ScopeId::register("closure-form", None).unwrap();
/// let n = scope_alloc_tracker::leak::check(scope, || vec![0u8; 64].len()).unwrap();
/// assert_eq!(n, 64);
/// ```
///
/// # Errors
/// The [`LeakReport`] of the check.
#[allow(clippy::result_large_err)] // see LeakCheck::finish
pub fn check<R>(scope: impl Into<ScopeId>, work: impl FnOnce() -> R) -> Result<R, LeakReport> {
    let scope = scope.into();
    let check = LeakCheck::begin(scope);
    let r = scope.in_scope(work);
    check.finish().map(|_| r)
}

/// Runs the future `fut` inside `scope` under a leak check with default
/// options; resolves to its output, or the report if the scope kept bytes.
/// The scope is resolved when this is called; the check begins at the
/// first poll and ends when `fut` completes.
///
/// ```
/// # #[global_allocator]
/// # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
/// #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
/// use scope_alloc_tracker::{leak, Scope};
///
/// static NET: Scope = Scope::new("doc-net");
/// # let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
/// let fut = async {
///     let n = leak::check_async(&NET, async { vec![0u8; 64].len() }).await.unwrap();
///     assert_eq!(n, 64);
/// };
/// # assert!(std::pin::pin!(fut).poll(&mut cx).is_ready());
/// # use std::future::Future;
/// ```
///
/// # Errors
/// The [`LeakReport`] of the check.
pub fn check_async<F: Future>(
    scope: impl Into<ScopeId>,
    fut: F,
) -> impl Future<Output = Result<F::Output, LeakReport>> {
    let scope = scope.into();
    async move {
        let check = LeakCheck::begin(scope);
        let r = fut.in_alloc_scope(scope).await;
        check.finish().map(|_| r)
    }
}

/// Asserts that a scope gives back what it allocated.
///
/// - `assert_scope_drained!(scope, { work })` runs `work` inside `scope`
///   (a [`ScopeId`], `&Scope` or [`ScopeInstance`](crate::ScopeInstance),
///   kept alive until the check ends) under a check and evaluates to its
///   value.
/// - `assert_scope_drained!(instance of &KIND, { work })` does the same in
///   a fresh instance of `KIND`, so that concurrent checks of one static
///   scope never see each other's allocations (the form for tests).
/// - `assert_scope_drained!(scope, async { work })` and
///   `assert_scope_drained!(instance of &KIND, async { work })` are futures
///   to `.await`: the async block runs inside the scope. `async move { .. }`
///   works in both forms (the block takes what it uses by value, as a task
///   body must).
/// - `assert_scope_drained!(check)` finishes a [`LeakCheck`] begun earlier.
///
/// On failure it panics at the caller's line with the [`LeakReport`],
/// including the call sites of the leaked allocations.
///
/// # Panics
/// - When the scope did not drain (the message is the report).
/// - When [`TrackingAlloc`](crate::TrackingAlloc) is not the global
///   allocator (the message names the missing `#[global_allocator]` line).
/// - `instance of`: when no instance can be made (the scope table is full).
///
/// ```
/// # #[global_allocator]
/// # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
/// #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
/// use scope_alloc_tracker::{assert_scope_drained, Scope};
/// static SHARED: Scope = Scope::new("doc-shared");
/// let n = assert_scope_drained!(instance of &SHARED, { vec![0u8; 32].len() });
/// assert_eq!(n, 32);
/// ```
///
/// ```should_panic
/// # #[global_allocator]
/// # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
/// #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
/// use scope_alloc_tracker::{assert_scope_drained, Scope};
/// static CACHE: Scope = Scope::new("cache");
/// assert_scope_drained!(&CACHE, { Box::leak(Box::new([0u8; 32])); });
/// ```
#[macro_export]
macro_rules! assert_scope_drained {
    (instance of $kind:expr, async move $body:block) => {
        async move {
            let __instance = $crate::leak::__new_instance($kind);
            $crate::assert_scope_drained!(&__instance, async move $body).await
        }
    };
    (instance of $kind:expr, async $body:block) => {
        async {
            let __instance = $crate::leak::__new_instance($kind);
            $crate::assert_scope_drained!(&__instance, async $body).await
        }
    };
    (instance of $kind:expr, $body:block) => {{
        let __instance = $crate::leak::__new_instance($kind);
        $crate::assert_scope_drained!(&__instance, $body)
    }};
    ($check:expr) => {
        $crate::leak::LeakCheck::assert_drained($check)
    };
    ($scope:expr, async move $body:block) => {{
        let __arg = $scope;
        let __scope: $crate::ScopeId = $crate::ToScopeId::to_scope_id(&__arg);
        async move {
            let __arg = __arg;
            let __check = $crate::leak::LeakCheck::begin(__scope);
            let __result =
                $crate::AllocScopeExt::in_alloc_scope(async move $body, __scope).await;
            $crate::leak::LeakCheck::assert_drained(__check);
            drop(__arg);
            __result
        }
    }};
    ($scope:expr, async $body:block) => {{
        let __arg = $scope;
        let __scope: $crate::ScopeId = $crate::ToScopeId::to_scope_id(&__arg);
        async move {
            let __arg = __arg;
            let __check = $crate::leak::LeakCheck::begin(__scope);
            let __result = $crate::AllocScopeExt::in_alloc_scope(async $body, __scope).await;
            $crate::leak::LeakCheck::assert_drained(__check);
            drop(__arg);
            __result
        }
    }};
    ($scope:expr, $body:block) => {{
        let __arg = $scope;
        let __scope: $crate::ScopeId = $crate::ToScopeId::to_scope_id(&__arg);
        let __check = $crate::leak::LeakCheck::begin(__scope);
        let __result = __scope.in_scope(|| $body);
        $crate::leak::LeakCheck::assert_drained(__check);
        drop(__arg);
        __result
    }};
}

/// A fresh instance for `assert_scope_drained!(instance of ..)`.
#[doc(hidden)]
#[track_caller]
pub fn __new_instance(kind: impl Into<ScopeId>) -> crate::ScopeInstance {
    match crate::ScopeInstance::of(kind) {
        Ok(i) => i,
        Err(e) => panic!("cannot make a scope instance for the leak check: {e}"),
    }
}
