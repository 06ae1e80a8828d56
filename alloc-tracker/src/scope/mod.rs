//! What a scope is, and which one is current.
//!
//! - [`Scope`]: a scope declared as a `static`, registered on first use.
//! - [`ScopeId`]: the copyable handle every API takes; also the way to make
//!   scopes at run time ([`ScopeId::register`]).
//! - [`ScopeInstance`]: an isolated, transient instance of a scope (its
//!   kind), released when dropped; ids are recycled once drained.
//! - [`ScopeGuard`]: returned by entering a scope, restores the previous one.
//! - [`InScope`] / [`AllocScopeExt`]: futures that run in a scope.

use std::fmt;
use std::sync::atomic::{AtomicU16, AtomicU8, Ordering};

mod future;
mod guard;
mod instance;
pub(crate) mod registry;

pub use future::{AllocScopeExt, InScope};
pub use guard::ScopeGuard;
pub use instance::{ReleasedWithLiveBlocks, ScopeInstance, ToScopeId};

use crate::error::{ScopeError, ScopeTableFull};
pub use crate::hot::ids::{ScopeId, MAX_SCOPES};
use crate::hot::thread_state;
use crate::stats::ScopeStats;
use registry::Lifetime;

impl ScopeId {
    /// Registers a new permanent scope named `name` (copied), optionally
    /// under `parent`. Every call makes a new scope, never removed; a
    /// sibling that already has the name gets a distinct path (`name~2`,
    /// `name~3`, ...). The name is not validated (kept for compatibility):
    /// prefer [`ScopeId::try_register`], or [`ScopeId::get_or_register`]
    /// for names read at run time. Below a transient scope, the new scope
    /// is transient too and released with it.
    ///
    /// # Errors
    /// [`ScopeTableFull`] when [`MAX_SCOPES`] scopes exist and none can be
    /// recycled. Nothing is allocated then; use [`ScopeId::OVERFLOW`] to
    /// keep counting.
    pub fn register(name: &str, parent: Option<ScopeId>) -> Result<ScopeId, ScopeTableFull> {
        registry::register_dynamic(name, parent)
    }

    /// Registers a new permanent scope named `name` under `parent`,
    /// validating the name.
    ///
    /// ```
    /// use scope_alloc_tracker::{ScopeError, ScopeId};
    ///
    /// let db = ScopeId::try_register("doc-db", None).unwrap();
    /// let wal = ScopeId::try_register("wal", Some(db)).unwrap();
    /// assert_eq!(wal.path(), "doc-db/wal");
    /// assert_eq!(ScopeId::try_register("wal", Some(db)), Err(ScopeError::DuplicateName));
    /// assert_eq!(ScopeId::try_register("a#1", Some(db)), Err(ScopeError::NameContainsHash));
    /// ```
    ///
    /// # Errors
    /// [`ScopeError`]: an empty name, one containing `/` or `#`, a sibling
    /// with the same name, a parent that is not a registered permanent
    /// scope, or a full table.
    pub fn try_register(name: &str, parent: Option<ScopeId>) -> Result<ScopeId, ScopeError> {
        registry::try_register(name, parent)
    }

    /// The permanent scope named `name` under `parent`, registered by the
    /// first call; later calls, and a static [`Scope`] with that name and
    /// parent, get the same scope (one path, one scope). Use it for kinds
    /// whose names are read at run time, and [`ScopeId::instance`] for the
    /// transient scopes made of them.
    ///
    /// ```
    /// use scope_alloc_tracker::ScopeId;
    ///
    /// let a = ScopeId::get_or_register("doc-tenant", None).unwrap();
    /// assert_eq!(ScopeId::get_or_register("doc-tenant", None), Ok(a));
    /// ```
    ///
    /// # Errors
    /// As [`ScopeId::try_register`], except that an existing permanent
    /// sibling of that name is returned rather than refused.
    pub fn get_or_register(name: &str, parent: Option<ScopeId>) -> Result<ScopeId, ScopeError> {
        registry::kind(name, parent)
    }

