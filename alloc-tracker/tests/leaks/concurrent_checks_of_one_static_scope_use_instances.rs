//! Eight tests hammer one static scope concurrently, each through its own
//! instances, and never see each other's allocations; the whole binary is
//! re-run 20 times to show it never flakes.
//!
//! Also: a kind aggregates its instances, paths show `kind#n`, and static
//! scopes entered inside an instance stay inside it.

use std::hint::black_box;
use std::process::Command;

use scope_alloc_tracker::{assert_scope_drained, Scope, ScopeId};

static SHARED: Scope = Scope::new("shared");
static STEP: Scope = Scope::child_of(&SHARED, "step");

const ROUNDS: usize = 200;

/// One test's work: 64 KiB live while it runs (what made two checks of the
/// static scope flake), through the kind and its child, all freed.
fn hammer(seed: usize) {
    for round in 0..ROUNDS {
        let n = assert_scope_drained!(instance of &SHARED, {
            let big = black_box(vec![seed as u8; 65536]);
            // Code written for the static scopes: stays in the instance.
            let small = SHARED.in_scope(|| black_box(vec![0u8; 16 + round % 64]));
            let step = STEP.in_scope(|| black_box(vec![1u8; 100]));
            big.len() + small.len() + step.len()
        });
        assert_eq!(n, 65536 + 16 + round % 64 + 100);
    }
}

#[test]
fn hammer_0() {
    let _shared = crate::common::shared();
    hammer(0)
}
#[test]
fn hammer_1() {
    let _shared = crate::common::shared();
    hammer(1)
}
#[test]
fn hammer_2() {
    let _shared = crate::common::shared();
    hammer(2)
}
#[test]
fn hammer_3() {
    let _shared = crate::common::shared();
    hammer(3)
}
#[test]
fn hammer_4() {
    let _shared = crate::common::shared();
    hammer(4)
}
#[test]
fn hammer_5() {
    let _shared = crate::common::shared();
    hammer(5)
}
#[test]
fn hammer_6() {
    let _shared = crate::common::shared();
    hammer(6)
}
#[test]
fn hammer_7() {
    let _shared = crate::common::shared();
    hammer(7)
}

#[test]
fn the_hammering_tests_pass_twenty_runs_in_a_row() {
    let _shared = crate::common::shared();
    if std::env::var_os("ALLOC_TRACKER_HAMMER_CHILD").is_some() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for run in 0..20 {
        let out = Command::new(&exe)
            .arg(crate::common::test_name(module_path!(), "hammer_"))
            .arg("--test-threads=8")
            .env("ALLOC_TRACKER_HAMMER_CHILD", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("8 passed"),
            "run {run} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_kind_aggregates_its_instances_and_paths_number_them() {
    let _shared = crate::common::shared();
    static KIND: Scope = Scope::new("agg");
    static CHILD: Scope = Scope::child_of(&KIND, "part");
    let a = KIND.instance().unwrap();
    let b = KIND.instance().unwrap();
    assert_eq!(a.kind(), KIND.id());
    assert_eq!(b.serial(), a.serial() + 1);
    assert_eq!(a.path(), format!("agg#{}", a.serial()));
    assert_eq!(a.id().parent(), Some(KIND.id()));
    assert!(a.id().is_transient());

    let in_a = a.in_scope(|| black_box(vec![0u8; 1000]));
    let (in_b, part_of_b, part_id) = b.in_scope(|| {
        let part_id = ScopeId::from(&CHILD);
        assert_eq!(part_id.path(), format!("agg#{}/part", b.serial()));
        assert_eq!(part_id.kind(), CHILD.id());
        (
            black_box(vec![0u8; 300]),
            CHILD.in_scope(|| black_box(vec![0u8; 30])),
            part_id,
        )
    });
    let own = KIND.in_scope(|| black_box(vec![0u8; 7]));
    // Figures: each instance its own; the kind's own figures exclude them;
    // with children, all of them.
    assert_eq!(a.stats().live_bytes, 1000);
    assert_eq!(b.stats().live_bytes, 300);
    assert_eq!(b.stats_with_children().live_bytes, 330);
    assert_eq!(part_id.stats().live_bytes, 30);
    assert_eq!(CHILD.stats().live_bytes, 0, "the static child is untouched");
    assert_eq!(KIND.stats().live_bytes, 7);
    assert_eq!(KIND.stats_with_children().live_bytes, 1337);

    // The snapshot and the report show the instances by path.
    let snap = scope_alloc_tracker::Snapshot::take();
    let paths: Vec<&str> = snap.scopes.iter().map(|s| s.path.as_str()).collect();
    let a_path = a.path();
    assert!(paths.contains(&a_path.as_str()), "{paths:?}");
    let report = scope_alloc_tracker::report::Report::take().to_string();
    assert!(report.contains(&format!("agg#{}", a.serial())), "{report}");

    drop((in_a, in_b, part_of_b, own));
    assert!(a.release().is_ok());
    assert!(b.release().is_ok());
    assert_eq!(KIND.stats_with_children().live_bytes, 0);
    // Totals of the recycled instances stay in the kind's figures.
    assert!(KIND.stats_with_children().total_bytes >= 1337);
}

#[test]
fn outside_any_instance_static_scopes_are_themselves() {
    let _shared = crate::common::shared();
    static ALONE: Scope = Scope::new("alone");
    static UNDER: Scope = Scope::child_of(&ALONE, "under");
    assert_eq!(ScopeId::from(&UNDER), UNDER.id());
    let _i = ALONE.instance().unwrap();
    // An instance that is not current changes nothing.
    assert_eq!(ScopeId::from(&UNDER), UNDER.id());
    assert_eq!(UNDER.in_scope(ScopeId::current), UNDER.id());
}

#[test]
fn each_static_child_gets_one_scope_per_instance_however_often_entered() {
    let _shared = crate::common::shared();
    static MANY: Scope = Scope::new("many");
    static C: [Scope; 6] = [
        Scope::child_of(&MANY, "c0"),
        Scope::child_of(&MANY, "c1"),
        Scope::child_of(&MANY, "c2"),
        Scope::child_of(&MANY, "c3"),
        Scope::child_of(&MANY, "c4"),
        Scope::child_of(&MANY, "c5"),
    ];
    let inst = MANY.instance().unwrap();
    let first: Vec<ScopeId> =
        inst.in_scope(|| C.iter().map(|c| c.in_scope(ScopeId::current)).collect());
    for _ in 0..3 {
        let again: Vec<ScopeId> =
            inst.in_scope(|| C.iter().map(|c| c.in_scope(ScopeId::current)).collect());
        assert_eq!(again, first);
    }
    for (i, id) in first.iter().enumerate() {
        assert_eq!(id.path(), format!("many#{}/c{i}", inst.serial()));
        assert_ne!(*id, C[i].id());
    }
    // Nested: a child entered inside another child's instance scope still
    // finds the instance of their common kind.
    let nested = inst.in_scope(|| C[0].in_scope(|| C[1].in_scope(ScopeId::current)));
    assert_eq!(nested, first[1]);
    let serial = inst.serial();
    drop(inst);
    // Released with their instance. (Other tests of this file run at the
    // same time and may already have been given a released id for a
    // transient scope of theirs: that one has another path.)
    for (i, id) in first.iter().enumerate() {
        assert!(
            !id.is_transient() || id.path() != format!("many#{serial}/c{i}"),
            "{} still held after its instance was dropped",
            id.path()
        );
    }
}
