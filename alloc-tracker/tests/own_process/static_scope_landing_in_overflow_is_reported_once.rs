//! A static scope first used after the table filled counts in `overflow`,
//! and that is reported, once per scope (`Snapshot::overflowed_scopes` and
//! one line on standard error), never silent. Instances released and
//! drained make room again.
//!
//! It fills the process's one table, so its one test runs in a process of
//! its own.
#![cfg(feature = "jemalloc")]

use rusty_fork::rusty_fork_test;
use scope_alloc_tracker::{Scope, ScopeError, ScopeId, Snapshot};

static EARLY: Scope = Scope::new("early");
static LATE: Scope = Scope::new("late");
static LATER: Scope = Scope::new("later");

rusty_fork_test! {
    #[test]
    fn overflow_is_counted_once_per_static_scope_and_instances_make_room() {
        let early = EARLY.id();
        assert_eq!(Snapshot::take().overflowed_scopes, 0);
        // Keep a few instances alive while the table fills.
        let mut instances = Vec::new();
        for _ in 0..10 {
            instances.push(EARLY.instance().unwrap());
        }
        let mut n = 0;
        while ScopeId::register(&format!("filler-{n}"), Some(early)).is_ok() {
            n += 1;
        }
        assert_eq!(EARLY.instance().unwrap_err(), ScopeError::TableFull);

        for _ in 0..3 {
            assert_eq!(LATE.id(), ScopeId::OVERFLOW);
        }
        assert_eq!(Snapshot::take().overflowed_scopes, 1, "reported once");
        assert_eq!(LATER.id(), ScopeId::OVERFLOW);
        assert_eq!(LATER.id(), ScopeId::OVERFLOW);
        assert_eq!(Snapshot::take().overflowed_scopes, 2);

        // Released, drained instances give their ids back.
        instances.clear();
        let again: Vec<_> = (0..10).map(|_| EARLY.instance().unwrap()).collect();
        assert_eq!(EARLY.instance().unwrap_err(), ScopeError::TableFull);
        drop(again);
    }
}
