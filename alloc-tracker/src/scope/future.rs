//! Futures that allocate in a scope.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::ScopeId;

pin_project! {
    /// A future that enters its scope on every poll and while the inner
    /// future is dropped, so bytes it allocates, and bytes freed when it is
    /// cancelled, are charged to that scope. Made by
    /// [`AllocScopeExt::in_alloc_scope`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct InScope<F> {
        #[pin]
        inner: Option<F>,
        scope: ScopeId,
    }

    impl<F> PinnedDrop for InScope<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            let _guard = this.scope.enter();
            // Drops the inner future in place, inside the scope.
            this.inner.set(None);
        }
    }
}

impl<F: Future> Future for InScope<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _guard = this.scope.enter();
        match this.inner.as_pin_mut() {
            Some(inner) => inner.poll(cx),
            None => panic!("`InScope` polled after its inner future was dropped"),
        }
    }
}

/// Runs futures in an allocation scope.
///
/// ```
/// use scope_alloc_tracker::{AllocScopeExt, ScopeId};
/// use std::future::Future;
/// use std::task::{Context, Poll, Waker};
///
/// let net = ScopeId::register("net", None).unwrap();
/// let mut fut = std::pin::pin!(async { ScopeId::current() }.in_alloc_scope(net));
/// let mut cx = Context::from_waker(Waker::noop());
/// assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(net));
/// ```
pub trait AllocScopeExt: Sized {
    /// Wraps `self` so that it is polled and dropped inside `scope` (a
    /// [`ScopeId`], a `&Scope` or a `&ScopeInstance`, resolved now).
    fn in_alloc_scope(self, scope: impl Into<ScopeId>) -> InScope<Self> {
        InScope {
            inner: Some(self),
            scope: scope.into(),
        }
    }
}

impl<F: Future> AllocScopeExt for F {}
