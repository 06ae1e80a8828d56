//! WHERE BYTES CAME FROM: live-allocation records with call stacks.
//!
//! Two things put a block into the record table:
//!
//! - a [`LeakCheck`](crate::leak::LeakCheck) that covers the allocating
//!   scope records *every* allocation made there while it is active
//!   (exact);
//! - byte-interval sampling, when switched on with [`set_sampling`],
//!   records on average one allocation per `every_bytes` allocated, with a
//!   weight that makes the per-site sums unbiased estimates of live bytes
//!   (the same scheme as jemalloc's `lg_prof_sample`).
//!
//! Recorded blocks carry a bit in their tag, so frees of unrecorded blocks
//! never touch the table. Everything here except the allocation hook's countdown
//! is off the hot path and runs under the re-entrancy guard.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::hot::tag::Tag;
use crate::hot::thread_state::{self, ThreadState};
use crate::scope::ScopeId;

mod frame;
// Read-only mappings of the executable for the symboliser: `unsafe` for
// `mmap`, argued there.
#[allow(unsafe_code)]
pub(crate) mod mapped;
mod records;
mod stacks;
mod symbols;
mod unwind;

pub use frame::Frame;
pub(crate) use records::{current_seq as records_seq, for_each_record, freed_elsewhere, Record};
pub(crate) use stacks::{origin, release_symbol_cache, resolve, StackId};
pub use symbols::{set_symboliser, Symboliser};
pub use unwind::{set_stack_depth, set_stack_unwinder, StackUnwinder};
pub use unwind::{stack_capture_stats, StackCaptureStats};

/// Byte-interval sampling of allocations outside leak checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Sampling {
    /// No sampling (the default).
    #[default]
    Off,
    /// Record on average one allocation per `every_bytes` bytes allocated
    /// (per thread), with its call stack and a weight.
    Bytes {
        /// Mean sampling interval in bytes; jemalloc's default
        /// `lg_prof_sample = 19` is 512 KiB.
        every_bytes: u64,
    },
}

impl Sampling {
    /// jemalloc's default interval: 512 KiB.
    pub const DEFAULT: Sampling = Sampling::Bytes {
        every_bytes: 512 * 1024,
    };
}

/// Mean sampling interval in bytes; 0 = off.
static INTERVAL: AtomicU64 = AtomicU64::new(0);
/// How often a thread re-reads the sampling configuration while sampling
/// is off, in bytes allocated: switching sampling on reaches every other
/// thread within this many bytes of its allocations (one cold call per
/// MiB allocated costs nothing measurable).
const OFF_RECHECK_BYTES: u64 = 1 << 20;

/// Switches byte-interval sampling on or off for all threads.
///
/// The calling thread uses the new setting from its next allocation; other
/// threads pick it up within their next MiB of allocations (or their next
/// sample). Samples already taken stay until their blocks are freed.
///
/// ```
/// use scope_alloc_tracker::sampling::{set_sampling, Sampling};
/// set_sampling(Sampling::DEFAULT);
/// set_sampling(Sampling::Off);
/// ```
pub fn set_sampling(sampling: Sampling) {
    let v = match sampling {
        Sampling::Off => 0,
        Sampling::Bytes { every_bytes } => every_bytes.max(1),
    };
    if v != 0 {
        // Build the stack unwinder here rather than inside the first
        // sampled allocation.
        thread_state::internal(unwind::prepare);
    }
    INTERVAL.store(v, Ordering::Relaxed);
    // Re-draw this thread's countdown at its next allocation.
    let _ = thread_state::with(|t| t.sample_countdown.set(0));
}

/// Builds the stack unwinder now (once per process) rather than inside the
/// first recorded allocation.
pub(crate) fn prepare_unwinder() {
    thread_state::internal(unwind::prepare);
}

/// The current sampling configuration.
pub fn sampling() -> Sampling {
    match INTERVAL.load(Ordering::Relaxed) {
        0 => Sampling::Off,
        every_bytes => Sampling::Bytes { every_bytes },
    }
}

/// What the sampling and recording paths want of a new block: a live
/// record, with a sample weight when the byte countdown picked it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Special {
    weight: Option<u64>,
}

