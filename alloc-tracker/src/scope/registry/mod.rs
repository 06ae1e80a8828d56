//! The fixed-capacity scope table.
//!
//! An entry is one of:
//!
//! ```text
//!            register / first use of a static            (never removed)
//!  free ─────────────────────────────────────────▶ permanent
//!    ▲
//!    │ recycle: drained, no child left      create instance / sub-instance
//!    │ (totals folded into the parent)  ◀──────────────────────────── free
//!    │                                          │
//!  released ◀── release with live blocks ── transient ── release, drained ──▶ free
//! ```
//!
//! Mutations (registering, creating and releasing transient scopes,
//! recycling) take one write lock; they are never on the allocation path.
//! Reads of names and parents take the read lock; the allocator itself only
//! reads the per-id atomics of `hot::per_scope` (recording counts, peaks,
//! parents),
//! never the lock. Whatever is allocated under the lock (a
//! dynamic name's copy, the free and released lists) is allocated under the
//! re-entrancy guard, so it is charged to the tracker's internal scope.
//!
//! Ids are recycled, never reused while a block tagged with them is live:
//! a released scope keeps its id, and keeps counting the frees of its
//! blocks, until its live figures are zero and no scope below it is left.
//! The counters are monotonic per id, so a recycled id starts from a
//! *baseline*: the id's totals when it was recycled, subtracted by readers.
//!
//! - here: registering permanent scopes; making, resolving and releasing
//!   transient ones;
//! - `table`: the table, its entries, and how ids are reserved and
//!   recycled;
//! - `lookup`: reading the table: entries, paths, subtrees;
//! - the lock-free per-id arrays the allocator and instance resolution
//!   read live in the data plane, `hot::per_scope`.

mod lookup;
mod table;

use std::sync::atomic::Ordering;

use super::{ScopeId, MAX_SCOPES};
use crate::error::{ScopeError, ScopeTableFull};
use crate::hot::per_scope::{KIND_OF, NONE, PARENT_OF, TRANSIENT_LIVE};
use crate::hot::thread_state;
pub(crate) use lookup::{
    all, baseline_and_retired, info, overflowed, path, peak_bounds, recycled, subtree,
};
use table::{read, write, Table};
pub(crate) use table::{Lifetime, ScopeInfo};

/// Whether `name` may name a scope: non-empty, no `/` (the path separator)
/// and no `#` (the instance marker).
pub(crate) fn validate(name: &str) -> Result<(), ScopeError> {
    if name.is_empty() {
        Err(ScopeError::EmptyName)
    } else if name.contains('/') {
        Err(ScopeError::NameContainsSlash)
    } else if name.contains('#') {
        Err(ScopeError::NameContainsHash)
    } else {
        Ok(())
    }
}

// === registering permanent scopes ===

/// Registers the static scope `name` under `parent`, or returns the
/// permanent scope already registered with that name and parent (one path,
/// one scope).
pub(crate) fn register_static(
    name: &'static str,
    parent: Option<ScopeId>,
) -> Result<ScopeId, ScopeTableFull> {
    let mut t = write();
    if let Some(id) = t.find_permanent(name, parent) {
        return Ok(id);
    }
    match t.reserve() {
        Ok(id) => {
            t.install(id, ScopeInfo::permanent(name, parent));
            Ok(id)
        }
        Err(e) => {
            t.overflowed += 1;
            Err(e)
        }
    }
}

/// Registers a scope whose name is only known at run time. The name is
/// copied once (charged to the tracker's internal scope) and kept for the
/// life of the process. A sibling with the same name gets a distinct path:
/// `name~2`, `name~3`, ...
pub(crate) fn register_dynamic(
    name: &str,
    parent: Option<ScopeId>,
) -> Result<ScopeId, ScopeTableFull> {
    // Nothing is allocated when the table is full.
    if !write().has_room() {
        return Err(ScopeTableFull);
    }
    let copy = |name: &str| -> &'static str {
        thread_state::internal(|| Box::leak(name.to_owned().into_boxed_str()))
    };
    let mut owned = copy(name);
    loop {
        let mut t = write();
        let taken = |t: &Table, n: &str| t.find_any(n, parent).is_some();
        if taken(&t, owned) {
            let mut k = 2u32;
            let unique = loop {
                let candidate = thread_state::internal(|| format!("{name}~{k}"));
                if !taken(&t, &candidate) {
                    break candidate;
                }
                k += 1;
            };
            drop(t);
            owned = copy(&unique);
            continue;
        }
        let id = t.reserve()?;
        let mut info = ScopeInfo::permanent(owned, parent);
        // Below a transient scope, a new scope lives and dies with it.
        if let Some(p) = parent {
            if let Some(pi) = t.entries[p.index()].info {
                if pi.lifetime != Lifetime::Permanent {
                    info.lifetime = Lifetime::Transient;
                    info.kind = Some(id);
                }
            }
        }
        t.install(id, info);
        return Ok(id);
    }
}

/// A new scope, validated, refused if a sibling already has the name.
pub(crate) fn try_register(name: &str, parent: Option<ScopeId>) -> Result<ScopeId, ScopeError> {
    validate(name)?;
    {
        let t = read();
        check_parent(&t, parent)?;
        if t.find_any(name, parent).is_some() {
            return Err(ScopeError::DuplicateName);
        }
    }
    register_dynamic(name, parent).map_err(ScopeError::from)
}

