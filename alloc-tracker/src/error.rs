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
