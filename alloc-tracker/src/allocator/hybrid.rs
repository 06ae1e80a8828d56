//! The general path of [`Attribution::Hybrid`] (the default over jemalloc),
//! where scopes own arenas (see `arena`) for the blocks without slack; the
//! common cases go through `fast_path.rs` first.
//!
//! ```text
//!  alloc(layout)                                 dealloc(p, layout)
//!  ─────────────                                 ──────────────────
//!  scope, shard, sampling decision  (TLS)        shard (TLS); owner(p) (chunk table, 1 load)
//!  the trailer fits the class:                    Automatic, trailer fits
//!    malloc fast path + 2-byte trailer              ─► read trailer, sdallocx fast path
//!  unscoped, the trailer does not fit:           Automatic otherwise
//!    malloc fast path, untagged                     ─► sdallocx fast path, UNSCOPED
//!  scoped:                                        Scope(s)
//!    mallocx(scope arena, thread's tcache)          ─► sdallocx(this thread's tcache of s), s
//!  recorded/sampled, transient scope:             Tagged
//!    mallocx(tagged arena) + trailer                ─► read trailer, sdallocx(tagged tcache)
//! ```
//!
//! In the hybrid a layout whose trailer fits its class ([`trailer_fits`])
//! always means an automatic-arena block with a trailer, whatever its scope
//! or record, so such a free reads the trailer and never looks at the chunk
//! table; every other layout means a block without a trailer slack, found by
//! the chunk table. A reallocation keeps that invariant: it stays in place
//! (`realloc`/`rallocx` with the block's arena) while the new layout is of
//! the same kind, and moves by copy when it is not (rare: a scoped block
//! growing from a size with slack into an exact fit, or the reverse).
//!
//! Each function has the contract of the `GlobalAlloc` method of its name,
//! and the block passed to `dealloc`/`realloc` must have been made by this
//! module or by `fast_path.rs`, for a hybrid allocator. jemalloc's own contract for `mallocx`/`sdallocx`/
//! `rallocx` is met as follows: the size given to `sdallocx` is the size the
//! block was requested with (`layout.size()`, or the trailer's outer size),
//! the alignment flags are recomputed from the same layout, and a block is
//! freed through a tcache of its own arena (or none), never another's.
//!
//! [`Attribution::Hybrid`]: super::Attribution::Hybrid
//! [`trailer_fits`]: super::backend::trailer_fits

use core::alloc::Layout;
use core::ptr;

use super::arena::{self, Owner, Placement};
use super::backend::trailer_fits;
use super::{shard_of, trailer, Backend, Tag, TrackingAlloc};
use crate::hot::counters::{self, ShardSlot};
use crate::hot::thread_state;
use crate::sampling::Special;
use crate::scope::ScopeId;

