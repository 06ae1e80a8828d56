//! Whole-program workloads over `TrackingAlloc<Jemalloc>` with the trailer
//! attribution (the design before attribution by address), inside a scope.
use scope_alloc_tracker::{Attribution, Jemalloc, ScopeId, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> =
    TrackingAlloc::new(Jemalloc).attribution(Attribution::Trailer);

fn main() {
    let scope = ScopeId::register("bench", None).unwrap();
    scope.in_scope(alloc_bench::program_main);
}
