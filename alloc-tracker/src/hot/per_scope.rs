//! Per-id arrays read without the table's lock: by the allocator (peaks,
//! recording counts, parents for the budget hooks) and when a static scope
//! is entered inside an instance (kinds and parents). The table writes them
//! when it installs and recycles ids.

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::ids::{ScopeId, MAX_SCOPES};

/// Live (not yet released) transient scopes; while it is 0, entering a
/// static scope never looks for an instance context.
pub(crate) static TRANSIENT_LIVE: AtomicUsize = AtomicUsize::new(0);
/// Per id, for lock-free walks when a static scope is entered inside an
/// instance: the kind of a transient scope (`NONE` otherwise) and its parent.
pub(crate) static KIND_OF: [AtomicU16; MAX_SCOPES] = [const { AtomicU16::new(NONE) }; MAX_SCOPES];
pub(crate) static PARENT_OF: [AtomicU16; MAX_SCOPES] = [const { AtomicU16::new(NONE) }; MAX_SCOPES];
pub(crate) const NONE: u16 = u16::MAX;

pub(crate) static PEAKS: [AtomicU64; MAX_SCOPES] = [const { AtomicU64::new(0) }; MAX_SCOPES];
/// How many active leak checks cover each scope (see `leak`).
pub(crate) static RECORDING: [AtomicU32; MAX_SCOPES] = [const { AtomicU32::new(0) }; MAX_SCOPES];

/// Whether any transient scope is live (entering a static scope only looks
/// for an instance context then).
#[inline]
pub(crate) fn any_transient() -> bool {
    TRANSIENT_LIVE.load(Ordering::Relaxed) != 0
}

/// A child registered while a check covers its parent is covered too.
pub(crate) fn inherit_recording(id: ScopeId, parent: Option<ScopeId>) {
    let n = parent.map_or(0, |p| RECORDING[p.index()].load(Ordering::Acquire));
    RECORDING[id.index()].store(n, Ordering::Release);
}

/// The parent of `id` without taking the table's lock: the allocator's hot
/// path (budget hooks) may need it while this thread holds the table's
/// write lock and allocates. Written before the scope is published.
#[inline]
pub(crate) fn parent_lock_free(id: ScopeId) -> Option<ScopeId> {
    match PARENT_OF[id.index()].load(Ordering::Acquire) {
        NONE => None,
        p => Some(ScopeId(p)),
    }
}

/// The highest sampled live byte count of a scope.
pub(crate) fn peak(id: ScopeId) -> &'static AtomicU64 {
    &PEAKS[id.index()]
}

/// Number of active leak checks covering a scope.
pub(crate) fn recording(id: ScopeId) -> &'static AtomicU32 {
    &RECORDING[id.index()]
}

/// Lowers a recording count without wrapping (the id may have been
/// recycled, and its count reset, while the check ran).
pub(crate) fn stop_recording(id: ScopeId) {
    let _ = RECORDING[id.index()]
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
}
