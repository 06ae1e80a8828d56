//! What `#[alloc_tracker::test]` expands to call (not public API).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::LeakCheck;
use crate::{AllocScopeExt, Scope, ScopeId, ScopeInstance};

/// The kind under which each test's kind (its function name) is made.
static TESTS: Scope = Scope::new("test");

#[track_caller]
fn instance_for(test: &str) -> ScopeInstance {
    let made = TESTS
        .try_id()
        .map_err(crate::ScopeError::from)
        .and_then(|tests| ScopeId::get_or_register(test, Some(tests)))
        .and_then(ScopeInstance::of);
    match made {
        Ok(i) => i,
        Err(e) => panic!("#[alloc_tracker::test] cannot make a scope for `{test}`: {e}"),
    }
}

/// Runs a sync test body in a fresh instance of `test/<name>` and asserts
/// it drained.
#[track_caller]
pub fn run_test<R>(name: &str, body: impl FnOnce() -> R) -> R {
    let instance = instance_for(name);
    let check = LeakCheck::begin(&instance);
    let r = instance.in_scope(body);
    check.assert_drained();
    r
}

/// Runs an async test body to completion on this thread, polled in a fresh
/// instance of `test/<name>`, and asserts the instance drained.
#[track_caller]
pub fn run_async_test<F: Future>(name: &str, body: F) -> F::Output {
    let instance = instance_for(name);
    // Made outside the instance: the executor's own state is not the test's.
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let check = LeakCheck::begin(&instance);
    let r = block_on(body.in_alloc_scope(&instance), &waker);
    check.assert_drained();
    r
}

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: Future>(fut: F, waker: &Waker) -> F::Output {
    let mut cx = Context::from_waker(waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
            return r;
        }
        std::thread::park();
    }
}
