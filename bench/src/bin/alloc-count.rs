//! One workload through one allocator, for instruction counting under
//! `valgrind --tool=callgrind` (timings on a shared 2-core machine are
//! noisy; instruction counts are repeatable). The driver script
//! `bench/count.sh` runs it at two round counts and prints the difference
//! per operation.
//!
//! ```text
//! alloc-count ALLOCATOR WORKLOAD ROUNDS
//!   ALLOCATOR: jemalloc | tracking (hybrid, the default) | tracking-usable
//!              (hybrid counting usable sizes) | trailer |
//!              reference (the least-work zero-memory tracker,
//!              `alloc_bench::reference::RefAlloc`) | reference-trailer
//!              (its trailer-always form, `RefTrailerAlloc`)
//!   WORKLOAD:  churn | pow2 | pages | large | vec
//! ```

use std::alloc::GlobalAlloc;

use alloc_bench::reference::{RefAlloc, RefScope, RefTrailerAlloc};
use scope_alloc_tracker::{Attribution, Jemalloc, ScopeId, TrackingAlloc, UsableSizes};

#[global_allocator]
static GLOBAL: Jemalloc = Jemalloc;

static TRACKING: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);
static TRACKING_USABLE: TrackingAlloc<Jemalloc> =
    TrackingAlloc::new(Jemalloc).usable_sizes(UsableSizes::Count);
static TRAILER: TrackingAlloc<Jemalloc> =
    TrackingAlloc::new(Jemalloc).attribution(Attribution::Trailer);

alloc_bench::via_static!(Tracking => TRACKING);
alloc_bench::via_static!(TrackingUsable => TRACKING_USABLE);
alloc_bench::via_static!(Trailer => TRAILER);

fn run<A: GlobalAlloc>(a: &A, workload: &str, rounds: usize) {
    let _ = match workload {
        "churn" => alloc_bench::churn_lifo(a, rounds),
        "pow2" => alloc_bench::batches(a, &alloc_bench::pow2_layouts(), rounds),
        "pages" => alloc_bench::batches(a, &alloc_bench::page_layouts(), rounds),
        "large" => alloc_bench::batches(a, &alloc_bench::large_layouts(), rounds),
        "vec" => alloc_bench::vec_growth(a, rounds),
        other => {
            eprintln!("unknown workload {other}");
            std::process::exit(2);
        }
    };
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(alloc), Some(workload), Some(rounds)) = (
        args.first(),
        args.get(1),
        args.get(2).and_then(|r| r.parse().ok()),
    ) else {
        eprintln!(
            "usage: alloc-count (jemalloc|tracking|tracking-usable|trailer|reference|reference-trailer) WORKLOAD ROUNDS"
        );
        std::process::exit(2);
    };
    let scope = ScopeId::register("bench", None).unwrap();
    let _in = scope.enter();
    match alloc.as_str() {
        "jemalloc" => run(&Jemalloc, workload, rounds),
        "tracking" => run(&Tracking, workload, rounds),
        "tracking-usable" => run(&TrackingUsable, workload, rounds),
        "trailer" => run(&Trailer, workload, rounds),
        "reference" | "reference-trailer" => {
            let Some(rs) = RefScope::new() else {
                eprintln!("cannot create the reference's scope arena");
                std::process::exit(2);
            };
            let _in = rs.enter();
            if alloc == "reference" {
                run(&RefAlloc, workload, rounds)
            } else {
                run(&RefTrailerAlloc, workload, rounds)
            }
        }
        other => {
            eprintln!("unknown allocator {other}");
            std::process::exit(2);
        }
    }
}
