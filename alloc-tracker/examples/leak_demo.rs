//! A planted checkpoint-style leak, caught by a leak check: run with
//! `cargo run --release -p scope-alloc-tracker --example leak_demo`.
//! It prints the report that `assert_scope_drained!` would panic with.

use std::hint::black_box;

use scope_alloc_tracker::leak::LeakCheck;
use scope_alloc_tracker::{Jemalloc, Scope, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

static CHECKPOINT: Scope = Scope::new("checkpoint");
static COLLECT: Scope = Scope::child_of(&CHECKPOINT, "collect");

/// Keeps every batch it ever encoded: the bug.
static RETAINED: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

#[inline(never)]
fn encode_batch(rows: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows * 16);
    for i in 0..rows {
        out.extend_from_slice(&(i as u64).to_le_bytes());
        out.extend_from_slice(&(i as u64 * 3).to_le_bytes());
    }
    out
}

#[inline(never)]
fn flush_batch(batch: Vec<u8>) {
    if batch.len() > 1000 {
        RETAINED.lock().unwrap().push(batch); // forgot to release it
    }
}

fn main() {
    for run in 1..=3 {
        let check = LeakCheck::begin(&CHECKPOINT);
        COLLECT.in_scope(|| {
            for rows in [10, 100, 200] {
                let b = encode_batch(rows);
                flush_batch(black_box(b));
            }
        });
        match check.finish() {
            Ok(d) => println!("run {run}: drained ({} allocations)", d.during.total_allocs),
            Err(report) => println!("run {run}: {report}"),
        }
    }
}
