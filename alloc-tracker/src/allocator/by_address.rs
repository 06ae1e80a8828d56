//! [`Attribution::ByAddress`](super::Attribution::ByAddress): the hot path
//! over jemalloc when scopes own arenas (see `arena`).
//!
//! ```text
//!  alloc(layout)                               dealloc(p, layout)
//!  ─────────────                               ──────────────────
//!  scope, shard, sampling decision  (TLS)      shard (TLS)
//!  unscoped, no record ─► malloc fast path      owner(p)  (chunk table, 1 load)
//!  scoped, no record   ─► mallocx(scope arena,    Automatic ─► sdallocx fast path,  UNSCOPED
//!                          thread's tcache)       Scope(s)  ─► sdallocx(s's tcache), s
//!  record / transient  ─► mallocx(tagged arena)   Tagged    ─► read trailer, sdallocx(tagged tcache)
//!                          + trailer
//!  count_alloc(shard, scope)                    count_free(shard, scope)
//! ```
//!
//! Each function has the contract of the `GlobalAlloc` method of its name,
//! and the block passed to `dealloc`/`realloc` must have been made by this
//! module (the allocator value's attribution is fixed at construction).
//! jemalloc's own contract for `mallocx`/`sdallocx`/`rallocx` is met as
//! follows: the size given to `sdallocx` is the size the block was requested
//! with (`layout.size()`, or the trailer's outer size for tagged blocks),
//! the alignment flags are recomputed from the same layout, and a block is
//! freed through a tcache of its own arena (or none), never through another
//! arena's.

use core::alloc::Layout;
use core::ptr;

use super::arena::{self, Owner, Placement};
use super::{trailer, Backend, Tag, TrackingAlloc};
use crate::scope::{self, ScopeId};
use crate::stats::counters::{self, ShardSlot};
use crate::thread_state;

/// The calling thread's allocation context: scope to charge, counter
/// shard, and what sampling/recording wants of the block.
#[inline(always)]
fn context(bytes: usize) -> (ScopeId, ShardSlot, Option<crate::sampling::Special>) {
    thread_state::with(|t| {
        let slot = scope::shard_of(t);
        if t.busy.get() {
            (ScopeId::INTERNAL, slot, None)
        } else {
            let scope = t.scope.get();
            (scope, slot, crate::sampling::decide(t, scope, bytes))
        }
    })
    .unwrap_or((ScopeId::UNSCOPED, ShardSlot::SHARED, None))
}

#[inline(always)]
fn shard() -> ShardSlot {
    thread_state::with(scope::shard_of).unwrap_or(ShardSlot::SHARED)
}

/// `alloc` (`zero = false`) or `alloc_zeroed` (`zero = true`).
///
/// # Safety
/// As [`core::alloc::GlobalAlloc::alloc`]: `layout` has a non-zero size.
#[inline(always)]
pub(super) unsafe fn alloc<B: Backend>(
    a: &TrackingAlloc<B>,
    layout: Layout,
    zero: bool,
) -> *mut u8 {
    let bytes = layout.size();
    let (scope, slot, special) = context(bytes);
    if scope == ScopeId::UNSCOPED && special.is_none() {
        return unsafe_fast_alloc(a, layout, zero, slot);
    }
    let zero_flag = if zero {
        tikv_jemalloc_sys::MALLOCX_ZERO
    } else {
        0
    };
    match arena::place(slot, scope, layout, special.is_some()) {
        Placement::Arena(flags) => {
            // SAFETY: `bytes` is non-zero (caller contract) and came from a
            // valid `Layout`, so rounded to its alignment it fits `isize`;
            // `flags` name the scope's arena and this thread's tcache of it.
            let p = unsafe { arena::mallocx_unchecked(bytes, flags | zero_flag) };
            if !p.is_null() {
                counters::count_alloc(slot, scope, bytes as u64, a.usable(layout) as u64);
            }
            p
        }
        Placement::Tagged(flags) => {
            let Some(outer) = trailer::outer_layout(layout) else {
                return ptr::null_mut();
            };
            let flags = flags | arena::align_flags(outer) | zero_flag;
            // SAFETY: `outer` is a valid layout with a non-zero size; `flags`
            // name the tagged arena and this thread's tcache of it.
            let p = unsafe { arena::mallocx_unchecked(outer.size(), flags) };
            if !p.is_null() {
                counters::count_alloc(slot, scope, bytes as u64, a.usable(outer) as u64);
                let tag = match special {
                    Some(s) => crate::sampling::record(Tag::new(scope), p as usize, bytes, s),
                    None => Tag::new(scope),
                };
                // SAFETY: `p` is a fresh block of `outer.size()` bytes.
                unsafe { trailer::write_unchecked(p, layout, tag.to_bits()) };
            }
            p
        }
        Placement::Unattributed => unsafe_fast_alloc(a, layout, zero, slot),
    }
}

/// jemalloc's flag-free path for an unscoped, untagged block.
#[inline(always)]
fn unsafe_fast_alloc<B: Backend>(
    a: &TrackingAlloc<B>,
    layout: Layout,
    zero: bool,
    slot: ShardSlot,
) -> *mut u8 {
    // SAFETY: `layout` has a non-zero size (the contract of the `alloc`
    // that called us).
    let p = unsafe {
        if zero {
            a.backend.alloc_zeroed(layout)
        } else {
            a.backend.alloc(layout)
        }
    };
    if !p.is_null() {
        counters::count_alloc(
            slot,
            ScopeId::UNSCOPED,
            layout.size() as u64,
            a.usable(layout) as u64,
        );
    }
    p
}

