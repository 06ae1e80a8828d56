//! Overlapping checks of one scope: two checks whose scopes share blocks
//! (the same scope, or one above the other) each see the other's
//! allocations, so a report names the other's blocks as leaks. Each check
//! counts the others it overlapped, and its report says so with the
//! instance recipe.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::scope::{ScopeId, MAX_SCOPES};

/// Active checks covering each scope.
static ACTIVE: [AtomicU32; MAX_SCOPES] = [const { AtomicU32::new(0) }; MAX_SCOPES];
/// Checks ever begun covering each scope.
static BEGUN: [AtomicU64; MAX_SCOPES] = [const { AtomicU64::new(0) }; MAX_SCOPES];

/// A check's registration on the scopes it covers.
#[derive(Debug)]
pub(crate) struct Overlap {
    /// (scope, checks begun on it right after this one began)
    members: Vec<(ScopeId, u64)>,
    /// Other checks active when this one began.
    active_at_begin: u64,
}

impl Overlap {
    /// Registers a check covering `members`.
    pub(crate) fn begin(members: &[ScopeId]) -> Overlap {
        let mut active_at_begin = 0;
        let members = members
            .iter()
            .map(|&s| {
                let others = ACTIVE[s.index()].fetch_add(1, Ordering::SeqCst);
                active_at_begin = active_at_begin.max(u64::from(others));
                (s, BEGUN[s.index()].fetch_add(1, Ordering::SeqCst) + 1)
            })
            .collect();
        Overlap {
            members,
            active_at_begin,
        }
    }

    /// Other checks that overlapped this one so far: those active when it
    /// began plus those begun since (on the scope most overlapped).
    pub(crate) fn others(&self) -> u64 {
        let begun_since = self
            .members
            .iter()
            .map(|&(s, seen)| BEGUN[s.index()].load(Ordering::SeqCst).saturating_sub(seen))
            .max()
            .unwrap_or(0);
        self.active_at_begin + begun_since
    }
}

impl Drop for Overlap {
    fn drop(&mut self) {
        for &(s, _) in &self.members {
            let _ = ACTIVE[s.index()]
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        }
    }
}
