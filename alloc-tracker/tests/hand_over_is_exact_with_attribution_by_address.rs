// Own test binary: its global allocator attributes frees by address.
//! The hand-over cases with `Attribution::ByAddress`: every scoped block
//! lives in an arena of its scope (recorded and transient ones in the
//! tagged arena, with a trailer); the move is exact there too.
#![cfg(feature = "jemalloc")]

#[path = "hand_over_cases/mod.rs"]
mod cases;

use scope_alloc_tracker::{hand_over, Attribution, Jemalloc, ScopeId, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> =
    TrackingAlloc::new(Jemalloc).attribution(Attribution::ByAddress);

fn scopes(name: &str) -> (ScopeId, ScopeId) {
    let _ = hand_over(Box::new(0u64), ScopeId::UNSCOPED);
    (
        ScopeId::register(&format!("{name}-src"), None).unwrap(),
        ScopeId::register(&format!("{name}-dst"), None).unwrap(),
    )
}

#[test]
fn every_case_moves_exactly_with_attribution_by_address() {
    let (src, dst) = scopes("ba");
    cases::boxes(src, dst, None);
    cases::vecs(src, dst, None);
    cases::arcs(src, dst);
    cases::zero_sized(src, dst);
    let (kind, perm) = scopes("ba-inst");
    cases::instances(kind, perm, None);
}
