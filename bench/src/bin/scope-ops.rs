//! The cost of the scope operations a program does around its allocations:
//! entering and leaving a static scope, entering
//! and leaving one while a scope instance exists (static scopes then check
//! for an enclosing instance), and making, entering and releasing a
//! transient instance. Medians and min-max of 15 rounds, nanoseconds per
//! operation.
//!
//! ```text
//! cargo run --release -p alloc-bench --bin scope-ops
//! ```

use std::hint::black_box;
use std::time::Instant;

use scope_alloc_tracker::{Jemalloc, Scope, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

static STATIC: Scope = Scope::new("bench-static");
static KIND: Scope = Scope::new("bench-kind");

fn rounds(n: usize, mut op: impl FnMut()) -> (f64, f64, f64) {
    let mut v: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                op();
            }
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let row = |name: &str, (med, lo, hi): (f64, f64, f64)| {
        println!("| {name} | {med:.1} | {lo:.1}-{hi:.1} |");
    };
    println!("| operation | ns (median of 15) | range |");
    println!("|---|---:|---:|");
    row(
        "enter + leave a static scope",
        rounds(1_000_000, || drop(black_box(STATIC.enter()))),
    );
    let held = KIND.instance().expect("scope table has room");
    row(
        "enter + leave a static scope while an instance exists",
        rounds(1_000_000, || drop(black_box(STATIC.enter()))),
    );
    drop(held);
    row(
        "make + enter + leave + release a transient instance",
        rounds(100_000, || {
            let inst = KIND.instance().expect("scope table has room");
            drop(black_box(inst.enter()));
            inst.release().expect("nothing allocated in it");
        }),
    );
    row(
        "the same with one 64-byte allocation inside",
        rounds(100_000, || {
            let inst = KIND.instance().expect("scope table has room");
            inst.in_scope(|| drop(black_box(vec![0u8; 64])));
            inst.release().expect("the allocation was freed");
        }),
    );
}