    /// A new isolated instance of this scope (its *kind*): see
    /// [`ScopeInstance`].
    ///
    /// # Errors
    /// [`ScopeError::TableFull`] when no id is free, even after recycling
    /// drained released scopes; [`ScopeError::ParentTransient`] when this
    /// scope is itself transient.
    pub fn instance(self) -> Result<ScopeInstance, ScopeError> {
        ScopeInstance::of(self)
    }

    /// The scope named `name` below this one, as entering it by name
    /// inside this scope means:
    ///
    /// - below a permanent scope, the permanent child of that name
    ///   ([`get_or_register`](Self::get_or_register));
    /// - below a transient scope (an instance, or a scope made below one),
    ///   the transient scope made for the kind's child of that name below
    ///   it, as for a static child ([`Scope::current_id`]): `parse` below
    ///   `request#7` is `request#7/parse`, an instance of `request/parse`,
    ///   released with the instance; the name of the kind itself stays in
    ///   the instance.
    ///
    /// The tracing layer (`integrations::tracing`) resolves span names with
    /// it.
    ///
    /// ```
    /// # #[global_allocator]
    /// # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
    /// #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
    /// use scope_alloc_tracker::Scope;
    /// static REQUEST: Scope = Scope::new("doc-named-request");
    /// let req = REQUEST.instance().unwrap();
    /// let parse = req.id().child_named("parse").unwrap();
    /// assert_eq!(parse.path(), format!("doc-named-request#{}/parse", req.serial()));
    /// assert_eq!(parse.kind().path(), "doc-named-request/parse");
    /// ```
    ///
    /// # Errors
    /// [`ScopeError`] for a name that is not valid, or a full table.
    pub fn child_named(self, name: &str) -> Result<ScopeId, ScopeError> {
        if !self.is_transient() {
            return ScopeId::get_or_register(name, Some(self));
        }
        let kind = self.kind();
        if kind.name() == name && kind != self {
            return Ok(self);
        }
        let perm = ScopeId::get_or_register(name, Some(kind))?;
        Ok(registry::resolve_in_context(perm, Some(kind), self))
    }

    /// The kind of an instance (or of a scope made below one); the scope
    /// itself otherwise.
    pub fn kind(self) -> ScopeId {
        registry::info(self).and_then(|i| i.kind).unwrap_or(self)
    }

    /// Whether this is a transient scope (an instance or a scope below one)
    /// that has not been released.
    pub fn is_transient(self) -> bool {
        registry::info(self).is_some_and(|i| i.lifetime == Lifetime::Transient)
    }

    /// Whether this scope was released while blocks were still live: it
    /// keeps counting their frees until they are all freed, then its id is
    /// recycled.
    pub fn is_released(self) -> bool {
        registry::info(self).is_some_and(|i| i.lifetime == Lifetime::Released)
    }

    /// The scope current on this thread.
    pub fn current() -> ScopeId {
        thread_state::current_scope()
    }

    /// Makes this scope current until the returned guard is dropped.
    pub fn enter(self) -> ScopeGuard {
        ScopeGuard::enter(self)
    }

    /// Runs `f` with this scope current.
    pub fn in_scope<R>(self, f: impl FnOnce() -> R) -> R {
        let _guard = self.enter();
        f()
    }

    /// Wraps `f` so that it runs in this scope wherever it is called: hand
    /// the result to `std::thread::spawn` or a thread pool to carry the
    /// scope along.
    ///
    /// ```
    /// use scope_alloc_tracker::ScopeId;
    ///
    /// let worker = ScopeId::register("worker", None).unwrap();
    /// let job = worker.in_scope(|| ScopeId::current().bind(|| ScopeId::current()));
    /// assert_eq!(std::thread::spawn(job).join().unwrap(), worker);
    /// ```
    pub fn bind<F: FnOnce() -> R, R>(self, f: F) -> impl FnOnce() -> R {
        move || self.in_scope(f)
    }

