//! A future wrapped with `in_alloc_scope` allocates into its scope on every
//! poll and is dropped inside it; a closure made with `ScopeId::bind` runs
//! in its scope on whatever thread calls it.

use std::cell::Cell;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};
use std::thread;

use scope_alloc_tracker::{AllocScopeExt, ScopeId};

thread_local! {
    /// The scope current when the last `AllocEachPoll` was dropped.
    static DROPPED_IN: Cell<Option<ScopeId>> = const { Cell::new(None) };
}

/// Allocates a 100-byte block on its first poll and returns `Pending`;
/// allocates a 200-byte block on its second poll, frees the first and
/// returns the second. Records the scope current in each poll, and when
/// dropped allocates and frees a 50-byte block and records the scope.
#[derive(Default)]
struct AllocEachPoll {
    first: Option<Box<[u8; 100]>>,
    polled_in: Vec<ScopeId>,
}

impl Future for AllocEachPoll {
    type Output = (Box<[u8; 200]>, Vec<ScopeId>);

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let current = ScopeId::current();
        self.polled_in.push(current);
        match self.first.take() {
            None => {
                self.first = Some(Box::new([1; 100]));
                Poll::Pending
            }
            Some(first) => {
                assert_eq!(first[99], 1);
                drop(first);
                Poll::Ready((Box::new([2; 200]), std::mem::take(&mut self.polled_in)))
            }
        }
    }
}

impl Drop for AllocEachPoll {
    fn drop(&mut self) {
        DROPPED_IN.with(|d| d.set(Some(ScopeId::current())));
        drop(std::hint::black_box(Vec::<u8>::with_capacity(50)));
    }
}

/// Returns `Pending` once, then `Ready`.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(move |_| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            Poll::Pending
        }
    })
    .await;
}

#[test]
fn in_scope_future_allocates_into_its_scope_across_polls() {
    let s = ScopeId::register("future/polls", None).unwrap();
    // `polled_in` has room for both polls, so pushing does not allocate.
    let inner = AllocEachPoll {
        first: None,
        polled_in: Vec::with_capacity(2),
    };
    let mut fut = pin!(inner.in_alloc_scope(s));
    let mut cx = Context::from_waker(Waker::noop());

    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert_eq!(ScopeId::current(), ScopeId::UNSCOPED);
    let st = s.stats();
    assert_eq!(
        (st.total_allocs, st.total_bytes, st.live_bytes),
        (1, 100, 100),
        "{st:?}"
    );

    // Between polls the thread is outside the scope.
    let between: Vec<u8> = Vec::with_capacity(1000);
    assert_eq!(s.stats().total_allocs, 1);

    let Poll::Ready((second, polled_in)) = fut.as_mut().poll(&mut cx) else {
        panic!("second poll must be ready");
    };
    assert_eq!(polled_in, [s, s]);
    assert_eq!(ScopeId::current(), ScopeId::UNSCOPED);
    let st = s.stats();
    assert_eq!((st.total_allocs, st.total_bytes), (2, 300), "{st:?}");
    assert_eq!((st.total_frees, st.total_freed_bytes), (1, 100), "{st:?}");
    assert_eq!((st.live_allocs, st.live_bytes), (1, 200), "{st:?}");
    assert_eq!(second[0], 2);
    drop((second, between));
    let st = s.stats();
    assert_eq!(
        (st.live_allocs, st.live_bytes, st.live_usable_bytes),
        (0, 0, 0),
        "{st:?}"
    );
}

#[test]
fn async_block_in_scope_counts_allocations_before_and_after_an_await() {
    let s = ScopeId::register("future/async", None).unwrap();
    let fut = async {
        let v: Vec<u8> = std::hint::black_box(Vec::with_capacity(64));
        yield_once().await;
        let w: Vec<u8> = std::hint::black_box(Vec::with_capacity(128));
        (ScopeId::current(), v.capacity() + w.capacity())
    };
    let mut fut = pin!(fut.in_alloc_scope(s));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert_eq!(s.stats().live_bytes, 64);
    assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready((s, 192)));
    let st = s.stats();
    assert_eq!(
        (st.total_allocs, st.total_bytes, st.live_bytes),
        (2, 192, 0),
        "{st:?}"
    );
}

#[test]
fn dropping_an_unfinished_in_scope_future_drops_its_state_inside_the_scope() {
    let s = ScopeId::register("future/cancelled", None).unwrap();
    let inner = AllocEachPoll {
        first: None,
        polled_in: Vec::with_capacity(2),
    };
    // Boxed outside the scope so that it can be dropped explicitly.
    let mut fut = Box::pin(inner.in_alloc_scope(s));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert_eq!(s.stats().live_bytes, 100);

    DROPPED_IN.with(|d| d.set(None));
    drop(fut);
    assert_eq!(
        DROPPED_IN.with(Cell::get),
        Some(s),
        "inner future was not dropped inside its scope"
    );
    assert_eq!(ScopeId::current(), ScopeId::UNSCOPED);
    let st = s.stats();
    // The 100-byte block of the first poll, and the 50-byte block the
    // inner future's destructor allocated (inside the scope) and freed.
    assert_eq!((st.total_allocs, st.total_bytes), (2, 150), "{st:?}");
    assert_eq!((st.total_frees, st.total_freed_bytes), (2, 150), "{st:?}");
    assert_eq!(
        (st.live_allocs, st.live_bytes, st.live_usable_bytes),
        (0, 0, 0),
        "{st:?}"
    );
}

#[test]
fn bound_closure_allocates_into_its_scope_on_a_spawned_thread() {
    let s = ScopeId::register("bind/worker", None).unwrap();
    let job = s.bind(|| {
        let v: Vec<u8> = Vec::with_capacity(1000);
        (v, ScopeId::current())
    });
    let (v, seen, after) = thread::spawn(move || {
        let (v, seen) = job();
        (v, seen, ScopeId::current())
    })
    .join()
    .unwrap();
    assert_eq!(seen, s);
    assert_eq!(
        after,
        ScopeId::UNSCOPED,
        "the bound scope must end with the closure"
    );
    let st = s.stats();
    assert_eq!(
        (st.total_allocs, st.total_bytes, st.live_bytes),
        (1, 1000, 1000),
        "{st:?}"
    );
    drop(v);
    let st = s.stats();
    assert_eq!(
        (st.live_allocs, st.live_bytes, st.total_frees),
        (0, 0, 1),
        "{st:?}"
    );
}

#[test]
fn in_scope_future_polled_on_different_threads_allocates_into_its_scope() {
    let s = ScopeId::register("future/threads", None).unwrap();
    let inner = AllocEachPoll {
        first: None,
        polled_in: Vec::with_capacity(2),
    };
    let mut fut = Box::pin(inner.in_alloc_scope(s));
    let mut fut = thread::spawn(move || {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        fut
    })
    .join()
    .unwrap();
    let ready = thread::spawn(move || {
        let mut cx = Context::from_waker(Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("second poll must be ready"),
        }
    })
    .join()
    .unwrap();
    assert_eq!(ready.1, [s, s]);
    drop(ready);
    let st = s.stats();
    // Two polls' blocks plus the destructor's 50 bytes (the future is
    // dropped, inside the scope, when the second thread's closure ends).
    assert_eq!((st.total_allocs, st.total_bytes), (3, 350), "{st:?}");
    assert_eq!((st.live_allocs, st.live_bytes), (0, 0), "{st:?}");
}
