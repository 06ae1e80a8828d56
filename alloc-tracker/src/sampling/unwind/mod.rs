//! Fast call stacks: DWARF unwinding of the capturing thread's own stack,
//! with the unwind rule of every address cached in a lock-free table
//! (`rules.rs`), and the caller each frame had last time kept as a
//! prediction (`walk.rs`), so that a frame whose caller is the one seen
//! before costs one dependent load, and any other frame two.
//!
//! ```text
//! capture point: rip, rsp, rbp (inline asm)
//!        |
//!        v
//!  per frame, caller predicted:    e   = EDGES[ip & 4095]    the chain: one load
//!                                  ra  = *(rsp + off(prev e)) beside it, checked == e.ra
//!                                  ip  = e.ra, rule = e.rule
//!  per frame, otherwise:           word = RULES[ip & 4095]   --miss-->  .eh_frame_hdr binary
//!                                  CFA  = rsp|rbp + off                search, the FDE's CFI
//!                                  ip   = *(CFA - 8)                    row of ip (gimli),
//!                                  EDGES[prev] = (ip, rule)             encode, store
//!  every frame:                    rbp = *(CFA - 8k) or unchanged; rsp = CFA
//! ```
//!
//! The unwinder is built on first use, from the objects loaded then. A
//! stack that passes through code outside them (an object `dlopen`ed
//! later, JIT code) or that stops on an unsupported rule before getting
//! past the allocator is captured again by the fallback
//! (`backtrace::trace`, libgcc's DWARF unwinder without a cache) and
//! counted in [`StackCaptureStats`].
//!
//! The walk stops [`DEFAULT_DEPTH`] physical frames past the allocator's
//! entry (`__rust_alloc` and co., whose address ranges are read from the
//! executable's symbol table when the unwinder is built): every frame is a
//! link of a chain of dependent loads, so the depth is the cost.
//!
//! Alternatives measured (figures in `docs/attribution.md`, "Call
//! stacks"): `framehop` (the same idea as a library: a per-thread rule
//! cache, here behind a lock, and a generic rule interpreter) spent its
//! time in the per-frame interpretation, several times this walk; frame
//! pointers alone stop in std, built without them; a per-thread copy of
//! the last stack's shape, checked with independent loads, was faster for
//! the same call site again and no help for any other.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// How the call stacks recorded so far were captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StackCaptureStats {
    /// Stacks captured by the cached unwinder.
    pub fast: u64,
    /// Stacks captured by the fallback (`backtrace::trace`) because the
    /// cached unwinder was unavailable or failed on them.
    pub fallback: u64,
}

static FAST: AtomicU64 = AtomicU64::new(0);
static FALLBACK: AtomicU64 = AtomicU64::new(0);

/// How the call stacks recorded so far were captured (fast vs fallback).
pub fn stack_capture_stats() -> StackCaptureStats {
    StackCaptureStats {
        fast: FAST.load(Ordering::Relaxed),
        fallback: FALLBACK.load(Ordering::Relaxed),
    }
}

/// Which unwinder captures the call stacks of sampled and recorded
/// blocks, process-wide (see [`set_stack_unwinder`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackUnwinder {
    /// The cached unwinder, with the fallback when it fails (the default).
    Cached,
    /// The rule cache without predicted callers: what a capture costs
    /// when no frame's caller is the one it had before (the worst case).
    RulesOnly,
    /// Always the fallback (`backtrace::trace`), to compare.
    Fallback,
}

static USE_FALLBACK: AtomicBool = AtomicBool::new(false);
static NO_PREDICTION: AtomicBool = AtomicBool::new(false);

/// Chooses the unwinder for the following captures, process-wide.
///
/// [`StackUnwinder::Cached`] (the default) is the cheap one; choose
/// [`StackUnwinder::Fallback`] if its stacks look wrong on a platform, to
/// compare, at the `backtrace` crate's cost per capture;
/// [`StackUnwinder::RulesOnly`] measures the cached unwinder's worst case.
/// [`stack_capture_stats`] tells how many captures each took.
///
/// ```
/// use scope_alloc_tracker::sampling::{set_stack_unwinder, StackUnwinder};
///
/// set_stack_unwinder(StackUnwinder::Fallback);
/// set_stack_unwinder(StackUnwinder::Cached);
/// ```
pub fn set_stack_unwinder(u: StackUnwinder) {
    USE_FALLBACK.store(u == StackUnwinder::Fallback, Ordering::Relaxed);
    NO_PREDICTION.store(u == StackUnwinder::RulesOnly, Ordering::Relaxed);
}

/// Whether captures must use the fallback (the knob above).
pub(crate) fn forced_fallback() -> bool {
    USE_FALLBACK.load(Ordering::Relaxed)
}

/// Counts a capture.
pub(crate) fn count(fast: bool) {
    if fast {
        FAST.fetch_add(1, Ordering::Relaxed);
    } else {
        FALLBACK.fetch_add(1, Ordering::Relaxed);
    }
}

/// Physical frames a capture keeps past the allocator's entry (`__rust_alloc`,
/// `__rust_realloc`, `__rust_alloc_zeroed`, found by name in the executable's
/// symbol table when the unwinder is built): reports are meant to show at least
/// 24 frames of the program; 28 leaves room for std's wrappers that reports
/// trim in debug builds. Each frame is a link of a chain of dependent loads
/// (one if its caller was predicted, two if not: its rule, then its return
/// address), so a capture costs in proportion to this.
pub(crate) const DEFAULT_DEPTH: usize = 28;

/// The allocator's own frames assumed while its entry is not (yet) seen:
/// the capture, the record path and `__rust_alloc` in a release build.
const ASSUMED_ALLOCATOR_FRAMES: usize = 4;

static DEPTH: AtomicUsize = AtomicUsize::new(DEFAULT_DEPTH);

/// Sets how many physical frames the cached unwinder keeps past the
/// allocator's entry, process-wide: more frames name deeper callers, and
/// each costs a load or two per capture. The value is clamped to the range
/// the record can hold (a record keeps at most 48 frames in all); the
/// default is 28.
///
/// ```
/// use scope_alloc_tracker::sampling::set_stack_depth;
///
/// set_stack_depth(40);
/// set_stack_depth(28);
/// ```
pub fn set_stack_depth(frames: usize) {
    DEPTH.store(frames.clamp(MIN_FRAMES, 48), Ordering::Relaxed);
}

/// Frames kept past the allocator's entry.
#[inline(always)]
pub(crate) fn depth() -> usize {
    DEPTH.load(Ordering::Relaxed)
}

/// Frames a fast capture must reach before it may stop on an unwind error
/// (the allocator's own frames are about 4 in a release build, about 12 in
/// a debug build): fewer means the stack did not
/// get past the allocator, and the fallback takes over.
const MIN_FRAMES: usize = 12;

// The raw operations (registers, stack reads, loaded modules): the
// unwinder's only `unsafe` code, each use argued where it is.
#[allow(unsafe_code)]
pub(crate) mod raw;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod rules;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod walk;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub(crate) use {rules::prepare, walk::capture};

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod imp {
    /// No fast unwinder on this platform.
    pub(crate) fn prepare() {}

    /// No fast unwinder on this platform: always the fallback.
    pub(crate) fn capture(_ips: &mut [usize], _thread: u32) -> Option<usize> {
        None
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
pub(crate) use imp::{capture, prepare};
