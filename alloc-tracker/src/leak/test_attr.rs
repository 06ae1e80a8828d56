//! What `#[scope_alloc_tracker::test]` expands to call (not public API).

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
        Err(e) => panic!("#[scope_alloc_tracker::test] cannot make a scope for `{test}`: {e}"),
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

/// Runs an async test body on a fresh tokio multi-thread runtime of
/// `worker_threads` workers (the `tokio` flavor of the attribute): the
/// runtime is built and warmed up ([`warm_up`](crate::integrations::tokio::warm_up))
/// before the check begins; its worker threads run in the test's instance,
/// so tasks spawned with a plain `tokio::spawn` are the test's too; the
/// body is polled in the instance by `block_on`; the check (default
/// quiescence wait included) ends before the runtime is shut down.
#[cfg(feature = "tokio")]
#[track_caller]
pub fn run_tokio_test<F: Future>(name: &str, worker_threads: usize, body: F) -> F::Output {
    let instance = instance_for(name);
    let id = instance.id();
    let build = || {
        ::tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads.max(1))
            .enable_all()
            .on_thread_start(move || {
                crate::hot::thread_state::replace_scope(id);
            })
            .on_thread_stop(|| {
                crate::hot::thread_state::replace_scope(ScopeId::UNSCOPED);
            })
            .build()
    };
    // A fresh runtime's warm-up can time out on a loaded machine (many
    // such tests in parallel on few cores; see `docs/attribution.md`,
    // "Runtimes' own state"); it says so instead of hanging, and a new
    // runtime is tried, three times in all.
    let mut attempt = 0;
    let rt = loop {
        attempt += 1;
        let rt = match build() {
            Ok(rt) => rt,
            Err(e) => {
                panic!("#[scope_alloc_tracker::test(tokio)] cannot build the runtime for `{name}`: {e}")
            }
        };
        match crate::integrations::tokio::warm_up(rt.handle()) {
            Ok(()) => break rt,
            Err(e) if attempt >= 3 => panic!("#[scope_alloc_tracker::test(tokio)] `{name}`: {e}"),
            Err(_) => drop(rt),
        }
    };
    let check = LeakCheck::begin(&instance);
    let r = rt.block_on(body.in_alloc_scope(&instance));
    check.assert_drained();
    drop(rt);
    r
}

/// `#[scope_alloc_tracker::test(tokio)]` without the `tokio` feature: a clear
/// compile error rather than a missing function.
#[cfg(not(feature = "tokio"))]
#[macro_export]
#[doc(hidden)]
macro_rules! __tokio_flavor_check {
    () => {
        ::core::compile_error!(
            "#[scope_alloc_tracker::test(tokio)] needs scope-alloc-tracker's `tokio` feature (features = [\"macros\", \"tokio\"])"
        );
    };
}

/// `#[scope_alloc_tracker::test(tokio)]` with the `tokio` feature: nothing.
#[cfg(feature = "tokio")]
#[macro_export]
#[doc(hidden)]
macro_rules! __tokio_flavor_check {
    () => {};
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
