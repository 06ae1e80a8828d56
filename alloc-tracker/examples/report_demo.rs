//! A small service that allocates in a few nested scopes with sampling on,
//! then writes one report in every format, plus a diff:
//!
//! ```text
//! cargo run -p scope-alloc-tracker --example report_demo --all-features [OUT_DIR]
//! ```
//!
//! `OUT_DIR` defaults to the repository's `docs/`; the files are
//! `report-demo.{txt,json,folded,svg,prom,pb.gz}` and `report-demo-diff.txt`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;

use scope_alloc_tracker::leak::LeakCheck;
use scope_alloc_tracker::report::{Format, Report};
use scope_alloc_tracker::sampling::{set_sampling, Sampling};
use scope_alloc_tracker::{Jemalloc, Scope, TrackingAlloc, UsableSizes};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> =
    TrackingAlloc::new(Jemalloc).usable_sizes(UsableSizes::Count);

static SERVICE: Scope = Scope::new("service");
static CACHE: Scope = Scope::child_of(&SERVICE, "cache");
static INDEX: Scope = Scope::child_of(&SERVICE, "index");
static REQUESTS: Scope = Scope::child_of(&SERVICE, "requests");
static SESSIONS: Scope = Scope::child_of(&REQUESTS, "sessions");

/// 4 KiB pages kept in the cache.
#[inline(never)]
fn fill_cache(pages: usize) -> Vec<Box<[u8]>> {
    (0..pages)
        .map(|i| vec![(i % 251) as u8; 4096].into_boxed_slice())
        .collect()
}

/// A key → offsets index with string keys.
#[inline(never)]
fn build_index(keys: usize) -> BTreeMap<String, Vec<u64>> {
    (0..keys)
        .map(|k| (format!("key-{k:08}"), vec![k as u64; 16]))
        .collect()
}

/// Request buffers: allocated and freed again, except the sessions they
/// open, which stay.
#[inline(never)]
fn serve_requests(n: usize, sessions: &mut Vec<Vec<u8>>) {
    for i in 0..n {
        let body = black_box(vec![0u8; 8 * 1024]);
        if i % 8 == 0 {
            SESSIONS.in_scope(|| sessions.push(open_session(body.len())));
        }
    }
}

#[inline(never)]
fn open_session(size: usize) -> Vec<u8> {
    Vec::with_capacity(size * 2)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs"));
    std::fs::create_dir_all(&out_dir)?;

    set_sampling(Sampling::Bytes {
        every_bytes: 32 * 1024,
    });
    // Another thread notices that sampling was switched on within its next
    // MiB of allocations; one large allocation makes sure this one has,
    // before the real work.
    drop(black_box(vec![0u8; 16 << 20]));

    let cache = CACHE.in_scope(|| fill_cache(1024));
    let index = INDEX.in_scope(|| build_index(20_000));
    let before = Report::take();

    let mut sessions = Vec::new();
    REQUESTS.in_scope(|| serve_requests(400, &mut sessions));
    // A leak check over the sessions scope: its exact sites are added to
    // the report next to the sampled ones.
    let check = LeakCheck::begin(&SESSIONS);
    SESSIONS.in_scope(|| sessions.push(open_session(16 * 1024)));
    let leak = check.finish().err();

    let mut report = Report::take();
    if let Some(leak) = &leak {
        report.add_leak(leak);
    }
    // Formats whose feature is off (e.g. `pprof`) are left out.
    for format in Format::ALL.into_iter().filter(|f| f.is_available()) {
        let path = out_dir.join(format!("report-demo.{}", format.extension()));
        report.write_to_file(&path, format)?;
        println!("wrote {}", path.display());
    }
    let diff_path = out_dir.join("report-demo-diff.txt");
    std::fs::write(&diff_path, report.diff(&before).to_string())?;
    println!("wrote {}", diff_path.display());
    print!("{report}");

    drop((cache, index, sessions));
    Ok(())
}