    /// The scope's own name (for an instance, its kind's name).
    pub fn name(self) -> &'static str {
        registry::info(self).map_or("<unregistered>", |i| i.name)
    }

    /// The scope's parent, if it has one.
    pub fn parent(self) -> Option<ScopeId> {
        registry::info(self).and_then(|i| i.parent)
    }

    /// The names from the root down to this scope, joined with `/`. A
    /// numbered instance shows as `kind#n` (`checkpoint#12`); scopes made
    /// below it follow (`checkpoint#12/collect`).
    pub fn path(self) -> String {
        registry::path(self)
    }

    /// This scope's own figures (children not included). For a recycled id
    /// they start from zero at its new registration.
    pub fn stats(self) -> ScopeStats {
        ScopeStats::own(self)
    }

    /// Figures of this scope and all scopes below it, summed: for a kind,
    /// its instances included, live and released, and the totals of
    /// instances already recycled. `peak_bytes` is an upper bound of the
    /// subtree's peak that stays valid after instances are recycled (see
    /// [`ScopeStats::peak_bytes`]).
    pub fn stats_with_children(self) -> ScopeStats {
        let members = registry::subtree(self);
        let mut s = ScopeStats::sum(members.iter().map(|s| ScopeStats::own_with_retired(*s)));
        s.peak_bytes = registry::peak_bounds()
            .get(self.index())
            .copied()
            .unwrap_or(s.peak_bytes)
            .max(s.live_bytes);
        s
    }
}

impl fmt::Debug for ScopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopeId({} {:?})", self.0, self.name())
    }
}

impl fmt::Display for ScopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

// === impl Scope ===

const UNREGISTERED: u8 = 0;
const REGISTERING: u8 = 1;
const REGISTERED: u8 = 2;
const TABLE_FULL: u8 = 3;

/// A scope declared as a `static`, registered in the scope table the first
/// time it is used.
///
/// ```
/// use scope_alloc_tracker::Scope;
///
/// static CHECKPOINT: Scope = Scope::new("checkpoint");
/// static COLLECT: Scope = Scope::child_of(&CHECKPOINT, "collect");
///
/// let v = COLLECT.in_scope(|| vec![0u8; 100]);
/// assert_eq!(COLLECT.id().path(), "checkpoint/collect");
/// drop(v);
/// ```
///
/// Declare scopes as `static`, not `const`: every use of a `const` would
/// look the scope up again. Two statics with the same name and parent are
/// one scope. Static names are not validated (for compatibility); keep
/// them free of `/` and `#`, which paths use. [`Scope::instance`] makes an
/// isolated, transient instance of the scope (see [`ScopeInstance`]).
pub struct Scope {
    name: &'static str,
    parent: Option<&'static Scope>,
    /// `UNREGISTERED → REGISTERING → REGISTERED | TABLE_FULL`.
    state: AtomicU8,
    /// Valid once `state` is `REGISTERED`.
    id: AtomicU16,
}