/// The calling thread's allocation context: scope to charge, counter
/// shard, and what sampling/recording wants of the block.
#[inline(always)]
fn context(bytes: usize) -> (ScopeId, ShardSlot, Option<Special>) {
    thread_state::with(|t| {
        let slot = shard_of(t);
        if t.busy() {
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
    thread_state::with(shard_of).unwrap_or(ShardSlot::SHARED)
}

/// Where a live block is and whether it carries a trailer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Automatic arenas, trailer in the class's slack (hybrid only).
    AutoTrailer,
    /// Automatic arenas, no trailer: an unscoped block.
    Auto,
    /// The arena of this scope, no trailer.
    Scope(ScopeId),
    /// The tagged arena, trailer (possibly in a larger class).
    Tagged,
}

impl Kind {
    /// The kind of the live block `p` of `layout`.
    #[inline(always)]
    fn of(p: *const u8, layout: Layout) -> Kind {
        if trailer_fits(layout) {
            return Kind::AutoTrailer;
        }
        match arena::owner(p) {
            Owner::Automatic => Kind::Auto,
            Owner::Scope(s) => Kind::Scope(s),
            Owner::Tagged => Kind::Tagged,
        }
    }

    #[inline(always)]
    fn has_trailer(self) -> bool {
        matches!(self, Kind::AutoTrailer | Kind::Tagged)
    }

    /// The layout a live block of `layout` was requested from jemalloc with.
    #[inline(always)]
    fn reserved_live(self, layout: Layout) -> Layout {
        if self.has_trailer() {
            trailer::outer_layout_of_live(layout)
        } else {
            layout
        }
    }

    /// The layout a new block of `layout` is requested from jemalloc with,
    /// `None` if adding the trailer overflows.
    #[inline(always)]
    fn reserved(self, layout: Layout) -> Option<Layout> {
        if self.has_trailer() {
            trailer::outer_layout(layout)
        } else {
            Some(layout)
        }
    }

    /// The block's tag: its trailer, or what its arena says.
    ///
    /// # Safety
    /// `p` is a live block of this kind made with `layout`.
    #[inline(always)]
    unsafe fn tag(self, p: *const u8, layout: Layout) -> Tag {
        match self {
            Kind::AutoTrailer | Kind::Tagged => {
                // SAFETY: blocks of these kinds carry their tag at
                // `layout.size()` (caller contract).
                Tag::from_bits(unsafe { trailer::read_unchecked(p, layout) })
            }
            Kind::Auto => Tag::new(ScopeId::UNSCOPED),
            Kind::Scope(s) => Tag::new(s),
        }
    }
}

/// Makes a block of `layout` for `scope` (a trailer is wanted when the
/// block will carry record flags). Counts nothing and writes no tag.
///
/// # Safety
/// `layout` has a non-zero size.
#[inline(always)]
unsafe fn new_block<B: Backend>(
    a: &TrackingAlloc<B>,
    slot: ShardSlot,
    scope: ScopeId,
    layout: Layout,
    zero: bool,
    want_trailer: bool,
) -> (*mut u8, Kind) {
    if trailer_fits(layout) {
        let Some(outer) = trailer::outer_layout(layout) else {
            return (ptr::null_mut(), Kind::AutoTrailer);
        };
        // SAFETY: `outer` has a non-zero size.
        let p = unsafe {
            if zero {
                a.backend.alloc_zeroed(outer)
            } else {
                a.backend.alloc(outer)
            }
        };
        return (p, Kind::AutoTrailer);
    }
    let untagged = |a: &TrackingAlloc<B>| {
        // SAFETY: `layout` has a non-zero size (caller contract).
        let p = unsafe {
            if zero {
                a.backend.alloc_zeroed(layout)
            } else {
                a.backend.alloc(layout)
            }
        };
        (p, Kind::Auto)
    };
    if scope == ScopeId::UNSCOPED && !want_trailer {
        return untagged(a);
    }
    let zero_flag = if zero {
        tikv_jemalloc_sys::MALLOCX_ZERO
    } else {
        0
    };
    match arena::place(slot, scope, layout, want_trailer) {
        // SAFETY: `layout.size()` is non-zero and valid for its alignment;
        // `flags` name the scope's arena and this thread's tcache of it.
        Placement::Arena(flags) => (
            unsafe { arena::mallocx_unchecked(layout.size(), flags | zero_flag) },
            Kind::Scope(scope),
        ),
        Placement::Tagged(flags) => {
            let Some(outer) = trailer::outer_layout(layout) else {
                return (ptr::null_mut(), Kind::Tagged);
            };
            let flags = flags | arena::align_flags(outer) | zero_flag;
            // SAFETY: `outer` is valid with a non-zero size; `flags` name the
            // tagged arena and this thread's tcache of it.
            let p = unsafe { arena::mallocx_unchecked(outer.size(), flags) };
            (p, Kind::Tagged)
        }
        Placement::Unattributed => untagged(a),
    }
}

/// Gives a block back to jemalloc. Counts nothing, touches no record.
///
/// # Safety
/// `p` is a live block of `kind` made with `layout`.
#[inline(always)]
unsafe fn free_block<B: Backend>(
    a: &TrackingAlloc<B>,
    slot: ShardSlot,
    p: *mut u8,
    layout: Layout,
    kind: Kind,
) {
    match kind {
        Kind::AutoTrailer => {
            let outer = trailer::outer_layout_of_live(layout);
            // SAFETY: made by the backend with `outer` (caller contract).
            unsafe { a.backend.dealloc(p, outer) }
        }
        // SAFETY: made by the backend with `layout` (caller contract).
        Kind::Auto => unsafe { a.backend.dealloc(p, layout) },
        Kind::Scope(s) => {
            let flags = arena::free_flags(slot, Owner::Scope(s), layout);
            // SAFETY: a block of `s`'s arena requested with `layout.size()`
            // bytes, freed through this thread's tcache of that arena.
            unsafe { arena::sdallocx_unchecked(p, layout.size(), flags) }
        }
        Kind::Tagged => {
            let outer = trailer::outer_layout_of_live(layout);
            let flags = arena::free_flags(slot, Owner::Tagged, outer);
            // SAFETY: a tagged-arena block requested with `outer.size()`
            // bytes, freed through this thread's tcache of that arena.
            unsafe { arena::sdallocx_unchecked(p, outer.size(), flags) }
        }
    }
}

/// The scope a new block of `kind` is charged to: an untagged automatic
/// block is unscoped whatever was asked (the no-arena fallback).
#[inline(always)]
fn charged(kind: Kind, scope: ScopeId) -> ScopeId {
    if kind == Kind::Auto {
        ScopeId::UNSCOPED
    } else {
        scope
    }
}

/// `alloc` (`zero = false`) or `alloc_zeroed` (`zero = true`).
///
/// # Safety
/// As [`core::alloc::GlobalAlloc::alloc`]: `layout` has a non-zero size.
// Out of line: the fast path (`fast_path.rs`) stays a small function that
// saves few registers, and calls this for every other case.
#[inline(never)]
pub(super) unsafe fn alloc<B: Backend>(
    a: &TrackingAlloc<B>,
    layout: Layout,
    zero: bool,
) -> *mut u8 {
    let bytes = layout.size();
    let (scope, slot, special) = context(bytes);
    if !crate::hot::budget::admits(scope, bytes as u64) {
        // A hard budget refuses this allocation (only ever inside
        // `budget::fallible`, where the caller handles a failure).
        return ptr::null_mut();
    }
    // SAFETY: the caller's contract.
    let (p, kind) = unsafe { new_block(a, slot, scope, layout, zero, special.is_some()) };
    if p.is_null() {
        return p;
    }
    let Some(reserved) = kind.reserved(layout) else {
        return p; // unreachable: `new_block` made the block with it
    };
    let scope = charged(kind, scope);
    counters::count_alloc(slot, scope, bytes as u64, a.usable(reserved) as u64);
    if kind.has_trailer() {
        let tag = match special {
            Some(s) => crate::sampling::record(Tag::new(scope), p as usize, bytes, s),
            None => Tag::new(scope),
        };
        // SAFETY: `p` is a fresh block of `reserved.size()` bytes, which
        // leaves room for the tag after the caller's bytes.
        unsafe { trailer::write_unchecked(p, layout, tag.to_bits()) };
    }
    p
}

/// # Safety
/// As [`core::alloc::GlobalAlloc::dealloc`]: `p` is a live block of this
/// allocator made with `layout`.
// Out of line, as `alloc`.
#[inline(never)]
pub(super) unsafe fn dealloc<B: Backend>(a: &TrackingAlloc<B>, p: *mut u8, layout: Layout) {
    let slot = shard();
    let kind = Kind::of(p, layout);
    // SAFETY: `p` is a live block of `kind` made with `layout`.
    let tag = unsafe { kind.tag(p, layout) };
    if tag.has_record() {
        crate::sampling::on_free_recorded(p as usize, tag);
    }
    // SAFETY: as above.
    unsafe { free_block(a, slot, p, layout, kind) };
    let reserved = kind.reserved_live(layout);
    counters::count_free(
        slot,
        tag.scope(),
        layout.size() as u64,
        a.usable(reserved) as u64,
    );
}

/// # Safety
/// As [`core::alloc::GlobalAlloc::realloc`]: `p` is a live block of this
/// allocator made with `layout`; `new_size` is non-zero and, rounded up to
/// `layout.align()`, does not overflow `isize`.
// Out of line, as `alloc`.
#[inline(never)]
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
    let kind = Kind::of(p, layout);
    // SAFETY: `p` is a live block of `kind` made with `layout`.
    let tag = unsafe { kind.tag(p, layout) };
    if new_size > layout.size()
        && !crate::hot::budget::admits(tag.scope(), (new_size - layout.size()) as u64)
    {
        // Refused by a hard budget (inside `budget::fallible` only): the
        // old block and every counter are unchanged.
        return ptr::null_mut();
    }
    let new_fits = trailer_fits(new_layout);
    let plain_unscoped = tag.scope() == ScopeId::UNSCOPED && !tag.has_record();
    // The kind the block keeps if it can be reallocated where it is.
    let in_place = match kind {
        Kind::AutoTrailer if new_fits => Some(Kind::AutoTrailer),
        Kind::AutoTrailer | Kind::Auto if plain_unscoped => Some(if new_fits {
            Kind::AutoTrailer
        } else {
            Kind::Auto
        }),
        Kind::Scope(_) | Kind::Tagged if !new_fits => Some(kind),
        _ => None,
    };
    let Some(new_kind) = in_place else {
        // SAFETY: the caller's contract.
        return unsafe { realloc_by_copy(a, slot, p, (layout, kind), new_layout, tag) };
    };
    let old_reserved = kind.reserved_live(layout);
    let Some(new_reserved) = new_kind.reserved(new_layout) else {
        return ptr::null_mut();
    };
    // SAFETY: `p` is a live block of `kind` requested as `old_reserved`; the
    // new size is non-zero and valid for the alignment. Automatic blocks go
    // through the backend (they stay in the automatic arenas), arena blocks
    // through `rallocx` with their arena's flags (they stay in it).
    let q = unsafe {
        match kind {
            Kind::AutoTrailer | Kind::Auto => {
                a.backend.realloc(p, old_reserved, new_reserved.size())
            }
            Kind::Scope(s) => arena::rallocx_unchecked(
                p,
                new_reserved.size(),
                arena::realloc_flags(slot, Owner::Scope(s), new_reserved),
            ),
            Kind::Tagged => arena::rallocx_unchecked(
                p,
                new_reserved.size(),
                arena::realloc_flags(slot, Owner::Tagged, new_reserved),
            ),
        }
    };
    if q.is_null() {
        // The old block, its tag and every counter are unchanged.
        return q;
    }
    let tag = crate::sampling::on_realloc(p as usize, q as usize, tag, new_size);
    move_counts(
        a,
        slot,
        (tag.scope(), layout, old_reserved),
        (tag.scope(), new_layout, new_reserved),
    );
    if new_kind.has_trailer() {
        // SAFETY: `q` has `new_reserved.size()` bytes, room for the tag
        // after the caller's `new_size`.
        unsafe { trailer::write_unchecked(q, new_layout, tag.to_bits()) };
    }
    q
}

/// Moves a block to a block of the other kind (the new layout changes
/// whether the trailer fits): allocated as a new block of its scope would
/// be, copied, its record moved, then the old block freed.
///
/// # Safety
/// As [`realloc`]; `old` is the block's layout and kind, `tag` its tag.
#[cold]
#[inline(never)]
unsafe fn realloc_by_copy<B: Backend>(
    a: &TrackingAlloc<B>,
    slot: ShardSlot,
    p: *mut u8,
    old: (Layout, Kind),
    new_layout: Layout,
    tag: Tag,
) -> *mut u8 {
    let (layout, kind) = old;
    // SAFETY: `new_layout` has a non-zero size (caller contract).
    let (q, new_kind) =
        unsafe { new_block(a, slot, tag.scope(), new_layout, false, tag.has_record()) };
    let old_reserved = kind.reserved_live(layout);
    let Some(new_reserved) = new_kind.reserved(new_layout) else {
        return ptr::null_mut();
    };
    if q.is_null() {
        return q;
    }
    // SAFETY: both blocks are live and distinct; the copy covers the bytes
    // both hold.
    unsafe { ptr::copy_nonoverlapping(p, q, layout.size().min(new_layout.size())) };
    let moved = crate::sampling::on_realloc(p as usize, q as usize, tag, new_layout.size());
    let new_scope = charged(new_kind, tag.scope());
    if new_kind.has_trailer() {
        // A block with a trailer is charged to the tag's own scope
        // (`charged` only differs for untagged blocks).
        // SAFETY: `q` has `new_reserved.size()` bytes, room for the tag.
        unsafe { trailer::write_unchecked(q, new_layout, moved.to_bits()) };
    }
    // SAFETY: `p` is a live block of `kind` made with `layout`; its record,
    // if any, was moved to `q` above.
    unsafe { free_block(a, slot, p, layout, kind) };
    move_counts(
        a,
        slot,
        (tag.scope(), layout, old_reserved),
        (new_scope, new_layout, new_reserved),
    );
    q
}

/// Counts a reallocation as the free of the old block and the allocation
/// of the new one; each side is (scope, requested layout, layout reserved
/// from jemalloc).
#[inline(always)]
fn move_counts<B: Backend>(
    a: &TrackingAlloc<B>,
    slot: ShardSlot,
    old: (ScopeId, Layout, Layout),
    new: (ScopeId, Layout, Layout),
) {
    counters::count_free(slot, old.0, old.1.size() as u64, a.usable(old.2) as u64);
    counters::count_alloc(slot, new.0, new.1.size() as u64, a.usable(new.2) as u64);
}
