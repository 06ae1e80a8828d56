// Own test binary: its global allocator is the tracker over `System`.
//! The hand-over cases over `System`, where every block carries its scope
//! in a trailer: the move is exact there too.

#[path = "hand_over_cases/mod.rs"]
mod cases;

use scope_alloc_tracker::{hand_over, ScopeId, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<std::alloc::System> = TrackingAlloc::new(std::alloc::System);

fn scopes(name: &str) -> (ScopeId, ScopeId) {
    let _ = hand_over(Box::new(0u64), ScopeId::UNSCOPED);
    (
        ScopeId::register(&format!("{name}-src"), None).unwrap(),
        ScopeId::register(&format!("{name}-dst"), None).unwrap(),
    )
}

#[test]
fn every_case_moves_exactly_over_system() {
    let (src, dst) = scopes("sys");
    cases::boxes(src, dst, None);
    cases::vecs(src, dst, None);
    cases::arcs(src, dst);
    cases::zero_sized(src, dst);
    let (kind, perm) = scopes("sys-inst");
    cases::instances(kind, perm, None);
}
