//! Engine benchmark (`harness = false`): write throughput and checkpoint
//! run time with the engine's scopes entered vs the tracker installed but
//! no scope entered, as medians and their ratio. Runs in well under a
//! minute: `cargo bench -p ckptdb --bench engine`.

use std::time::{Duration, Instant};

use ckptdb::workload::Workload;
use ckptdb::{CheckpointKind, Db, LeakMode, Options, Runner, SyncPolicy};
use scope_alloc_tracker::{Jemalloc, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

struct Sample {
    write_ops_per_sec: f64,
    checkpoint: Duration,
}

fn one(scoped: bool, round: u64) -> Sample {
    ckptdb::scopes::set_enabled(scoped);
    let dir = std::env::temp_dir().join(format!(
        "ckptdb-bench-{}-{round}-{scoped}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = Options::builder()
        .runner(Runner::Manual)
        .sync(SyncPolicy::None)
        .leak_mode(LeakMode::Production)
        .max_incrementals(4)
        .build()
        .expect("options");
    let db = Db::open(&dir, opts).expect("open");
    let mut ops = 0u64;
    let mut write_time = Duration::ZERO;
    let mut ckpt = Vec::new();
    for i in 0..6u64 {
        let w = Workload {
            seed: round * 100 + i,
            key_space: 20_000,
            value_sizes: vec![16, 128, 1024],
            ops_per_thread: 10_000,
            threads: 2,
            ..Workload::default()
        };
        let s = w.run(&db).expect("workload");
        ops += s.ops;
        write_time += s.elapsed;
        let kind = if i == 5 {
            CheckpointKind::Global
        } else {
            CheckpointKind::Incremental
        };
        let t = Instant::now();
        db.checkpoint_now(kind).expect("checkpoint");
        ckpt.push(t.elapsed());
    }
    db.close().expect("close");
    let _ = std::fs::remove_dir_all(&dir);
    ckpt.sort();
    Sample {
        write_ops_per_sec: ops as f64 / write_time.as_secs_f64(),
        checkpoint: ckpt[ckpt.len() / 2],
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo test --benches` passes `--bench`-less args; keep it quick then.
    let quick = std::env::args().any(|a| a == "--test");
    let rounds = if quick { 1 } else { 5 };
    let (mut w_on, mut w_off, mut c_on, mut c_off) = (vec![], vec![], vec![], vec![]);
    for r in 0..rounds {
        for scoped in [true, false] {
            let s = one(scoped, r);
            let (w, c) = if scoped {
                (&mut w_on, &mut c_on)
            } else {
                (&mut w_off, &mut c_off)
            };
            w.push(s.write_ops_per_sec);
            c.push(s.checkpoint.as_secs_f64() * 1e3);
        }
    }
    ckptdb::scopes::set_enabled(true);
    let (w_on, w_off, c_on, c_off) = (median(w_on), median(w_off), median(c_on), median(c_off));
    println!("engine benchmark, {rounds} rounds, medians (tracker installed in both):");
    println!("  write throughput  scopes entered {w_on:>12.0} ops/s   no scopes {w_off:>12.0} ops/s   ratio {:.3}", w_off / w_on);
    println!("  checkpoint run    scopes entered {c_on:>12.2} ms      no scopes {c_off:>12.2} ms      ratio {:.3}", c_on / c_off);
}
