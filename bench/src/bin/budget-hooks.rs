//! What the budget hooks cost the hot path, with no budget set anywhere
//! and with a budget on the allocating scope's parent. This times the
//! hooks themselves, called as the counters call them on each allocation
//! and free, without the rest of the allocator (CPU time of the thread).
//!
//! ```text
//! flock /work/bench.lock cargo run --release -p alloc-bench --bin budget-hooks
//! ```

use std::hint::black_box;
use std::time::Duration;

use scope_alloc_tracker::budget::{on_alloc, on_free};
use scope_alloc_tracker::{Budget, Jemalloc, ScopeId, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

const PAIRS: u64 = 10_000_000;

/// This thread's CPU time (the machine is shared).
fn cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn pairs(scope: ScopeId) -> f64 {
    let t = cpu_now();
    for i in 0..PAIRS {
        let bytes = black_box(16 + (i & 63));
        on_alloc(black_box(scope), bytes);
        on_free(black_box(scope), bytes);
    }
    (cpu_now() - t).as_nanos() as f64 / PAIRS as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let parent = ScopeId::register("budgeted-parent", None).unwrap();
    let leaf = ScopeId::register("leaf", Some(parent)).unwrap();
    let other = ScopeId::register("unbudgeted", None).unwrap();
    let (mut none, mut unbudgeted, mut budgeted) = (vec![], vec![], vec![]);
    for _ in 0..7 {
        parent.clear_budget();
        none.push(pairs(leaf));
        parent.set_budget(Budget::soft(1 << 30));
        unbudgeted.push(pairs(other));
        budgeted.push(pairs(leaf));
    }
    println!("| budget hooks, per on_alloc + on_free pair | ns |");
    println!("|---|---:|");
    println!("| no budget set anywhere | {:.2} |", median(none));
    println!(
        "| budgets set, scope without a budgeted ancestor | {:.2} |",
        median(unbudgeted)
    );
    println!(
        "| budgets set, scope whose parent has a budget (1 shared atomic add each) | {:.2} |",
        median(budgeted)
    );
}
