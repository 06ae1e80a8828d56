//! Entering scopes nests: dropping a guard makes the previous scope current
//! again, in the normal order and while a panic unwinds through the guards.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::thread;

use scope_alloc_tracker::{Scope, ScopeId};

static OUTER: Scope = Scope::new("nested/outer");
static INNER: Scope = Scope::child_of(&OUTER, "inner");

const DELIBERATE: &str = "deliberate panic inside a scope";

/// Keeps the deliberate panics of this file off stderr; any other panic
/// (a failing assertion) is still reported by the default hook.
fn silence_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&DELIBERATE) {
                default(info);
            }
        }));
    });
}

#[test]
fn guards_restore_the_previous_scope_in_order() {
    let a = ScopeId::register("nested/a", None).unwrap();
    let b = ScopeId::register("nested/b", Some(a)).unwrap();
    let c = ScopeId::register("nested/c", None).unwrap();
    assert_eq!(ScopeId::current(), ScopeId::UNSCOPED);
    {
        let ga = a.enter();
        assert_eq!(ga.scope(), a);
        assert_eq!(ScopeId::current(), a);
        {
            let _gb = b.enter();
            assert_eq!(ScopeId::current(), b);
            {
                let _gc = c.enter();
                assert_eq!(ScopeId::current(), c);
                // Re-entering the current scope nests too.
                let again = c.enter();
                assert_eq!(ScopeId::current(), c);
                drop(again);
                assert_eq!(ScopeId::current(), c);
            }
            assert_eq!(ScopeId::current(), b);
        }
        assert_eq!(ScopeId::current(), a);
    }
    assert_eq!(ScopeId::current(), ScopeId::UNSCOPED);

    // `in_scope` nests the same way and returns the closure's value.
    let seen = a.in_scope(|| {
        let inner = b.in_scope(|| (ScopeId::current(), c.in_scope(ScopeId::current)));
        (ScopeId::current(), inner)
    });
    assert_eq!(seen, (a, (b, c)));
    assert_eq!(ScopeId::current(), ScopeId::UNSCOPED);
}

#[test]
fn allocations_follow_the_innermost_scope_and_only_it() {
    let a = ScopeId::register("follow/a", None).unwrap();
    let b = ScopeId::register("follow/b", Some(a)).unwrap();
    let (va, vb, va2) = a.in_scope(|| {
        let va: Vec<u8> = std::hint::black_box(Vec::with_capacity(100));
        let vb: Vec<u8> = b.in_scope(|| std::hint::black_box(Vec::with_capacity(200)));
        let va2: Vec<u8> = std::hint::black_box(Vec::with_capacity(300));
        (va, vb, va2)
    });
    let unscoped: Vec<u8> = std::hint::black_box(Vec::with_capacity(400));
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(
        (sa.total_allocs, sa.total_bytes, sa.live_bytes),
        (2, 400, 400),
        "{sa:?}"
    );
    assert_eq!(
        (sb.total_allocs, sb.total_bytes, sb.live_bytes),
        (1, 200, 200),
        "{sb:?}"
    );
    let all = a.stats_with_children();
    assert_eq!((all.total_allocs, all.live_bytes), (3, 600), "{all:?}");
    drop((va, vb, va2, unscoped));
    assert_eq!(a.stats_with_children().live_bytes, 0);
}

#[test]
fn static_scopes_nest_and_restore() {
    assert_eq!(INNER.id().path(), "nested/outer/inner");
    assert_eq!(INNER.id().parent(), Some(OUTER.id()));
    let _g = OUTER.enter();
    INNER.in_scope(|| assert_eq!(ScopeId::current(), INNER.id()));
    assert_eq!(ScopeId::current(), OUTER.id());
}

#[test]
fn unwinding_through_guards_restores_the_scope_outside_the_catch() {
    silence_deliberate_panics();
    let outer = ScopeId::register("panic/outer", None).unwrap();
    let mid = ScopeId::register("panic/mid", Some(outer)).unwrap();
    let deep = ScopeId::register("panic/deep", Some(mid)).unwrap();

    let _g = outer.enter();
    let caught = panic::catch_unwind(|| {
        mid.in_scope(|| {
            let _deep = deep.enter();
            assert_eq!(ScopeId::current(), deep);
            panic::panic_any(DELIBERATE);
        })
    });
    assert!(caught.is_err());
    assert_eq!(ScopeId::current(), outer);

    // Allocations after the unwind go to `outer`, not to the scopes the
    // panic left.
    let (mid_before, deep_before, outer_before) = (mid.stats(), deep.stats(), outer.stats());
    let v: Vec<u8> = std::hint::black_box(Vec::with_capacity(77));
    let (mid_after, deep_after, outer_after) = (mid.stats(), deep.stats(), outer.stats());
    assert_eq!(outer_after.total_bytes - outer_before.total_bytes, 77);
    assert_eq!(outer_after.total_allocs - outer_before.total_allocs, 1);
    assert_eq!(mid_after.total_allocs, mid_before.total_allocs);
    assert_eq!(deep_after.total_allocs, deep_before.total_allocs);
    drop(v);
    drop(_g);
    assert_eq!(ScopeId::current(), ScopeId::UNSCOPED);
}

#[test]
fn panic_in_a_scope_with_a_live_block_still_frees_it_to_its_scope() {
    silence_deliberate_panics();
    let s = ScopeId::register("panic/owner", None).unwrap();
    let caught = panic::catch_unwind(AssertUnwindSafe(|| {
        s.in_scope(|| {
            let v: Vec<u8> = Vec::with_capacity(1234);
            std::hint::black_box(&v);
            panic::panic_any(DELIBERATE);
        })
    }));
    // The panic payload was boxed inside `s`; it goes with `caught`.
    assert!(caught.is_err());
    drop(caught);
    assert_eq!(ScopeId::current(), ScopeId::UNSCOPED);
    let st = s.stats();
    // The panic machinery allocates in `s` too; the block itself was
    // dropped during unwinding, so nothing is left live.
    assert!(st.total_allocs >= 1 && st.total_bytes >= 1234, "{st:?}");
    assert_eq!((st.live_allocs, st.live_bytes), (0, 0), "{st:?}");
}

#[test]
fn a_thread_that_panics_inside_a_scope_does_not_leak_it_to_other_threads() {
    silence_deliberate_panics();
    let s = ScopeId::register("panic/thread", None).unwrap();
    let r = thread::spawn(move || {
        let _g = s.enter();
        panic::panic_any(DELIBERATE);
    })
    .join();
    assert!(r.is_err());
    assert_eq!(ScopeId::current(), ScopeId::UNSCOPED);
    // A new thread starts outside any scope.
    assert_eq!(
        thread::spawn(ScopeId::current).join().unwrap(),
        ScopeId::UNSCOPED
    );
}
