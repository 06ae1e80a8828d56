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
//! reads the per-id atomics at the bottom of this file (recording counts,
//! peaks), never the lock. Whatever is allocated under the lock (a
//! dynamic name's copy, the free and released lists) is allocated under the
//! re-entrancy guard, so it is charged to the tracker's internal scope.
//!
//! Ids are recycled, never reused while a block tagged with them is live:
//! a released scope keeps its id, and keeps counting the frees of its
//! blocks, until its live figures are zero and no scope below it is left.
//! The counters are monotonic per id, so a recycled id starts from a
//! *baseline*: the id's totals when it was recycled, subtracted by readers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{ScopeId, MAX_SCOPES};
use crate::error::{ScopeError, ScopeTableFull};
use crate::stats::counters::{self, Totals};
use crate::thread_state;

/// How long an entry lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifetime {
    /// Registered for the life of the process (statics, `register`).
    Permanent,
    /// An instance or a scope below one; released by its owner.
    Transient,
    /// Released by its owner while blocks were still live: kept until they
    /// are freed.
    Released,
}

/// What the table knows of a scope.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScopeInfo {
    pub(crate) name: &'static str,
    pub(crate) parent: Option<ScopeId>,
    /// For instances and the scopes made below them: the scope they are an
    /// instance of.
    pub(crate) kind: Option<ScopeId>,
    /// Instance number within its kind (from 1); 0 for scopes that are not
    /// numbered instances.
    pub(crate) serial: u64,
    pub(crate) lifetime: Lifetime,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    info: Option<ScopeInfo>,
    /// Counter totals of the id when it was last recycled.
    baseline: Totals,
    /// Totals of recycled scopes that were below this one.
    retired: Totals,
    /// Entries whose parent is this one (any lifetime).
    children: u32,
    /// Next instance number of this scope as a kind.
    next_serial: u64,
    /// The first transient scopes made below this one for static kinds:
    /// `(kind, id)`, `NONE` when empty (more are found by a scan).
    subs: [(u16, u16); SUB_SLOTS],
}

const SUB_SLOTS: usize = 4;

impl Entry {
    const EMPTY: Entry = Entry {
        info: None,
        baseline: Totals::ZERO,
        retired: Totals::ZERO,
        children: 0,
        next_serial: 1,
        subs: [(NONE, NONE); SUB_SLOTS],
    };
}

#[derive(Debug)]
struct Table {
    entries: [Entry; MAX_SCOPES],
    /// Ids below this have been handed out at least once.
    fresh: usize,
    /// Recycled ids, oldest first (reused in that order, so an id rests as
    /// long as possible between two lives).
    free: VecDeque<u16>,
    /// Released ids still holding blocks (checked lazily).
    released: VecDeque<u16>,
    /// Static scopes that could not be registered (table full).
    overflowed: u32,
}

const BUILTIN: [(&str, u16); ScopeId::FIRST_USER as usize] =
    [("unscoped", 0), ("alloc-tracker", 1), ("overflow", 2)];

static TABLE: RwLock<Table> = RwLock::new(Table {
    entries: [Entry::EMPTY; MAX_SCOPES],
    fresh: ScopeId::FIRST_USER as usize,
    free: VecDeque::new(),
    released: VecDeque::new(),
    overflowed: 0,
});

/// Live (not yet released) transient scopes; while it is 0, entering a
/// static scope never looks for an instance context.
static TRANSIENT_LIVE: AtomicUsize = AtomicUsize::new(0);
/// Per id, for lock-free walks when a static scope is entered inside an
/// instance: the kind of a transient scope (`NONE` otherwise) and its parent.
static KIND_OF: [AtomicU16; MAX_SCOPES] = [const { AtomicU16::new(NONE) }; MAX_SCOPES];
static PARENT_OF: [AtomicU16; MAX_SCOPES] = [const { AtomicU16::new(NONE) }; MAX_SCOPES];
const NONE: u16 = u16::MAX;

static PEAKS: [AtomicU64; MAX_SCOPES] = [const { AtomicU64::new(0) }; MAX_SCOPES];
/// How many active leak checks cover each scope (see `leak`).
static RECORDING: [AtomicU32; MAX_SCOPES] = [const { AtomicU32::new(0) }; MAX_SCOPES];

fn read() -> RwLockReadGuard<'static, Table> {
    TABLE.read().unwrap_or_else(|e| e.into_inner())
}

fn write() -> RwLockWriteGuard<'static, Table> {
    TABLE.write().unwrap_or_else(|e| e.into_inner())
}

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

