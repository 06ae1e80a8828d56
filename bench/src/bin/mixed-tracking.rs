//! Whole-program workloads over `TrackingAlloc<Jemalloc>`, inside a scope.
use alloc_tracker::{Jemalloc, ScopeId, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

fn main() {
    let scope = ScopeId::register("bench", None).unwrap();
    scope.in_scope(alloc_bench::program_main);
}
