//! Errors of the tracker. They are small, `Copy` and never allocate, so they
//! can be made anywhere, including when the process is out of memory.

use std::fmt;

/// The scope table holds [`MAX_SCOPES`](crate::MAX_SCOPES) scopes and is
/// full. Allocations of a scope that could not be registered are counted in
/// [`ScopeId::OVERFLOW`](crate::ScopeId::OVERFLOW).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeTableFull;

impl fmt::Display for ScopeTableFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the scope table is full ({} scopes); allocations of new scopes are counted in \"overflow\"",
            crate::MAX_SCOPES
        )
    }
}

impl std::error::Error for ScopeTableFull {}

/// Why a scope could not be registered or made.
///
/// ```
/// use scope_alloc_tracker::{ScopeError, ScopeId};
///
/// assert_eq!(ScopeId::try_register("", None), Err(ScopeError::EmptyName));
/// assert_eq!(ScopeId::try_register("a/b", None), Err(ScopeError::NameContainsSlash));
/// let jobs = ScopeId::try_register("doc-jobs", None).unwrap();
/// assert_eq!(ScopeId::try_register("doc-jobs", None), Err(ScopeError::DuplicateName));
/// # let _ = jobs;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScopeError {
    /// The table holds [`MAX_SCOPES`](crate::MAX_SCOPES) scopes, none of
    /// which can be recycled now.
    TableFull,
    /// The name is empty.
    EmptyName,
    /// The name contains `/`, the path separator.
    NameContainsSlash,
    /// The name contains `#`, which marks instance numbers in paths.
    NameContainsHash,
    /// A sibling (same parent) already has this name.
    DuplicateName,
    /// The parent id names no registered scope.
    UnknownParent,
    /// The parent is a transient scope (an instance or a scope below one):
    /// permanent scopes and instances are made below permanent scopes.
    ParentTransient,
    /// The parent was released.
    ParentReleased,
}

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopeError::TableFull => ScopeTableFull.fmt(f),
            ScopeError::EmptyName => f.write_str("a scope name must not be empty"),
            ScopeError::NameContainsSlash => {
                f.write_str("a scope name must not contain '/' (it separates the names of a path)")
            }
            ScopeError::NameContainsHash => {
                f.write_str("a scope name must not contain '#' (it marks instance numbers)")
            }
            ScopeError::DuplicateName => {
                f.write_str("a scope with this name already exists under the same parent")
            }
            ScopeError::UnknownParent => f.write_str("the parent scope is not registered"),
            ScopeError::ParentTransient => f.write_str(
                "the parent is a transient scope; register kinds and make instances below permanent scopes",
            ),
            ScopeError::ParentReleased => f.write_str("the parent scope was released"),
        }
    }
}

impl std::error::Error for ScopeError {}

impl From<ScopeTableFull> for ScopeError {
    fn from(_: ScopeTableFull) -> Self {
        ScopeError::TableFull
    }
}

/// [`TrackingAlloc`](crate::TrackingAlloc) is not this program's global
/// allocator, so every figure is zero and no leak check can fail: each
/// `tests/*.rs` file, example and binary is its own crate and needs its own
/// `#[global_allocator]` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotInstalled;

/// The line that installs the tracker, quoted by [`NotInstalled`].
pub(crate) const INSTALL_LINE: &str =
    "#[global_allocator] static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);";

impl fmt::Display for NotInstalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "alloc-tracker is not installed: TrackingAlloc is not this program's global allocator, \
             so every figure is zero and a leak check would pass whatever leaks. Add \
             `{INSTALL_LINE}` (use scope_alloc_tracker::{{Jemalloc, TrackingAlloc}}) to this crate's root \
             (each tests/*.rs file is its own crate and needs the line)"
        )
    }
}

impl std::error::Error for NotInstalled {}