/// Decides, before the block exists, whether an allocation of `bytes` in
/// `scope` on thread `t` gets a live record (sampled by the byte
/// countdown, or recorded for a leak check covering the scope). The common
/// answer, `None`, costs a countdown update and one relaxed load.
#[inline(always)]
pub(crate) fn decide(t: &ThreadState, scope: ScopeId, bytes: usize) -> Option<Special> {
    let left = t.sample_countdown.get();
    if left > bytes as u64 {
        t.sample_countdown.set(left - bytes as u64);
        if !crate::hot::switches::recording() {
            return None;
        }
        if crate::hot::per_scope::recording(scope).load(Ordering::Relaxed) == 0 {
            return None;
        }
        return Some(Special { weight: None });
    }
    countdown_slow(t, scope, bytes, left)
}

/// The tag-placement path's combined decision and record (the block exists
/// already when it is called): `tag` with record flags if a record was made.
#[inline(always)]
pub(crate) fn on_alloc(t: &ThreadState, tag: Tag, addr: usize, bytes: usize) -> Tag {
    match decide(t, tag.scope(), bytes) {
        None => tag,
        Some(special) => record(tag, addr, bytes, special),
    }
}

/// The countdown ran out (or was never set on this thread): draws the next
/// gap and says whether this allocation is a sample.
#[cold]
#[inline(never)]
fn countdown_slow(t: &ThreadState, scope: ScopeId, bytes: usize, left: u64) -> Option<Special> {
    let interval = INTERVAL.load(Ordering::Relaxed);
    let recording = crate::hot::switches::recording()
        && crate::hot::per_scope::recording(scope).load(Ordering::Relaxed) != 0;
    let exact = recording.then_some(Special { weight: None });
    if interval == 0 {
        t.sample_countdown.set(OFF_RECHECK_BYTES);
        return exact;
    }
    let sampled = left != 0;
    let gap = exponential(t, interval);
    let over = (bytes as u64).saturating_sub(left) % interval.max(1);
    t.sample_countdown.set(gap.saturating_sub(over).max(1));
    if !sampled {
        return exact;
    }
    let p = 1.0 - (-(bytes as f64) / interval as f64).exp();
    let weight = if p > 0.0 {
        (bytes as f64 / p) as u64
    } else {
        interval
    };
    Some(Special {
        weight: Some(weight.max(bytes as u64)),
    })
}

/// A draw from an exponential distribution with the given mean, from this
/// thread's xorshift generator.
fn exponential(t: &ThreadState, mean: u64) -> u64 {
    let mut x = t.rng.get();
    if x == 0 {
        x = (t as *const ThreadState as u64) ^ 0x9E37_79B9_7F4A_7C15 ^ (mean << 17);
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t.rng.set(x);
    let u = ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    (-(u.ln()) * mean as f64) as u64
}

/// Captures the stack and inserts the record. `weight` is `Some` for a
/// sample, `None` for an exact record made for a leak check.
#[cold]
#[inline(never)]
pub(crate) fn record(tag: Tag, addr: usize, bytes: usize, special: Special) -> Tag {
    let weight = special.weight;
    let exact = crate::hot::switches::recording()
        && crate::hot::per_scope::recording(tag.scope()).load(Ordering::Relaxed) != 0;
    if weight.is_none() && !exact {
        return tag;
    }
    let Some(thread) = thread_state::with(thread_no) else {
        return tag;
    };
    let recorded = thread_state::internal(|| {
        let stack = stacks::capture(thread);
        records::insert(
            addr,
            Record {
                scope: tag.scope(),
                size: bytes,
                thread,
                seq: records::next_seq(),
                stack,
                exact,
                weight: weight.unwrap_or(bytes as u64),
                sampled: weight.is_some(),
            },
        )
    });
    if recorded {
        tag.with_record(weight.is_some())
    } else {
        tag
    }
}

fn thread_no(t: &ThreadState) -> u32 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    match t.thread_no.get() {
        0 => {
            let n = NEXT.fetch_add(1, Ordering::Relaxed) as u32;
            t.thread_no.set(n);
            n
        }
        n => n,
    }
}