/// # Safety
/// As [`core::alloc::GlobalAlloc::dealloc`]: `p` is a live block of this allocator made
/// with `layout`.
#[inline(always)]
pub(super) unsafe fn dealloc<B: Backend>(a: &TrackingAlloc<B>, p: *mut u8, layout: Layout) {
    let slot = shard();
    match arena::owner(p) {
        Owner::Automatic => {
            // SAFETY: an automatic-arena block made by the fast path with
            // `layout` (caller contract).
            unsafe { a.backend.dealloc(p, layout) };
            counters::count_free(
                slot,
                ScopeId::UNSCOPED,
                layout.size() as u64,
                a.usable(layout) as u64,
            );
        }
        owner @ Owner::Scope(scope) => {
            // SAFETY: a block of `scope`'s arena requested with
            // `layout.size()` bytes; the flags carry this thread's tcache of
            // that arena.
            unsafe {
                arena::sdallocx_unchecked(p, layout.size(), arena::free_flags(slot, owner, layout))
            };
            counters::count_free(slot, scope, layout.size() as u64, a.usable(layout) as u64);
        }
        Owner::Tagged => {
            let outer = trailer::outer_layout_of_live(layout);
            // SAFETY: tagged blocks were made with `outer` and their tag
            // written at `layout.size()`.
            let tag = Tag::from_bits(unsafe { trailer::read_unchecked(p, layout) });
            if tag.has_record() {
                crate::sampling::on_free_recorded(p as usize, tag);
            }
            // SAFETY: a block of the tagged arena requested with
            // `outer.size()` bytes; the flags carry this thread's tcache of
            // the tagged arena.
            unsafe {
                arena::sdallocx_unchecked(
                    p,
                    outer.size(),
                    arena::free_flags(slot, Owner::Tagged, outer),
                )
            };
            counters::count_free(
                slot,
                tag.scope(),
                layout.size() as u64,
                a.usable(outer) as u64,
            );
        }
    }
}

/// # Safety
/// As [`core::alloc::GlobalAlloc::realloc`]: `p` is a live block of this allocator made
/// with `layout`; `new_size` is non-zero and, rounded up to
/// `layout.align()`, does not overflow `isize`.
#[inline(always)]
pub(super) unsafe fn realloc<B: Backend>(
    a: &TrackingAlloc<B>,
    p: *mut u8,
    layout: Layout,
    new_size: usize,
) -> *mut u8 {
    let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
        return ptr::null_mut();
    };
    let slot = shard();
    match arena::owner(p) {
        Owner::Automatic => {
            // SAFETY: an automatic-arena block made with `layout`; the new
            // size is valid (caller contract). It stays in the automatic
            // arenas, so it stays unscoped wherever it moves.
            let q = unsafe { a.backend.realloc(p, layout, new_size) };
            if !q.is_null() {
                move_counts(
                    a,
                    slot,
                    ScopeId::UNSCOPED,
                    layout,
                    new_layout,
                    layout,
                    new_layout,
                );
            }
            q
        }
        owner @ Owner::Scope(scope) => {
            // SAFETY: a block of `scope`'s arena; the flags name that arena
            // (a moved block is made there) and this thread's tcache of it.
            let q = unsafe {
                arena::rallocx_unchecked(p, new_size, arena::realloc_flags(slot, owner, new_layout))
            };
            if !q.is_null() {
                move_counts(a, slot, scope, layout, new_layout, layout, new_layout);
            }
            q
        }
        Owner::Tagged => {
            let outer = trailer::outer_layout_of_live(layout);
            let Some(new_outer) = trailer::outer_layout(new_layout) else {
                return ptr::null_mut();
            };
            // SAFETY: tagged blocks carry their tag at `layout.size()`.
            let tag = Tag::from_bits(unsafe { trailer::read_unchecked(p, layout) });
            // SAFETY: a block of the tagged arena made with `outer`; the
            // flags name the tagged arena and this thread's tcache of it.
            let q = unsafe {
                arena::rallocx_unchecked(
                    p,
                    new_outer.size(),
                    arena::realloc_flags(slot, Owner::Tagged, new_outer),
                )
            };
            if q.is_null() {
                // The old block, its tag and every counter are unchanged.
                return q;
            }
            let tag = crate::sampling::on_realloc(p as usize, q as usize, tag, new_size);
            move_counts(a, slot, tag.scope(), layout, new_layout, outer, new_outer);
            // SAFETY: `q` is a block of `new_outer.size()` bytes; the tag
            // goes after the caller's `new_size` bytes.
            unsafe { trailer::write_unchecked(q, new_layout, tag.to_bits()) };
            q
        }
    }
}

/// Counts a reallocation as one free and one allocation in `scope`.
#[inline(always)]
fn move_counts<B: Backend>(
    a: &TrackingAlloc<B>,
    slot: ShardSlot,
    scope: ScopeId,
    old: Layout,
    new: Layout,
    old_reserved: Layout,
    new_reserved: Layout,
) {
    counters::count_free(
        slot,
        scope,
        old.size() as u64,
        a.usable(old_reserved) as u64,
    );
    counters::count_alloc(
        slot,
        scope,
        new.size() as u64,
        a.usable(new_reserved) as u64,
    );
}
