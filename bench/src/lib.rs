//! Workloads shared by the benchmark binaries.
//!
//! The allocator-direct workloads take a `&impl GlobalAlloc` and call its
//! methods, so bare `Jemalloc`, `TrackingAlloc<Jemalloc>` and `System` run
//! the same code in one process. The whole-program workloads (`mixed`,
//! `resident`) need a different `#[global_allocator]` each and live in
//! `src/bin/*`, one binary per allocator, run by the driver in turns.

pub mod reference;

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Declares a unit struct `$name` whose `GlobalAlloc` forwards to the
/// static allocator `$target`.
///
/// A workload generic over `A: GlobalAlloc` called with `&TRACKING` and
/// with `&TRAILER` (two statics of one type, configured differently) is
/// one instantiation that branches on the configuration at run time. A
/// program's `#[global_allocator]` does not: its `__rust_alloc` shim calls
/// one known static, whose configuration folds to constants. One forwarding
/// type per static gives each its own instantiation, as in a program.
#[macro_export]
macro_rules! via_static {
    ($name:ident => $target:path) => {
        #[doc = concat!("Forwards to `", stringify!($target), "`.")]
        #[derive(Clone, Copy, Debug)]
        pub struct $name;

        // SAFETY: forwards every call, with its arguments, to `$target`.
        unsafe impl ::std::alloc::GlobalAlloc for $name {
            #[inline(always)]
            unsafe fn alloc(&self, l: ::std::alloc::Layout) -> *mut u8 {
                // SAFETY: the caller's contract.
                unsafe { ::std::alloc::GlobalAlloc::alloc(&$target, l) }
            }
            #[inline(always)]
            unsafe fn alloc_zeroed(&self, l: ::std::alloc::Layout) -> *mut u8 {
                // SAFETY: the caller's contract.
                unsafe { ::std::alloc::GlobalAlloc::alloc_zeroed(&$target, l) }
            }
            #[inline(always)]
            unsafe fn dealloc(&self, p: *mut u8, l: ::std::alloc::Layout) {
                // SAFETY: the caller's contract.
                unsafe { ::std::alloc::GlobalAlloc::dealloc(&$target, p, l) }
            }
            #[inline(always)]
            unsafe fn realloc(&self, p: *mut u8, l: ::std::alloc::Layout, n: usize) -> *mut u8 {
                // SAFETY: the caller's contract.
                unsafe { ::std::alloc::GlobalAlloc::realloc(&$target, p, l, n) }
            }
        }
    };
}

/// Blocks alive at once in the churn workloads.
pub const CHURN_LIVE: usize = 1000;

fn layouts(n: usize, seed: u64) -> Vec<Layout> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|_| Layout::from_size_align(rng.usize(8..=512), 8).unwrap())
        .collect()
}

/// Allocates `CHURN_LIVE` blocks of 8..512 bytes and frees them in reverse
/// (LIFO) order, `rounds` times. Returns the elapsed time.
pub fn churn_lifo<A: GlobalAlloc>(a: &A, rounds: usize) -> Duration {
    let ls = layouts(CHURN_LIVE, 1);
    let mut ptrs = vec![std::ptr::null_mut(); CHURN_LIVE];
    let t = Instant::now();
    for _ in 0..rounds {
        for (p, l) in ptrs.iter_mut().zip(&ls) {
            // SAFETY: non-zero sizes; freed below with the same layout.
            *p = unsafe { a.alloc(*l) };
            assert!(!p.is_null());
        }
        for (p, l) in ptrs.iter().zip(&ls).rev() {
            // SAFETY: allocated above by `a` with `l`.
            unsafe { a.dealloc(*p, *l) };
        }
    }
    t.elapsed()
}

/// Like [`churn_lifo`] but frees in a shuffled order.
pub fn churn_random<A: GlobalAlloc>(a: &A, rounds: usize) -> Duration {
    let ls = layouts(CHURN_LIVE, 2);
    let mut order: Vec<usize> = (0..CHURN_LIVE).collect();
    fastrand::Rng::with_seed(3).shuffle(&mut order);
    let mut ptrs = vec![std::ptr::null_mut(); CHURN_LIVE];
    let t = Instant::now();
    for _ in 0..rounds {
        for (p, l) in ptrs.iter_mut().zip(&ls) {
            // SAFETY: non-zero sizes; freed below with the same layout.
            *p = unsafe { a.alloc(*l) };
            assert!(!p.is_null());
        }
        for &i in &order {
            // SAFETY: allocated above by `a` with `ls[i]`.
            unsafe { a.dealloc(ptrs[i], ls[i]) };
        }
    }
    t.elapsed()
}