/// Whether any transient scope is live (entering a static scope only looks
/// for an instance context then).
#[inline]
pub(crate) fn any_transient() -> bool {
    TRANSIENT_LIVE.load(Ordering::Relaxed) != 0
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
            crate::budget::scope_released(s);
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

impl ScopeInfo {
    fn permanent(name: &'static str, parent: Option<ScopeId>) -> Self {
        ScopeInfo {
            name,
            parent,
            kind: None,
            serial: 0,
            lifetime: Lifetime::Permanent,
        }
    }
}

// === impl Table ===

impl Table {
    /// The live transient scope of kind `kind` made below `context`.
    fn find_sub(&self, context: ScopeId, kind: ScopeId) -> Option<ScopeId> {
        let e = &self.entries[context.index()];
        let is_it = |s: ScopeId| {
            self.info(s).is_some_and(|i| {
                i.parent == Some(context)
                    && i.kind == Some(kind)
                    && i.lifetime == Lifetime::Transient
            })
        };
        if let Some(&(_, id)) = e.subs.iter().find(|s| s.0 == kind.0) {
            return Some(ScopeId(id)).filter(|&s| is_it(s));
        }
        if e.subs.iter().any(|s| s.0 == NONE) {
            return None; // every sub-scope is in a slot
        }
        (0..self.fresh)
            .map(|i| ScopeId(i as u16))
            .find(|&s| is_it(s))
    }

    fn info(&self, id: ScopeId) -> Option<ScopeInfo> {
        match BUILTIN.get(id.index()) {
            Some(&(name, _)) => Some(ScopeInfo::permanent(name, None)),
            None => self.entries[id.index()].info,
        }
    }

    fn find_permanent(&self, name: &str, parent: Option<ScopeId>) -> Option<ScopeId> {
        (ScopeId::FIRST_USER as usize..self.fresh)
            .map(|i| ScopeId(i as u16))
            .find(|&s| {
                self.info(s).is_some_and(|i| {
                    i.lifetime == Lifetime::Permanent && i.parent == parent && i.name == name
                })
            })
    }

    /// A live (not released) scope with that name and parent, numbered
    /// instances excepted (they are told apart by their number).
    fn find_any(&self, name: &str, parent: Option<ScopeId>) -> Option<ScopeId> {
        (0..self.fresh).map(|i| ScopeId(i as u16)).find(|&s| {
            self.info(s).is_some_and(|i| {
                i.lifetime != Lifetime::Released
                    && i.serial == 0
                    && i.parent == parent
                    && i.name == name
            })
        })
    }

    fn has_room(&mut self) -> bool {
        !self.free.is_empty() || self.fresh < MAX_SCOPES || self.reclaim()
    }

    /// An unused id: a recycled one, else a fresh one, else one reclaimed
    /// from a released scope that has drained since.
    fn reserve(&mut self) -> Result<ScopeId, ScopeTableFull> {
        // Keep the released list moving: one lazy check per creation.
        if let Some(s) = self.released.pop_front() {
            let still_released = self.entries[s as usize]
                .info
                .is_some_and(|i| i.lifetime == Lifetime::Released);
            if still_released && !self.try_recycle(ScopeId(s)) {
                thread_state::internal(|| self.released.push_back(s));
            }
        }
        if let Some(id) = self.free.pop_front() {
            return Ok(ScopeId(id));
        }
        if self.fresh < MAX_SCOPES {
            self.fresh += 1;
            return Ok(ScopeId(self.fresh as u16 - 1));
        }
        if self.reclaim() {
            if let Some(id) = self.free.pop_front() {
                return Ok(ScopeId(id));
            }
        }
        Err(ScopeTableFull)
    }

    /// Recycles every released scope that has drained; whether any was.
    fn reclaim(&mut self) -> bool {
        let mut any = false;
        // Repeat: recycling a child may free its parent.
        loop {
            let before = self.released.len();
            let candidates: Vec<u16> =
                thread_state::internal(|| self.released.iter().copied().collect());
            for s in candidates {
                any |= self.try_recycle(ScopeId(s));
            }
            self.prune_released();
            if self.released.len() == before {
                return any;
            }
        }
    }

    /// Drops ids that are no longer released from the released list.
    fn prune_released(&mut self) {
        let entries = &self.entries;
        self.released.retain(|&s| {
            entries[s as usize]
                .info
                .is_some_and(|i| i.lifetime == Lifetime::Released)
        });
    }

    fn live(&self, id: ScopeId) -> Totals {
        counters::read(id).minus(&self.entries[id.index()].baseline)
    }

    /// Recycles `id` if it is released, drained and has no child left.
    fn try_recycle(&mut self, id: ScopeId) -> bool {
        let e = self.entries[id.index()];
        let Some(info) = e.info else { return false };
        if info.lifetime != Lifetime::Released || e.children != 0 {
            return false;
        }
        let raw = counters::read(id);
        let own = raw.minus(&e.baseline);
        if own.live_allocs() != 0 || own.live_bytes() != 0 {
            return false;
        }
        if let Some(p) = info.parent {
            let pe = &mut self.entries[p.index()];
            pe.retired = pe.retired.plus(&own).plus(&e.retired);
            pe.children = pe.children.saturating_sub(1);
        }
        self.entries[id.index()] = Entry {
            baseline: raw,
            ..Entry::EMPTY
        };
        PEAKS[id.index()].store(0, Ordering::Relaxed);
        PARENT_OF[id.index()].store(NONE, Ordering::Relaxed);
        // Cleared at release already, unless it was set again since.
        crate::budget::scope_released(id);
        thread_state::internal(|| self.free.push_back(id.0));
        // The parent may have been waiting for this child.
        if let Some(p) = info.parent {
            self.try_recycle(p);
        }
        true
    }

    fn install(&mut self, id: ScopeId, info: ScopeInfo) {
        inherit_recording(id, info.parent);
        if let Some(p) = info.parent {
            self.entries[p.index()].children += 1;
        }
        let e = &mut self.entries[id.index()];
        e.info = Some(info);
        e.children = 0;
        e.retired = Totals::ZERO;
        e.next_serial = 1;
        e.subs = [(NONE, NONE); SUB_SLOTS];
        // Transient scopes keep their blocks in the shared tagged arena
        // (they come and go by the thousand; jemalloc's arena and tcache
        // limits are a few thousand per process); permanent ones get arenas
        // of their own.
        #[cfg(feature = "jemalloc")]
        crate::allocator::set_tagged_only(id, info.lifetime == Lifetime::Transient);
        // Every scope's parent, for readers that must not take the lock (the
        // budget hooks inside the allocator; instance resolution).
        PARENT_OF[id.index()].store(info.parent.map_or(NONE, |p| p.0), Ordering::Release);
        // What the budget hooks cached for the id's previous scope.
        crate::budget::scope_installed(id);
        if info.lifetime == Lifetime::Transient {
            TRANSIENT_LIVE.fetch_add(1, Ordering::Relaxed);
            KIND_OF[id.index()].store(info.kind.map_or(id.0, |k| k.0), Ordering::Release);
        }
    }

    fn is_within(&self, mut s: ScopeId, root: ScopeId) -> bool {
        for _ in 0..MAX_SCOPES {
            if s == root {
                return true;
            }
            match self.info(s).and_then(|i| i.parent) {
                Some(p) => s = p,
                None => return false,
            }
        }
        false
    }

    fn ids(&self) -> impl Iterator<Item = ScopeId> + '_ {
        (0..self.fresh)
            .map(|i| ScopeId(i as u16))
            .filter(|id| self.info(*id).is_some())
    }
}

