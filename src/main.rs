//! Minimal driver: opens a temp directory, writes a workload, runs a few
//! checkpoints and prints each run's report and the memory by scope.

use alloc_tracker::{Jemalloc, TrackingAlloc};
use ckptdb::workload::Workload;
use ckptdb::{CheckpointKind, Db, LeakMode, Options, Runner};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("ckptdb-main-{}", std::process::id()));
    let opts = Options::builder()
        .runner(Runner::Manual)
        .leak_mode(LeakMode::Strict)
        .max_incrementals(2)
        .build()?;
    let db = Db::open(&dir, opts)?;
    let kinds = [
        CheckpointKind::Incremental,
        CheckpointKind::Incremental,
        CheckpointKind::Incremental,
        CheckpointKind::Global,
    ];
    for (round, kind) in kinds.into_iter().enumerate() {
        let w = Workload {
            seed: round as u64,
            ops_per_thread: 2_000,
            ..Workload::default()
        };
        let stats = w.run(&db)?;
        println!(
            "round {round}: {} ops, {:.0} ops/s",
            stats.ops,
            stats.ops_per_sec()
        );
        let report = db.checkpoint_now(kind)?;
        println!("  {report:?}");
    }
    for s in &alloc_tracker::Snapshot::take().scopes {
        if s.path.starts_with("ckptdb") || s.path.starts_with("checkpoint") {
            println!(
                "{:<32} live {:>10} B  peak {:>10} B  total {:>12} B",
                s.path,
                s.with_children.live_bytes,
                s.with_children.peak_bytes,
                s.with_children.total_bytes
            );
        }
    }
    db.close()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
