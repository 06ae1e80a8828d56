//! Per-scope counters, sharded per thread so that the hot path never does a
//! read-modify-write on a cache line another thread writes.
//!
//! ```text
//!              scope 0   scope 1   scope 2  ...  scope MAX_SCOPES-1
//! shard 0     [ line ]  [ line ]  [ line ]  ...  [ line ]      <- written only by the thread owning shard 0
//! shard 1     [ line ]  [ line ]  [ line ]  ...  [ line ]      <- written only by the thread owning shard 1
//!  ...
//! shard N-1   [ line ]  ...
//! overflow    [ line ]  ...   <- shared: threads without a shard use atomic fetch_add
//! ```
//!
//! Each `line` is one 64-byte cache line of monotonic counters. A thread
//! claims a shard on its first allocation and owns it until it exits; its
//! updates are a plain load and a release store (no `lock` prefix), since it
//! is the only writer. A free is counted on the *freeing* thread's shard in
//! the *allocating* scope's column, so a scope's live figures are
//! `sum(allocs) - sum(frees)` over all shards, exact as soon as no allocation
//! is in flight. When a thread exits its shard goes back to the pool with
//! its counts in it: the next owner keeps adding to them, nothing is folded
//! or lost. Threads beyond `MAX_SHARDS`, and threads past their exit hook,
//! count on the shared overflow shard with atomic read-modify-writes (the
//! slower path).
//!
//! The array is a zero-initialised `static` (about 33 MiB of address space
//! in `.bss`); the OS only backs the pages of lines that are touched.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::ids::{ScopeId, MAX_SCOPES};

/// Counter shards owned by one thread each.
pub(crate) const MAX_SHARDS: usize = 128;

/// Bytes a thread may allocate in one scope between two samples of that
/// scope's live bytes for its peak (see [`ScopeStats::peak_bytes`]).
///
/// [`ScopeStats::peak_bytes`]: crate::ScopeStats::peak_bytes
pub(crate) const PEAK_SAMPLE_BYTES: u64 = 64 * 1024;

/// Which shard a thread counts on: an owned shard `0..MAX_SHARDS`,
/// [`ShardSlot::SHARED`] (the overflow shard, whose index it is: all shards
/// were taken, or the thread's exit hook already gave its shard back), or
/// [`ShardSlot::UNCLAIMED`] before the thread's first allocation; plus the
/// thread's re-entrancy flag in the top bit ([`ShardSlot::busy`]). One
/// comparison tells the hot path whether the thread owns a shard and is not
/// running tracker code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ShardSlot(u16);

/// The re-entrancy flag's bit (see `thread_state::ReentrancyGuard`).
const BUSY: u16 = 1 << 15;

impl ShardSlot {
    /// No allocation yet on this thread.
    pub(crate) const UNCLAIMED: ShardSlot = ShardSlot(BUSY - 1);
    /// Counts on the shared overflow shard with atomic read-modify-writes.
    pub(crate) const SHARED: ShardSlot = ShardSlot(OVERFLOW as u16);

    /// Owns shard `n < MAX_SHARDS` exclusively.
    pub(crate) const fn owned(n: u16) -> ShardSlot {
        ShardSlot(n)
    }

    /// Whether this is an owned shard (its thread is the only writer) and
    /// the thread is not running tracker code: the fast path's one test.
    #[cfg_attr(not(feature = "jemalloc"), allow(dead_code))]
    #[inline(always)]
    pub(crate) fn is_owned(self) -> bool {
        (self.0 as usize) < MAX_SHARDS
    }

    /// The owned shard's number, if this is one (whatever the flag).
    pub(crate) fn owned_shard(self) -> Option<u16> {
        let n = self.0 & !BUSY;
        ((n as usize) < MAX_SHARDS).then_some(n)
    }

    /// Whether the thread runs tracker code (the re-entrancy flag).
    #[inline(always)]
    pub(crate) fn busy(self) -> bool {
        self.0 & BUSY != 0
    }

    /// This slot with the re-entrancy flag set to `busy`.
    #[inline(always)]
    pub(crate) fn with_busy(self, busy: bool) -> ShardSlot {
        ShardSlot(if busy { self.0 | BUSY } else { self.0 & !BUSY })
    }

    /// This slot without the re-entrancy flag: the shard alone.
    #[inline(always)]
    pub(crate) fn shard(self) -> ShardSlot {
        ShardSlot(self.0 & !BUSY)
    }

