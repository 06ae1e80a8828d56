//! Rayon work that keeps the caller's scope, also when stolen.
//!
//! A rayon job runs on whichever worker steals it, in whatever scope that
//! worker is in: binding the closure given to `install` covers only the
//! part of the work that stays on the installing thread. These helpers
//! carry the scope into every piece:
//!
//! - [`ParallelIteratorExt::in_alloc_scope`] /
//!   [`in_current_scope`](ParallelIteratorExt::in_current_scope): every item
//!   is processed (by the adaptors after it: `map`, `filter`, `for_each`,
//!   `collect`...) and every partial result combined inside the scope, on
//!   any worker.
//! - [`join`], [`spawn`], [`install`]: both halves / the job / the closure
//!   run in the scope current at the call.
//!
//! ```
//! # #[global_allocator]
//! # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
//! #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
//! use scope_alloc_tracker::integrations::rayon::ParallelIteratorExt;
//! use scope_alloc_tracker::Scope;
//! use rayon::prelude::*;
//!
//! static ENCODE: Scope = Scope::new("doc-encode");
//! let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
//! let before = ENCODE.stats().total_bytes;
//! let lens: Vec<usize> = pool.install(|| {
//!     (0..64)
//!         .into_par_iter()
//!         .in_alloc_scope(&ENCODE)
//!         .map(|i| std::hint::black_box(vec![0u8; 1000 + i]).len())
//!         .collect()
//! });
//! assert_eq!(lens.len(), 64);
//! // Every item's buffer was charged to ENCODE, whichever worker ran it.
//! assert!(ENCODE.stats().total_bytes - before >= (0..64).map(|i| 1000 + i).sum::<u64>());
//! ```

use ::rayon::iter::plumbing::{Consumer, Folder, Reducer, UnindexedConsumer};
use ::rayon::iter::ParallelIterator;

use crate::ScopeId;

/// Adaptors that run a parallel iterator's downstream work in a scope.
pub trait ParallelIteratorExt: ParallelIterator {
    /// Everything done with the items after this adaptor (the closures of
    /// later adaptors, the partial results and their combination) runs in
    /// `scope`, on whichever worker does it.
    fn in_alloc_scope(self, scope: impl Into<ScopeId>) -> InScopeIter<Self> {
        InScopeIter {
            base: self,
            scope: scope.into(),
        }
    }

    /// [`in_alloc_scope`](Self::in_alloc_scope) with the scope current now.
    fn in_current_scope(self) -> InScopeIter<Self> {
        self.in_alloc_scope(ScopeId::current())
    }
}

impl<I: ParallelIterator> ParallelIteratorExt for I {}

/// A parallel iterator whose downstream work runs in a scope. Made by
/// [`ParallelIteratorExt::in_alloc_scope`].
#[derive(Debug, Clone)]
#[must_use = "iterator adaptors are lazy"]
pub struct InScopeIter<I> {
    base: I,
    scope: ScopeId,
}

impl<I: ParallelIterator> ParallelIterator for InScopeIter<I> {
    type Item = I::Item;

    fn drive_unindexed<C>(self, consumer: C) -> C::Result
    where
        C: UnindexedConsumer<Self::Item>,
    {
        let scope = self.scope;
        self.base.drive_unindexed(ScopedConsumer {
            inner: consumer,
            scope,
        })
    }

    fn opt_len(&self) -> Option<usize> {
        self.base.opt_len()
    }
}

struct ScopedConsumer<C> {
    inner: C,
    scope: ScopeId,
}

struct ScopedFolder<F> {
    inner: F,
    scope: ScopeId,
}

struct ScopedReducer<R> {
    inner: R,
    scope: ScopeId,
}

impl<T, C: Consumer<T>> Consumer<T> for ScopedConsumer<C> {
    type Folder = ScopedFolder<C::Folder>;
    type Reducer = ScopedReducer<C::Reducer>;
    type Result = C::Result;

    fn split_at(self, index: usize) -> (Self, Self, Self::Reducer) {
        let scope = self.scope;
        let (l, r, red) = self.inner.split_at(index);
        (
            ScopedConsumer { inner: l, scope },
            ScopedConsumer { inner: r, scope },
            ScopedReducer { inner: red, scope },
        )
    }

    fn into_folder(self) -> Self::Folder {
        let scope = self.scope;
        ScopedFolder {
            inner: scope.in_scope(|| self.inner.into_folder()),
            scope,
        }
    }

    fn full(&self) -> bool {
        self.inner.full()
    }
}

impl<T, C: UnindexedConsumer<T>> UnindexedConsumer<T> for ScopedConsumer<C> {
    fn split_off_left(&self) -> Self {
        ScopedConsumer {
            inner: self.inner.split_off_left(),
            scope: self.scope,
        }
    }

    fn to_reducer(&self) -> Self::Reducer {
        ScopedReducer {
            inner: self.inner.to_reducer(),
            scope: self.scope,
        }
    }
}

impl<T, F: Folder<T>> Folder<T> for ScopedFolder<F> {
    type Result = F::Result;

    fn consume(self, item: T) -> Self {
        let scope = self.scope;
        ScopedFolder {
            inner: scope.in_scope(|| self.inner.consume(item)),
            scope,
        }
    }

    fn consume_iter<I: IntoIterator<Item = T>>(self, iter: I) -> Self {
        let scope = self.scope;
        ScopedFolder {
            inner: scope.in_scope(|| self.inner.consume_iter(iter)),
            scope,
        }
    }

    fn complete(self) -> F::Result {
        self.scope.in_scope(|| self.inner.complete())
    }

    fn full(&self) -> bool {
        self.inner.full()
    }
}

impl<T, R: Reducer<T>> Reducer<T> for ScopedReducer<R> {
    fn reduce(self, left: T, right: T) -> T {
        self.scope.in_scope(|| self.inner.reduce(left, right))
    }
}

/// `rayon::join`, both closures running in the scope current now, also
/// when the second is stolen.
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let scope = ScopeId::current();
    ::rayon::join(move || scope.in_scope(a), move || scope.in_scope(b))
}

/// `rayon::spawn`, the job running in the scope current now.
pub fn spawn<F: FnOnce() + Send + 'static>(f: F) {
    ::rayon::spawn(ScopeId::current().bind(f))
}

/// `pool.install(f)`, `f` running in the scope current now. Parallel
/// iterators inside still need [`ParallelIteratorExt::in_current_scope`]
/// for the work other workers steal.
pub fn install<R: Send>(pool: &::rayon::ThreadPool, f: impl FnOnce() -> R + Send) -> R {
    let scope = ScopeId::current();
    pool.install(move || scope.in_scope(f))
}
