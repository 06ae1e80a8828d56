//! Whole-program workloads over the trailer-always reference tracker
//! (`alloc_bench::reference::RefTrailerAlloc`), inside one of its scopes.
use alloc_bench::reference::{RefScope, RefTrailerAlloc};

#[global_allocator]
static GLOBAL: RefTrailerAlloc = RefTrailerAlloc;

fn main() {
    let scope = RefScope::new().expect("the reference's scope arena");
    let _in = scope.enter();
    alloc_bench::program_main();
}
