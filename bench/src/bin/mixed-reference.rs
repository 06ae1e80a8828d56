//! Whole-program workloads over the least-work zero-memory reference
//! tracker (`alloc_bench::reference::RefAlloc`), inside one of its scopes.
use alloc_bench::reference::{RefAlloc, RefScope};

#[global_allocator]
static GLOBAL: RefAlloc = RefAlloc;

fn main() {
    let scope = RefScope::new().expect("the reference's scope arena");
    let _in = scope.enter();
    alloc_bench::program_main();
}
