//! Cases shared by the hand-over tests, one file per allocator
//! configuration: every placement the allocator uses (a trailer in the
//! size class's slack, an exact fit in a scope arena, large blocks, odd and
//! large alignments, transient scopes whose blocks carry a trailer in the
//! tagged arena, zero-sized values).

#![allow(dead_code)]

use std::sync::Arc;

use scope_alloc_tracker::{hand_over, HandOver, ScopeId, ScopeInstance, ScopeStats};

/// Usable-byte counters of the calling thread, if the test file has an
/// independent oracle for them (jemalloc's `thread.allocated` /
/// `thread.deallocated`).
pub(crate) type Oracle = Option<fn() -> (u64, u64)>;

#[repr(align(64))]
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) struct A64(pub [u8; 64]);

#[repr(align(4096))]
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) struct A4k(pub [u8; 100]);

fn live(s: &ScopeStats) -> (u64, u64) {
    (s.live_bytes, s.live_allocs)
}

/// A boxed array built without passing through the stack.
pub(crate) fn boxed<const N: usize>(fill: u8) -> Box<[u8; N]> {
    vec![fill; N].into_boxed_slice().try_into().unwrap()
}

/// Makes a value of `bytes` heap bytes in `src`, hands it to `dst`, and
/// checks: the bytes and one allocation moved from `src` to `dst` exactly,
/// the contents are intact, jemalloc's own counters agree with the usable
/// figures (when an oracle is given), and the free on another thread
/// credits `dst`.
pub(crate) fn moves<V>(
    (src, dst, oracle): (ScopeId, ScopeId, Oracle),
    what: &str,
    bytes: u64,
    make: impl FnOnce() -> V,
    same: impl Fn(&V, &V) -> bool,
    copy: impl Fn(&V) -> V,
) where
    V: HandOver<Output = V> + Send + 'static,
{
    let v = src.in_scope(make);
    let expected = copy(&v);
    let (s0, d0) = (src.stats(), dst.stats());
    let before = oracle.map(|o| o());
    let v = hand_over(v, dst);
    let after = oracle.map(|o| o());
    let (s1, d1) = (src.stats(), dst.stats());
    assert!(same(&v, &expected), "{what}: contents changed");
    assert_eq!(
        live(&s0).0 - live(&s1).0,
        bytes,
        "{what}: bytes leaving the source"
    );
    assert_eq!(
        live(&s0).1 - live(&s1).1,
        1,
        "{what}: allocs leaving the source"
    );
    assert_eq!(
        live(&d1).0 - live(&d0).0,
        bytes,
        "{what}: bytes reaching the target"
    );
    assert_eq!(
        live(&d1).1 - live(&d0).1,
        1,
        "{what}: allocs reaching the target"
    );
    if let (Some((a0, f0)), Some((a1, f1))) = (before, after) {
        let freed_usable = (s1.total_usable_bytes - s1.live_usable_bytes)
            - (s0.total_usable_bytes - s0.live_usable_bytes);
        assert_eq!(
            d1.total_usable_bytes - d0.total_usable_bytes,
            a1 - a0,
            "{what}: usable bytes allocated in the target vs jemalloc's thread.allocated"
        );
        assert_eq!(
            freed_usable,
            f1 - f0,
            "{what}: usable bytes freed in the source vs jemalloc's thread.deallocated"
        );
        assert_eq!(
            d1.live_usable_bytes - d0.live_usable_bytes,
            a1 - a0,
            "{what}"
        );
    }
    std::thread::spawn(move || drop(v)).join().unwrap();
    assert_eq!(
        live(&dst.stats()),
        live(&d0),
        "{what}: freed on another thread"
    );
    assert_eq!(
        live(&src.stats()),
        live(&s1),
        "{what}: source untouched by the free"
    );
    if oracle.is_some() {
        assert_eq!(
            dst.stats().live_usable_bytes,
            d0.live_usable_bytes,
            "{what}"
        );
    }
}

fn eq<T: PartialEq>(a: &T, b: &T) -> bool {
    a == b
}

/// Boxes of every placement between two scopes.
pub(crate) fn boxes(src: ScopeId, dst: ScopeId, oracle: Oracle) {
    macro_rules! case {
        ($n:expr) => {
            moves(
                (src, dst, oracle),
                concat!("Box<[u8; ", stringify!($n), "]>"),
                $n,
                || boxed::<{ $n }>(($n % 251) as u8),
                |a, b| a[..] == b[..],
                |a| boxed::<{ $n }>(a[0]),
            )
        };
    }
    case!(3); // 8-byte class, slack
    case!(8); // exact fit of the smallest class
    case!(24); // slack in 32
    case!(31);
    case!(32); // exact fit
    case!(100);
    case!(4096); // exact fit of a page
    case!(5000);
    case!(14336); // largest small class, exact
    case!(20000); // large
    case!(1 << 20); // large, exact pages
    moves(
        (src, dst, oracle),
        "Box<[u16; 7]>",
        14,
        || Box::new([7u16; 7]),
        eq,
        |a| a.clone(),
    );
    moves(
        (src, dst, oracle),
        "Box<A64>",
        64,
        || Box::new(A64([9; 64])),
        eq,
        |a| a.clone(),
    );
    moves(
        (src, dst, oracle),
        "Box<A4k>",
        4096,
        || Box::new(A4k([5; 100])),
        |a, b| a.0 == b.0 && (&**a as *const A4k as usize).is_multiple_of(4096),
        |a| a.clone(),
    );
}