/// The permanent scope named `name` under `parent`, registered on first
/// call (validated).
pub(crate) fn kind(name: &str, parent: Option<ScopeId>) -> Result<ScopeId, ScopeError> {
    validate(name)?;
    {
        let t = read();
        check_parent(&t, parent)?;
        if let Some(id) = t.find_permanent(name, parent) {
            return Ok(id);
        }
        if t.find_any(name, parent).is_some() {
            return Err(ScopeError::DuplicateName);
        }
    }
    if !write().has_room() {
        return Err(ScopeError::TableFull);
    }
    let owned: &'static str =
        thread_state::internal(|| Box::leak(name.to_owned().into_boxed_str()));
    let mut t = write();
    if let Some(id) = t.find_permanent(name, parent) {
        return Ok(id); // registered meanwhile (the copy stays, a few bytes)
    }
    let id = t.reserve()?;
    t.install(id, ScopeInfo::permanent(owned, parent));
    Ok(id)
}

fn check_parent(t: &Table, parent: Option<ScopeId>) -> Result<(), ScopeError> {
    match parent {
        Some(p) => match t.info(p) {
            None => Err(ScopeError::UnknownParent),
            Some(i) if i.lifetime == Lifetime::Released => Err(ScopeError::ParentReleased),
            Some(i) if i.lifetime == Lifetime::Transient => Err(ScopeError::ParentTransient),
            Some(_) => Ok(()),
        },
        None => Ok(()),
    }
}

// === transient scopes ===

/// A new numbered instance of `kind`: a transient child of it.
pub(crate) fn new_instance(kind: ScopeId) -> Result<(ScopeId, u64), ScopeError> {
    let mut t = write();
    let Some(ki) = t.info(kind) else {
        return Err(ScopeError::UnknownParent);
    };
    if ki.lifetime != Lifetime::Permanent {
        return Err(ScopeError::ParentTransient);
    }
    let id = t.reserve()?;
    let serial = t.entries[kind.index()].next_serial;
    t.entries[kind.index()].next_serial += 1;
    t.install(
        id,
        ScopeInfo {
            name: ki.name,
            parent: Some(kind),
            kind: Some(kind),
            serial,
            lifetime: Lifetime::Transient,
        },
    );
    Ok((id, serial))
}
/// The scope the static scope `kind` (whose parent is `parent_kind`)
/// stands for when entered while `current` is current: inside an instance
/// of `kind`, that instance; inside an instance of `parent_kind`, the
/// transient scope made for `kind` below it; otherwise `kind` itself.
pub(crate) fn resolve_in_context(
    kind: ScopeId,
    parent_kind: Option<ScopeId>,
    current: ScopeId,
) -> ScopeId {
    if TRANSIENT_LIVE.load(Ordering::Relaxed) == 0 {
        return kind;
    }
    // Walk up the transient ancestors of `current`, lock-free.
    let mut s = current.0;
    for _ in 0..MAX_SCOPES {
        if s as usize >= MAX_SCOPES {
            break;
        }
        let k = KIND_OF[s as usize].load(Ordering::Acquire);
        if k == NONE {
            break;
        }
        if k == kind.0 {
            return ScopeId(s);
        }
        if Some(k) == parent_kind.map(|p| p.0) {
            return sub_scope(ScopeId(s), kind).unwrap_or(kind);
        }
        s = PARENT_OF[s as usize].load(Ordering::Acquire);
    }
    kind
}

/// The transient scope of kind `kind` below `context`, made on first use.
fn sub_scope(context: ScopeId, kind: ScopeId) -> Option<ScopeId> {
    // Usually made already: a read lock and a look at a few slots.
    if let Some(id) = read().find_sub(context, kind) {
        return Some(id);
    }
    let mut t = write();
    match t.info(context) {
        Some(i) if i.lifetime == Lifetime::Transient => {}
        _ => return None,
    }
    if let Some(id) = t.find_sub(context, kind) {
        return Some(id);
    }
    let name = t.info(kind)?.name;
    let id = t.reserve().ok()?;
    t.install(
        id,
        ScopeInfo {
            name,
            parent: Some(context),
            kind: Some(kind),
            serial: 0,
            lifetime: Lifetime::Transient,
        },
    );
    let subs = &mut t.entries[context.index()].subs;
    if let Some(slot) = subs.iter_mut().find(|s| s.0 == NONE) {
        *slot = (kind.0, id.0);
    }
    Some(id)
}

/// Releases a transient scope and every transient scope below it. Those
/// that are drained are recycled at once; the others stay, marked
/// released, until their blocks are freed. Returns the live bytes and
/// allocations left in `id`'s subtree.
pub(crate) fn release(id: ScopeId) -> (u64, u64) {
    let mut t = write();
    if t.info(id).map(|i| i.lifetime) != Some(Lifetime::Transient) {
        return (0, 0);
    }
    let members: Vec<ScopeId> = thread_state::internal(|| {
        if t.entries[id.index()].children == 0 {
            vec![id] // the common case: no scope was made below it
        } else {
            (0..t.fresh)
                .map(|i| ScopeId(i as u16))
                .filter(|&s| t.is_within(s, id))
                .collect()
        }
    });
    let mut left = (0, 0);
    for &s in &members {
        let Some(info) = t.entries[s.index()].info.as_mut() else {
            continue;
        };
        if info.lifetime == Lifetime::Transient {
            info.lifetime = Lifetime::Released;
            // Its budget goes with it (the next scope on its id must not
            // inherit it).
            crate::hot::budget::scope_released(s);
            TRANSIENT_LIVE.fetch_sub(1, Ordering::Relaxed);
            // No longer an instance context for new sub-scopes.
            KIND_OF[s.index()].store(NONE, Ordering::Release);
            thread_state::internal(|| t.released.push_back(s.0));
        }
        let live = t.live(s);
        left.0 += live.live_bytes();
        left.1 += live.live_allocs();
    }
    // Children first, so that parents can follow.
    for &s in members.iter().rev() {
        t.try_recycle(s);
    }
    t.prune_released();
    left
}
