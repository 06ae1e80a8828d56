//! A transient scope released while blocks it allocated are still live
//! stays exactly accounted: it is kept in the table, marked released, under
//! its kind's figures, its id not reused, until the blocks are freed; then
//! its id is recycled and starts from zero.

use std::hint::black_box;

use scope_alloc_tracker::report::Report;
use scope_alloc_tracker::{Scope, Snapshot};

static CONN: Scope = Scope::new("conn");

#[test]
fn released_with_live_blocks_stays_counted_until_freed() {
    let _one_at_a_time = crate::common::one_at_a_time();
    let inst = CONN.instance().unwrap();
    let id = inst.id();
    let serial = inst.serial();
    let kept = inst.in_scope(|| black_box(vec![1u8; 4000]));
    let kept_too = inst.in_scope(|| black_box(Box::new([2u8; 96])));
    let err = inst.release().unwrap_err();
    assert_eq!((err.live_bytes, err.live_allocs), (4096, 2));
    assert!(err.to_string().contains("4096 B"), "{err}");

    // Kept, marked released, still under the kind.
    assert!(id.is_released());
    assert!(!id.is_transient());
    assert_eq!(id.path(), format!("conn#{serial}"));
    assert_eq!(id.stats().live_bytes, 4096);
    assert_eq!(CONN.stats_with_children().live_bytes, 4096);
    let snap = Snapshot::take();
    let entry = snap.scope(id).expect("listed while it holds blocks");
    assert!(entry.released);
    assert_eq!(entry.own.live_bytes, 4096);
    assert_eq!(
        snap.scope(CONN.id()).unwrap().with_children.live_bytes,
        4096
    );
    let text = Report::take().to_string();
    assert!(
        text.contains(&format!("conn#{serial} (released)")),
        "{text}"
    );

    // Thousands of instances later, its id has not been handed out again.
    for _ in 0..3 * scope_alloc_tracker::MAX_SCOPES {
        let other = CONN.instance().unwrap();
        assert_ne!(other.id(), id, "a released id with live blocks was reused");
        other.in_scope(|| drop(black_box(vec![0u8; 8])));
    }
    assert_eq!(id.stats().live_bytes, 4096, "still exact");

    // Frees are credited to it, whatever thread frees them.
    std::thread::spawn(move || drop(kept)).join().unwrap();
    assert_eq!(id.stats().live_bytes, 96);
    assert!(id.is_released());
    let total_before = CONN.stats_with_children();
    drop(kept_too);
    assert_eq!(CONN.stats_with_children().live_bytes, 0);

    // Drained: recycled at a later creation; the new owner starts at zero
    // and the kind keeps the released instance's totals.
    let mut reused = None;
    for _ in 0..2 * scope_alloc_tracker::MAX_SCOPES {
        let other = CONN.instance().unwrap();
        if other.id() == id {
            reused = Some(other);
            break;
        }
    }
    let reused = reused.expect("the drained id is recycled");
    let s = reused.stats();
    assert_eq!((s.total_allocs, s.total_bytes, s.live_bytes), (0, 0, 0));
    assert!(!id.is_released());
    let kind = CONN.stats_with_children();
    assert!(kind.total_bytes >= total_before.total_bytes);
    assert_eq!(kind.total_frees, kind.total_allocs);
}
