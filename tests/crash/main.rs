//! Kill-loop crash test (`harness = false`): re-runs this binary as a child
//! per scenario. The child writes a deterministic workload with
//! `SyncPolicy::EveryWrite`, checkpointing as it goes, and prints the
//! number of acknowledged operations after each one. It is aborted at each
//! checkpoint crash point (`std::process::abort`) or killed at a random
//! moment. The parent reopens the directory and checks that the state is
//! exactly the model after the acknowledged operations (or after one more:
//! the write in flight may have become durable before its ack was printed):
//! every acknowledged write is there and nothing never written is.

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ckptdb::workload::Rng;
use ckptdb::{CheckpointKind, CrashPoint, Db, Faults, OpenError};
use scope_alloc_tracker::{Jemalloc, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

const CHILD_ENV: &str = "CKPTDB_CRASH_CHILD";
const MAX_OPS: u64 = 1_200;
const CHECKPOINT_EVERY: u64 = 40;

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

fn ops(seed: u64) -> Vec<Op> {
    let mut rng = Rng::new(seed);
    (0..MAX_OPS)
        .map(|n| {
            let key = format!("key{:03}", rng.below(150)).into_bytes();
            if rng.below(10) == 0 {
                Op::Delete(key)
            } else {
                let len = [4, 40, 400][rng.below(3) as usize];
                Op::Put(key, ckptdb::workload::value(b"v", n, len))
            }
        })
        .collect()
}

fn model(ops: &[Op]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut m = BTreeMap::new();
    for op in ops {
        match op {
            Op::Put(k, v) => {
                m.insert(k.clone(), v.clone());
            }
            Op::Delete(k) => {
                m.remove(k);
            }
        }
    }
    m.into_iter().collect()
}

fn options(faults: Option<Arc<Faults>>) -> ckptdb::Options {
    let b = common::test_options()
        .max_incrementals(2)
        .wal_segment_bytes(8 << 10);
    match faults {
        Some(f) => b.faults(f),
        None => b,
    }
    .build()
    .expect("options")
}

/// Child: apply the ops, printing the ack count; crash where told.
fn child(dir: &Path, seed: u64, crash: Option<usize>) {
    let faults = Arc::new(Faults::default());
    let db = Db::open(dir, options(Some(Arc::clone(&faults)))).expect("child open");
    faults.crash_at(crash.map(|i| CrashPoint::ALL[i]));
    for (n, op) in ops(seed).iter().enumerate() {
        let n = n as u64 + 1;
        match op {
            Op::Put(k, v) => db.put(k, v).map(drop),
            Op::Delete(k) => db.delete(k).map(drop),
        }
        .expect("write");
        println!("{n}");
        if n.is_multiple_of(CHECKPOINT_EVERY) {
            let kind = if n.is_multiple_of(CHECKPOINT_EVERY * 5) {
                CheckpointKind::Global
            } else {
                CheckpointKind::Incremental
            };
            db.checkpoint_now(kind).expect("checkpoint");
        }
    }
    println!("done");
}

/// Parent: run one scenario and verify.
fn scenario(
    name: &str,
    seed: u64,
    crash: Option<usize>,
    kill_after: Option<Duration>,
) -> Result<(), String> {
    let dir = common::tempdir();
    let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    cmd.env(
        CHILD_ENV,
        format!(
            "{}|{}|{}",
            dir.path().display(),
            seed,
            crash.map_or(-1, |c| c as i64)
        ),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut proc = cmd.spawn().map_err(|e| e.to_string())?;
    let stdout = proc.stdout.take().ok_or("no stdout")?;
    let proc = Arc::new(Mutex::new(proc));
    let killer = kill_after.map(|d| {
        let proc = Arc::clone(&proc);
        std::thread::spawn(move || {
            std::thread::sleep(d);
            let mut p = proc.lock().unwrap_or_else(|e| e.into_inner());
            // Only our own child, and only while it has not been reaped.
            if matches!(p.try_wait(), Ok(None)) {
                let _ = p.kill();
            }
        })
    });
    let mut acked = 0u64;
    let mut done = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if line == "done" {
            done = true;
        } else if let Ok(n) = line.parse() {
            acked = n;
        }
    }
    if let Some(k) = killer {
        let _ = k.join();
    }
    let status = proc
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .wait()
        .map_err(|e| e.to_string())?;
    if crash.is_some() && (done || status.success()) {
        return Err(format!("{name}: crash point never reached ({acked} ops)"));
    }
    let all = ops(seed);
    let db = match Db::open(dir.path(), options(None)) {
        Ok(db) => db,
        Err(e) => {
            let e: OpenError = e;
            return Err(format!(
                "{name}: reopen after {acked} acked ops failed: {e}"
            ));
        }
    };
    let found = db.scan(..);
    let n = acked as usize;
    let ok_exact = found == model(&all[..n]);
    let ok_next = n < all.len() && found == model(&all[..n + 1]);
    if !(ok_exact || ok_next) {
        return Err(format!(
            "{name}: state after reopen is not the model after {acked} acked ops"
        ));
    }
    // The reopened database keeps working, and after its next run (GC
    // included) the file-leak invariant holds.
    db.put(b"after-crash", b"1").map_err(|e| e.to_string())?;
    db.checkpoint_now(CheckpointKind::Incremental)
        .map_err(|e| format!("{name}: checkpoint after reopen: {e}"))?;
    db.check_file_invariant()
        .map_err(|e| e.to_string())?
        .map_err(|v| format!("{name}: {v}"))?;
    println!("{name}: ok ({acked} acked, status {status})");
    Ok(())
}

fn main() {
    if let Ok(arg) = std::env::var(CHILD_ENV) {
        let mut parts = arg.split('|');
        let dir = parts.next().expect("dir").to_owned();
        let seed = parts.next().and_then(|s| s.parse().ok()).expect("seed");
        let crash: i64 = parts.next().and_then(|s| s.parse().ok()).expect("crash");
        child(Path::new(&dir), seed, usize::try_from(crash).ok());
        return;
    }
    let start = Instant::now();
    let mut failures = Vec::new();
    let mut passed = 0;
    for (i, point) in CrashPoint::ALL.iter().enumerate() {
        match scenario(
            &format!("crash at {point:?}"),
            100 + i as u64,
            Some(i),
            None,
        ) {
            Ok(()) => passed += 1,
            Err(e) => failures.push(e),
        }
    }
    let mut rng = Rng::new(7);
    for k in 0..6u64 {
        let delay = Duration::from_millis(10 + rng.below(150));
        match scenario(
            &format!("kill -9 after {delay:?}"),
            200 + k,
            None,
            Some(delay),
        ) {
            Ok(()) => passed += 1,
            Err(e) => failures.push(e),
        }
    }
    for f in &failures {
        eprintln!("FAILED {f}");
    }
    println!(
        "crash: {passed} passed, {} failed in {:.1?}",
        failures.len(),
        start.elapsed()
    );
    println!("{passed} passed, {} failed", failures.len());
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
