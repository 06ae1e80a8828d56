//! Planted leaks of different shapes are each caught with the right byte
//! count and a site that names the leaking function.

use std::cell::RefCell;
use std::future::Future;
use std::hint::black_box;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use scope_alloc_tracker::leak::{LeakCheck, LeakReport};
use scope_alloc_tracker::{AllocScopeExt, ScopeId};

fn scope(name: &str) -> ScopeId {
    ScopeId::register(name, None).unwrap()
}

fn leak_of(s: ScopeId, work: impl FnOnce()) -> LeakReport {
    let check = LeakCheck::begin(s);
    s.in_scope(work);
    check.finish().expect_err("the planted leak must be caught")
}

fn assert_site(report: &LeakReport, function: &str) {
    assert!(
        report.mentions_function(function),
        "no site names `{function}`:\n{report}"
    );
    assert!(report.sites_exact, "sites do not cover the leak:\n{report}");
}

#[inline(never)]
fn leak_a_box() {
    black_box(Box::leak(Box::new([7u8; 100])));
}

#[test]
fn box_leak() {
    let _shared = crate::common::shared();
    let r = leak_of(scope("box-leak"), leak_a_box);
    assert_eq!((r.leaked_bytes, r.leaked_allocs), (100, 1));
    assert_site(&r, "leak_a_box");
}

#[inline(never)]
fn forget_a_vec() {
    let v: Vec<u64> = black_box(Vec::with_capacity(32));
    std::mem::forget(v);
}

#[test]
fn forgotten_vec() {
    let _shared = crate::common::shared();
    let r = leak_of(scope("forget-vec"), forget_a_vec);
    assert_eq!((r.leaked_bytes, r.leaked_allocs), (256, 1));
    assert_site(&r, "forget_a_vec");
}

struct Node {
    _payload: [u8; 40],
    next: RefCell<Option<Rc<Node>>>,
}

#[inline(never)]
fn make_rc_cycle() {
    let a = Rc::new(Node {
        _payload: [1; 40],
        next: RefCell::new(None),
    });
    let b = Rc::new(Node {
        _payload: [2; 40],
        next: RefCell::new(Some(a.clone())),
    });
    *a.next.borrow_mut() = Some(b);
}

#[test]
fn rc_cycle() {
    let _shared = crate::common::shared();
    let r = leak_of(scope("rc-cycle"), make_rc_cycle);
    let node = std::mem::size_of::<Node>() as u64 + 2 * std::mem::size_of::<usize>() as u64;
    assert_eq!((r.leaked_bytes, r.leaked_allocs), (2 * node, 2));
    assert_site(&r, "make_rc_cycle");
}

#[inline(never)]
fn leak_on_a_worker_thread() {
    let job = ScopeId::current().bind(|| {
        black_box(Box::leak(vec![0u8; 300].into_boxed_slice()));
    });
    std::thread::spawn(job).join().unwrap();
}

#[test]
fn leak_made_on_a_spawned_thread_inside_the_scope() {
    let _shared = crate::common::shared();
    let s = scope("thread-leak");
    let check = LeakCheck::begin(s);
    s.in_scope(leak_on_a_worker_thread);
    let r = check.finish().unwrap_err();
    assert_eq!((r.leaked_bytes, r.leaked_allocs), (300, 1));
    assert_site(&r, "leak_on_a_worker_thread");
}

#[inline(never)]
async fn leaky_async_step(n: usize) {
    std::future::ready(()).await;
    black_box(Box::leak(vec![9u8; n].into_boxed_slice()));
}

#[test]
fn leak_inside_an_async_block_polled_in_the_scope() {
    let _shared = crate::common::shared();
    let s = scope("async-leak");
    let check = LeakCheck::begin(s);
    let mut fut = std::pin::pin!(leaky_async_step(123).in_alloc_scope(s));
    assert_eq!(
        fut.as_mut().poll(&mut Context::from_waker(Waker::noop())),
        Poll::Ready(())
    );
    let r = check.finish().unwrap_err();
    assert_eq!((r.leaked_bytes, r.leaked_allocs), (123, 1));
    assert_site(&r, "leaky_async_step");
}

#[inline(never)]
fn grow_then_forget() {
    let mut v: Vec<u8> = Vec::with_capacity(8);
    for i in 0..1000u32 {
        v.push(i as u8);
    }
    v.shrink_to_fit();
    std::mem::forget(black_box(v));
}

#[test]
fn leaked_reallocated_buffer() {
    let _shared = crate::common::shared();
    let r = leak_of(scope("realloc-leak"), grow_then_forget);
    assert_eq!((r.leaked_bytes, r.leaked_allocs), (1000, 1));
    assert_site(&r, "grow_then_forget");
}

#[test]
fn clean_work_passes_even_when_freed_on_another_thread() {
    let _shared = crate::common::shared();
    let s = scope("clean");
    let check = LeakCheck::begin(s);
    let data = s.in_scope(|| (0..100).map(|i| vec![i as u8; 64]).collect::<Vec<_>>());
    std::thread::spawn(move || drop(data)).join().unwrap();
    let drained = check.finish().expect("nothing leaked");
    assert_eq!(drained.during.total_allocs, drained.during.total_frees);
    assert!(drained.during.total_allocs >= 101);
}

#[test]
fn report_display_names_scope_and_bytes() {
    let _shared = crate::common::shared();
    let r = leak_of(scope("display"), leak_a_box);
    let text = r.to_string();
    assert!(
        text.contains("leak in scope `display`: 100 B in 1 allocations"),
        "{text}"
    );
    assert!(text.contains("leak_a_box"), "{text}");
}

#[test]
#[should_panic(expected = "leak_a_box")]
fn assert_macro_panics_with_the_sites() {
    let _shared = crate::common::shared();
    let s = scope("macro");
    scope_alloc_tracker::assert_scope_drained!(s, { leak_a_box() });
}
