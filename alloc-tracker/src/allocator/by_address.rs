//! The hot path over jemalloc when scopes own arenas (see `arena`), for
//! [`Attribution::Hybrid`] (the default) and [`Attribution::ByAddress`].
//!
//! ```text
//!  alloc(layout)                                 dealloc(p, layout)
//!  ─────────────                                 ──────────────────
//!  scope, shard, sampling decision  (TLS)        shard (TLS); owner(p) (chunk table, 1 load)
//!  Hybrid and the trailer fits the class:         Automatic, trailer fits (Hybrid)
//!    malloc fast path + 2-byte trailer              ─► read trailer, sdallocx fast path
//!  unscoped (trailer does not fit, or ByAddress): Automatic otherwise
//!    malloc fast path, untagged                     ─► sdallocx fast path, UNSCOPED
//!  scoped:                                        Scope(s)
//!    mallocx(scope arena, thread's tcache)          ─► sdallocx(this thread's tcache of s), s
//!  recorded/sampled, transient scope:             Tagged
//!    mallocx(tagged arena) + trailer                ─► read trailer, sdallocx(tagged tcache)
//! ```
//!
//! In the hybrid the layout alone tells a free whether an automatic-arena
//! block carries a trailer ([`trailer_fits`]), so both kinds of block need
//! no per-block state besides what they carry. A block never leaves its
//! arena: `rallocx` with the arena's flags keeps it there when it moves, and
//! an automatic-arena block of a scope that must grow into a size without
//! slack moves to the scope's arena by copy.
//!
//! Each function has the contract of the `GlobalAlloc` method of its name,
//! and the block passed to `dealloc`/`realloc` must have been made by this
//! module with the same [`Attribution`] (it is fixed when the allocator
//! value is built). jemalloc's own contract for `mallocx`/`sdallocx`/
//! `rallocx` is met as follows: the size given to `sdallocx` is the size the
//! block was requested with (`layout.size()`, or the trailer's outer size),
//! the alignment flags are recomputed from the same layout, and a block is
//! freed through a tcache of its own arena (or none), never another's.
//!
//! [`Attribution::Hybrid`]: super::Attribution::Hybrid
//! [`Attribution::ByAddress`]: super::Attribution::ByAddress
//! [`Attribution`]: super::Attribution
//! [`trailer_fits`]: super::backend::trailer_fits

use core::alloc::Layout;
use core::ptr;

use super::arena::{self, Owner, Placement};
use super::backend::trailer_fits;
use super::{trailer, Attribution, Backend, Tag, TrackingAlloc};
use crate::sampling::Special;
use crate::scope::{self, ScopeId};
use crate::stats::counters::{self, ShardSlot};
use crate::thread_state;

