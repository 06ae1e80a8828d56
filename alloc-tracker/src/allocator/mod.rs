//! THE HOT PATH: the `GlobalAlloc` wrapper, the tag it stores with every
//! block, the backends, and the thread-exit hook.
//!
//! `unsafe` is allowed here for the allocator's own concerns (blocks,
//! tags, arenas, the thread-exit hook); the unwinder's and the reachability
//! scan's raw parts have their own modules, each with its own allow. Code here never
//! allocates, locks or panics on the path of an ordinary allocation; the
//! rare paths (claiming a counter shard, sampling) are `#[cold]` and also
//! neither allocate through this allocator nor lock.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;

#[cfg(feature = "jemalloc")]
mod arena;
mod backend;
mod exit_hook;
#[cfg(feature = "jemalloc")]
mod fast_path;
#[cfg(feature = "jemalloc")]
mod hybrid;
mod move_box;
mod thread_exit;
mod trailer;

#[cfg(feature = "jemalloc")]
pub(crate) use arena::attribution_stats;
#[cfg(feature = "jemalloc")]
pub(crate) use arena::cached_bytes as jemalloc_cached_bytes;
#[cfg(feature = "jemalloc")]
pub(crate) use arena::set_tagged_only;
#[cfg(feature = "jemalloc")]
pub use arena::AttributionStats;

/// For the reachability scan (`leak/reach`): the scope whose arena owns
/// the chunk (2 MiB) at `addr`, if a scope's arena does.
#[cfg(feature = "jemalloc")]
pub(crate) fn chunk_scope(addr: usize) -> Option<ScopeId> {
    match arena::owner(addr as *const u8) {
        arena::Owner::Scope(s) => Some(s),
        _ => None,
    }
}

/// For the reachability scan (`leak/reach`): overwrites the stale block
/// addresses in this thread's tcaches (see `arena/scrub.rs`).
#[cfg(feature = "jemalloc")]
pub(crate) fn scrub_tcaches() {
    let slot = thread_state::with(shard_of).unwrap_or(counters::ShardSlot::SHARED);
    arena::scrub_tcaches(slot);
}
pub(crate) use crate::hot::tag::Tag;
pub use backend::Backend;
#[cfg(feature = "jemalloc")]
pub use backend::Jemalloc;
pub(crate) use exit_hook::at_exit;
pub(crate) use move_box::move_box;

use crate::hot::counters::{self, ShardSlot};
use crate::hot::thread_state::{self, ThreadState};
use crate::scope::ScopeId;

/// A [`GlobalAlloc`] that charges every allocation to the current scope and
/// every free back to the scope that made the allocation.
///
/// Install it once per program:
///
/// ```
/// use scope_alloc_tracker::{Jemalloc, TrackingAlloc};
///
/// #[global_allocator]
/// static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);
/// # fn main() {}
/// ```
///
/// or over the platform allocator with
/// `TrackingAlloc::new(std::alloc::System)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct TrackingAlloc<B> {
    backend: B,
    usable: UsableSizes,
    attribution: Attribution,
}

/// How a free finds the scope of its block.
///
/// `docs/attribution.md` has the measurements behind the default; in short,
/// over jemalloc every choice but [`Attribution::Trailer`] gives each block
/// exactly the size class bare jemalloc gives its layout.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Attribution {
    /// The default (jemalloc only; with another backend it means
    /// [`Attribution::Trailer`]). Where two more bytes fit in the request's
    /// size class, which the layout alone decides, the block takes jemalloc's
    /// flag-free fast path and carries its scope in a 2-byte trailer in that
    /// slack. Where they do not (exact fits such as 32 B, 64 B, 4 KiB, grown
    /// `Vec` capacities), the block goes to a jemalloc arena of its scope,
    /// and a free finds the scope from the block's address in a small table
    /// of chunk owners. No block takes a larger size class.
    #[default]
    Hybrid,
    /// Every block carries its scope in a 2-byte trailer after the caller's
    /// bytes, and a free reads it. Works over any backend; costs a size
    /// class when the request fills its class exactly (32 B takes 48 B,
    /// 4 KiB takes 5 KiB).
    Trailer,
}

/// Whether [`TrackingAlloc`] also counts the bytes the backend reserves
/// (its size class), beside the bytes requested.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum UsableSizes {
    /// Count requested bytes only; the `*_usable_bytes` figures stay 0.
    /// The default: it saves two counter updates and two size-class
    /// computations per allocation/free pair, a measurable share of the
    /// tracker's cost on a pure alloc/free loop (figures in
    /// `docs/attribution.md`).
    #[default]
    Skip,
    /// Also count usable bytes, computed arithmetically from the layout
    /// (jemalloc's size classes; no `nallocx` call).
    Count,
}

