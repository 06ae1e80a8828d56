//! Two checks of one static scope at the same time each see the other's
//! live blocks. The failing one's report says that another check overlapped
//! it, with the instance recipe, instead of naming the other test's block
//! as a plain leak.

// The threads return their check's result as is, report included.
#![allow(clippy::result_large_err)]

use std::hint::black_box;
use std::sync::Barrier;

use scope_alloc_tracker::leak::LeakCheck;
use scope_alloc_tracker::Scope;

static SHARED: Scope = Scope::new("overlap-shared");
static ALONE: Scope = Scope::new("overlap-alone");
static KIND: Scope = Scope::new("overlap-kind");

#[test]
fn concurrent_checks_of_one_static_scope_report_the_overlap() {
    let _shared = crate::common::shared();
    let began = Barrier::new(2);
    let first_done = Barrier::new(2);
    let (first, second) = std::thread::scope(|t| {
        let a = t.spawn(|| {
            let check = LeakCheck::begin(&SHARED);
            let mine = SHARED.in_scope(|| black_box(vec![1u8; 100]));
            began.wait();
            began.wait(); // the other one holds its block now
            drop(mine);
            let r = check.finish();
            first_done.wait();
            r
        });
        let b = t.spawn(|| {
            began.wait();
            let check = LeakCheck::begin(&SHARED);
            let theirs = SHARED.in_scope(|| black_box(vec![2u8; 64]));
            began.wait();
            first_done.wait();
            drop(theirs);
            check.finish()
        });
        (a.join().unwrap(), b.join().unwrap())
    });
    let report = first.expect_err("the first check sees the other's 64 B block");
    assert_eq!(report.leaked_bytes, 64, "{report}");
    assert!(report.overlapping_checks >= 1, "{report}");
    let text = report.to_string();
    assert!(text.contains("overlapped this one"), "{text}");
    assert!(text.contains("instance of &KIND"), "{text}");
    assert!(text.contains("#[scope_alloc_tracker::test]"), "{text}");
    // The second began while the first was active: it passes (the first
    // freed its block), and a passing check has nothing to warn about.
    second.unwrap_or_else(|r| panic!("{r}"));
}

#[test]
fn a_check_alone_and_checks_of_instances_report_no_overlap() {
    let _shared = crate::common::shared();
    let check = LeakCheck::begin(&ALONE);
    let kept = ALONE.in_scope(|| black_box(vec![1u8; 10]));
    let report = check.finish().expect_err("kept");
    assert_eq!(report.overlapping_checks, 0, "{report}");
    assert!(!report.to_string().contains("overlapped"));
    drop(kept);

    // Two instances of one kind at once do not overlap.
    let i1 = KIND.instance().unwrap();
    let i2 = KIND.instance().unwrap();
    let c1 = LeakCheck::begin(&i1);
    let c2 = LeakCheck::begin(&i2);
    let k1 = i1.in_scope(|| black_box(vec![1u8; 10]));
    let r = c1.finish().expect_err("kept");
    assert_eq!(r.overlapping_checks, 0, "{r}");
    drop(c2);
    drop(k1);
}