/// A child registered while a check covers its parent is covered too.
fn inherit_recording(id: ScopeId, parent: Option<ScopeId>) {
    let n = parent.map_or(0, |p| RECORDING[p.index()].load(Ordering::Acquire));
    RECORDING[id.index()].store(n, Ordering::Release);
}

// === reading ===

/// The entry of `id`, or `None` if it is not registered.
pub(crate) fn info(id: ScopeId) -> Option<ScopeInfo> {
    read().info(id)
}

/// The counter totals of `id` since it was (re)assigned, and the totals of
/// the recycled scopes that were below it.
pub(crate) fn baseline_and_retired(id: ScopeId) -> (Totals, Totals) {
    let t = read();
    let e = &t.entries[id.index()];
    (e.baseline, e.retired)
}

/// All registered scopes (released ones included), built-in ones first.
pub(crate) fn all() -> Vec<ScopeId> {
    thread_state::internal(|| read().ids().collect())
}

/// `id` and every scope below it.
pub(crate) fn subtree(id: ScopeId) -> Vec<ScopeId> {
    thread_state::internal(|| {
        let t = read();
        t.ids().filter(|s| t.is_within(*s, id)).collect()
    })
}

/// The path of `id`: names from the root joined with `/`; a numbered
/// instance shows as `kind#n` in place of its kind's name.
pub(crate) fn path(id: ScopeId) -> String {
    thread_state::internal(|| {
        let t = read();
        let mut parts: Vec<String> = Vec::new();
        let mut next = Some(id);
        while let Some(s) = next {
            if parts.len() > MAX_SCOPES {
                break;
            }
            let Some(i) = t.info(s) else {
                parts.push("<unregistered>".into());
                break;
            };
            match i.kind {
                Some(kind) if i.serial != 0 && i.parent == Some(kind) => {
                    parts.push(format!("{}#{}", i.name, i.serial));
                    next = t.info(kind).and_then(|k| k.parent);
                }
                _ => {
                    parts.push(i.name.to_string());
                    next = i.parent;
                }
            }
        }
        parts.reverse();
        parts.join("/")
    })
}

/// Static scopes first used when the table was full (counted in
/// `overflow`).
pub(crate) fn overflowed() -> u32 {
    read().overflowed
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