impl<B> TrackingAlloc<B> {
    /// Wraps `backend`, counting requested bytes ([`UsableSizes::Skip`]).
    pub const fn new(backend: B) -> Self {
        Self {
            backend,
            usable: UsableSizes::Skip,
            attribution: Attribution::Hybrid,
        }
    }

    /// Chooses how frees find their scope ([`Attribution::Hybrid`] by
    /// default):
    ///
    /// ```
    /// use scope_alloc_tracker::{Attribution, Jemalloc, TrackingAlloc};
    ///
    /// #[global_allocator]
    /// static GLOBAL: TrackingAlloc<Jemalloc> =
    ///     TrackingAlloc::new(Jemalloc).attribution(Attribution::Trailer);
    /// # fn main() {}
    /// ```
    pub const fn attribution(mut self, attribution: Attribution) -> Self {
        self.attribution = attribution;
        self
    }

    /// Chooses whether usable bytes are counted too:
    ///
    /// ```
    /// use scope_alloc_tracker::{Jemalloc, TrackingAlloc, UsableSizes};
    ///
    /// #[global_allocator]
    /// static GLOBAL: TrackingAlloc<Jemalloc> =
    ///     TrackingAlloc::new(Jemalloc).usable_sizes(UsableSizes::Count);
    /// # fn main() {}
    /// ```
    pub const fn usable_sizes(mut self, usable: UsableSizes) -> Self {
        self.usable = usable;
        self
    }
}

impl<B: Backend> TrackingAlloc<B> {
    #[inline(always)]
    fn usable(&self, outer: Layout) -> usize {
        match self.usable {
            UsableSizes::Skip => 0,
            UsableSizes::Count => B::usable_size(outer),
        }
    }

    /// Whether this is the hybrid over jemalloc (`hybrid.rs`), as opposed
    /// to the trailer on every block.
    #[cfg(feature = "jemalloc")]
    #[inline(always)]
    fn hybrid(&self) -> bool {
        B::IS_JEMALLOC && self.attribution == Attribution::Hybrid
    }
}

/// Whether a hard budget lets an allocation of `bytes` in the current scope
/// go ahead (always, outside `budget::fallible`; one relaxed load while no
/// budget is set).
#[inline(always)]
fn admitted(bytes: usize) -> bool {
    // The scope is only read when some budget could refuse.
    !crate::hot::budget::any_budget()
        || crate::hot::budget::admits(thread_state::current_scope(), bytes as u64)
}

/// Runs the accounting of one allocation on this thread's state and returns
/// the tag to store with the block.
#[inline(always)]
fn on_alloc(addr: usize, bytes: usize, usable: usize) -> Tag {
    thread_state::with(|t| {
        let scope = if t.busy() {
            ScopeId::INTERNAL
        } else {
            t.scope.get()
        };
        counters::count_alloc(shard_of(t), scope, bytes as u64, usable as u64);
        let tag = Tag::new(scope);
        if t.busy() {
            tag
        } else {
            crate::sampling::on_alloc(t, tag, addr, bytes)
        }
    })
    .unwrap_or_else(|| {
        counters::count_alloc(
            ShardSlot::SHARED,
            ScopeId::UNSCOPED,
            bytes as u64,
            usable as u64,
        );
        Tag::new(ScopeId::UNSCOPED)
    })
}

/// The part of a free's accounting that must run before the block goes back
/// to the backend: dropping its live record, if it has one (a block handed
/// out again could otherwise get a record of its own first).
#[inline(always)]
fn before_free(addr: usize, tag: Tag) {
    if tag.has_record() {
        crate::sampling::on_free_recorded(addr, tag);
    }
}

/// Counts one free of a block tagged `tag`. It runs *after* the backend's
/// free: the tag load often misses the cache (a program that drops a large
/// structure does not otherwise touch the blocks it frees), and using its
/// value only after the backend call lets the CPU overlap that miss with the
/// free and with the next iterations of the caller's loop.
#[inline(always)]
fn count_free(tag: Tag, bytes: usize, usable: usize) {
    let slot = thread_state::with(shard_of).unwrap_or(ShardSlot::SHARED);
    counters::count_free(slot, tag.scope(), bytes as u64, usable as u64);
}