/// Vectors and strings of every placement.
pub(crate) fn vecs(src: ScopeId, dst: ScopeId, oracle: Oracle) {
    for cap in [
        1usize,
        3,
        16,
        24,
        32,
        64,
        100,
        4096,
        5000,
        14336,
        16384,
        20000,
        1 << 20,
    ] {
        moves(
            (src, dst, oracle),
            &format!("Vec<u8> capacity {cap}"),
            cap as u64,
            || {
                let mut v = Vec::with_capacity(cap);
                v.extend((0..cap / 2).map(|i| i as u8));
                v
            },
            |a: &Vec<u8>, b| a == b && a.capacity() == b.capacity(),
            |a| {
                let mut c = Vec::with_capacity(a.capacity());
                c.extend_from_slice(a);
                c
            },
        );
    }
    moves(
        (src, dst, oracle),
        "Vec<A64>",
        3 * 64,
        || {
            let mut v = Vec::with_capacity(3);
            v.push(A64([1; 64]));
            v
        },
        |a: &Vec<A64>, b| a == b && (a.as_ptr() as usize).is_multiple_of(64),
        |a| {
            let mut c = Vec::with_capacity(a.capacity());
            c.extend_from_slice(a);
            c
        },
    );
    moves(
        (src, dst, oracle),
        "String",
        40,
        || {
            let mut s = String::with_capacity(40);
            s.push_str("a page of text");
            s
        },
        |a: &String, b| a == b && a.capacity() == b.capacity(),
        |a| {
            let mut c = String::with_capacity(a.capacity());
            c.push_str(a);
            c
        },
    );
}

/// Unique `Arc`s move; shared ones are refused with the value unchanged.
pub(crate) fn arcs(src: ScopeId, dst: ScopeId) {
    let a = src.in_scope(|| Arc::new([3u8; 4096]));
    let inner = 2 * std::mem::size_of::<usize>() as u64 + 4096;
    let (s0, d0) = (src.stats(), dst.stats());
    let a = hand_over(a, dst).expect("unique Arc");
    assert_eq!(live(&s0).0 - src.stats().live_bytes, inner);
    assert_eq!(dst.stats().live_bytes - live(&d0).0, inner);
    assert_eq!(a[4095], 3);
    std::thread::spawn(move || drop(a)).join().unwrap();
    assert_eq!(live(&dst.stats()), live(&d0));

    let a = src.in_scope(|| Arc::new(vec![1u8; 10]));
    let other = Arc::clone(&a);
    let (s0, d0) = (src.stats(), dst.stats());
    let refused = hand_over(a, dst).unwrap_err();
    assert_eq!((refused.strong_count(), refused.weak_count()), (2, 0));
    assert!(refused.to_string().contains("shared"));
    assert_eq!(
        (live(&src.stats()), live(&dst.stats())),
        (live(&s0), live(&d0))
    );
    let a = refused.into_inner();
    assert!(Arc::ptr_eq(&a, &other));
    drop(other);
    let weak = Arc::downgrade(&a);
    let refused = hand_over(a, dst).unwrap_err();
    assert_eq!((refused.strong_count(), refused.weak_count()), (1, 1));
    let a = refused.into_inner();
    drop(weak);
    src.in_scope(|| drop(a));

    let r = src.in_scope(|| std::rc::Rc::new([1u64; 8]));
    let d0 = dst.stats();
    let r = hand_over(r, dst).expect("unique Rc");
    assert_eq!(dst.stats().live_allocs - d0.live_allocs, 1);
    drop(r);
    assert_eq!(live(&dst.stats()), live(&d0));
}

/// Values that own no block come back as they are, nothing counted.
pub(crate) fn zero_sized(src: ScopeId, dst: ScopeId) {
    let (s0, d0) = (src.stats(), dst.stats());
    let b = hand_over(src.in_scope(|| Box::new(())), dst);
    let v = hand_over(src.in_scope(|| vec![(); 1000]), dst);
    let e: Vec<u64> = hand_over(Vec::new(), dst);
    let s = hand_over(String::new(), dst);
    assert_eq!((v.len(), e.capacity(), s.capacity()), (1000, 0, 0));
    drop((b, v, e, s));
    assert_eq!(src.stats(), s0);
    assert_eq!(dst.stats().total_allocs, d0.total_allocs);
}

/// Permanent scope → instance, instance → permanent, instance → instance.
pub(crate) fn instances(kind: ScopeId, perm: ScopeId, oracle: Oracle) {
    let a = ScopeInstance::of(kind).unwrap();
    let b = ScopeInstance::of(kind).unwrap();
    boxes(perm, a.id(), oracle);
    vecs(a.id(), perm, oracle);
    boxes(a.id(), b.id(), oracle);
    let page = a.in_scope(|| vec![0u8; 4096]);
    let page = b.adopt(page);
    assert_eq!(b.stats().live_bytes, 4096);
    drop(page);
    a.release().unwrap();
    b.release().unwrap();
}
