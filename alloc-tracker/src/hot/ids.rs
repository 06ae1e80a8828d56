//! Scope ids: the one name the data plane has for a scope.
//!
//! A [`ScopeId`] indexes every per-scope array of this layer (counter
//! lines, peaks, recording counts, budgets); the scope registry
//! (`scope/registry`) gives ids their names, parents and lifetimes. Its
//! methods that need the registry are defined there.

/// Capacity of the scope table, built-in scopes included.
pub const MAX_SCOPES: usize = 4096;

/// A registered scope: a small copyable id.
///
/// Get one from a [`Scope`](crate::Scope) static
/// ([`Scope::id`](crate::Scope::id)), from [`ScopeId::register`] for names
/// known only at run time, or from [`ScopeId::current`].
///
/// ```
/// use scope_alloc_tracker::ScopeId;
///
/// let jobs = ScopeId::register("jobs", None).unwrap();
/// let job7 = ScopeId::register("job-7", Some(jobs)).unwrap();
/// assert_eq!(job7.path(), "jobs/job-7");
/// assert_eq!(job7.parent(), Some(jobs));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeId(pub(crate) u16);

impl ScopeId {
    /// Allocations made outside any scope: the root.
    pub const UNSCOPED: ScopeId = ScopeId(0);
    /// The tracker's own allocations (dynamic scope names, reports, sampled
    /// stacks).
    pub const INTERNAL: ScopeId = ScopeId(1);
    /// Allocations of scopes that could not be registered because the table
    /// was full.
    pub const OVERFLOW: ScopeId = ScopeId(2);
    pub(crate) const FIRST_USER: u16 = 3;

    /// Position in the counter tables; always below [`MAX_SCOPES`].
    #[inline(always)]
    pub(crate) fn index(self) -> usize {
        self.0 as usize & (MAX_SCOPES - 1)
    }

    /// The raw id (as found in reports).
    pub fn as_u16(self) -> u16 {
        self.0
    }
}
