//! The fixed-capacity scope table.
//!
//! Ids are handed out by one `fetch_add`; each entry is written once (a
//! `OnceCell` only its id's owner sets) and never removed, so registering is
//! lock-free and reading needs no lock. Scope names are `&'static str`:
//! static scopes borrow theirs, dynamic scopes leak a copy, charged to the
//! tracker's internal scope. When the table is full, registering fails with
//! [`ScopeTableFull`] and nothing is allocated.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use once_cell::sync::OnceCell;

use super::{ScopeId, MAX_SCOPES};
use crate::error::ScopeTableFull;
use crate::thread_state;

/// What the table knows of a scope.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScopeInfo {
    pub(crate) name: &'static str,
    pub(crate) parent: Option<ScopeId>,
}

static INFOS: [OnceCell<ScopeInfo>; MAX_SCOPES] = [const { OnceCell::new() }; MAX_SCOPES];
static NEXT_ID: AtomicUsize = AtomicUsize::new(ScopeId::FIRST_USER as usize);
static PEAKS: [AtomicU64; MAX_SCOPES] = [const { AtomicU64::new(0) }; MAX_SCOPES];
/// How many active leak checks cover each scope (see `leak`).
static RECORDING: [AtomicU32; MAX_SCOPES] = [const { AtomicU32::new(0) }; MAX_SCOPES];

const BUILTIN: [ScopeInfo; ScopeId::FIRST_USER as usize] = [
    ScopeInfo {
        name: "unscoped",
        parent: None,
    },
    ScopeInfo {
        name: "alloc-tracker",
        parent: None,
    },
    ScopeInfo {
        name: "overflow",
        parent: None,
    },
];

/// Registers a scope named `name` under `parent`.
pub(crate) fn register(
    name: &'static str,
    parent: Option<ScopeId>,
) -> Result<ScopeId, ScopeTableFull> {
    let id = reserve()?;
    inherit_recording(id, parent);
    let _ = INFOS[id.index()].set(ScopeInfo { name, parent });
    Ok(id)
}

/// Registers a scope whose name is only known at run time. The name is
/// copied once (charged to the tracker's internal scope) and kept for the
/// life of the process.
pub(crate) fn register_dynamic(
    name: &str,
    parent: Option<ScopeId>,
) -> Result<ScopeId, ScopeTableFull> {
    let id = reserve()?;
    let name: &'static str = thread_state::internal(|| Box::leak(name.to_owned().into_boxed_str()));
    inherit_recording(id, parent);
    let _ = INFOS[id.index()].set(ScopeInfo { name, parent });
    Ok(id)
}

fn reserve() -> Result<ScopeId, ScopeTableFull> {
    // Fail fast once full, so NEXT_ID stops growing.
    if NEXT_ID.load(Ordering::Relaxed) >= MAX_SCOPES {
        return Err(ScopeTableFull);
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if id >= MAX_SCOPES {
        return Err(ScopeTableFull);
    }
    Ok(ScopeId(id as u16))
}

/// A child registered while a check covers its parent is covered too.
fn inherit_recording(id: ScopeId, parent: Option<ScopeId>) {
    if let Some(p) = parent {
        let n = RECORDING[p.index()].load(Ordering::Acquire);
        RECORDING[id.index()].store(n, Ordering::Release);
    }
}

/// The entry of `id`, or `None` while it is being registered.
pub(crate) fn info(id: ScopeId) -> Option<ScopeInfo> {
    match BUILTIN.get(id.index()) {
        Some(b) => Some(*b),
        None => INFOS[id.index()].get().copied(),
    }
}

/// All scopes registered so far, built-in ones first.
pub(crate) fn all() -> impl Iterator<Item = ScopeId> {
    let n = NEXT_ID.load(Ordering::Acquire).min(MAX_SCOPES);
    (0..n)
        .map(|i| ScopeId(i as u16))
        .filter(|id| info(*id).is_some())
}

/// `id` and every scope below it.
pub(crate) fn subtree(id: ScopeId) -> Vec<ScopeId> {
    all().filter(|s| is_within(*s, id)).collect()
}

/// Whether `s` is `root` or one of its descendants.
pub(crate) fn is_within(mut s: ScopeId, root: ScopeId) -> bool {
    // Parents are registered before children, so the chain is finite; the
    // bound guards against anything unexpected.
    for _ in 0..MAX_SCOPES {
        if s == root {
            return true;
        }
        match info(s).and_then(|i| i.parent) {
            Some(p) => s = p,
            None => return false,
        }
    }
    false
}

/// The highest sampled live byte count of a scope.
pub(crate) fn peak(id: ScopeId) -> &'static AtomicU64 {
    &PEAKS[id.index()]
}

/// Number of active leak checks covering a scope.
pub(crate) fn recording(id: ScopeId) -> &'static AtomicU32 {
    &RECORDING[id.index()]
}
