//! The budget hooks cache, per scope id, whether any budget covers the
//! scope (the scope or an ancestor). A recycled id names a scope with
//! another parent: allocations in it must be charged to the budgets of its
//! new ancestors, whatever the id's previous scope was.

use std::hint::black_box;

use scope_alloc_tracker::{Budget, Scope, ScopeInstance, MAX_SCOPES};

static PLAIN: Scope = Scope::new("plain");
static BUDGETED: Scope = Scope::new("budgeted");

#[test]
fn an_instance_on_a_recycled_id_is_charged_to_its_kinds_budget() {
    let _one_at_a_time = crate::common::one_at_a_time();
    BUDGETED.set_budget(Budget::soft(1 << 30));
    // An instance of an unbudgeted kind allocates while budgets are on: its
    // id is known as covered by no budget.
    let plain = PLAIN.instance().unwrap();
    let id = plain.id();
    plain.in_scope(|| drop(black_box(vec![0u8; 100])));
    drop(plain);

    // Its id is recycled for an instance of the budgeted kind.
    let inst: ScopeInstance = (0..2 * MAX_SCOPES)
        .map(|_| BUDGETED.instance().unwrap())
        .find(|i| i.id() == id)
        .expect("the id is reused");
    let before = BUDGETED.budget_status().unwrap().live_bytes;
    let held = inst.in_scope(|| black_box(vec![0u8; 4096]));
    assert_eq!(BUDGETED.budget_status().unwrap().live_bytes - before, 4096);
    drop(held);
    assert_eq!(BUDGETED.budget_status().unwrap().live_bytes, before);
    BUDGETED.clear_budget();
}
