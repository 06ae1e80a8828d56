//! A budget's flag is set exactly at the threshold, by one thread or many;
//! children count in their budgeted parents; limits change at run time;
//! watchers run on their own thread; a hard limit refuses only inside a
//! fallible section.
//!
//! These tests call the allocator's hooks `on_alloc` / `on_free` directly, on
//! scopes that never allocate for real, to place bytes exactly;
//! `budget_is_charged_by_the_allocator.rs` goes through the allocator.

use std::sync::mpsc;
use std::time::Duration;

use crate::budget;
use crate::hot::budget::{admits, on_alloc, on_free};
use crate::{Budget, Scope, ScopeId};

fn scope(name: &str, parent: Option<ScopeId>) -> ScopeId {
    ScopeId::register(name, parent).unwrap()
}

#[test]
fn flag_is_set_by_the_byte_that_exceeds_the_budget_and_cleared_by_the_free_below_it() {
    let s = scope("single", None);
    assert!(!s.over_budget(), "no budget, never over");
    s.set_budget(Budget::soft(1000));
    on_alloc(s, 999);
    on_alloc(s, 1);
    let st = s.budget_status().unwrap();
    assert_eq!((st.live_bytes, st.over, st.crossings), (1000, false, 0));
    on_alloc(s, 1);
    let st = s.budget_status().unwrap();
    assert_eq!((st.live_bytes, st.over, st.crossings), (1001, true, 1));
    on_free(s, 1);
    assert!(!s.over_budget());
    on_alloc(s, 5);
    assert_eq!(s.budget_status().unwrap().crossings, 2);
    on_free(s, 1005);
    assert_eq!(s.budget_status().unwrap().live_bytes, 0);
}

#[test]
fn children_count_in_their_budgeted_ancestors() {
    let root = scope("tree", None);
    let mid = scope("mid", Some(root));
    let leaf = scope("leaf", Some(mid));
    root.set_budget(Budget::soft(100));
    leaf.set_budget(Budget::soft(50));
    on_alloc(leaf, 60);
    assert!(leaf.over_budget() && !root.over_budget());
    on_alloc(mid, 40);
    assert!(!root.over_budget());
    on_alloc(leaf, 1);
    assert!(root.over_budget());
    assert!(!mid.over_budget(), "an unbudgeted scope is never over");
    assert_eq!(leaf.budget_status().unwrap().crossings, 1);
    on_free(leaf, 61);
    on_free(mid, 40);
    // A child registered after the budget was set counts too.
    let late = scope("late", Some(root));
    on_alloc(late, 101);
    assert!(root.over_budget());
    on_free(late, 101);
    assert_eq!(root.budget_status().unwrap().live_bytes, 0);
    assert_eq!(leaf.budget_status().unwrap().live_bytes, 0);
}

#[test]
fn many_threads_cross_exactly_once_and_end_exact() {
    const THREADS: u64 = 8;
    const EACH: u64 = 20_000;
    let s = scope("threads", None);
    s.set_budget(Budget::soft(THREADS * EACH - 1));
    std::thread::scope(|t| {
        for _ in 0..THREADS {
            t.spawn(|| {
                for _ in 0..EACH {
                    on_alloc(s, 1);
                }
            });
        }
    });
    let st = s.budget_status().unwrap();
    assert_eq!(
        (st.live_bytes, st.over, st.crossings),
        (THREADS * EACH, true, 1)
    );

    // Threads churning around the threshold: every upward crossing is
    // counted once, and the end is exact.
    on_free(s, 1); // exactly at the limit
    std::thread::scope(|t| {
        for _ in 0..THREADS {
            t.spawn(|| {
                for _ in 0..EACH {
                    on_alloc(s, 1);
                    on_free(s, 1);
                }
            });
        }
    });
    let st = s.budget_status().unwrap();
    assert_eq!((st.live_bytes, st.over), (THREADS * EACH - 1, false));
    assert!(st.crossings >= 2 && st.crossings <= 1 + THREADS * EACH);
}

#[test]
fn limits_change_at_run_time() {
    static CACHE: Scope = Scope::new("budget-cache");
    CACHE.set_budget(Budget::soft(1 << 20));
    on_alloc(CACHE.id(), 4096);
    assert!(!CACHE.over_budget());
    CACHE.set_budget(Budget::soft(1024)); // lowered under the live bytes
    let st = CACHE.budget_status().unwrap();
    assert_eq!((st.over, st.crossings), (true, 1));
    CACHE.set_budget(Budget::soft(8192)); // raised again: counting went on
    assert!(!CACHE.over_budget());
    assert_eq!(CACHE.budget_status().unwrap().live_bytes, 4096);
    CACHE.clear_budget();
    assert!(!CACHE.over_budget() && CACHE.budget_status().is_none());
    on_free(CACHE.id(), 4096); // not counted any more: no underflow either
    assert_eq!(ScopeId::from(&CACHE).budget(), None);
}

#[test]
fn watchers_run_on_the_tracker_thread_not_on_the_allocating_one() {
    let s = scope("watched", None);
    s.set_budget(Budget::soft(10));
    let (tx, rx) = mpsc::channel();
    let watch = budget::watch(Duration::from_millis(2), move |e| {
        let name = std::thread::current().name().map(str::to_owned);
        let _ = tx.send((e, name));
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    on_alloc(s, 11);
    let (event, thread) = loop {
        let (e, t) = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("no budget event");
        if e.scope == s {
            break (e, t);
        }
    };
    assert_eq!(thread.as_deref(), Some("alloc-tracker-budget"));
    assert_eq!((event.new_crossings, event.status.over), (1, true));
    drop(watch);
    on_free(s, 11);
}

#[test]
fn hard_limit_refuses_only_inside_a_fallible_section() {
    let s = scope("hard", None);
    s.set_budget(Budget::soft(100).hard(200).unwrap());
    on_alloc(s, 150);
    assert!(
        admits(s, 100),
        "outside a fallible section nothing is refused"
    );
    budget::fallible(|| {
        assert!(admits(s, 50));
        assert!(!admits(s, 51));
    });
    assert!(admits(s, 51), "the section ended");
    assert_eq!(s.budget_status().unwrap().refused, 1);
    assert!(Budget::soft(10).hard(9).is_err());
    on_free(s, 150);
}

#[test]
fn a_budget_starts_from_the_scopes_exact_live_bytes() {
    let s = scope("busy", None);
    // black_box: an allocation only dropped could be optimised away.
    let kept = s.in_scope(|| std::hint::black_box(vec![0u8; 5000]));
    s.set_budget(Budget::soft(4096));
    let st = s.budget_status().unwrap();
    assert_eq!((st.live_bytes, st.over, st.crossings), (5000, true, 1));
    s.clear_budget();
    drop(kept);
}