    /// The lines of this slot's shard (the overflow shard's for anything
    /// but an owned shard).
    #[inline(always)]
    pub(crate) fn lines(self) -> &'static Shard {
        let n = (self.0 & !BUSY) as usize;
        &SHARDS[if n < MAX_SHARDS { n } else { OVERFLOW }]
    }
}

/// One scope's counters in one shard. All fields are monotonic totals.
#[repr(C, align(64))]
#[derive(Debug)]
pub(crate) struct Line {
    /// Allocations made (realloc counts as one free and one allocation).
    allocs: AtomicU64,
    /// Bytes requested by those allocations.
    alloc_bytes: AtomicU64,
    /// Bytes the backend reserved for them (size classes, tag included).
    alloc_usable: AtomicU64,
    /// Frees of allocations made in this scope, by the shard's thread.
    frees: AtomicU64,
    /// Requested bytes of those frees.
    free_bytes: AtomicU64,
    /// Usable bytes of those frees.
    free_usable: AtomicU64,
    /// The shard's thread's explicit jemalloc tcache for this scope's arena
    /// (`allocator::arena`): 0 = none yet, `u32::MAX` = could not be made,
    /// else `1 + index`. Only the owning thread reads or writes it; it sits
    /// here because the hot path touches this line anyway.
    tcache: AtomicU32,
    /// The `mallocx` flags (this scope's arena for the thread, the thread's
    /// tcache of it) of an exact fit, once both exist; 0 until then, and
    /// after either is given back. Written by the owning thread, cleared by
    /// `allocator::arena` when an arena or tcache goes away: one load spares
    /// the fast path assembling them.
    alloc_flags: AtomicU32,
}

impl Line {
    const fn new() -> Self {
        Self {
            allocs: AtomicU64::new(0),
            alloc_bytes: AtomicU64::new(0),
            alloc_usable: AtomicU64::new(0),
            frees: AtomicU64::new(0),
            free_bytes: AtomicU64::new(0),
            free_usable: AtomicU64::new(0),
            tcache: AtomicU32::new(0),
            alloc_flags: AtomicU32::new(0),
        }
    }

    /// Counts an allocation of `bytes` (`usable` reserved) in `scope` on
    /// this line of the calling thread's owned shard, without the budget
    /// hook: the hot path's fast case, which has checked that the thread
    /// owns the shard and that no budget is set.
    #[cfg_attr(not(feature = "jemalloc"), allow(dead_code))]
    #[inline(always)]
    pub(crate) fn alloc_owned(&self, scope: ScopeId, bytes: u64, usable: u64) {
        alloc_on(self, bump_owned, scope, bytes, usable);
    }

    /// The free side of [`Line::alloc_owned`], under the same conditions.
    #[cfg_attr(not(feature = "jemalloc"), allow(dead_code))]
    #[inline(always)]
    pub(crate) fn free_owned(&self, bytes: u64, usable: u64) {
        free_on(self, bump_owned, bytes, usable);
    }

    /// The cached exact-fit `mallocx` flags (see the field).
    #[cfg_attr(not(feature = "jemalloc"), allow(dead_code))]
    #[inline(always)]
    pub(crate) fn alloc_flags(&self) -> &AtomicU32 {
        &self.alloc_flags
    }

    /// The tcache cell (see the field).
    #[cfg_attr(not(feature = "jemalloc"), allow(dead_code))]
    #[inline(always)]
    pub(crate) fn tcache(&self) -> &AtomicU32 {
        &self.tcache
    }
}

/// One shard: a line per scope.
#[derive(Debug)]
pub(crate) struct Shard {
    lines: [Line; MAX_SCOPES],
}

impl Shard {
    const fn new() -> Self {
        Self {
            lines: [const { Line::new() }; MAX_SCOPES],
        }
    }

