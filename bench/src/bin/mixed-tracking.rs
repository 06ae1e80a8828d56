//! Whole-program workloads over `TrackingAlloc<Jemalloc>`, inside a scope.
use scope_alloc_tracker::{Jemalloc, ScopeId, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

fn main() {
    if std::env::var_os("ALLOC_BENCH_SAMPLING").is_some() {
        scope_alloc_tracker::sampling::set_sampling(
            scope_alloc_tracker::sampling::Sampling::DEFAULT,
        );
    }
    let scope = ScopeId::register("bench", None).unwrap();
    scope.in_scope(alloc_bench::program_main);
}
