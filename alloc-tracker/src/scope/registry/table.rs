//! The table itself: its entries, the free and released lists, and how an
//! id is reserved, installed and recycled (from its baseline).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::ScopeTableFull;
use crate::hot::counters::{self, Totals};
use crate::hot::per_scope::{inherit_recording, KIND_OF, NONE, PARENT_OF, PEAKS, TRANSIENT_LIVE};
use crate::hot::thread_state;
use crate::scope::{ScopeId, MAX_SCOPES};

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
pub(super) struct Entry {
    pub(super) info: Option<ScopeInfo>,
    /// Counter totals of the id when it was last recycled.
    pub(super) baseline: Totals,
    /// Totals of the recycled transient scopes of this kind (its instances,
    /// or the scopes made for it below instances of its parent); of the
    /// recycled scopes below it for a scope that is no kind.
    pub(super) retired: Totals,
    /// How many transient scopes were folded into `retired`.
    pub(super) recycled: u64,
    /// Transient scopes of this kind not recycled yet, and the most there
    /// were at once: how many instances' blocks can be live together.
    pub(super) transients: u32,
    pub(super) max_transients: u32,
    /// The highest own peak of a recycled transient scope of this kind.
    pub(super) recycled_peak: u64,
    /// Entries whose parent is this one (any lifetime).
    pub(super) children: u32,
    /// Next instance number of this scope as a kind.
    pub(super) next_serial: u64,
    /// The first transient scopes made below this one for static kinds:
    /// `(kind, id)`, `NONE` when empty (more are found by a scan).
    pub(super) subs: [(u16, u16); SUB_SLOTS],
}

pub(super) const SUB_SLOTS: usize = 4;

/// An upper bound of a transient scope's own peak from its sampled peak
/// (a lower bound, within [`counters::PEAK_SAMPLE_BYTES`] per thread) and
/// its totals: never above what it ever allocated, and one sampling step
/// above the sample (exact for a scope used by one thread at a time, as a
/// request's is).
pub(super) fn transient_peak_bound(sampled: u64, own: &Totals) -> u64 {
    sampled.max(own.alloc_bytes.min(sampled + counters::PEAK_SAMPLE_BYTES))
}

impl Entry {
    pub(super) const EMPTY: Entry = Entry {
        info: None,
        baseline: Totals::ZERO,
        retired: Totals::ZERO,
        recycled: 0,
        transients: 0,
        max_transients: 0,
        recycled_peak: 0,
        children: 0,
        next_serial: 1,
        subs: [(NONE, NONE); SUB_SLOTS],
    };
}

#[derive(Debug)]
pub(super) struct Table {
    pub(super) entries: [Entry; MAX_SCOPES],
    /// Ids below this have been handed out at least once.
    pub(super) fresh: usize,
    /// Recycled ids, oldest first (reused in that order, so an id rests as
    /// long as possible between two lives).
    pub(super) free: VecDeque<u16>,
    /// Released ids still holding blocks (checked lazily).
    pub(super) released: VecDeque<u16>,
    /// Static scopes that could not be registered (table full).
    pub(super) overflowed: u32,
}

pub(super) const BUILTIN: [(&str, u16); ScopeId::FIRST_USER as usize] =
    [("unscoped", 0), ("alloc-tracker", 1), ("overflow", 2)];

static TABLE: RwLock<Table> = RwLock::new(Table {
    entries: [Entry::EMPTY; MAX_SCOPES],
    fresh: ScopeId::FIRST_USER as usize,
    free: VecDeque::new(),
    released: VecDeque::new(),
    overflowed: 0,
});

pub(super) fn read() -> RwLockReadGuard<'static, Table> {
    TABLE.read().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn write() -> RwLockWriteGuard<'static, Table> {
    TABLE.write().unwrap_or_else(|e| e.into_inner())
}

impl ScopeInfo {
    pub(super) fn permanent(name: &'static str, parent: Option<ScopeId>) -> Self {
        ScopeInfo {
            name,
            parent,
            kind: None,
            serial: 0,
            lifetime: Lifetime::Permanent,
        }
    }
}