/// The calling thread's allocation context: scope to charge, counter
/// shard, and what sampling/recording wants of the block.
#[inline(always)]
fn context(bytes: usize) -> (ScopeId, ShardSlot, Option<Special>) {
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

impl<B: Backend> TrackingAlloc<B> {
    /// Whether automatic-arena blocks of `layout` carry a trailer.
    #[inline(always)]
    fn trailer_in_automatic(&self, layout: Layout) -> bool {
        self.attribution == Attribution::Hybrid && trailer_fits(layout)
    }
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
    if a.trailer_in_automatic(layout) {
        // SAFETY: the caller's contract; the trailer fits the class.
        return unsafe { alloc_with_trailer(a, layout, zero, slot, scope, special) };
    }
    if scope == ScopeId::UNSCOPED && special.is_none() {
        // SAFETY: the caller's contract.
        return unsafe { alloc_untagged(a, layout, zero, slot) };
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
        // SAFETY: the caller's contract.
        Placement::Unattributed => unsafe { alloc_untagged(a, layout, zero, slot) },
    }
}

/// jemalloc's flag-free path for an unscoped, untagged block (or for a
/// block no arena could be made for: counted as unscoped).
///
/// # Safety
/// `layout` has a non-zero size.
#[inline(always)]
unsafe fn alloc_untagged<B: Backend>(
    a: &TrackingAlloc<B>,
    layout: Layout,
    zero: bool,
    slot: ShardSlot,
) -> *mut u8 {
    // SAFETY: guaranteed by the caller.
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

/// The hybrid's fast path: jemalloc's flag-free path with the tag in the
/// class's slack.
///
/// # Safety
/// `layout` has a non-zero size and `trailer_fits(layout)`.
#[inline(always)]
unsafe fn alloc_with_trailer<B: Backend>(
    a: &TrackingAlloc<B>,
    layout: Layout,
    zero: bool,
    slot: ShardSlot,
    scope: ScopeId,
    special: Option<Special>,
) -> *mut u8 {
    let Some(outer) = trailer::outer_layout(layout) else {
        return ptr::null_mut();
    };
    // SAFETY: `outer` has a non-zero size.
    let p = unsafe {
        if zero {
            a.backend.alloc_zeroed(outer)
        } else {
            a.backend.alloc(outer)
        }
    };
    if !p.is_null() {
        counters::count_alloc(slot, scope, layout.size() as u64, a.usable(outer) as u64);
        let tag = match special {
            Some(s) => crate::sampling::record(Tag::new(scope), p as usize, layout.size(), s),
            None => Tag::new(scope),
        };
        // SAFETY: `p` is a fresh block of `outer.size()` bytes.
        unsafe { trailer::write_unchecked(p, layout, tag.to_bits()) };
    }
    p
}

/// # Safety
/// As [`core::alloc::GlobalAlloc::dealloc`]: `p` is a live block of this
/// allocator made with `layout`.
#[inline(always)]
pub(super) unsafe fn dealloc<B: Backend>(a: &TrackingAlloc<B>, p: *mut u8, layout: Layout) {
    let slot = shard();
    match arena::owner(p) {
        Owner::Automatic if a.trailer_in_automatic(layout) => {
            let outer = trailer::outer_layout_of_live(layout);
            // SAFETY: automatic-arena blocks whose trailer fits were made
            // with `outer` and their tag written at `layout.size()`.
            let tag = Tag::from_bits(unsafe { trailer::read_unchecked(p, layout) });
            if tag.has_record() {
                crate::sampling::on_free_recorded(p as usize, tag);
            }
            // SAFETY: `p` was returned by the backend for `outer`.
            unsafe { a.backend.dealloc(p, outer) };
            counters::count_free(
                slot,
                tag.scope(),
                layout.size() as u64,
                a.usable(outer) as u64,
            );
        }
        Owner::Automatic => {
            // SAFETY: an untagged automatic-arena block made with `layout`.
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
/// As [`core::alloc::GlobalAlloc::realloc`]: `p` is a live block of this
/// allocator made with `layout`; `new_size` is non-zero and, rounded up to
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
            // SAFETY: the caller's contract.
            unsafe { realloc_automatic(a, slot, p, layout, new_layout) }
        }
        owner @ Owner::Scope(scope) => {
            // SAFETY: a block of `scope`'s arena; the flags name that arena
            // (a moved block is made there) and this thread's tcache of it.
            let q = unsafe {
                arena::rallocx_unchecked(p, new_size, arena::realloc_flags(slot, owner, new_layout))
            };
            if !q.is_null() {
                move_counts(a, slot, scope, (layout, layout), (new_layout, new_layout));
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
            move_counts(
                a,
                slot,
                tag.scope(),
                (layout, outer),
                (new_layout, new_outer),
            );
            // SAFETY: `q` is a block of `new_outer.size()` bytes; the tag
            // goes after the caller's `new_size` bytes.
            unsafe { trailer::write_unchecked(q, new_layout, tag.to_bits()) };
            q
        }
    }
}

/// Reallocates an automatic-arena block. It stays in the automatic arenas
/// (jemalloc may grow it in place) unless it belongs to a scope and the new
/// size has no slack for the trailer: then it moves to the scope's arena.
///
/// # Safety
/// `p` is a live automatic-arena block made by this module with `layout`;
/// `new_layout` is valid with a non-zero size.
#[inline(always)]
unsafe fn realloc_automatic<B: Backend>(
    a: &TrackingAlloc<B>,
    slot: ShardSlot,
    p: *mut u8,
    layout: Layout,
    new_layout: Layout,
) -> *mut u8 {
    let (old_tagged, new_tagged) = (
        a.trailer_in_automatic(layout),
        a.trailer_in_automatic(new_layout),
    );
    let (tag, old_reserved) = if old_tagged {
        // SAFETY: the block carries a trailer (its layout says so).
        let bits = unsafe { trailer::read_unchecked(p, layout) };
        (Tag::from_bits(bits), trailer::outer_layout_of_live(layout))
    } else {
        (Tag::new(ScopeId::UNSCOPED), layout)
    };
    let scope = tag.scope();
    if !new_tagged && (scope != ScopeId::UNSCOPED || tag.has_record()) {
        // SAFETY: the caller's contract.
        return unsafe { realloc_by_copy(a, slot, p, layout, new_layout, tag) };
    }
    let new_reserved = if new_tagged {
        let Some(o) = trailer::outer_layout(new_layout) else {
            return ptr::null_mut();
        };
        o
    } else {
        new_layout
    };
    // SAFETY: `p` was returned by the backend for `old_reserved`; the new
    // size is non-zero and valid for the alignment.
    let q = unsafe { a.backend.realloc(p, old_reserved, new_reserved.size()) };
    if q.is_null() {
        return q;
    }
    let tag = crate::sampling::on_realloc(p as usize, q as usize, tag, new_layout.size());
    move_counts(
        a,
        slot,
        scope,
        (layout, old_reserved),
        (new_layout, new_reserved),
    );
    if new_tagged {
        // SAFETY: `q` has `new_reserved.size()` bytes, the trailer goes
        // after the caller's `new_layout.size()`.
        unsafe { trailer::write_unchecked(q, new_layout, tag.to_bits()) };
    }
    q
}

/// Moves a trailer-tagged automatic block of a scope to a new block with
/// no trailer slack: allocated as the scope's blocks are (its arena, or the
/// tagged arena), then copied, then the old block freed.
///
/// # Safety
/// As [`realloc_automatic`]; `tag` is the block's tag.
#[cold]
#[inline(never)]
unsafe fn realloc_by_copy<B: Backend>(
    a: &TrackingAlloc<B>,
    slot: ShardSlot,
    p: *mut u8,
    layout: Layout,
    new_layout: Layout,
    tag: Tag,
) -> *mut u8 {
    let scope = tag.scope();
    let keep_record = tag.has_record();
    let (q, reserved) = match arena::place(slot, scope, new_layout, keep_record) {
        Placement::Arena(flags) => (
            // SAFETY: a valid non-zero layout; flags name the scope's arena.
            unsafe { arena::mallocx_unchecked(new_layout.size(), flags) },
            new_layout,
        ),
        Placement::Tagged(flags) => {
            let Some(outer) = trailer::outer_layout(new_layout) else {
                return ptr::null_mut();
            };
            // SAFETY: a valid non-zero layout; flags name the tagged arena.
            let q = unsafe {
                arena::mallocx_unchecked(outer.size(), flags | arena::align_flags(outer))
            };
            (q, outer)
        }
        Placement::Unattributed => return ptr::null_mut(),
    };
    if q.is_null() {
        return q;
    }
    // SAFETY: both blocks are live and distinct; the copy covers the bytes
    // both hold.
    unsafe { ptr::copy_nonoverlapping(p, q, layout.size().min(new_layout.size())) };
    let tag = crate::sampling::on_realloc(p as usize, q as usize, tag, new_layout.size());
    if reserved != new_layout {
        // SAFETY: a tagged-arena block of `reserved` bytes.
        unsafe { trailer::write_unchecked(q, new_layout, tag.to_bits()) };
    }
    let old_reserved = trailer::outer_layout_of_live(layout);
    // SAFETY: `p` was returned by the backend for `old_reserved` (its
    // trailer fits, it was made by the hybrid's fast path).
    unsafe { a.backend.dealloc(p, old_reserved) };
    move_counts(
        a,
        slot,
        scope,
        (layout, old_reserved),
        (new_layout, reserved),
    );
    q
}

/// Counts a reallocation as one free and one allocation in `scope`; each
/// pair is (requested layout, layout reserved from the backend).
#[inline(always)]
fn move_counts<B: Backend>(
    a: &TrackingAlloc<B>,
    slot: ShardSlot,
    scope: ScopeId,
    old: (Layout, Layout),
    new: (Layout, Layout),
) {
    counters::count_free(slot, scope, old.0.size() as u64, a.usable(old.1) as u64);
    counters::count_alloc(slot, scope, new.0.size() as u64, a.usable(new.1) as u64);
}
