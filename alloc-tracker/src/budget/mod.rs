//! BUDGETS: a soft limit on a scope's live bytes (its children included),
//! set and changed at run time, that the owner acts on at safe points.
//!
//! ```
//! # #[global_allocator]
//! # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
//! #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
//! use scope_alloc_tracker::{Budget, Scope};
//!
//! static MEMTABLE: Scope = Scope::new("memtable");
//!
//! MEMTABLE.set_budget(Budget::soft(64 << 20));
//! // ... at a safe point, e.g. after each write batch:
//! if MEMTABLE.over_budget() {
//!     // flush the memtable
//! }
//! MEMTABLE.set_budget(Budget::soft(128 << 20)); // changed at run time
//! MEMTABLE.clear_budget();
//! ```
//!
//! # What crossing a budget does
//!
//! Nothing inside the allocator but counting: an allocation is never
//! refused or delayed for a soft limit, and no user code runs on the
//! allocating thread. The allocator keeps a shared live-byte counter for
//! each budgeted scope (an allocation in a child counts in every budgeted
//! ancestor) and counts each upward crossing of the limit. The owner reads
//! [`ScopeId::over_budget`](crate::ScopeId::over_budget) at safe points; [`watch`] runs callbacks on a
//! tracker thread that polls the crossing counters.
//!
//! A scope is *over* its budget when its live bytes (with children) are
//! strictly greater than the soft limit: holding exactly the budget is
//! within it. The allocation that takes the live bytes from `<= limit` to
//! `> limit` makes the crossing, exactly once per crossing, whatever the
//! threads' interleaving.
//!
//! # Cost
//!
//! With no budget set anywhere: one relaxed load of a global flag per
//! allocation and per free. With budgets set: two more loads for a scope
//! that no budget covers (a per-scope cache of "is the scope or an
//! ancestor budgeted", refreshed after each budget change); for a covered
//! scope, a walk up its parent chain (at most [`MAX_DEPTH`] levels) and one
//! shared atomic add per budgeted scope on it, the only shared
//! read-modify-write of the tracker: budget subsystems, not hot leaf
//! scopes. `bench/src/bin/budget-hooks.rs` measures the three cases.
//!
//! # Setting a budget on a busy scope
//!
//! The counter starts from the scope's exact live bytes when
//! [`ScopeId::set_budget`](crate::ScopeId::set_budget) is called. Allocations or frees that other
//! threads make *during* that call may be missed (bounded by what is in
//! flight); set budgets at start-up or while the scope is quiet for an
//! exact figure. Changing a budget's limits keeps the counter running.
//!
//! # Hard limits
//!
//! A `GlobalAlloc` cannot tell a fallible request (`Vec::try_reserve`,
//! `Box::try_new`) from an infallible one (`Vec::push`, `Box::new`): both
//! arrive as `alloc(layout)`. A null return to an infallible request ends
//! in `handle_alloc_error`, which aborts the process. So a hard limit can
//! only ever refuse allocations made inside a section the program marks as
//! fallible, [`fallible`]`(|| v.try_reserve(n))`, where the one allocation
//! expected has an error path; [`Budget::hard`] sets it. Inside the section
//! keep only the fallible call: any other allocation there is refused too,
//! and aborts.
//!
//! The allocator checks the hard limit before calling the backend in
//! `alloc`, `alloc_zeroed` and `realloc` (for the growth):
//! `if !budget::admits(scope, size) { return null }` (`admits` is one
//! relaxed load when no budget is set).
//!
//! # Where the allocator calls in
//!
//! Every counted allocation and free goes through the counter shards'
//! `count_alloc`/`count_free`, which call [`on_alloc`]`(scope, bytes)` and
//! [`on_free`]`(scope, bytes)` with the same scope and requested bytes
//! (a reallocation is one free and one allocation), whatever the block's
//! placement.

mod limit;
// The tests count on the crate's unit tests installing the tracker over
// jemalloc (`lib.rs`).
#[cfg(all(test, feature = "jemalloc"))]
mod tests;
mod watch;

pub use crate::hot::budget::MAX_DEPTH;
/// The allocator's budget hook for an allocation, for this repository's
/// `bench/` crate to time; not API (behind the `bench-hooks` feature).
#[cfg(feature = "bench-hooks")]
#[doc(hidden)]
pub fn on_alloc(scope: crate::ScopeId, bytes: u64) {
    crate::hot::budget::on_alloc(scope, bytes)
}

/// The allocator's budget hook for a free (see [`on_alloc`]).
#[cfg(feature = "bench-hooks")]
#[doc(hidden)]
pub fn on_free(scope: crate::ScopeId, bytes: u64) {
    crate::hot::budget::on_free(scope, bytes)
}
pub use limit::{budgets, fallible, Budget, BudgetStatus, HardBelowSoft};
pub use watch::{watch, BudgetEvent, BudgetWatch};
