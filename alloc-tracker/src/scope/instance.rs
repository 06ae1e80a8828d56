//! Instances of a scope: isolated, transient scopes of one kind.

use std::fmt;

use super::{registry, ScopeGuard, ScopeId};
use crate::error::ScopeError;
use crate::stats::ScopeStats;

/// An isolated instance of a scope, its *kind*: a transient scope whose
/// figures are its own, while the kind's
/// [`stats_with_children`](ScopeId::stats_with_children) aggregate all its
/// instances. Dropping it (or [`release`](ScopeInstance::release)) releases
/// it; its id is recycled once its blocks are all freed.
///
/// Make one per unit of work that must be checked or measured on its own:
/// per test, per request, per query, per `Db` handle.
///
/// ```
/// use scope_alloc_tracker::{assert_scope_drained, Scope};
/// # #[global_allocator]
/// # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
/// #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
///
/// static CHECKPOINT: Scope = Scope::new("doc-checkpoint");
/// static COLLECT: Scope = Scope::child_of(&CHECKPOINT, "collect");
///
/// let run = CHECKPOINT.instance().unwrap();
/// assert_eq!(run.path(), format!("doc-checkpoint#{}", run.serial()));
/// let kept = run.in_scope(|| {
///     // Inside the instance, the static child stands for the instance's
///     // own `collect`.
///     COLLECT.in_scope(|| vec![0u8; 100])
/// });
/// assert_eq!(run.stats_with_children().live_bytes, 100);
/// assert_eq!(COLLECT.stats().live_bytes, 0);
/// assert_eq!(CHECKPOINT.stats_with_children().live_bytes, 100);
/// drop(kept);
/// assert!(run.release().is_ok());
///
/// // The isolated leak check: a fresh instance per check.
/// assert_scope_drained!(instance of &CHECKPOINT, { COLLECT.in_scope(|| vec![1u8; 10].len()) });
/// ```
///
/// - **Figures**: the instance's own [`stats`](Self::stats) start at zero;
///   the kind's `stats()` are what was allocated in the kind itself, never
///   in an instance; the kind's `stats_with_children()` include every
///   instance, live or released, and the totals of recycled ones.
/// - **Paths**: `kind#n`, `n` counting the kind's instances from 1
///   (`checkpoint#12`); scopes made below it follow
///   (`checkpoint#12/collect`).
/// - **Static children**: inside an instance, entering a static child of
///   the kind (`COLLECT.in_scope(..)`) enters a transient scope made for it
///   below the instance, and entering the kind itself stays in the
///   instance: code written for the static scope needs no change.
/// - **Release**: the instance and the scopes made below it are released
///   together. One that still holds blocks stays in the table, marked
///   released ([`ScopeId::is_released`], `released` in snapshots, `(released)`
///   in reports), still under its kind's figures, until its blocks are
///   freed; then its totals are folded into its parent and its id is
///   recycled. A budget set on any of them is cleared at release, with its
///   history: the next scope on the id starts without one. Do not enter a
///   released scope's id afterwards: once recycled, it names another scope.
#[must_use = "the instance is released when dropped"]
pub struct ScopeInstance {
    id: ScopeId,
    serial: u64,
    released: bool,
}

/// A released instance still held blocks; they stay counted in it (marked
/// released) until they are freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReleasedWithLiveBlocks {
    /// Live bytes left in the instance and the scopes below it.
    pub live_bytes: u64,
    /// Live allocations left.
    pub live_allocs: u64,
}

impl fmt::Display for ReleasedWithLiveBlocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scope instance released with {} B in {} allocations still live (kept, marked released, until freed)",
            self.live_bytes, self.live_allocs
        )
    }
}

impl std::error::Error for ReleasedWithLiveBlocks {}

impl ScopeInstance {
    /// A new instance of `kind`. Given a transient scope, it makes a new
    /// instance of that scope's kind.
    ///
    /// # Errors
    /// [`ScopeError::TableFull`] when no id is free, even after recycling
    /// drained released scopes.
    pub fn of(kind: impl Into<ScopeId>) -> Result<ScopeInstance, ScopeError> {
        let kind = kind.into();
        let kind = if kind.is_transient() || kind.is_released() {
            kind.kind()
        } else {
            kind
        };
        let (id, serial) = registry::new_instance(kind)?;
        Ok(ScopeInstance {
            id,
            serial,
            released: false,
        })
    }

    /// The instance's id (valid until it is released).
    pub fn id(&self) -> ScopeId {
        self.id
    }

    /// The scope this is an instance of.
    pub fn kind(&self) -> ScopeId {
        self.id.kind()
    }

    /// Its number within its kind (from 1).
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// `kind#n`: see [`ScopeId::path`].
    pub fn path(&self) -> String {
        self.id.path()
    }

    /// Makes the instance current until the guard is dropped.
    pub fn enter(&self) -> ScopeGuard {
        self.id.enter()
    }

    /// Runs `f` with the instance current.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        self.id.in_scope(f)
    }

    /// Wraps `f` to run in this instance wherever it is called; the
    /// instance must outlive the call.
    pub fn bind<F: FnOnce() -> R, R>(&self, f: F) -> impl FnOnce() -> R {
        self.id.bind(f)
    }

    /// The instance's own figures.
    pub fn stats(&self) -> ScopeStats {
        self.id.stats()
    }

    /// The figures of the instance and the scopes made below it.
    pub fn stats_with_children(&self) -> ScopeStats {
        self.id.stats_with_children()
    }

    /// Releases the instance (what dropping it does) and says whether it
    /// was drained.
    ///
    /// # Errors
    /// [`ReleasedWithLiveBlocks`] when blocks were still live: they stay
    /// exactly counted in the released instance until freed.
    pub fn release(mut self) -> Result<(), ReleasedWithLiveBlocks> {
        self.released = true;
        match registry::release(self.id) {
            (0, 0) => Ok(()),
            (live_bytes, live_allocs) => Err(ReleasedWithLiveBlocks {
                live_bytes,
                live_allocs,
            }),
        }
    }
}

impl Drop for ScopeInstance {
    fn drop(&mut self) {
        if !self.released {
            registry::release(self.id);
        }
    }
}

impl From<&ScopeInstance> for ScopeId {
    fn from(i: &ScopeInstance) -> ScopeId {
        i.id
    }
}

impl fmt::Debug for ScopeInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeInstance")
            .field("id", &self.id.0)
            .field("serial", &self.serial)
            .finish()
    }
}

/// What the leak macros accept as a scope: a [`ScopeId`], a `&Scope`, a
/// [`ScopeInstance`] or a reference to one. Not for use outside the macros.
#[doc(hidden)]
pub trait ToScopeId {
    /// The scope it names.
    fn to_scope_id(&self) -> ScopeId;
}

impl ToScopeId for ScopeId {
    fn to_scope_id(&self) -> ScopeId {
        *self
    }
}

impl ToScopeId for super::Scope {
    fn to_scope_id(&self) -> ScopeId {
        self.current_id()
    }
}

impl ToScopeId for ScopeInstance {
    fn to_scope_id(&self) -> ScopeId {
        self.id
    }
}

impl<T: ToScopeId + ?Sized> ToScopeId for &T {
    fn to_scope_id(&self) -> ScopeId {
        (**self).to_scope_id()
    }
}
