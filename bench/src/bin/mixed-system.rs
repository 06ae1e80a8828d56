//! Whole-program workloads over the platform allocator.
#[global_allocator]
static GLOBAL: std::alloc::System = std::alloc::System;

fn main() {
    alloc_bench::program_main();
}
