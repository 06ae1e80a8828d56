//! Without `TrackingAlloc` as the global allocator there is nothing to
//! move: every value comes back as it is (same block), nothing panics, and
//! a shared `Arc` is refused as with the tracker.

use std::sync::Arc;

use scope_alloc_tracker::{hand_over, ScopeId};

#[test]
fn values_come_back_unmoved_without_the_tracker() {
    let to = ScopeId::register("no-tracker", None).unwrap();
    let b = Box::new([1u8; 4096]);
    let p = &*b as *const [u8; 4096];
    let b = hand_over(b, to);
    assert_eq!(&*b as *const [u8; 4096], p);
    let v = vec![1u8; 100];
    let p = v.as_ptr();
    let v = to.adopt(v);
    assert_eq!(v.as_ptr(), p);
    let a = Arc::new(5u32);
    let p = Arc::as_ptr(&a);
    let a = to.adopt(a).unwrap();
    assert_eq!(Arc::as_ptr(&a), p);
    let a = Arc::new(5u32);
    let _other = Arc::clone(&a);
    assert!(to.adopt(a).is_err());
    assert_eq!(to.stats().live_bytes, 0);
}
