//! Several threads allocate, reallocate and free blocks of random sizes and
//! alignments in several scopes, and pass blocks to each other to be freed
//! elsewhere. When all is freed every scope is back at its starting live
//! figures and its totals equal what the test itself counted; readers
//! running meanwhile never see a free without its allocation.

use std::alloc::{alloc, dealloc, realloc, Layout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Barrier};
use std::thread;

use scope_alloc_tracker::ScopeId;

const THREADS: usize = 3;
const SCOPES: usize = 3;
/// Operations over all threads: scaled down for unoptimised builds.
const OPS: usize = if cfg!(debug_assertions) {
    600_000
} else {
    2_000_000
};
const POOL: usize = 1024;
const ALIGNS: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, 128];

/// A live block and the index of the scope it was allocated in.
struct Block {
    addr: usize,
    layout: Layout,
    scope: usize,
}

/// What one thread did, per origin scope.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
struct Counts {
    allocs: u64,
    bytes: u64,
    frees: u64,
    freed: u64,
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as usize % n
    }
}

fn free(b: Block, counts: &mut [Counts; SCOPES]) {
    // SAFETY: every `Block` is a live allocation made with `b.layout`.
    unsafe {
        assert_eq!(*(b.addr as *const u8), b.scope as u8, "block corrupted");
        dealloc(b.addr as *mut u8, b.layout);
    }
    counts[b.scope].frees += 1;
    counts[b.scope].freed += b.layout.size() as u64;
}

fn worker(
    me: usize,
    scopes: [ScopeId; SCOPES],
    inbox: Receiver<Block>,
    peers: Vec<Sender<Block>>,
    done_sending: Arc<Barrier>,
) -> [Counts; SCOPES] {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (me as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let mut counts = [Counts::default(); SCOPES];
    let mut pool: Vec<Block> = Vec::with_capacity(POOL);
    for _ in 0..OPS / THREADS {
        let r = rng.below(100);
        if pool.is_empty() || (r < 45 && pool.len() < POOL) {
            let s = rng.below(SCOPES);
            let layout =
                Layout::from_size_align(1 + rng.below(4096), ALIGNS[rng.below(ALIGNS.len())])
                    .unwrap();
            // SAFETY: `layout` has a non-zero size; the first byte is
            // written before the block is shared.
            let p = scopes[s].in_scope(|| unsafe { alloc(layout) });
            assert!(!p.is_null());
            // SAFETY: `p` is a live block of at least one byte.
            unsafe { p.write(s as u8) };
            counts[s].allocs += 1;
            counts[s].bytes += layout.size() as u64;
            pool.push(Block {
                addr: p as usize,
                layout,
                scope: s,
            });
        } else if r < 60 {
            // Realloc under a random current scope (or none): it still
            // belongs to its origin.
            let i = rng.below(pool.len());
            let b = &mut pool[i];
            let new_size = 1 + rng.below(4096);
            let current = match rng.below(SCOPES + 1) {
                n if n < SCOPES => scopes[n],
                _ => ScopeId::UNSCOPED,
            };
            // SAFETY: `b` is live with `b.layout`; `new_size` is non-zero
            // and small.
            let q = current.in_scope(|| unsafe { realloc(b.addr as *mut u8, b.layout, new_size) });
            assert!(!q.is_null());
            let c = &mut counts[b.scope];
            c.frees += 1;
            c.freed += b.layout.size() as u64;
            c.allocs += 1;
            c.bytes += new_size as u64;
            b.addr = q as usize;
            b.layout = Layout::from_size_align(new_size, b.layout.align()).unwrap();
        } else if r < 80 {
            let i = rng.below(pool.len());
            free(pool.swap_remove(i), &mut counts);
        } else if r < 95 {
            let i = rng.below(pool.len());
            let to = (me + 1 + rng.below(THREADS - 1)) % THREADS;
            peers[to].send(pool.swap_remove(i)).unwrap();
        } else {
            while let Ok(b) = inbox.try_recv() {
                if pool.len() < POOL {
                    pool.push(b);
                } else {
                    free(b, &mut counts);
                }
            }
        }
    }
    done_sending.wait();
    // Everything sent to this thread is in the inbox now.
    while let Ok(b) = inbox.try_recv() {
        free(b, &mut counts);
    }
    for b in pool.drain(..) {
        free(b, &mut counts);
    }
    counts
}

#[test]
fn random_cross_thread_traffic_returns_every_scope_to_its_baseline() {
    let scopes: [ScopeId; SCOPES] =
        std::array::from_fn(|i| ScopeId::register(&format!("stress/{i}"), None).unwrap());
    let before = scopes.map(ScopeId::stats);

    let (senders, receivers): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| channel::<Block>()).unzip();
    let done_sending = Arc::new(Barrier::new(THREADS));
    let stop = Arc::new(AtomicBool::new(false));

    // A reader that checks the documented invariant while the traffic runs.
    let reader = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for s in scopes {
                    let st = s.stats();
                    assert!(st.total_frees <= st.total_allocs, "{st:?}");
                    assert!(st.total_freed_bytes <= st.total_bytes, "{st:?}");
                    assert_eq!(st.live_allocs, st.total_allocs - st.total_frees, "{st:?}");
                }
                reads += 1;
                thread::yield_now();
            }
            reads
        })
    };

    let handles: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(me, inbox)| {
            let peers = senders.clone();
            let done_sending = Arc::clone(&done_sending);
            thread::spawn(move || worker(me, scopes, inbox, peers, done_sending))
        })
        .collect();
    drop(senders);
    let mut counted = [Counts::default(); SCOPES];
    for h in handles {
        for (total, c) in counted.iter_mut().zip(h.join().unwrap()) {
            total.allocs += c.allocs;
            total.bytes += c.bytes;
            total.frees += c.frees;
            total.freed += c.freed;
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);

    let mut ops = 0;
    for ((s, b), c) in scopes.iter().zip(before).zip(counted) {
        let a = s.stats();
        assert_eq!(c.allocs, c.frees, "the test freed everything it made");
        assert_eq!(
            (a.live_allocs, a.live_bytes, a.live_usable_bytes),
            (b.live_allocs, b.live_bytes, b.live_usable_bytes),
            "{s:?}: {a:?}"
        );
        assert_eq!(
            Counts {
                allocs: a.total_allocs - b.total_allocs,
                bytes: a.total_bytes - b.total_bytes,
                frees: a.total_frees - b.total_frees,
                freed: a.total_freed_bytes - b.total_freed_bytes,
            },
            c,
            "{s:?}"
        );
        ops += c.allocs;
    }
    eprintln!("{ops} allocations and reallocations");
    assert!(ops as usize > OPS / 3, "only {ops} allocations");
}
