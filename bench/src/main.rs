//! Benchmark driver: runs every workload through bare `Jemalloc`,
//! `TrackingAlloc<Jemalloc>` (inside a scope; the hybrid attribution, the
//! default, with and without usable sizes, and the trailer-only
//! attribution) and `System` in interleaved rounds, and prints medians and
//! their ratio to bare jemalloc as a Markdown table.
//!
//! ```text
//! cargo run --release -p alloc-bench            # everything (a few minutes)
//! cargo run --release -p alloc-bench -- --quick # fewer rounds
//! ```

use std::alloc::System;
use std::process::Command;
use std::time::Duration;

use scope_alloc_tracker::{Attribution, Jemalloc, ScopeId, TrackingAlloc, UsableSizes};

#[global_allocator]
static GLOBAL: Jemalloc = Jemalloc;

static TRACKING: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);
static TRACKING_USABLE: TrackingAlloc<Jemalloc> =
    TrackingAlloc::new(Jemalloc).usable_sizes(UsableSizes::Count);
static TRAILER: TrackingAlloc<Jemalloc> =
    TrackingAlloc::new(Jemalloc).attribution(Attribution::Trailer);

// One type per static, so that each is called the way a program's
// `#[global_allocator]` calls it (see `via_static!`).
alloc_bench::via_static!(Tracking => TRACKING);
alloc_bench::via_static!(TrackingUsable => TRACKING_USABLE);
alloc_bench::via_static!(Trailer => TRAILER);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Row {
    name: String,
    unit: &'static str,
    /// Medians for each of `Which::ALL`, or `None` where not measured.
    values: [Option<f64>; 5],
    target: &'static str,
}

fn print_rows(rows: &[Row]) {
    println!("| workload | bare jemalloc | tracking (hybrid, default) | + usable sizes | trailer (old) | System | **tracking / jemalloc** | + usable / jemalloc | trailer / jemalloc | target |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} {}", r.unit));
        let ratio = |v: Option<f64>| match (v, r.values[0]) {
            (Some(v), Some(j)) => format!("**{:.3}x**", v / j),
            _ => "-".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            cell(r.values[0]),
            cell(r.values[1]),
            cell(r.values[2]),
            cell(r.values[3]),
            cell(r.values[4]),
            ratio(r.values[1]),
            ratio(r.values[2]),
            ratio(r.values[3]),
            r.target
        );
    }
}

/// Runs `run` for each allocator, `rounds` times interleaved; returns the
/// median time per op in nanoseconds for each.
fn direct(rounds: usize, ops: f64, run: impl Fn(Which) -> Duration) -> [Option<f64>; 5] {
    let mut samples: [Vec<f64>; 5] = Default::default();
    for _ in 0..rounds {
        for (i, w) in Which::ALL.into_iter().enumerate() {
            samples[i].push(run(w).as_nanos() as f64 / ops);
        }
    }
    samples.map(|s| Some(median(s)))
}

#[derive(Clone, Copy)]
enum Which {
    Jemalloc,
    Tracking,
    TrackingUsable,
    Trailer,
    System,
}