    /// The line of `scope`.
    #[inline(always)]
    pub(crate) fn line(&'static self, scope: ScopeId) -> &'static Line {
        &self.lines[scope.index()]
    }
}

/// `MAX_SHARDS` owned shards, then the shared overflow shard.
static SHARDS: [Shard; MAX_SHARDS + 1] = [const { Shard::new() }; MAX_SHARDS + 1];
const OVERFLOW: usize = MAX_SHARDS;
/// The overflow shard's lines: what a thread without a shard points at.
pub(crate) static OVERFLOW_LINES: &Shard = &SHARDS[OVERFLOW];

/// Which owned shards have an owner.
static CLAIMED: [AtomicBool; MAX_SHARDS] = [const { AtomicBool::new(false) }; MAX_SHARDS];
/// One past the highest shard ever claimed: readers sum shards below it.
static HIGH_WATER: AtomicUsize = AtomicUsize::new(0);

/// Adds `v` to a counter only this thread writes: a load and a release
/// store, no read-modify-write instruction.
#[inline(always)]
fn bump_owned(counter: &AtomicU64, v: u64) -> u64 {
    let n = counter.load(Ordering::Relaxed).wrapping_add(v);
    counter.store(n, Ordering::Release);
    n
}

#[inline(always)]
fn bump_shared(counter: &AtomicU64, v: u64) -> u64 {
    counter.fetch_add(v, Ordering::AcqRel).wrapping_add(v)
}

/// Counts an allocation of `bytes` (`usable` reserved) in `scope`.
#[inline(always)]
pub(crate) fn count_alloc(slot: ShardSlot, scope: ScopeId, bytes: u64, usable: u64) {
    let n = slot.shard().0 as usize;
    let line = line(n, scope);
    if n < MAX_SHARDS {
        alloc_on(line, bump_owned, scope, bytes, usable)
    } else {
        alloc_on(line, bump_shared, scope, bytes, usable)
    }
    // Every counted allocation passes here, whatever its placement: the
    // budgets' one hook (a relaxed load while no budget is set).
    super::budget::on_alloc(scope, bytes);
}

#[inline(always)]
fn alloc_on(
    line: &Line,
    bump: impl Fn(&AtomicU64, u64) -> u64,
    scope: ScopeId,
    bytes: u64,
    usable: u64,
) {
    bump(&line.allocs, 1);
    let total = bump(&line.alloc_bytes, bytes);
    if usable != 0 {
        // Constant-folded away when the allocator skips usable sizes.
        bump(&line.alloc_usable, usable);
    }
    // Sample the peak each time this shard's byte total for the scope
    // crosses a multiple of PEAK_SAMPLE_BYTES: between two samples the
    // thread allocated less than PEAK_SAMPLE_BYTES in the scope. A single
    // allocation of at least that size always crosses one (the totals
    // before and after differ by that much, so they differ in a bit at or
    // above PEAK_SAMPLE_BYTES, a power of two), even when the total wraps.
    const _: () = assert!(PEAK_SAMPLE_BYTES.is_power_of_two());
    if (total ^ total.wrapping_sub(bytes)) >= PEAK_SAMPLE_BYTES {
        sample_peak(scope);
    }
}

/// Counts the free of an allocation of `bytes` (`usable` reserved) that was
/// made in `scope`.
#[inline(always)]
pub(crate) fn count_free(slot: ShardSlot, scope: ScopeId, bytes: u64, usable: u64) {
    let n = slot.shard().0 as usize;
    let line = line(n, scope);
    if n < MAX_SHARDS {
        free_on(line, bump_owned, bytes, usable)
    } else {
        free_on(line, bump_shared, bytes, usable)
    }
    super::budget::on_free(scope, bytes);
}

#[inline(always)]
fn free_on(line: &Line, bump: impl Fn(&AtomicU64, u64) -> u64, bytes: u64, usable: u64) {
    bump(&line.frees, 1);
    bump(&line.free_bytes, bytes);
    if usable != 0 {
        bump(&line.free_usable, usable);
    }
}

/// The line of `scope` in shard `shard`. Both indices are clamped into range
/// (anything that is not an owned shard is the overflow shard), so the hot
/// path has no bounds-check panic.
#[inline(always)]
fn line(shard: usize, scope: ScopeId) -> &'static Line {
    let shard = if shard < MAX_SHARDS { shard } else { OVERFLOW };
    SHARDS[shard].line(scope)
}

/// Every owned shard's line of `scope`, for clearing a cached cell.
#[cfg_attr(not(feature = "jemalloc"), allow(dead_code))]
pub(crate) fn lines_of(scope: ScopeId) -> impl Iterator<Item = &'static Line> {
    SHARDS[..MAX_SHARDS].iter().map(move |s| s.line(scope))
}

/// The tcache cell of `scope` in owned shard `shard` (see `Line::tcache`).
#[cfg_attr(not(feature = "jemalloc"), allow(dead_code))]
#[inline(always)]
pub(crate) fn tcache_cell(shard: u16, scope: ScopeId) -> &'static AtomicU32 {
    &line(shard as usize, scope).tcache
}

/// The line of `scope` in shard `shard` (the overflow shard's for anything
/// but an owned shard).
#[cfg_attr(not(feature = "jemalloc"), allow(dead_code))]
#[inline(always)]
pub(crate) fn line_in(shard: u16, scope: ScopeId) -> &'static Line {
    line(shard as usize, scope)
}

