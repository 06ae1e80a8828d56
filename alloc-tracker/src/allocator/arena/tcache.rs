//! Explicit jemalloc tcaches, one per (thread, arena owner): a block must
//! return through a tcache of its own arena.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use tikv_jemalloc_sys as ffi;

use super::{STATS_TCACHES, STATS_TCACHE_FAILURES};
use crate::hot::counters::{self, Line, ShardSlot, MAX_SHARDS};
use crate::scope::{ScopeId, MAX_SCOPES};

/// Explicit tcache of (shard, tagged arena): same encoding as the scope
/// columns' `tcache` field (0 none yet, `NO_TCACHE`, or `1 + index`).
static TAGGED_TCACHE: [AtomicU32; MAX_SHARDS] = [const { AtomicU32::new(0) }; MAX_SHARDS];
const NO_TCACHE: u32 = u32::MAX;
/// Which scope columns of each shard hold a tcache (to destroy them when the
/// shard's thread exits).
static HAS_TCACHE: [[AtomicU64; MAX_SCOPES / 64]; MAX_SHARDS] =
    [const { [const { AtomicU64::new(0) }; MAX_SCOPES / 64] }; MAX_SHARDS];

/// The `MALLOCX_TCACHE*` flag for `slot`'s thread and the arena behind
/// `cell` (a scope column, or the tagged arena when `scope` is `None`).
#[inline(always)]
pub(super) fn tcache_flag(slot: ShardSlot, scope: Option<ScopeId>) -> i32 {
    let Some(shard) = slot.owned_shard() else {
        return ffi::MALLOCX_TCACHE_NONE;
    };
    let cell = match scope {
        Some(s) => counters::tcache_cell(shard, s),
        None => &TAGGED_TCACHE[shard as usize % MAX_SHARDS],
    };
    match cell.load(Ordering::Relaxed) {
        0 => create_tcache(shard, scope, cell),
        NO_TCACHE => ffi::MALLOCX_TCACHE_NONE,
        t => ffi::MALLOCX_TCACHE((t - 1) as usize),
    }
}

/// The `MALLOCX_TCACHE` flag of the tcache that a thread owning a shard
/// has for a scope's arenas, from the scope's `line` in that shard, if it
/// has made one; `None` when it has not (or could not: [`tcache_flag`]
/// knows what to do then).
#[inline(always)]
pub(crate) fn ready_tcache_flag(line: &Line) -> Option<i32> {
    match line.tcache().load(Ordering::Relaxed) {
        0 | NO_TCACHE => None,
        t => Some(ffi::MALLOCX_TCACHE((t - 1) as usize)),
    }
}

#[cold]
#[inline(never)]
fn create_tcache(shard: u16, scope: Option<ScopeId>, cell: &AtomicU32) -> i32 {
    let Some(index) = super::ctl::tcache_create() else {
        STATS_TCACHE_FAILURES.fetch_add(1, Ordering::Relaxed);
        cell.store(NO_TCACHE, Ordering::Relaxed);
        return ffi::MALLOCX_TCACHE_NONE;
    };
    STATS_TCACHES.fetch_add(1, Ordering::Relaxed);
    cell.store(index + 1, Ordering::Relaxed);
    if let Some(s) = scope {
        let i = s.index();
        HAS_TCACHE[shard as usize % MAX_SHARDS][i / 64].fetch_or(1 << (i % 64), Ordering::Relaxed);
    }
    ffi::MALLOCX_TCACHE(index as usize)
}

/// Destroys the explicit tcaches of shard `shard` (its thread is exiting
/// and will count on the shared shard from now on), returning their cached
/// blocks to their arenas.
pub(crate) fn release_tcaches(shard: u16) {
    let shard = shard as usize;
    if shard >= MAX_SHARDS {
        return;
    }
    for (w, word) in HAS_TCACHE[shard].iter().enumerate() {
        let mut bits = word.swap(0, Ordering::Relaxed);
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let scope = ScopeId((w * 64 + b) as u16);
            let line = counters::line_in(shard as u16, scope);
            line.alloc_flags().store(0, Ordering::Relaxed);
            destroy_tcache(line.tcache());
        }
    }
    destroy_tcache(&TAGGED_TCACHE[shard]);
}

fn destroy_tcache(cell: &AtomicU32) {
    match cell.swap(0, Ordering::Relaxed) {
        0 | NO_TCACHE => {}
        t => {
            // The tcache was created by `create_tcache` for the exiting
            // thread, which no longer uses it (its slot now says shared).
            if super::ctl::tcache_destroy(t - 1) {
                STATS_TCACHES.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// Bytes of free blocks held in every tcache of the process (the threads'
/// own and the explicit per-(thread, scope) ones): jemalloc's
/// `stats.arenas.<MALLCTL_ARENAS_ALL>.tcache_bytes`, as of the last
/// `epoch` advance. jemalloc counts these blocks in `stats.allocated`.
/// `None` if the statistic cannot be read.
pub(crate) fn cached_bytes() -> Option<u64> {
    super::ctl::tcache_bytes_all_arenas().map(|b| b as u64)
}