/// Grows a buffer the way `Vec::push` does (capacity doubling from 8 bytes
/// to 1 MiB through `realloc`, writing each new byte range), `rounds` times.
pub fn vec_growth<A: GlobalAlloc>(a: &A, rounds: usize) -> Duration {
    let t = Instant::now();
    for _ in 0..rounds {
        let mut cap = 8usize;
        let mut l = Layout::from_size_align(cap, 1).unwrap();
        // SAFETY: non-zero size.
        let mut p = unsafe { a.alloc(l) };
        while cap < 1 << 20 {
            let new = cap * 2;
            // SAFETY: `p` is live with layout `l`; `new` is non-zero.
            p = unsafe { a.realloc(p, l, new) };
            assert!(!p.is_null());
            // SAFETY: the block now has `new` bytes.
            unsafe { std::ptr::write_bytes(p.add(cap), 1, new - cap) };
            // Keeps LLVM, which knows libc's realloc/free, from deleting
            // the whole loop for `System`.
            p = std::hint::black_box(p);
            cap = new;
            l = Layout::from_size_align(cap, 1).unwrap();
        }
        // SAFETY: live with layout `l`.
        unsafe { a.dealloc(p, l) };
    }
    t.elapsed()
}

struct SendPtr(*mut u8, Layout);
// SAFETY: the pointer is only a handle to a heap block moved to the freeing
// thread.
unsafe impl Send for SendPtr {}

/// One thread allocates `n` blocks of 8..512 bytes and sends them through a
/// channel to a second thread that frees them.
pub fn cross_thread<A: GlobalAlloc + Sync>(a: &A, n: usize) -> Duration {
    let ls = layouts(CHURN_LIVE, 4);
    let (tx, rx) = mpsc::sync_channel::<Vec<SendPtr>>(64);
    std::thread::scope(|s| {
        let t = Instant::now();
        s.spawn(move || {
            for batch in rx {
                for SendPtr(p, l) in batch {
                    // SAFETY: allocated by `a` with `l` on the producer.
                    unsafe { a.dealloc(p, l) };
                }
            }
        });
        let mut done = 0;
        while done < n {
            let batch: Vec<SendPtr> = ls
                .iter()
                .take(256)
                // SAFETY: non-zero sizes; freed by the consumer.
                .map(|l| SendPtr(unsafe { a.alloc(*l) }, *l))
                .collect();
            done += batch.len();
            tx.send(batch).unwrap();
        }
        drop(tx);
        t
    })
    .elapsed()
}

/// `threads` threads each run [`churn_random`] for `rounds` rounds at once;
/// returns the slowest thread's time.
pub fn parallel_churn<A: GlobalAlloc + Sync>(a: &A, threads: usize, rounds: usize) -> Duration {
    let barrier = std::sync::Barrier::new(threads);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    churn_random(a, rounds)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).max().unwrap()
    })
}

/// Builds, clones and drops a `BTreeMap<String, Vec<u8>>` of `n` entries
/// through the global allocator.
pub fn mixed(n: usize) -> Duration {
    let mut rng = fastrand::Rng::with_seed(5);
    let t = Instant::now();
    let mut m = BTreeMap::new();
    for i in 0..n {
        let key = format!("key-{:08}-{}", rng.u32(..), i);
        let mut v = Vec::new();
        for _ in 0..rng.usize(0..200) {
            v.push(rng.u8(..));
        }
        m.insert(key, v);
    }
    let c = m.clone();
    let total: usize = c.values().map(Vec::len).sum();
    drop(m);
    drop(c);
    std::hint::black_box(total);
    t.elapsed()
}

/// Allocates the blocks of `ls` (writing their first byte, as a user of
/// the buffer would) and frees them in reverse order, `rounds` times.
pub fn batches<A: GlobalAlloc>(a: &A, ls: &[Layout], rounds: usize) -> Duration {
    let mut ptrs = vec![std::ptr::null_mut(); ls.len()];
    let t = Instant::now();
    for _ in 0..rounds {
        for (p, l) in ptrs.iter_mut().zip(ls) {
            // SAFETY: non-zero sizes; freed below with the same layout.
            *p = unsafe { a.alloc(*l) };
            assert!(!p.is_null());
            // SAFETY: the block has at least one byte.
            unsafe { p.write_volatile(1) };
        }
        for (p, l) in ptrs.iter().zip(ls).rev() {
            // SAFETY: allocated above by `a` with `l`.
            unsafe { a.dealloc(*p, *l) };
        }
    }
    t.elapsed()
}

/// 8 blocks of 64 KiB..4 MiB (log-uniform).
pub fn large_layouts() -> Vec<Layout> {
    let mut rng = fastrand::Rng::with_seed(11);
    (0..8)
        .map(|_| {
            let size = (64usize << 10) << rng.usize(0..=6);
            let size = size + rng.usize(0..size);
            Layout::from_size_align(size.min(4 << 20), 8).unwrap()
        })
        .collect()
}

/// 64 power-of-two buffers of 64 B..1 MiB (every size as often).
pub fn pow2_layouts() -> Vec<Layout> {
    (0..64)
        .map(|i| Layout::from_size_align(64 << (i % 15), 8).unwrap())
        .collect()
}