impl Which {
    const ALL: [Which; 5] = [
        Which::Jemalloc,
        Which::Tracking,
        Which::TrackingUsable,
        Which::Trailer,
        Which::System,
    ];
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 5 } else { 15 };
    let scope = ScopeId::register("bench", None).unwrap();
    let _in = scope.enter();
    let mut rows = Vec::new();

    macro_rules! each {
        ($w:expr, |$a:ident| $body:expr) => {
            match $w {
                Which::Jemalloc => {
                    let $a = &Jemalloc;
                    $body
                }
                Which::Tracking => {
                    let $a = &Tracking;
                    $body
                }
                Which::TrackingUsable => {
                    let $a = &TrackingUsable;
                    $body
                }
                Which::Trailer => {
                    let $a = &Trailer;
                    $body
                }
                Which::System => {
                    let $a = &System;
                    $body
                }
            }
        };
    }
    let churn_rounds = 200;
    let ops = (churn_rounds * alloc_bench::CHURN_LIVE) as f64;
    let values = direct(rounds, ops, |w| {
        each!(w, |a| alloc_bench::churn_lifo(a, churn_rounds))
    });
    rows.push(Row {
        name: "churn 8..512 B, LIFO (per alloc+free pair)".into(),
        unit: "ns",
        values,
        target: "<= 1.15x",
    });
    let values = direct(rounds, ops, |w| {
        each!(w, |a| alloc_bench::churn_random(a, churn_rounds))
    });
    rows.push(Row {
        name: "churn 8..512 B, random free order".into(),
        unit: "ns",
        values,
        target: "<= 1.15x",
    });
    let values = direct(rounds, 1e3, |w| {
        each!(w, |a| alloc_bench::vec_growth(a, 20))
    });
    rows.push(Row {
        name: "Vec growth 8 B..1 MiB by realloc, 20x".into(),
        unit: "us",
        values,
        target: "-",
    });
    let large = alloc_bench::large_layouts();
    let values = direct(rounds, (20 * large.len()) as f64, |w| {
        each!(w, |a| alloc_bench::batches(a, &large, 20))
    });
    rows.push(Row {
        name: "large blocks 64 KiB..4 MiB, batches of 8 (per pair)".into(),
        unit: "ns",
        values,
        target: "<= 1.02x",
    });
    let pow2 = alloc_bench::pow2_layouts();
    let values = direct(rounds, (200 * pow2.len()) as f64, |w| {
        each!(w, |a| alloc_bench::batches(a, &pow2, 200))
    });
    rows.push(Row {
        name: "power-of-two buffers 64 B..1 MiB, batches of 64 (per pair)".into(),
        unit: "ns",
        values,
        target: "-",
    });
    let pages = alloc_bench::page_layouts();
    let values = direct(rounds, (2000 * pages.len()) as f64, |w| {
        each!(w, |a| alloc_bench::batches(a, &pages, 2000))
    });
    rows.push(Row {
        name: "page-aligned 4 KiB buffers, batches of 64 (per pair)".into(),
        unit: "ns",
        values,
        target: "-",
    });
    let n = 200_000;
    let values = direct(rounds, n as f64, |w| {
        each!(w, |a| alloc_bench::cross_thread(a, n))
    });
    rows.push(Row {
        name: "cross-thread free via channel (per block)".into(),
        unit: "ns",
        values,
        target: "<= 1.15x",
    });

    // Per-thread cost of 1 vs 2 threads churning in the same scope.
    let pr = 100;
    let pops = (pr * alloc_bench::CHURN_LIVE) as f64;
    let mut one = (vec![], vec![]);
    let mut two = (vec![], vec![]);
    for _ in 0..rounds {
        let run = |threads, tracked: bool| {
            let d = if tracked {
                scope.in_scope(|| alloc_bench::parallel_churn(&Tracking, threads, pr))
            } else {
                alloc_bench::parallel_churn(&Jemalloc, threads, pr)
            };
            d.as_nanos() as f64 / pops
        };
        one.0.push(run(1, false));
        one.1.push(run(1, true));
        two.0.push(run(2, false));
        two.1.push(run(2, true));
    }
    let (j1, t1, j2, t2) = (median(one.0), median(one.1), median(two.0), median(two.1));
    rows.push(Row {
        name: "churn, 1 thread (per-thread cost)".into(),
        unit: "ns",
        values: [Some(j1), Some(t1), None, None, None],
        target: "-",
    });
    rows.push(Row {
        name: "churn, 2 threads in the same scope (per-thread cost)".into(),
        unit: "ns",
        values: [Some(j2), Some(t2), None, None, None],
        target: "-",
    });

    // Whole-program workloads, one binary per global allocator.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    let prog = |name: &str, args: &[&str]| -> Vec<f64> {
        let out = Command::new(dir.join(name))
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("run {name}: {e} (build with `cargo build --release -p alloc-bench`)")
            });
        assert!(out.status.success(), "{name} failed");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect()
    };
    let prog_env = |name: &str, args: &[&str]| -> f64 {
        let out = Command::new(dir.join(name))
            .args(args)
            .env("ALLOC_BENCH_SAMPLING", "1")
            .output()
            .expect("run mixed-tracking");
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let (mut j, mut t, mut s, mut ts, mut tr) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        j.push(prog("mixed-jemalloc", &["mixed", "100000"])[0] / 1e6);
        t.push(prog("mixed-tracking", &["mixed", "100000"])[0] / 1e6);
        tr.push(prog("mixed-trailer", &["mixed", "100000"])[0] / 1e6);
        ts.push(prog_env("mixed-tracking", &["mixed", "100000"]) / 1e6);
        s.push(prog("mixed-system", &["mixed", "100000"])[0] / 1e6);
    }
    let (tm, tsm) = (median(t.clone()), median(ts.clone()));
    rows.push(Row {
        name: "mixed: build+clone+drop BTreeMap<String, Vec<u8>>, 100k".into(),
        unit: "ms",
        values: [
            Some(median(j)),
            Some(median(t)),
            None,
            Some(median(tr)),
            Some(median(s)),
        ],
        target: "<= 1.05x",
    });
    rows.push(Row {
        name: "mixed, tracking + sampling every 512 KiB (vs bare jemalloc)".into(),
        unit: "ms",
        values: [rows.last().unwrap().values[0], Some(tsm), None, None, None],
        target: "-",
    });
    // Full recording during a leak check: every allocation walks the stack.
    let check_scope = ScopeId::register("bench-check", None).unwrap();
    let rec_rounds = 5;
    let rec_ops = (rec_rounds * alloc_bench::CHURN_LIVE) as f64;
    let mut rec = vec![];
    let mut plain = vec![];
    for _ in 0..rounds {
        plain.push(
            check_scope
                .in_scope(|| alloc_bench::churn_lifo(&Tracking, rec_rounds))
                .as_nanos() as f64
                / rec_ops,
        );
        let check = scope_alloc_tracker::leak::LeakCheck::begin(check_scope);
        rec.push(
            check_scope
                .in_scope(|| alloc_bench::churn_lifo(&Tracking, rec_rounds))
                .as_nanos() as f64
                / rec_ops,
        );
        // This driver's global allocator is bare jemalloc (the rows call a
        // `TrackingAlloc` instance directly), so the check says the tracker
        // is not installed; the recording it switched on is what is timed.
        match check.finish() {
            Ok(_) => {}
            Err(r) if r.cause == scope_alloc_tracker::leak::LeakCause::NotInstalled => {}
            Err(r) => panic!("the churn frees everything: {r}"),
        }
    }
    print_rows(&rows);
    println!();
    println!(
        "sampling at the default 512 KiB interval on the mixed workload: {:.3}x of tracking without sampling (target <= 1.03x)",
        tsm / tm
    );
    println!(
        "full site recording during a leak check: {:.0} ns per alloc+free pair vs {:.1} ns without a check",
        median(rec),
        median(plain)
    );

    println!();
    println!("per-thread cost, 2 threads / 1 thread: bare jemalloc {:.3}x, tracking {:.3}x (target: tracking within 10% of its 1-thread cost)", j2 / j1, t2 / t1);
    println!();
    println!("| resident memory, 1M live objects | bare jemalloc (stats.resident) | tracking (hybrid, default) | overhead | trailer (old) | overhead | bare RSS | tracking RSS | target |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    let resident = |what: &str, args: &[&str], target: &str| {
        let b = prog("mixed-jemalloc", args);
        let tr = prog("mixed-tracking", args);
        let tt = prog("mixed-trailer", args);
        let mib = |x: f64| x / 1048576.0;
        println!(
            "| {what} | {:.1} MiB | {:.1} MiB | **{:+.1}%** | {:.1} MiB | {:+.1}% | {:.1} MiB | {:.1} MiB | {target} |",
            mib(b[0]),
            mib(tr[0]),
            (tr[0] / b[0] - 1.0) * 100.0,
            mib(tt[0]),
            (tt[0] / b[0] - 1.0) * 100.0,
            mib(b[1]),
            mib(tr[1]),
        );
    };
    resident("24-byte boxes", &["resident", "1000000", "24"], "<= 3%");
    resident("32-byte boxes", &["resident", "1000000", "32"], "<= 3%");
    resident(
        "realistic mix: boxed structs 8..128 B, pushed Vecs 1..256 B, exact buffers 1..512 B",
        &["resident-mix", "1000000"],
        "<= 3%",
    );
}
