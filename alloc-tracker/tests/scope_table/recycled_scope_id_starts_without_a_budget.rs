//! A budget belongs to the scope it was set on, not to its id: when an
//! instance is released and its id recycled for a new scope, the new scope
//! has no budget and no budget history (crossings, refusals).

use std::hint::black_box;

use scope_alloc_tracker::{budget, Budget, Scope, ScopeInstance, MAX_SCOPES};

static JOB: Scope = Scope::new("job");

/// A new instance of `kind` on the id `id`: instances are made and dropped
/// until the table hands `id` out again (recycled ids are reused oldest
/// first, so this takes at most one pass over the free list).
fn instance_on(kind: &Scope, id: scope_alloc_tracker::ScopeId) -> ScopeInstance {
    for _ in 0..2 * MAX_SCOPES {
        let inst = kind.instance().expect("the table never fills");
        if inst.id() == id {
            return inst;
        }
    }
    panic!("id {} was never reused", id.as_u16());
}

#[test]
fn a_recycled_id_does_not_inherit_the_budget_of_its_previous_scope() {
    let _one_at_a_time = crate::common::one_at_a_time();
    let first = JOB.instance().unwrap();
    let (id, serial) = (first.id(), first.serial());
    id.set_budget(Budget::soft(1000).hard(4000).unwrap());
    let held = first.in_scope(|| black_box(vec![0u8; 2000]));
    assert!(id.over_budget());
    assert_eq!(id.budget_status().unwrap().crossings, 1);
    drop(held);
    assert!(first.release().is_ok(), "drained, so recycled at once");

    let second = instance_on(&JOB, id);
    assert!(second.serial() > serial, "a new scope on the old id");
    assert_eq!(second.id().budget(), None);
    assert!(!second.id().over_budget());
    assert_eq!(second.id().budget_status(), None);
    assert!(
        budget::budgets().iter().all(|(s, _)| *s != id),
        "{:?}",
        budget::budgets()
    );

    // A budget the new scope sets starts without the old one's history.
    second.id().set_budget(Budget::soft(1000));
    let status = second.id().budget_status().unwrap();
    assert_eq!(
        (
            status.live_bytes,
            status.crossings,
            status.refused,
            status.over
        ),
        (0, 0, 0, false)
    );
    assert_eq!(status.hard_bytes, None);
    // Its release takes the budget with it, as the first one's did.
    drop(second);
    assert_eq!(id.budget(), None);
    assert!(budget::budgets().is_empty(), "{:?}", budget::budgets());
}
