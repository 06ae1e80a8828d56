//! Transient scopes (instances) are created and released at run time; their
//! ids are recycled once drained, so a million of them, a thousand alive at
//! once, never fill the 4096-entry table, and every figure stays exact (a
//! recycled id starts from zero; the kind's totals keep counting what
//! recycled instances did).
//!
//! One test per file section touches the whole table, so the file holds a
//! single test for the long run and small ones that do not fill anything.

use std::collections::VecDeque;
use std::hint::black_box;

use scope_alloc_tracker::{Scope, ScopeError, ScopeId, ScopeInstance, Snapshot, MAX_SCOPES};

static REQUEST: Scope = Scope::new("request");
/// For the small tests, so that the long one's figures are its own.
static SESSION: Scope = Scope::new("session");

/// A million in release builds; a tenth of that in debug builds (the same
/// code, slower per iteration).
const CREATED: usize = if cfg!(debug_assertions) {
    100_000
} else {
    1_000_000
};
const ALIVE: usize = 1000;

#[test]
fn a_million_transient_scopes_never_fill_the_table_and_stay_exact() {
    let _one_at_a_time = crate::common::one_at_a_time();
    let kind_before = REQUEST.stats_with_children();
    let mut alive: VecDeque<(ScopeInstance, Vec<u8>, u64)> = VecDeque::with_capacity(ALIVE + 1);
    alive.reserve(ALIVE);
    let mut expected_bytes = 0u64;
    let mut max_id = 0u16;
    let mut serials = 0u64;
    for i in 0..CREATED {
        let inst = REQUEST.instance().expect("the table never fills");
        max_id = max_id.max(inst.id().as_u16());
        assert!(inst.serial() > serials, "instance numbers only grow");
        serials = inst.serial();
        // A fresh or recycled id starts from zero.
        let s = inst.stats();
        assert_eq!(
            (
                s.total_allocs,
                s.total_bytes,
                s.total_frees,
                s.live_bytes,
                s.peak_bytes
            ),
            (0, 0, 0, 0, 0),
            "instance {i} (id {}) did not start from zero",
            inst.id().as_u16()
        );
        let size = 1 + (i % 97) as u64;
        let block = inst.in_scope(|| black_box(vec![7u8; size as usize]));
        // A scratch allocation freed at once.
        inst.in_scope(|| drop(black_box(vec![0u8; 33])));
        let s = inst.stats();
        assert_eq!((s.live_bytes, s.live_allocs), (size, 1));
        assert_eq!(
            (s.total_allocs, s.total_bytes, s.total_frees),
            (2, size + 33, 1)
        );
        expected_bytes += size + 33;
        alive.push_back((inst, block, size));
        if alive.len() > ALIVE {
            let (inst, block, size) = alive.pop_front().unwrap();
            drop(block);
            let s = inst.stats();
            assert_eq!((s.live_bytes, s.total_bytes), (0, size + 33));
            assert!(inst.release().is_ok());
        }
    }
    assert!((max_id as usize) < MAX_SCOPES);

    // The live figures of the kind are exactly those of the live instances.
    let live: u64 = alive.iter().map(|(_, _, s)| *s).sum();
    let kind = REQUEST.stats_with_children();
    assert_eq!(kind.live_bytes - kind_before.live_bytes, live);
    assert_eq!(kind.live_allocs - kind_before.live_allocs, ALIVE as u64);
    // Totals include every recycled instance's work.
    assert_eq!(kind.total_bytes - kind_before.total_bytes, expected_bytes);
    assert_eq!(
        kind.total_allocs - kind_before.total_allocs,
        2 * CREATED as u64
    );
    assert_eq!(
        kind.total_frees - kind_before.total_frees,
        (CREATED + CREATED - ALIVE) as u64
    );

    // The table holds the live instances, not a million entries.
    let snap = Snapshot::take();
    let instances = snap
        .scopes
        .iter()
        .filter(|s| s.parent == Some(REQUEST.id()))
        .count();
    assert_eq!(instances, ALIVE);
    assert!(snap.scopes.len() < ALIVE + 100, "{}", snap.scopes.len());
    // The tracker's total agrees with the scopes.
    assert!(snap.tracked.total_bytes >= expected_bytes);

    for (inst, block, _) in alive.drain(..) {
        drop(block);
        assert!(inst.release().is_ok());
    }
    let kind = REQUEST.stats_with_children();
    assert_eq!(kind.live_bytes, kind_before.live_bytes);
    assert_eq!(kind.total_bytes - kind_before.total_bytes, expected_bytes);
}

#[test]
fn names_are_validated_and_siblings_get_distinct_paths() {
    let _one_at_a_time = crate::common::one_at_a_time();
    assert_eq!(ScopeId::try_register("", None), Err(ScopeError::EmptyName));
    assert_eq!(
        ScopeId::try_register("a/b", None),
        Err(ScopeError::NameContainsSlash)
    );
    assert_eq!(
        ScopeId::try_register("a#1", None),
        Err(ScopeError::NameContainsHash)
    );
    assert_eq!(
        ScopeId::get_or_register("", None),
        Err(ScopeError::EmptyName)
    );
    let msg = ScopeError::NameContainsSlash.to_string();
    assert!(msg.contains('/'), "{msg}");

    let db = ScopeId::try_register("names-db", None).unwrap();
    let wal = ScopeId::try_register("wal", Some(db)).unwrap();
    assert_eq!(
        ScopeId::try_register("wal", Some(db)),
        Err(ScopeError::DuplicateName)
    );
    // The same name under another parent is fine.
    let other = ScopeId::try_register("names-other", None).unwrap();
    assert!(ScopeId::try_register("wal", Some(other)).is_ok());
    // get_or_register returns the one scope of that path.
    assert_eq!(ScopeId::get_or_register("wal", Some(db)), Ok(wal));
    // A static scope of the same name and parent is the same scope too.
    static SAME: Scope = Scope::new("names-same");
    let dynamic = ScopeId::get_or_register("names-same", None).unwrap();
    assert_eq!(SAME.id(), dynamic);
    // The unvalidated `register` never gives two scopes one path.
    let r1 = ScopeId::register("names-dup", None).unwrap();
    let r2 = ScopeId::register("names-dup", None).unwrap();
    assert_ne!(r1, r2);
    assert_eq!(r1.path(), "names-dup");
    assert_eq!(r2.path(), "names-dup~2");

    // Instances are only made of permanent scopes.
    let inst = SESSION.instance().unwrap();
    assert_eq!(
        ScopeId::try_register("x", Some(inst.id())),
        Err(ScopeError::ParentTransient)
    );
    // An instance "of an instance" is another instance of the kind.
    let sibling = ScopeInstance::of(inst.id()).unwrap();
    assert_eq!(sibling.kind(), SESSION.id());
}

#[test]
fn scopes_registered_below_an_instance_go_with_it() {
    let _one_at_a_time = crate::common::one_at_a_time();
    let inst = SESSION.instance().unwrap();
    let below = ScopeId::register("below", Some(inst.id())).unwrap();
    assert!(below.is_transient());
    assert_eq!(below.path(), format!("session#{}/below", inst.serial()));
    let kept = below.in_scope(|| black_box(vec![0u8; 50]));
    assert_eq!(inst.stats_with_children().live_bytes, 50);
    let err = inst.release().unwrap_err();
    assert_eq!((err.live_bytes, err.live_allocs), (50, 1));
    assert!(below.is_released());
    drop(kept);
}
