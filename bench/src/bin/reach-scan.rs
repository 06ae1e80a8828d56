//! Cost of the reachability scan of a failed leak check: scan time, root
//! bytes read and the memory the scan maps for itself, for a process with
//! 1 GiB of live heap and for a small, unit-test-sized process.
//!
//! ```text
//! reach-scan [HEAP_MIB]    (default: runs 0 and 1024)
//! ```
//!
//! Each run plants 1000 leaked blocks (an `Rc` cycle of 500 pairs would do
//! as well; plain `mem::forget`s are used) and 1000 held ones in a checked
//! scope and prints the scan's own figures from the report. Wall-clock
//! figures on a shared machine are noisy: quote them as such.

use std::hint::black_box;
use std::sync::Mutex;
use std::time::Instant;

use scope_alloc_tracker::leak::LeakCheck;
use scope_alloc_tracker::{Jemalloc, Scope, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

static CHECKED: Scope = Scope::new("reach-bench");
// Boxes on purpose: each held block is its own allocation, as a cache's are.
#[allow(clippy::vec_box)]
static HELD: Mutex<Vec<Box<[u64; 8]>>> = Mutex::new(Vec::new());

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[inline(never)]
fn plant() {
    for i in 0..1000u64 {
        std::mem::forget(black_box(Box::new([i; 8])));
        HELD.lock().unwrap().push(black_box(Box::new([i; 8])));
    }
}

fn run(heap_mib: usize) {
    // Live heap of `heap_mib` MiB in 64 KiB blocks, each holding pointers
    // to the next (so that the heap looks like a heap, not zeros).
    let mut heap: Vec<Vec<usize>> = Vec::with_capacity(heap_mib * 16);
    for i in 0..heap_mib * 16 {
        let mut v = vec![0usize; 8192];
        let prev = heap.last().map_or(0, |p: &Vec<usize>| p.as_ptr() as usize);
        for (j, w) in v.iter_mut().enumerate() {
            *w = if j % 8 == 0 { prev } else { i * 8192 + j };
        }
        heap.push(v);
    }
    let rss_before = rss_kib();
    let check = LeakCheck::begin(&CHECKED);
    CHECKED.in_scope(plant);
    let t = Instant::now();
    let report = check.finish().expect_err("planted leaks");
    let total = t.elapsed();
    let rss_after = rss_kib();
    let r = report.reachability.as_ref().expect("scanned");
    println!(
        "heap {heap_mib:>5} MiB: scan {:>8.1} ms (finish with report {:>8.1} ms), roots read {:>6} MiB, \
         scan buffers {:>5} KiB, RSS {} -> {} MiB; verdict: {} unreachable / {} reachable allocs",
        r.scan_time.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        r.scanned_bytes >> 20,
        r.scan_memory >> 10,
        rss_before >> 10,
        rss_after >> 10,
        r.total.unreachable_allocs,
        r.total.reachable_allocs,
    );
    HELD.lock().unwrap().clear();
    black_box(heap);
}

fn main() {
    let arg: Option<usize> = std::env::args().nth(1).and_then(|a| a.parse().ok());
    match arg {
        Some(mib) => run(mib),
        None => {
            run(0);
            run(1024);
        }
    }
}