impl Table {
    /// The live transient scope of kind `kind` made below `context`.
    pub(super) fn find_sub(&self, context: ScopeId, kind: ScopeId) -> Option<ScopeId> {
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

    pub(super) fn info(&self, id: ScopeId) -> Option<ScopeInfo> {
        match BUILTIN.get(id.index()) {
            Some(&(name, _)) => Some(ScopeInfo::permanent(name, None)),
            None => self.entries[id.index()].info,
        }
    }

    pub(super) fn find_permanent(&self, name: &str, parent: Option<ScopeId>) -> Option<ScopeId> {
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
    pub(super) fn find_any(&self, name: &str, parent: Option<ScopeId>) -> Option<ScopeId> {
        (0..self.fresh).map(|i| ScopeId(i as u16)).find(|&s| {
            self.info(s).is_some_and(|i| {
                i.lifetime != Lifetime::Released
                    && i.serial == 0
                    && i.parent == parent
                    && i.name == name
            })
        })
    }

    pub(super) fn has_room(&mut self) -> bool {
        !self.free.is_empty() || self.fresh < MAX_SCOPES || self.reclaim()
    }

    /// An unused id: a recycled one, else a fresh one, else one reclaimed
    /// from a released scope that has drained since.
    pub(super) fn reserve(&mut self) -> Result<ScopeId, ScopeTableFull> {
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
    pub(super) fn reclaim(&mut self) -> bool {
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
    pub(super) fn prune_released(&mut self) {
        let entries = &self.entries;
        self.released.retain(|&s| {
            entries[s as usize]
                .info
                .is_some_and(|i| i.lifetime == Lifetime::Released)
        });
    }

    pub(super) fn live(&self, id: ScopeId) -> Totals {
        counters::read(id).minus(&self.entries[id.index()].baseline)
    }

    /// Recycles `id` if it is released, drained and has no child left.
    pub(super) fn try_recycle(&mut self, id: ScopeId) -> bool {
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
            pe.children = pe.children.saturating_sub(1);
        }
        // Totals go to the scope it stood for (its kind: `request` for
        // `request#7`, `request/parse` for `request#7/parse`), so a kind's
        // figures keep every instance's work and a report can show them as
        // one row under it; a scope that is no kind's goes to its parent.
        if let Some(target) = info.kind.or(info.parent) {
            let peak = transient_peak_bound(PEAKS[id.index()].load(Ordering::Relaxed), &own);
            let te = &mut self.entries[target.index()];
            te.retired = te.retired.plus(&own).plus(&e.retired);
            te.recycled += 1 + e.recycled;
            te.recycled_peak = te.recycled_peak.max(peak);
            if info.kind.is_some() {
                te.transients = te.transients.saturating_sub(1);
            }
        }
        self.entries[id.index()] = Entry {
            baseline: raw,
            ..Entry::EMPTY
        };
        PEAKS[id.index()].store(0, Ordering::Relaxed);
        PARENT_OF[id.index()].store(NONE, Ordering::Relaxed);
        // Cleared at release already, unless it was set again since.
        crate::hot::budget::scope_released(id);
        thread_state::internal(|| self.free.push_back(id.0));
        // The parent may have been waiting for this child.
        if let Some(p) = info.parent {
            self.try_recycle(p);
        }
        true
    }

    pub(super) fn install(&mut self, id: ScopeId, info: ScopeInfo) {
        inherit_recording(id, info.parent);
        if let Some(p) = info.parent {
            self.entries[p.index()].children += 1;
        }
        let e = &mut self.entries[id.index()];
        e.info = Some(info);
        e.children = 0;
        e.retired = Totals::ZERO;
        e.recycled = 0;
        e.transients = 0;
        e.max_transients = 0;
        e.recycled_peak = 0;
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
        crate::hot::budget::scope_installed(id);
        if let (Lifetime::Transient, Some(k)) = (info.lifetime, info.kind) {
            let ke = &mut self.entries[k.index()];
            ke.transients += 1;
            ke.max_transients = ke.max_transients.max(ke.transients);
        }
        if info.lifetime == Lifetime::Transient {
            TRANSIENT_LIVE.fetch_add(1, Ordering::Relaxed);
            KIND_OF[id.index()].store(info.kind.map_or(id.0, |k| k.0), Ordering::Release);
        }
    }

    pub(super) fn is_within(&self, mut s: ScopeId, root: ScopeId) -> bool {
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

    pub(super) fn ids(&self) -> impl Iterator<Item = ScopeId> + '_ {
        (0..self.fresh)
            .map(|i| ScopeId(i as u16))
            .filter(|id| self.info(*id).is_some())
    }
}