/// Claims a shard on first use; returns the slot to count on.
#[inline(always)]
pub(crate) fn shard_of(t: &ThreadState) -> ShardSlot {
    let slot = t.slot();
    if slot == ShardSlot::UNCLAIMED {
        claim_shard_for_thread(t)
    } else {
        slot
    }
}

/// Called by the hot path the first time a thread allocates or frees.
#[cold]
#[inline(never)]
pub(crate) fn claim_shard_for_thread(t: &ThreadState) -> ShardSlot {
    let slot = counters::claim_shard();
    if let Some(n) = slot.owned_shard() {
        if !thread_exit::arm(n) {
            // Without an exit hook the shard would never be released; count
            // this thread on the shared shard instead.
            counters::release_shard(n);
            t.set_slot(ShardSlot::SHARED);
            return ShardSlot::SHARED;
        }
    }
    t.set_slot(slot);
    slot
}

/// Called by the exit hook: the thread stops counting on shard `n` and
/// gives it back.
fn release_shard_of_exiting_thread(n: u16) {
    let _ = thread_state::with(|t| t.set_slot(ShardSlot::SHARED));
    #[cfg(feature = "jemalloc")]
    arena::release_tcaches(n);
    counters::release_shard(n);
}

// === impl TrackingAlloc (trailer) ===

/// [`Attribution::Trailer`]: every method forwards to the backend with the
/// enlarged layout `trailer::outer_layout(layout)`, which keeps
/// `layout.align()` and only adds `TAG_SIZE` bytes after the caller's; the
/// caller's pointer is the backend's pointer, so the caller gets
/// `layout.size()` bytes aligned to `layout.align()` as `GlobalAlloc`
/// requires. `dealloc`/`realloc` receive the same `layout` (GlobalAlloc
/// contract) and so recompute the same outer layout the block was made with.
/// Each method has the contract of the `GlobalAlloc` method of its name.
impl<B: Backend> TrackingAlloc<B> {
    /// # Safety
    /// As [`GlobalAlloc::alloc`].
    #[inline(always)]
    unsafe fn trailer_alloc(&self, layout: Layout) -> *mut u8 {
        let Some(outer) = trailer::outer_layout(layout) else {
            return ptr::null_mut();
        };
        if !admitted(layout.size()) {
            return ptr::null_mut();
        }
        // SAFETY: `outer` has a non-zero size (at least TAG_SIZE).
        let p = unsafe { self.backend.alloc(outer) };
        if !p.is_null() {
            let tag = on_alloc(p as usize, layout.size(), self.usable(outer));
            // SAFETY: `p` is a fresh block of `outer.size()` bytes.
            unsafe { trailer::write_unchecked(p, layout, tag.to_bits()) };
        }
        p
    }

    /// # Safety
    /// As [`GlobalAlloc::alloc_zeroed`].
    #[inline(always)]
    unsafe fn trailer_alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let Some(outer) = trailer::outer_layout(layout) else {
            return ptr::null_mut();
        };
        if !admitted(layout.size()) {
            return ptr::null_mut();
        }
        // SAFETY: `outer` has a non-zero size (at least TAG_SIZE).
        let p = unsafe { self.backend.alloc_zeroed(outer) };
        if !p.is_null() {
            let tag = on_alloc(p as usize, layout.size(), self.usable(outer));
            // SAFETY: `p` is a fresh block of `outer.size()` bytes; the tag
            // lies after the caller's zeroed bytes.
            unsafe { trailer::write_unchecked(p, layout, tag.to_bits()) };
        }
        p
    }

    /// # Safety
    /// As [`GlobalAlloc::dealloc`].
    #[inline(always)]
    unsafe fn trailer_dealloc(&self, p: *mut u8, layout: Layout) {
        let outer = trailer::outer_layout_of_live(layout);
        // SAFETY: the caller guarantees `p` is a live block of this allocator
        // made with `layout`, so its tag was written at `layout.size()`.
        let tag = Tag::from_bits(unsafe { trailer::read_unchecked(p, layout) });
        before_free(p as usize, tag);
        // SAFETY: `p` was returned by `self.backend` for `outer`.
        unsafe { self.backend.dealloc(p, outer) };
        count_free(tag, layout.size(), self.usable(outer));
    }

    /// # Safety
    /// As [`GlobalAlloc::realloc`].
    #[inline(always)]
    unsafe fn trailer_realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let outer = trailer::outer_layout_of_live(layout);
        let Some(new_outer) = Layout::from_size_align(new_size, layout.align())
            .ok()
            .and_then(trailer::outer_layout)
        else {
            return ptr::null_mut();
        };
        // SAFETY: `p` is a live block made with `layout` (caller contract).
        let tag = Tag::from_bits(unsafe { trailer::read_unchecked(p, layout) });
        if new_size > layout.size()
            && !crate::hot::budget::admits(tag.scope(), (new_size - layout.size()) as u64)
        {
            // Refused by a hard budget: the old block is unchanged.
            return ptr::null_mut();
        }
        // SAFETY: `p` was returned by `self.backend` for `outer`;
        // `new_outer.size()` is non-zero and does not overflow `isize` when
        // rounded to the alignment (checked by `Layout::from_size_align`).
        let q = unsafe { self.backend.realloc(p, outer, new_outer.size()) };
        if q.is_null() {
            // The old block, its tag and every counter are unchanged.
            return q;
        }
        let (old_usable, new_usable) = (self.usable(outer), self.usable(new_outer));
        let tag = crate::sampling::on_realloc(p as usize, q as usize, tag, new_size);
        let slot = thread_state::with(shard_of).unwrap_or(ShardSlot::SHARED);
        counters::count_free(slot, tag.scope(), layout.size() as u64, old_usable as u64);
        counters::count_alloc(slot, tag.scope(), new_size as u64, new_usable as u64);
        // SAFETY: `q` is a block of `new_outer.size()` bytes; the tag goes
        // after the caller's `new_size` bytes.
        unsafe {
            trailer::write_unchecked(
                q,
                Layout::from_size_align_unchecked(new_size, layout.align()),
                tag.to_bits(),
            )
        };
        q
    }
}