impl Scope {
    /// A top-level scope.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            parent: None,
            state: AtomicU8::new(UNREGISTERED),
            id: AtomicU16::new(0),
        }
    }

    /// A scope below `parent`; `parent`'s figures can be read including it
    /// ([`ScopeId::stats_with_children`]).
    pub const fn child_of(parent: &'static Scope, name: &'static str) -> Self {
        Self {
            name,
            parent: Some(parent),
            state: AtomicU8::new(UNREGISTERED),
            id: AtomicU16::new(0),
        }
    }

    /// The scope's id, registering it on first use.
    ///
    /// # Errors
    /// [`ScopeTableFull`] if it was not registered and the table is full.
    pub fn try_id(&self) -> Result<ScopeId, ScopeTableFull> {
        match self.state.load(Ordering::Acquire) {
            REGISTERED => Ok(ScopeId(self.id.load(Ordering::Relaxed))),
            TABLE_FULL => Err(ScopeTableFull),
            _ => self.register_slow(),
        }
    }

    /// The scope's id, or [`ScopeId::OVERFLOW`] if the table was full when it
    /// was first used (its allocations are then counted there).
    pub fn id(&self) -> ScopeId {
        self.try_id().unwrap_or(ScopeId::OVERFLOW)
    }

    #[cold]
    fn register_slow(&self) -> Result<ScopeId, ScopeTableFull> {
        if self
            .state
            .compare_exchange(
                UNREGISTERED,
                REGISTERING,
                Ordering::Acquire,
                Ordering::Acquire,
            )
            .is_ok()
        {
            let parent = self.parent.map(Scope::id);
            let result = registry::register_static(self.name, parent);
            match result {
                Ok(id) => {
                    self.id.store(id.0, Ordering::Relaxed);
                    self.state.store(REGISTERED, Ordering::Release);
                }
                Err(_) => {
                    self.state.store(TABLE_FULL, Ordering::Release);
                    // Said once per scope: its state stays TABLE_FULL.
                    thread_state::internal(|| {
                        eprintln!(
                            "alloc-tracker: the scope table is full ({MAX_SCOPES} scopes): static scope `{}` counts in `overflow` (see Snapshot::overflowed_scopes)",
                            self.name
                        )
                    });
                }
            }
            return result;
        }
        // Another thread is registering it: it only writes two atomics.
        loop {
            match self.state.load(Ordering::Acquire) {
                REGISTERED => return Ok(ScopeId(self.id.load(Ordering::Relaxed))),
                TABLE_FULL => return Err(ScopeTableFull),
                _ => std::thread::yield_now(),
            }
        }
    }

    /// The scope that entering this one here means: [`Scope::id`], except
    /// inside an instance (see [`ScopeInstance`]): inside an instance of
    /// this scope, that instance; inside an instance of its parent, the
    /// transient scope made for this one below that instance
    /// (`checkpoint#12/collect`). The conversion `ScopeId::from(&scope)`
    /// gives the same.
    #[inline]
    pub fn current_id(&self) -> ScopeId {
        let id = self.id();
        if !crate::hot::per_scope::any_transient() {
            return id; // no instance exists: one relaxed load
        }
        registry::resolve_in_context(id, self.parent.map(Scope::id), ScopeId::current())
    }

    /// Makes this scope current until the returned guard is dropped
    /// (inside an instance, see [`Scope::current_id`]).
    pub fn enter(&self) -> ScopeGuard {
        self.current_id().enter()
    }

    /// Runs `f` with this scope current (inside an instance, see
    /// [`Scope::current_id`]).
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        self.current_id().in_scope(f)
    }

    /// Wraps `f` so that it runs in this scope wherever it is called (the
    /// scope is resolved now, on the calling thread): see [`ScopeId::bind`].
    ///
    /// ```
    /// use scope_alloc_tracker::{Scope, ScopeId};
    ///
    /// static WORKER: Scope = Scope::new("doc-bind-worker");
    /// let job = WORKER.bind(ScopeId::current);
    /// assert_eq!(std::thread::spawn(job).join().unwrap(), WORKER.id());
    /// ```
    pub fn bind<F: FnOnce() -> R, R>(&self, f: F) -> impl FnOnce() -> R {
        self.current_id().bind(f)
    }

    /// A new isolated instance of this scope: see [`ScopeInstance`].
    ///
    /// # Errors
    /// [`ScopeError::TableFull`] when this scope could not be registered or
    /// no id is free.
    pub fn instance(&self) -> Result<ScopeInstance, ScopeError> {
        ScopeInstance::of(self.try_id()?)
    }

    /// This scope's own figures (its instances not included).
    pub fn stats(&self) -> ScopeStats {
        self.id().stats()
    }

    /// Figures of this scope, its children and its instances, summed.
    pub fn stats_with_children(&self) -> ScopeStats {
        self.id().stats_with_children()
    }

    /// The name given at declaration.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl From<&Scope> for ScopeId {
    /// [`Scope::current_id`]: the scope itself, or the transient scope it
    /// stands for inside an instance.
    fn from(scope: &Scope) -> ScopeId {
        scope.current_id()
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("name", &self.name)
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish()
    }
}
