//! Through the real allocator: every allocation and free of a budgeted
//! scope moves its budget, whatever the block's placement (trailer, the
//! scope's arena, a cross-thread free, a reallocation), and a hard limit
//! refuses a `try_reserve` inside `budget::fallible` while an ordinary
//! allocation past it goes ahead.

use std::hint::black_box;

use scope_alloc_tracker::{budget, Budget, Scope};

static CACHE: Scope = Scope::new("budgeted-cache");
static PARENT: Scope = Scope::new("budgeted-parent");

#[test]
fn allocations_cross_and_frees_clear_the_soft_limit() {
    CACHE.set_budget(Budget::soft(10_000));
    // 24 bytes of slack-class blocks (trailer) and 4096-byte exact fits
    // (the scope's arena).
    let small: Vec<Box<[u8; 24]>> =
        CACHE.in_scope(|| black_box((0..100).map(|_| Box::new([1; 24])).collect()));
    assert!(!CACHE.over_budget(), "{:?}", CACHE.budget_status());
    let page = CACHE.in_scope(|| black_box(vec![7u8; 4096]));
    let mut grown = CACHE.in_scope(|| black_box(Vec::<u8>::with_capacity(3000)));
    assert!(CACHE.over_budget(), "{:?}", CACHE.budget_status());
    let status = CACHE.budget_status().unwrap();
    assert_eq!(status.live_bytes, CACHE.stats().live_bytes);
    assert_eq!(status.crossings, 1);
    // Freed on another thread, outside the scope: credited back.
    std::thread::spawn(move || drop(page)).join().unwrap();
    grown.shrink_to(10);
    assert!(!CACHE.over_budget(), "{:?}", CACHE.budget_status());
    drop((small, grown));
    assert_eq!(
        CACHE.budget_status().unwrap().live_bytes,
        CACHE.stats().live_bytes
    );
    CACHE.clear_budget();
}

#[test]
fn a_hard_limit_refuses_try_reserve_only_inside_fallible() {
    PARENT.set_budget(Budget::soft(1 << 20).hard(2 << 20).unwrap());
    let mut v: Vec<u8> = Vec::new();
    let refused = PARENT.in_scope(|| budget::fallible(|| v.try_reserve(4 << 20)));
    assert!(refused.is_err(), "the hard limit refuses inside fallible");
    let ok = PARENT.in_scope(|| budget::fallible(|| v.try_reserve(1 << 20)));
    assert!(ok.is_ok());
    // Outside `fallible` nothing is refused: an infallible allocation that
    // failed would abort the process.
    let big = PARENT.in_scope(|| black_box(vec![0u8; 3 << 20]));
    assert!(PARENT.over_budget());
    drop((v, big));
    assert!(!PARENT.over_budget());
    PARENT.clear_budget();
}