// === impl GlobalAlloc ===

// SAFETY: each method forwards to the placement chosen at construction,
// the hybrid (`fast_path.rs`, then `hybrid.rs`, which argues its contract)
// or the trailer methods above, with the caller's arguments and so the
// caller's guarantees. `dealloc`/`realloc` of a block take the same branch
// as the `alloc` that made it: the choice is a constant of the allocator
// value, and the fast path makes the same blocks as `hybrid.rs` for a
// layout and scope, so either frees the other's.
//
// `#[inline(always)]`: inlined into the `#[global_allocator]` shim, the
// allocator value is a known static and the choice of placement and of
// usable sizes folds to constants; what is left is the fast path
// (`fast_path.rs`) and calls to the out-of-line general paths.
unsafe impl<B: Backend> GlobalAlloc for TrackingAlloc<B> {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        #[cfg(feature = "jemalloc")]
        if self.hybrid() {
            // SAFETY: the caller's contract for `alloc`; a hybrid over
            // jemalloc.
            if let Some(p) = unsafe { fast_path::alloc(self, layout, false) } {
                return p;
            }
            // SAFETY: as above.
            return unsafe { hybrid::alloc(self, layout, false) };
        }
        // SAFETY: the caller's contract for `alloc`.
        unsafe { self.trailer_alloc(layout) }
    }

    #[inline(always)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        #[cfg(feature = "jemalloc")]
        if self.hybrid() {
            // SAFETY: the caller's contract for `alloc_zeroed`; a hybrid
            // over jemalloc.
            if let Some(p) = unsafe { fast_path::alloc(self, layout, true) } {
                return p;
            }
            // SAFETY: as above.
            return unsafe { hybrid::alloc(self, layout, true) };
        }
        // SAFETY: the caller's contract for `alloc_zeroed`.
        unsafe { self.trailer_alloc_zeroed(layout) }
    }

    #[inline(always)]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        #[cfg(feature = "jemalloc")]
        if self.hybrid() {
            // SAFETY: the caller's contract for `dealloc`; the block was
            // made by `fast_path::alloc` or `hybrid::alloc` (same allocator
            // value, same branch), which make the same blocks.
            if unsafe { fast_path::dealloc(self, p, layout) } {
                return;
            }
            // SAFETY: as above.
            return unsafe { hybrid::dealloc(self, p, layout) };
        }
        // SAFETY: the caller's contract for `dealloc`.
        unsafe { self.trailer_dealloc(p, layout) }
    }

    #[inline(always)]
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        #[cfg(feature = "jemalloc")]
        if self.hybrid() {
            // SAFETY: the caller's contract for `realloc`; a hybrid over
            // jemalloc, whose blocks either path reallocates.
            if let Some(q) = unsafe { fast_path::realloc(self, p, layout, new_size) } {
                return q;
            }
            // SAFETY: as above.
            return unsafe { hybrid::realloc(self, p, layout, new_size) };
        }
        // SAFETY: the caller's contract for `realloc`.
        unsafe { self.trailer_realloc(p, layout, new_size) }
    }
}
