//! The hybrid's common cases in straight-line code, on a thread in its
//! ordinary state.
//!
//! ```text
//! alloc(layout)                                dealloc(p, layout)
//!   thread owns a shard, not in tracker code     thread owns a shard
//!   no budget set, no leak check records scope   no budget set
//!   layout has slack (1 bit of a table):         layout has slack:
//!     malloc fast path (size + 2)                  tag = trailer; no live record
//!     trailer = scope                              sdallocx fast path
//!   exact fit, scoped (arena, tcache exist):     exact fit: owner(p), one load
//!     mallocx(scope arena, thread's tcache)        scope s: sdallocx(thread's tcache of s)
//!   exact fit, unscoped: malloc fast path          automatic: sdallocx fast path
//!   sampling countdown does not run out
//!   count on the own shard                       count on the own shard
//! ```
//!
//! Anything else returns `None`/`false` *before* changing anything, and
//! the general path in `hybrid.rs`, which handles every case, runs
//! instead (only a free of a block with slack, once the block is back to
//! jemalloc, leaves its counting to the general code). The blocks made here
//! are the blocks the general path makes for the same layout and scope
//! (`Kind::AutoTrailer`, `Kind::Scope`, `Kind::Auto`), so either path frees
//! the other's. `docs/attribution.md` ("The fast path") has the instruction
//! counts that motivated it.

use core::alloc::Layout;
use core::ptr;
use core::sync::atomic::Ordering;

use super::arena::{self, Owner};
use super::backend::trailer_fits;
use super::{trailer, Backend, Tag, TrackingAlloc};
use crate::hot::counters::{self, Shard, ShardSlot};
use crate::hot::thread_state;
use crate::scope::ScopeId;

/// Whether no budget and no recording leak check of `scope` wants to see
/// an allocation in `scope` (otherwise only the general path counts it).
/// One load while no budget is set and no check records anywhere.
#[inline(always)]
fn quiet_for(scope: ScopeId) -> bool {
    crate::hot::switches::quiet() || quiet_while_others_record(scope)
}

/// Recording checks run, but maybe not over `scope`: its allocations stay
/// on the fast path unless a budget is set or a check records `scope`.
#[inline(never)]
fn quiet_while_others_record(scope: ScopeId) -> bool {
    !crate::hot::switches::budgets()
        && crate::hot::per_scope::recording(scope).load(Ordering::Relaxed) == 0
}

/// Allocates a block of `layout` if the thread and the tracker are in the
/// fast case; `None` (nothing changed) otherwise.
///
/// # Safety
/// As [`core::alloc::GlobalAlloc::alloc`]; `a` is a hybrid allocator over
/// this crate's jemalloc.
#[inline(always)]
pub(super) unsafe fn alloc<B: Backend>(
    a: &TrackingAlloc<B>,
    layout: Layout,
    zero: bool,
) -> Option<*mut u8> {
    let size = layout.size();
    let slack = trailer_fits(layout);
    let (scope, line, flags) = thread_state::with(|t| {
        // Owns a shard and is not running tracker code: one test.
        let slot = t.slot_and_flag();
        if !slot.is_owned() {
            return None;
        }
        let scope = t.scope.get();
        if !quiet_for(scope) {
            return None;
        }
        let line = t.lines().line(scope);
        let flags = if slack || scope == ScopeId::UNSCOPED {
            0
        } else {
            arena::ready_alloc_flags(slot, scope, line)?
        };
        // The sampling countdown: a sample is the general path's business.
        let left = t.sample_countdown.get();
        if left <= size as u64 {
            return None;
        }
        t.sample_countdown.set(left - size as u64);
        Some((scope, line, flags))
    })
    .flatten()?;
    let (p, reserved) = if slack {
        // The layout has slack: adding the trailer neither overflows nor
        // changes the size class.
        let outer = trailer::outer_layout_of_live(layout);
        // SAFETY: `outer` has a non-zero size (at least the tag's).
        let p = unsafe {
            if outer.align() <= PLAIN_ALIGN {
                plain_alloc(outer.size(), zero)
            } else if zero {
                a.backend.alloc_zeroed(outer)
            } else {
                a.backend.alloc(outer)
            }
        };
        if !p.is_null() {
            // SAFETY: `p` is a fresh block of `outer.size()` bytes.
            unsafe { trailer::write_unchecked(p, layout, Tag::new(scope).to_bits()) };
        }
        (p, outer)
    } else if scope == ScopeId::UNSCOPED {
        // SAFETY: `layout` has a non-zero size (caller contract).
        let p = unsafe {
            if zero {
                a.backend.alloc_zeroed(layout)
            } else {
                a.backend.alloc(layout)
            }
        };
        (p, layout)
    } else {
        let zero_flag = if zero {
            tikv_jemalloc_sys::MALLOCX_ZERO
        } else {
            0
        };
        let flags = flags | arena::align_flags(layout) | zero_flag;
        // SAFETY: `layout.size()` is non-zero and valid for its alignment;
        // `flags` name the scope's arena and this thread's tcache of it.
        (unsafe { arena::mallocx_unchecked(size, flags) }, layout)
    };
    if p.is_null() {
        // A failed allocation changes no counter.
        return Some(ptr::null_mut());
    }
    line.alloc_owned(scope, size as u64, a.usable(reserved) as u64);
    Some(p)
}