/// A recorded block is being freed: drop its record.
#[cold]
#[inline(never)]
pub(crate) fn on_free_recorded(addr: usize, tag: Tag) {
    if thread_state::is_busy() {
        // Tracker code never frees recorded blocks; if it ever did, taking
        // the table's lock here could deadlock. Leave the record: a later
        // allocation at the same address replaces it.
        records::note_stale();
        return;
    }
    let (thread, scope) =
        thread_state::with(|t| (thread_no(t), t.scope.get())).unwrap_or((0, ScopeId::UNSCOPED));
    thread_state::internal(|| records::remove(addr, tag, thread, scope));
}

/// A block moved or changed size: keep its record (and so its tag bit) in
/// step.
#[inline(always)]
pub(crate) fn on_realloc(old: usize, new: usize, tag: Tag, new_size: usize) -> Tag {
    if !tag.has_record() {
        return tag;
    }
    realloc_recorded(old, new, tag, new_size)
}

#[cold]
#[inline(never)]
fn realloc_recorded(old: usize, new: usize, tag: Tag, new_size: usize) -> Tag {
    if thread_state::is_busy() {
        records::note_stale();
        return tag.without_record();
    }
    if thread_state::internal(|| records::rekey(old, new, new_size)) {
        tag
    } else {
        tag.without_record()
    }
}

/// Captures the calling thread's stack with `unwinder` without keeping
/// it; the number of frames (0 if the cached unwinder declined). A
/// benchmark hook: the capture's own cost, apart from interning and the
/// record table. Not API: behind the `bench-hooks` feature, for this
/// repository's `bench/` crate.
#[cfg(feature = "bench-hooks")]
#[doc(hidden)]
pub fn capture_stack_for_bench(unwinder: StackUnwinder) -> usize {
    thread_state::internal(|| {
        let mut ips = [0usize; stacks::MAX_FRAMES];
        match unwinder {
            StackUnwinder::Cached | StackUnwinder::RulesOnly => {
                unwind::set_stack_unwinder(unwinder);
                unwind::capture(&mut ips, 0).unwrap_or(0)
            }
            StackUnwinder::Fallback => stacks::capture_slow(&mut ips),
        }
    })
}

/// Estimated live bytes and live samples per (scope, stack) of the
/// sampled blocks of the scopes in `members`, stacks not symbolised. Runs
/// under the re-entrancy guard (callers' duty).
pub(crate) fn sampled_by_stack(
    members: &[ScopeId],
) -> std::collections::HashMap<(ScopeId, StackId), (u64, u64)> {
    let mut by_site = std::collections::HashMap::new();
    for_each_record(|_, r| {
        if r.sampled && members.contains(&r.scope) {
            let e: &mut (u64, u64) = by_site.entry((r.scope, r.stack)).or_default();
            e.0 += r.weight;
            e.1 += 1;
        }
    });
    by_site
}

/// Live sampled bytes per call site, estimated from samples.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SampledSite {
    /// The scope the sampled blocks were allocated in.
    pub scope: ScopeId,
    /// The call stack, innermost frame first, allocator frames trimmed.
    pub frames: Vec<Frame>,
    /// Estimated live bytes allocated at this site (sum of weights).
    pub estimated_bytes: u64,
    /// Sampled blocks still live.
    pub samples: u64,
}

/// Estimated live bytes per (scope, call site) from the samples of blocks
/// still live, largest first.
pub fn sampled_sites() -> Vec<SampledSite> {
    thread_state::internal(|| {
        let mut by_site: std::collections::HashMap<(ScopeId, StackId), (u64, u64)> =
            std::collections::HashMap::new();
        for_each_record(|_, r| {
            if r.sampled {
                let e = by_site.entry((r.scope, r.stack)).or_default();
                e.0 += r.weight;
                e.1 += 1;
            }
        });
        let mut sites: Vec<SampledSite> = by_site
            .into_iter()
            .map(|((scope, stack), (bytes, n))| SampledSite {
                scope,
                frames: resolve(stack),
                estimated_bytes: bytes,
                samples: n,
            })
            .collect();
        sites.sort_by_key(|s| std::cmp::Reverse(s.estimated_bytes));
        release_symbol_cache();
        sites
    })
}
