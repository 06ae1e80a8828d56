//! What the reachability scan of a failed leak check (`leak/reach`) needs
//! from the arenas: a way to clear this thread's tcaches of stale block
//! addresses.
//!
//! The scan reads all anonymous memory, jemalloc's own included, and a
//! tcache's stack keeps the address of every block it handed out in the
//! slot it popped, until a later free overwrites it: that would make a
//! leaked block look held.

use core::ffi::c_void;

use tikv_jemalloc_sys as ffi;

use super::{tagged_arena, tcache_flag};
use crate::hot::counters::ShardSlot;

/// Overwrites every slot of this thread's tcache stacks that can hold a
/// recorded block's address: its automatic tcache (recorded blocks whose
/// trailer fits their size class live in the automatic arenas) and its
/// tcache of the tagged arena (the others).
pub(crate) fn scrub_tcaches(slot: ShardSlot) {
    scrub(0);
    if let Some(arena) = tagged_arena() {
        let tcache = tcache_flag(slot, None);
        if tcache != ffi::MALLOCX_TCACHE_NONE {
            scrub(ffi::MALLOCX_ARENA(arena as usize) | tcache);
        }
    }
}

/// For each size class a tcache caches, allocates (with `flags`) more
/// blocks than its stack holds and frees them all, so that each slot was
/// last written by a free of one of these blocks, which are free again
/// afterwards and never a retained block.
fn scrub(flags: i32) {
    /// More than jemalloc's largest tcache stack (200 slots by default).
    const N: usize = 256;
    /// jemalloc's default largest cached size.
    const TCACHE_MAX: usize = 32 << 10;
    let mut blocks = [core::ptr::null_mut::<c_void>(); N];
    let mut size = 1usize;
    loop {
        // SAFETY: nallocx only computes the size class of `size`.
        let class = unsafe { ffi::nallocx(size, 0) };
        if class == 0 || class > TCACHE_MAX {
            break;
        }
        let n = N.min(((4 << 20) / class).max(32));
        for b in blocks.iter_mut().take(n) {
            // SAFETY: a non-zero size; the flags name the tagged arena and
            // this thread's tcache of it (made by `tcache_flag` for this
            // thread's shard).
            *b = unsafe { ffi::mallocx(class, flags) };
        }
        for b in blocks.iter_mut().take(n) {
            if !b.is_null() {
                // SAFETY: `*b` was made just above by `mallocx` with the
                // same size and flags, and is freed once.
                unsafe { ffi::sdallocx(*b, class, flags) };
            }
            *b = core::ptr::null_mut();
        }
        size = class + 1;
    }
}