/// Frees `p`, a block of `layout`, if the fast case holds; `false` (nothing
/// done) otherwise.
///
/// # Safety
/// As [`core::alloc::GlobalAlloc::dealloc`]; `a` is a hybrid allocator over
/// this crate's jemalloc, which made `p`.
#[inline(always)]
pub(super) unsafe fn dealloc<B: Backend>(a: &TrackingAlloc<B>, p: *mut u8, layout: Layout) -> bool {
    let bytes = layout.size() as u64;
    if trailer_fits(layout) {
        // SAFETY: a hybrid block of a layout with slack carries its tag at
        // `layout.size()` (`Kind::AutoTrailer`).
        let tag = Tag::from_bits(unsafe { trailer::read_unchecked(p, layout) });
        if tag.has_record() {
            return false;
        }
        let outer = trailer::outer_layout_of_live(layout);
        // SAFETY: made by the backend with `outer`, or by `plain_alloc` for
        // its size (caller contract; see `PLAIN_ALIGN`).
        unsafe {
            if outer.align() <= PLAIN_ALIGN {
                tikv_jemalloc_sys::sdallocx(p.cast(), outer.size(), 0)
            } else {
                a.backend.dealloc(p, outer)
            }
        };
        let usable = a.usable(outer) as u64;
        match owned_quiet_shard() {
            Some((_, lines)) => lines.line(tag.scope()).free_owned(bytes, usable),
            None => count_free_general(tag.scope(), bytes, usable),
        }
        return true;
    }
    let Some((_, lines)) = owned_quiet_shard() else {
        return false;
    };
    let scope = match arena::owner(p) {
        Owner::Automatic => {
            // SAFETY: an automatic-arena block without a trailer, made by
            // the backend with `layout` (`Kind::Auto`).
            unsafe { a.backend.dealloc(p, layout) };
            ScopeId::UNSCOPED
        }
        Owner::Scope(s) => {
            let Some(tcache) = arena::ready_tcache_flag(lines.line(s)) else {
                return false;
            };
            let flags = tcache | arena::align_flags(layout);
            // SAFETY: a block of `s`'s arenas requested with `layout.size()`
            // bytes (`Kind::Scope`), freed through this thread's tcache of
            // that scope.
            unsafe { arena::sdallocx_unchecked(p, layout.size(), flags) };
            s
        }
        Owner::Tagged => return false,
    };
    lines.line(scope).free_owned(bytes, a.usable(layout) as u64);
    true
}