/// 64 page-aligned 4 KiB buffers (I/O pages).
pub fn page_layouts() -> Vec<Layout> {
    vec![Layout::from_size_align(4096, 4096).unwrap(); 64]
}

/// Resident bytes of this process from `/proc/self/statm`.
pub fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Holds `n` boxes of `size` bytes and reports the growth of jemalloc's
/// `stats.resident` and of the process RSS, in bytes.
pub fn resident(n: usize, size: usize) -> (u64, u64) {
    use tikv_jemalloc_ctl::{epoch, stats};
    let e = epoch::mib().unwrap();
    let r = stats::resident::mib().unwrap();
    let mut boxes: Vec<Box<[u8]>> = Vec::with_capacity(n);
    e.advance().unwrap();
    let (je0, rss0) = (r.read().unwrap() as u64, rss_bytes());
    boxes.extend((0..n).map(|_| vec![7u8; size].into_boxed_slice()));
    e.advance().unwrap();
    let (je1, rss1) = (r.read().unwrap() as u64, rss_bytes());
    std::hint::black_box(&boxes);
    drop(boxes);
    (je1 - je0, rss1.saturating_sub(rss0))
}

/// A boxed plain struct of `N` bytes.
#[allow(dead_code)] // the fields are only there to have a size
struct Obj<const N: usize>([u64; N]);

/// Holds `n` live objects of a realistic mix and reports the growth of
/// jemalloc's `stats.resident` and of the process RSS, in bytes: a third
/// boxed structs of 8..128 bytes (multiples of 8), a third `Vec<u8>`s grown
/// by pushing (capacity doubling) to 1..256 bytes, a third exact-length
/// buffers (`vec![0; len].into_boxed_slice()`, `String::from`) of 1..512
/// bytes.
pub fn resident_mix(n: usize) -> (u64, u64) {
    use std::any::Any;
    use tikv_jemalloc_ctl::{epoch, stats};
    let e = epoch::mib().unwrap();
    let r = stats::resident::mib().unwrap();
    let mut rng = fastrand::Rng::with_seed(17);
    let mut live: Vec<Box<dyn Any>> = Vec::with_capacity(n);
    e.advance().unwrap();
    let (je0, rss0) = (r.read().unwrap() as u64, rss_bytes());
    for i in 0..n {
        let obj: Box<dyn Any> = match i % 3 {
            0 => match rng.usize(1..=16) {
                1 => Box::new(Obj::<1>([7; 1])),
                2 => Box::new(Obj::<2>([7; 2])),
                3 => Box::new(Obj::<3>([7; 3])),
                4 => Box::new(Obj::<4>([7; 4])),
                5 => Box::new(Obj::<5>([7; 5])),
                6 => Box::new(Obj::<6>([7; 6])),
                7 => Box::new(Obj::<7>([7; 7])),
                8 => Box::new(Obj::<8>([7; 8])),
                9 => Box::new(Obj::<9>([7; 9])),
                10 => Box::new(Obj::<10>([7; 10])),
                11 => Box::new(Obj::<11>([7; 11])),
                12 => Box::new(Obj::<12>([7; 12])),
                13 => Box::new(Obj::<13>([7; 13])),
                14 => Box::new(Obj::<14>([7; 14])),
                15 => Box::new(Obj::<15>([7; 15])),
                _ => Box::new(Obj::<16>([7; 16])),
            },
            1 => {
                let mut v = Vec::new();
                for _ in 0..rng.usize(1..=256) {
                    v.push(rng.u8(..));
                }
                Box::new(v)
            }
            _ => {
                let len = rng.usize(1..=512);
                if rng.bool() {
                    Box::new(vec![3u8; len].into_boxed_slice())
                } else {
                    Box::new(String::from_utf8(vec![b'x'; len]).unwrap())
                }
            }
        };
        live.push(obj);
    }
    e.advance().unwrap();
    let (je1, rss1) = (r.read().unwrap() as u64, rss_bytes());
    std::hint::black_box(&live);
    drop(live);
    (je1 - je0, rss1.saturating_sub(rss0))
}

/// Entry point of the whole-program binaries: `mixed N` prints the
/// nanoseconds of one [`mixed`] run, `resident N SIZE` and `resident-mix N`
/// print the growth of jemalloc's resident bytes and of RSS.
pub fn program_main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| {
        args.get(i)
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(0)
    };
    match args.first().map(String::as_str) {
        Some("mixed") => println!("{}", mixed(num(1)).as_nanos()),
        Some("resident") => {
            let (je, rss) = resident(num(1), num(2));
            println!("{je} {rss}");
        }
        Some("resident-mix") => {
            let (je, rss) = resident_mix(num(1));
            println!("{je} {rss}");
        }
        _ => {
            eprintln!("usage: (mixed N | resident N SIZE | resident-mix N)");
            std::process::exit(2);
        }
    }
}
