//! What recording a call stack costs, and what symbolising a report of 100
//! sites costs.
//!
//! ```text
//! flock /work/bench.lock cargo run --release -p alloc-bench --bin recorded-stacks
//! ```
//!
//! Times are CPU time of the measuring thread. Prints the time and the
//! tracker's internal-scope peak for symbolising a leak report of 100
//! sites; then, per alloc+free pair of a 16-byte box made 32 frames deep
//! inside a scope: unrecorded, recorded with the cached unwinder (callers
//! predicted, or not), recorded with the old one (`backtrace::trace`); then
//! the stack walk alone: the same site again, two sites alternating, 64
//! sites in random order, and nothing predicted (the worst case).
//!
//! A shared machine can change speed from one run to the next (another
//! tenant on the core's sibling thread: a chain of L1 loads keeps its
//! speed, code that needs the core's full width slows down; see
//! `docs/attribution.md`, "Call stacks"). Run it several times and quote
//! the best run and the median of the runs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use scope_alloc_tracker::leak::LeakCheck;
use scope_alloc_tracker::sampling::{
    capture_stack_for_bench, set_stack_depth, set_stack_unwinder, set_symboliser,
    stack_capture_stats, StackUnwinder, Symboliser,
};
use scope_alloc_tracker::{Jemalloc, ScopeId, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

const PAIRS: usize = 20_000;
const DEPTH: usize = 32;
/// The unwinder's default depth: physical frames kept past the allocator's
/// entry (frame 3 in a release build, so 32 frames walked; a walk that never
/// meets the entry, as in the walk-alone rows, also stops at 32).
const DEFAULT_DEPTH: usize = 28;
/// The old depth, 48 frames in all.
const OLD_DEPTH: usize = 44;

/// This thread's CPU time: time slices taken by other processes on a
/// busy machine do not count.
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

/// Recurses `depth` frames, then runs `PAIRS` alloc+free pairs.
#[inline(never)]
fn nest(depth: usize) -> Duration {
    if depth == 0 {
        let t = cpu_now();
        for i in 0..PAIRS {
            drop(black_box(Box::new([i as u64, 0])));
        }
        cpu_now() - t
    } else {
        black_box(nest(black_box(depth - 1)))
    }
}

/// How a walk-alone row captures its `i`-th stack.
type Capture = fn(u64, StackUnwinder) -> usize;

/// Recurses `depth` frames, then runs `capture(i, u)` for `i` in `0..n`;
/// CPU ns per capture and the frames of the last one.
#[inline(never)]
fn nest_captures(depth: usize, n: u64, u: StackUnwinder, capture: Capture) -> (f64, usize) {
    if depth == 0 {
        let t = cpu_now();
        let mut frames = 0;
        for i in 0..n {
            frames = capture(i, u);
        }
        ((cpu_now() - t).as_nanos() as f64 / n as f64, frames)
    } else {
        black_box(nest_captures(black_box(depth - 1), n, u, capture))
    }
}

/// The same call site every time.
fn same_site(_: u64, u: StackUnwinder) -> usize {
    black_box(capture_stack_for_bench(u))
}

/// Two leaf call sites for [`two_sites`].
#[inline(never)]
fn site_a(u: StackUnwinder) -> usize {
    black_box(capture_stack_for_bench(u))
}

#[inline(never)]
fn site_b(u: StackUnwinder) -> usize {
    black_box(capture_stack_for_bench(u)) + black_box(0)
}

/// Two leaf call sites in turn: the innermost frame past the unwinder's
/// own has a different caller each time.
fn two_sites(i: u64, u: StackUnwinder) -> usize {
    if i.is_multiple_of(2) {
        site_a(u)
    } else {
        site_b(u)
    }
}

macro_rules! leaves {
    ($($name:ident $k:literal)*) => {
        $(
            #[inline(never)]
            fn $name(u: StackUnwinder) -> usize {
                let frames = black_box(capture_stack_for_bench(u));
                black_box($k);
                frames
            }
        )*
        /// Sixteen leaf call sites for [`many_sites`].
        const LEAVES: [fn(StackUnwinder) -> usize; 16] = [$($name),*];
    };
}

leaves! {
    leaf0 0 leaf1 1 leaf2 2 leaf3 3 leaf4 4 leaf5 5 leaf6 6 leaf7 7
    leaf8 8 leaf9 9 leaf10 10 leaf11 11 leaf12 12 leaf13 13 leaf14 14 leaf15 15
}

macro_rules! mids {
    ($($name:ident $k:literal)*) => {
        $(
            #[inline(never)]
            fn $name(leaf: usize, u: StackUnwinder) -> usize {
                let frames = black_box(LEAVES[leaf](u));
                black_box($k);
                frames
            }
        )*
        /// Four callers of the leaves for [`many_sites`].
        const MIDS: [fn(usize, StackUnwinder) -> usize; 4] = [$($name),*];
    };
}

mids! { mid0 0 mid1 1 mid2 2 mid3 3 }

/// One of 64 call sites (16 leaves under 4 callers), in a pseudo-random
/// order, as in a program that records many sites: a capture's innermost
/// frames have other callers than the last capture's.
fn many_sites(i: u64, u: StackUnwinder) -> usize {
    // splitmix64 of `i`: a few cycles, and no pattern a branch predictor
    // could learn.
    let mut x = (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    MIDS[(x % 4) as usize]((x >> 8) as usize % 16, u)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// ns per pair, median of `rounds`, with the scope under a recording
/// check or not.
fn pairs(scope: ScopeId, recorded: bool, rounds: usize) -> f64 {
    let mut v = Vec::new();
    for _ in 0..rounds {
        let check = recorded.then(|| LeakCheck::begin(scope));
        let d = scope.in_scope(|| nest(DEPTH));
        if let Some(c) = check {
            c.finish().expect("the pairs free everything");
        }
        v.push(d.as_nanos() as f64 / PAIRS as f64);
    }
    median(v)
}

macro_rules! leakers {
    ($($name:ident $k:literal)*) => {
        $(
            // Distinct bodies, so that the linker does not fold them.
            #[inline(never)]
            fn $name(n: usize) {
                black_box(Box::leak(vec![$k; n + $k as usize].into_boxed_slice()));
            }
        )*
        const LEAKERS: &[fn(usize)] = &[$($name),*];
    };
}

leakers! {
    l00 0u8 l01 1u8 l02 2u8 l03 3u8 l04 4u8 l05 5u8 l06 6u8 l07 7u8 l08 8u8 l09 9u8
    l10 10u8 l11 11u8 l12 12u8 l13 13u8 l14 14u8 l15 15u8 l16 16u8 l17 17u8 l18 18u8 l19 19u8
    l20 20u8 l21 21u8 l22 22u8 l23 23u8 l24 24u8 l25 25u8 l26 26u8 l27 27u8 l28 28u8 l29 29u8
    l30 30u8 l31 31u8 l32 32u8 l33 33u8 l34 34u8 l35 35u8 l36 36u8 l37 37u8 l38 38u8 l39 39u8
    l40 40u8 l41 41u8 l42 42u8 l43 43u8 l44 44u8 l45 45u8 l46 46u8 l47 47u8 l48 48u8 l49 49u8
    l50 50u8 l51 51u8 l52 52u8 l53 53u8 l54 54u8 l55 55u8 l56 56u8 l57 57u8 l58 58u8 l59 59u8
    l60 60u8 l61 61u8 l62 62u8 l63 63u8 l64 64u8 l65 65u8 l66 66u8 l67 67u8 l68 68u8 l69 69u8
    l70 70u8 l71 71u8 l72 72u8 l73 73u8 l74 74u8 l75 75u8 l76 76u8 l77 77u8 l78 78u8 l79 79u8
    l80 80u8 l81 81u8 l82 82u8 l83 83u8 l84 84u8 l85 85u8 l86 86u8 l87 87u8 l88 88u8 l89 89u8
    l90 90u8 l91 91u8 l92 92u8 l93 93u8 l94 94u8 l95 95u8 l96 96u8 l97 97u8 l98 98u8 l99 99u8
}

fn main() {
    let rounds = if std::env::args().any(|a| a == "--quick") {
        5
    } else {
        15
    };
    let scope = ScopeId::register("bench-stacks", None).unwrap();
    if std::env::args().any(|a| a == "--cached-only") {
        // For a profiler: nothing but recorded pairs with the cached unwinder.
        println!("{:.1} ns", pairs(scope, true, rounds));
        return;
    }

    // Symbolisation first, while the internal scope is small: its peak is
    // a process-lifetime high-water mark, so the per-unit symboliser (the
    // smaller peak) goes first and `backtrace` (to compare) second.
    let sites: usize = std::env::var("SITES").map_or(100, |s| s.parse().unwrap());
    for (name, symboliser) in [
        (
            "per-unit (addr2line per compilation unit)",
            Symboliser::PerUnit,
        ),
        ("backtrace::resolve (as before)", Symboliser::Backtrace),
    ] {
        set_symboliser(symboliser);
        let leaks = ScopeId::register(name, None).unwrap();
        let check = LeakCheck::begin(leaks);
        leaks.in_scope(|| {
            for (i, f) in LEAKERS.iter().take(sites).enumerate() {
                f(16 + i % 7);
            }
        });
        let internal = ScopeId::INTERNAL.stats();
        let t = Instant::now();
        let report = check.finish().expect_err("100 planted leaks");
        let symbolise = t.elapsed();
        let after = ScopeId::INTERNAL.stats();
        assert_eq!(report.sites.len(), sites, "{report}");
        if std::env::var_os("SHOW").is_some() {
            println!("{report}");
        }
        println!(
            "symbolising a {sites}-site leak report, {name}: {:.1} ms, internal scope peak +{:.1} MiB (from {:.1} MiB live; {:.1} MiB live after)",
            symbolise.as_secs_f64() * 1e3,
            after.peak_bytes.saturating_sub(internal.live_bytes) as f64 / 1048576.0,
            internal.live_bytes as f64 / 1048576.0,
            after.live_bytes as f64 / 1048576.0,
        );
    }
    set_symboliser(Symboliser::PerUnit);

    if std::env::var_os("ONLY_SYMBOLISE").is_some() {
        return;
    }
    let plain = pairs(scope, false, rounds);
    set_stack_unwinder(StackUnwinder::Cached);
    pairs(scope, true, 1); // build the unwinder, warm its rule cache
    let before = stack_capture_stats();
    let cached = pairs(scope, true, rounds);
    let mid = stack_capture_stats();
    set_stack_depth(OLD_DEPTH);
    let cached48 = pairs(scope, true, rounds);
    set_stack_unwinder(StackUnwinder::RulesOnly);
    let rules48 = pairs(scope, true, rounds);
    set_stack_depth(DEFAULT_DEPTH);
    let rules = pairs(scope, true, rounds);
    set_stack_unwinder(StackUnwinder::Fallback);
    let old = pairs(scope, true, rounds);
    set_stack_unwinder(StackUnwinder::Cached);
    println!("| recorded allocation, 16 B box {DEPTH} frames deep (per alloc+free pair) | ns |");
    println!("|---|---:|");
    println!("| unrecorded (tracking only) | {plain:.1} |");
    println!("| recorded, cached unwinder (fast path) | {cached:.1} |");
    println!("| recorded, cached unwinder, walk depth 48 | {cached48:.1} |");
    println!("| recorded, rule cache only (no caller predicted) | {rules:.1} |");
    println!("| recorded, rule cache only, walk depth 48 | {rules48:.1} |");
    println!("| recorded, old unwinder (`backtrace::trace`) | {old:.1} |");
    println!(
        "stack capture alone (recorded - unrecorded, upper bound: includes the record insert and remove): cached {:.0} ns, old {:.0} ns; {:.1}x faster",
        cached - plain,
        old - plain,
        (old - plain) / (cached - plain)
    );
    let walk = |u, f: Capture| {
        let mut v = Vec::new();
        let mut frames = 0;
        for _ in 0..rounds {
            let (ns, fr) = nest_captures(DEPTH, 20_000, u, f);
            v.push(ns);
            frames = fr;
        }
        (median(v), frames)
    };
    let mut rows = Vec::new();
    for depth in [OLD_DEPTH, DEFAULT_DEPTH] {
        set_stack_depth(depth);
        let d = if depth == OLD_DEPTH {
            "depth 48"
        } else {
            "depth 32"
        };
        for (name, u, f) in [
            (
                "predicted callers, the same site again",
                StackUnwinder::Cached,
                same_site as Capture,
            ),
            (
                "predicted callers, two sites alternating",
                StackUnwinder::Cached,
                two_sites,
            ),
            (
                "predicted callers, 64 sites in random order",
                StackUnwinder::Cached,
                many_sites,
            ),
            (
                "cached rules only, no caller predicted (worst case)",
                StackUnwinder::RulesOnly,
                same_site,
            ),
        ] {
            let (ns, frames) = walk(u, f);
            rows.push((format!("{name}, {d}"), ns, frames));
        }
    }
    set_stack_depth(DEFAULT_DEPTH);
    let (walk_old, frames_old) = walk(StackUnwinder::Fallback, same_site);
    rows.push((
        "old unwinder (`backtrace::trace`)".into(),
        walk_old,
        frames_old,
    ));
    set_stack_unwinder(StackUnwinder::Cached);
    println!(
        "| stack walk alone (no interning, no record) | ns | in L1 loads | frames | ns/frame |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (name, ns, frames) in rows {
        println!(
            "| {name} | {ns:.0} | {frames} | {:.1} |",
            ns / frames as f64
        );
    }
    println!(
        "captures during the cached rounds: {} fast, {} fallback",
        mid.fast - before.fast,
        mid.fallback - before.fallback
    );
}