/// Reallocates `p` (a block of `layout`) to `new_size` bytes where it
/// stays a block of the same kind (slack to slack, exact fit to exact fit)
/// and the fast case holds; `None` (nothing done) otherwise.
///
/// # Safety
/// As [`core::alloc::GlobalAlloc::realloc`]; `a` is a hybrid allocator over
/// this crate's jemalloc, which made `p`.
#[inline(always)]
pub(super) unsafe fn realloc<B: Backend>(
    a: &TrackingAlloc<B>,
    p: *mut u8,
    layout: Layout,
    new_size: usize,
) -> Option<*mut u8> {
    let new_layout = Layout::from_size_align(new_size, layout.align()).ok()?;
    // Reallocations never start a record (`sampling::on_realloc` only
    // keeps one), so only budgets send them to the general path.
    let (slot, lines) = owned_quiet_shard()?;
    let slack = trailer_fits(layout);
    if slack != trailer_fits(new_layout) {
        return None;
    }
    let (q, scope, old_reserved, new_reserved) = if slack {
        // SAFETY: a hybrid block of a layout with slack carries its tag at
        // `layout.size()` (`Kind::AutoTrailer`).
        let tag = Tag::from_bits(unsafe { trailer::read_unchecked(p, layout) });
        if tag.has_record() {
            return None;
        }
        let (outer, new_outer) = (
            trailer::outer_layout_of_live(layout),
            trailer::outer_layout_of_live(new_layout),
        );
        // SAFETY: made by the backend with `outer` (caller contract); the
        // new size is non-zero and valid for the alignment (`new_layout`).
        let q = unsafe { a.backend.realloc(p, outer, new_outer.size()) };
        if !q.is_null() {
            // SAFETY: `q` has `new_outer.size()` bytes, room for the tag.
            unsafe { trailer::write_unchecked(q, new_layout, tag.to_bits()) };
        }
        (q, tag.scope(), outer, new_outer)
    } else {
        let (q, scope) = match arena::owner(p) {
            // SAFETY: an automatic block without a trailer made by the
            // backend with `layout` (`Kind::Auto`); it stays one.
            Owner::Automatic => (
                unsafe { a.backend.realloc(p, layout, new_size) },
                ScopeId::UNSCOPED,
            ),
            Owner::Scope(s) => {
                let flags = arena::ready_alloc_flags(slot, s, lines.line(s))?
                    | arena::align_flags(new_layout);
                // SAFETY: a block of `s`'s arenas (`Kind::Scope`); if it
                // moves, it moves to this thread's arena of `s` through
                // this thread's tcache of `s`.
                (unsafe { arena::rallocx_unchecked(p, new_size, flags) }, s)
            }
            Owner::Tagged => return None,
        };
        (q, scope, layout, new_layout)
    };
    if q.is_null() {
        // The old block and every counter are unchanged.
        return Some(q);
    }
    let (old_usable, new_usable) = (a.usable(old_reserved), a.usable(new_reserved));
    let line = lines.line(scope);
    line.free_owned(layout.size() as u64, old_usable as u64);
    line.alloc_owned(scope, new_size as u64, new_usable as u64);
    Some(q)
}

/// Alignments that every jemalloc block of at least 8 bytes has: each
/// size class is a multiple of 8 and its regions lie at multiples of the
/// class in page-aligned slabs (large blocks: at least cache-line
/// aligned). For them a slack block is made with `malloc(size + 2)` and
/// freed with `sdallocx(p, size + 2, 0)`, sparing `tikv_jemallocator`'s
/// flag computation; the blocks are the ones it makes for the same outer
/// layout (it adds `MALLOCX_ALIGN` only when the size is below the
/// alignment, which maps to the same 8-byte class), so either frees the
/// other's.
const PLAIN_ALIGN: usize = 8;

/// `malloc(size)` or `calloc(1, size)` over jemalloc.
///
/// # Safety
/// `size` is non-zero.
#[inline(always)]
unsafe fn plain_alloc(size: usize, zero: bool) -> *mut u8 {
    // SAFETY: a non-zero size (caller contract); jemalloc's `malloc` and
    // `calloc` have no other precondition.
    unsafe {
        if zero {
            tikv_jemalloc_sys::calloc(1, size).cast()
        } else {
            tikv_jemalloc_sys::malloc(size).cast()
        }
    }
}

/// This thread's shard and its lines if it owns one and no budget is set
/// (whether it runs tracker code does not matter to a free).
#[inline(always)]
fn owned_quiet_shard() -> Option<(ShardSlot, &'static Shard)> {
    thread_state::with(|t| (t.slot(), t.lines()))
        .filter(|(slot, _)| slot.is_owned() && !crate::hot::budget::any_budget())
}

/// Counts a free the fast case could not (no owned shard yet, budgets).
#[cold]
#[inline(never)]
fn count_free_general(scope: ScopeId, bytes: u64, usable: u64) {
    let slot = thread_state::with(super::shard_of).unwrap_or(ShardSlot::SHARED);
    counters::count_free(slot, scope, bytes, usable);
}