/// Records the scope's current live bytes into its peak.
#[cold]
#[inline(never)]
fn sample_peak(scope: ScopeId) {
    let live = read(scope).live_bytes();
    super::per_scope::peak(scope).fetch_max(live, Ordering::Relaxed);
}

/// Claims a free shard for the calling thread, or `Shared` if all are taken.
#[cold]
#[inline(never)]
pub(crate) fn claim_shard() -> ShardSlot {
    for (n, claimed) in CLAIMED.iter().enumerate() {
        if !claimed.load(Ordering::Relaxed)
            && claimed
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            HIGH_WATER.fetch_max(n + 1, Ordering::Release);
            return ShardSlot::owned(n as u16);
        }
    }
    ShardSlot::SHARED
}

/// Gives shard `n` back to the pool. The releasing thread must have stopped
/// counting on it (its state says `Shared`) before calling this: the release
/// store publishes its last counts to the next owner's acquire in
/// [`claim_shard`].
pub(crate) fn release_shard(n: u16) {
    if let Some(claimed) = CLAIMED.get(n as usize) {
        claimed.store(false, Ordering::Release);
    }
}

/// A scope's counters summed over all shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) allocs: u64,
    pub(crate) alloc_bytes: u64,
    pub(crate) alloc_usable: u64,
    pub(crate) frees: u64,
    pub(crate) free_bytes: u64,
    pub(crate) free_usable: u64,
}

impl Totals {
    pub(crate) const ZERO: Totals = Totals {
        allocs: 0,
        alloc_bytes: 0,
        alloc_usable: 0,
        frees: 0,
        free_bytes: 0,
        free_usable: 0,
    };

    /// `self - base`, field by field: the totals of an id since it was
    /// recycled with totals `base` (read side only; the counters themselves
    /// stay monotonic per id).
    pub(crate) fn minus(&self, base: &Totals) -> Totals {
        Totals {
            allocs: self.allocs.wrapping_sub(base.allocs),
            alloc_bytes: self.alloc_bytes.wrapping_sub(base.alloc_bytes),
            alloc_usable: self.alloc_usable.wrapping_sub(base.alloc_usable),
            frees: self.frees.wrapping_sub(base.frees),
            free_bytes: self.free_bytes.wrapping_sub(base.free_bytes),
            free_usable: self.free_usable.wrapping_sub(base.free_usable),
        }
    }

    /// `self + other`, field by field.
    pub(crate) fn plus(&self, other: &Totals) -> Totals {
        Totals {
            allocs: self.allocs.wrapping_add(other.allocs),
            alloc_bytes: self.alloc_bytes.wrapping_add(other.alloc_bytes),
            alloc_usable: self.alloc_usable.wrapping_add(other.alloc_usable),
            frees: self.frees.wrapping_add(other.frees),
            free_bytes: self.free_bytes.wrapping_add(other.free_bytes),
            free_usable: self.free_usable.wrapping_add(other.free_usable),
        }
    }

    pub(crate) fn live_bytes(&self) -> u64 {
        self.alloc_bytes.saturating_sub(self.free_bytes)
    }
    pub(crate) fn live_allocs(&self) -> u64 {
        self.allocs.saturating_sub(self.frees)
    }
    pub(crate) fn live_usable(&self) -> u64 {
        self.alloc_usable.saturating_sub(self.free_usable)
    }
}

/// Sums `scope`'s counters over every shard.
///
/// Frees are read before allocations, with acquire loads: every free that
/// is seen happened after its allocation was counted, so that allocation is
/// seen too and live figures never go negative, even while other threads
/// allocate and free concurrently.
pub(crate) fn read(scope: ScopeId) -> Totals {
    let i = scope.index();
    let lines = || {
        // Reloaded for each pass: a shard claimed between the two passes
        // may hold the allocation of a free seen in the first one.
        let shards = HIGH_WATER.load(Ordering::Acquire).min(MAX_SHARDS);
        SHARDS[..shards]
            .iter()
            .chain(std::iter::once(&SHARDS[OVERFLOW]))
            .map(move |s| &s.lines[i])
    };
    let mut t = Totals::default();
    for l in lines() {
        t.frees += l.frees.load(Ordering::Acquire);
        t.free_bytes += l.free_bytes.load(Ordering::Acquire);
        t.free_usable += l.free_usable.load(Ordering::Acquire);
    }
    for l in lines() {
        t.allocs += l.allocs.load(Ordering::Acquire);
        t.alloc_bytes += l.alloc_bytes.load(Ordering::Acquire);
        t.alloc_usable += l.alloc_usable.load(Ordering::Acquire);
    }
    t
}
