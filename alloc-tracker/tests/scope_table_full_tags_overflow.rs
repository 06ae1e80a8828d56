// Own test binary: its global allocator counts usable sizes (a configuration
// of its own), and it fills the process's one scope table.
//! When the scope table is full, registering fails with `ScopeTableFull`
//! (allocating nothing), static scopes first used afterwards count in
//! `ScopeId::OVERFLOW`, scopes registered before keep working, and nothing
//! panics.
//!
//! This file fills the process's one table, so it holds a single test.
#![cfg(feature = "jemalloc")]

use std::error::Error;

use scope_alloc_tracker::{
    Jemalloc, Scope, ScopeId, ScopeTableFull, Snapshot, TrackingAlloc, UsableSizes, MAX_SCOPES,
};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> =
    TrackingAlloc::new(Jemalloc).usable_sizes(UsableSizes::Count);

static EARLY: Scope = Scope::new("early");
static EARLY_CHILD: Scope = Scope::child_of(&EARLY, "child");
static LATE: Scope = Scope::new("late");
static LATE_CHILD: Scope = Scope::child_of(&LATE, "child");
static LATE_UNDER_EARLY: Scope = Scope::child_of(&EARLY, "late-child");

/// Built-in scopes: unscoped, the tracker's own, overflow.
const BUILTIN: usize = 3;

#[test]
fn a_full_table_refuses_new_scopes_and_counts_them_in_overflow() {
    // Registered while there is room.
    let early = EARLY.try_id().expect("room for the first scope");
    let early_child = EARLY_CHILD.try_id().expect("room for the second scope");
    assert_eq!(early_child.path(), "early/child");

    // Fill the table.
    let mut fillers = Vec::new();
    let err = loop {
        match ScopeId::register(&format!("filler-{}", fillers.len()), Some(early)) {
            Ok(id) => fillers.push(id),
            Err(e) => break e,
        }
        assert!(fillers.len() <= MAX_SCOPES, "the table never filled");
    };
    assert_eq!(fillers.len(), MAX_SCOPES - BUILTIN - 2);
    assert_eq!(err, ScopeTableFull);
    let message = err.to_string();
    assert!(message.contains("full"), "{message}");
    let _: &dyn Error = &err;
    let last = *fillers.last().unwrap();
    assert_eq!(last.as_u16() as usize, MAX_SCOPES - 1);
    assert_eq!(last.path(), format!("early/filler-{}", fillers.len() - 1));

    // Failing registrations allocate nothing (not even the name's copy)
    // and keep failing.
    let internal = ScopeId::INTERNAL.stats();
    for _ in 0..100 {
        assert_eq!(ScopeId::register("one-too-many", None), Err(ScopeTableFull));
        assert_eq!(
            ScopeId::register("child-of-full", Some(early)),
            Err(ScopeTableFull)
        );
    }
    let after = ScopeId::INTERNAL.stats();
    assert_eq!(
        (after.total_allocs, after.total_bytes),
        (internal.total_allocs, internal.total_bytes)
    );

    // Static scopes first used now fall back to OVERFLOW, also as children
    // of a registered scope, and keep saying so.
    for _ in 0..2 {
        assert_eq!(LATE.try_id(), Err(ScopeTableFull));
        assert_eq!(LATE.id(), ScopeId::OVERFLOW);
        assert_eq!(LATE_CHILD.try_id(), Err(ScopeTableFull));
        assert_eq!(LATE_CHILD.id(), ScopeId::OVERFLOW);
        assert_eq!(LATE_UNDER_EARLY.id(), ScopeId::OVERFLOW);
    }
    assert_eq!(ScopeId::OVERFLOW.name(), "overflow");

    // Their allocations are counted in OVERFLOW, exactly.
    let before = ScopeId::OVERFLOW.stats();
    let v: Vec<u8> = LATE.in_scope(|| {
        assert_eq!(ScopeId::current(), ScopeId::OVERFLOW);
        std::hint::black_box(Vec::with_capacity(1234))
    });
    let w: Vec<u8> = LATE_CHILD.in_scope(|| std::hint::black_box(Vec::with_capacity(766)));
    let s = ScopeId::OVERFLOW.stats();
    assert_eq!(s.total_allocs - before.total_allocs, 2, "{s:?}");
    assert_eq!(s.total_bytes - before.total_bytes, 2000, "{s:?}");
    assert_eq!(s.live_bytes - before.live_bytes, 2000, "{s:?}");
    drop((v, w));
    let s = ScopeId::OVERFLOW.stats();
    assert_eq!(
        (s.live_allocs, s.live_bytes),
        (before.live_allocs, before.live_bytes),
        "{s:?}"
    );

    // Scopes registered before still count on their own.
    let v: Vec<u8> = EARLY_CHILD.in_scope(|| std::hint::black_box(Vec::with_capacity(321)));
    let f: Vec<u8> = last.in_scope(|| std::hint::black_box(Vec::with_capacity(123)));
    assert_eq!(EARLY_CHILD.stats().live_bytes, 321);
    assert_eq!(last.stats().live_bytes, 123);
    assert_eq!(early.stats_with_children().live_bytes, 444);
    drop((v, f));
    assert_eq!(early.stats_with_children().live_bytes, 0);

    // A snapshot of the full table lists every scope once.
    let snap = Snapshot::take();
    assert_eq!(snap.scopes.len(), MAX_SCOPES);
    assert!(snap.scopes.windows(2).all(|w| w[0].id < w[1].id));
    let overflow = snap.scope(ScopeId::OVERFLOW).unwrap();
    assert_eq!(overflow.name, "overflow");
    assert_eq!(snap.scope(last).unwrap().parent, Some(early));
    assert_eq!(snap.scope(early).unwrap().with_children.total_allocs, 2);
}
