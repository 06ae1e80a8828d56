//! Plants one leak and prints the site's origin and frames: the probe of
//! `tests/leaks/leak_sites_never_name_the_tracker.rs`, rebuilt there with other
//! `debug` settings (the trimming must not depend on them).

use scope_alloc_tracker::leak::LeakCheck;
use scope_alloc_tracker::{Jemalloc, ScopeId, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

#[inline(never)]
fn plant() -> usize {
    Box::leak(std::hint::black_box(vec![3u8; 777]).into_boxed_slice()).len()
}

fn main() {
    let scope = ScopeId::register("probe", None).expect("a scope");
    let check = LeakCheck::begin(scope);
    scope.in_scope(plant);
    let Err(report) = check.finish() else {
        println!("no leak found");
        std::process::exit(1);
    };
    let site = &report.sites[0];
    match site.origin() {
        Some(o) => println!("origin: {}", o.function),
        None => println!("origin: none"),
    }
    for f in &site.frames {
        println!("  {f}  tracker={}", f.is_tracker());
    }
    if site
        .frames
        .iter()
        .any(|f| f.is_tracker() && f.function.contains("capture"))
    {
        println!("an allocator frame was kept");
        std::process::exit(1);
    }
}
