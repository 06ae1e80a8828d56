//! THE LEAK CHECKER: did a unit of work give back what it allocated in its
//! scope, and if not, where were the leaked bytes allocated?
//!
//! - [`LeakCheck`]: begin on a scope, run the work, [`finish`](LeakCheck::finish).
//! - [`LeakReport`]: what is still live, grouped by call site.
//! - [`assert_scope_drained!`](crate::assert_scope_drained): the one-line
//!   test assertion.
//! - [`Trend`]: a slow leak across runs that each pass, from a scope's live
//!   bytes at successive quiescent points, with the sampled sites that grew.

mod check;
mod report;
mod trend;

pub use check::{Drained, Expect, LeakCheck, LeakCheckOptions, Sites};
pub use report::{LeakReport, LeakSite};
pub use trend::{GrowingSite, Trend, TrendOptions, TrendOptionsError, TrendReport};

use crate::ScopeId;

/// Runs `work` inside `scope` under a leak check with default options and
/// returns its result, or the report if the scope kept bytes.
///
/// ```
/// # #[global_allocator]
/// # static A: alloc_tracker::TrackingAlloc<alloc_tracker::Jemalloc> =
/// #     alloc_tracker::TrackingAlloc::new(alloc_tracker::Jemalloc);
/// let scope = alloc_tracker::ScopeId::register("closure-form", None).unwrap();
/// let n = alloc_tracker::leak::check(scope, || vec![0u8; 64].len()).unwrap();
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

/// Asserts that a scope gives back what it allocated.
///
/// - `assert_scope_drained!(scope, { work })` runs `work` inside `scope`
///   (a [`ScopeId`] or `&Scope`) under a check and evaluates to its value.
/// - `assert_scope_drained!(check)` finishes a [`LeakCheck`] begun earlier.
///
/// On failure it panics at the caller's line with the [`LeakReport`],
/// including the call sites of the leaked allocations.
///
/// ```should_panic
/// # #[global_allocator]
/// # static A: alloc_tracker::TrackingAlloc<alloc_tracker::Jemalloc> =
/// #     alloc_tracker::TrackingAlloc::new(alloc_tracker::Jemalloc);
/// use alloc_tracker::{assert_scope_drained, Scope};
/// static CACHE: Scope = Scope::new("cache");
/// assert_scope_drained!(&CACHE, { Box::leak(Box::new([0u8; 32])); });
/// ```
#[macro_export]
macro_rules! assert_scope_drained {
    ($check:expr) => {
        $crate::leak::LeakCheck::assert_drained($check)
    };
    ($scope:expr, $body:block) => {{
        let __scope: $crate::ScopeId = ::core::convert::Into::into($scope);
        let __check = $crate::leak::LeakCheck::begin(__scope);
        let __result = __scope.in_scope(|| $body);
        $crate::leak::LeakCheck::assert_drained(__check);
        __result
    }};
}
