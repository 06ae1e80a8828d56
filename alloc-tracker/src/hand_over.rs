//! HANDING A BLOCK TO ANOTHER SCOPE: a cache that keeps a page made by a
//! request charges it to the cache's scope from then on.
//!
//! ```
//! # #[global_allocator]
//! # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
//! #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
//! use scope_alloc_tracker::{leak::LeakCheck, Scope};
//!
//! static CACHE: Scope = Scope::new("doc-page-cache");
//! static QUERY: Scope = Scope::new("doc-query");
//!
//! let mut cache: Vec<Vec<u8>> = Vec::with_capacity(16); // the cache's own table
//! let check = LeakCheck::begin(&QUERY);
//! QUERY.in_scope(|| {
//!     let page = vec![7u8; 4096]; // read from disk by the query
//!     cache.push(CACHE.adopt(page)); // kept on purpose: the cache's now
//! });
//! check.finish().unwrap(); // the query gave back everything it kept
//! assert_eq!(CACHE.stats().live_bytes, 4096);
//! # drop(cache);
//! ```
//!
//! [`Scope::adopt`], [`ScopeId::adopt`], [`ScopeInstance::adopt`] and
//! [`hand_over`] take the value by value and give it back charged to the
//! target scope: its block is counted as freed in the scope that allocated
//! it and allocated in the target (like a reallocation), live bytes and
//! allocations move exactly, budgets and peaks of both scopes see it, and
//! the block's later free, on any thread, credits the target.
//!
//! # What can be handed over
//!
//! | value | result | how |
//! |---|---|---|
//! | `Box<T>` | `Box<T>` | moved into a new block of the target (a `memcpy` of `size_of::<T>()` bytes) |
//! | `Vec<T>` | `Vec<T>` | moved into a new block of the same capacity (a `memcpy` of the elements) |
//! | `String` | `String` | as `Vec<u8>` |
//! | `Arc<T>`, `Rc<T>` | `Result<_, Shared<_>>` | unique (one strong, no weak reference): moved into a new `Arc`/`Rc`; shared: [`Shared`], the value given back unchanged |
//!
//! A value that owns no block (a zero-sized `T`, an empty `Vec` or
//! `String` without capacity) is given back as it is. Only the outer block
//! moves: a `Vec<Vec<u8>>` hands over its buffer of `Vec` headers, not the
//! inner buffers (hand each one over, or build the value in the target
//! scope).
//!
//! # Why a move, not a rewrite of the tag
//!
//! The allocator finds a block's scope in two ways (`docs/attribution.md`):
//! from a 2-byte trailer in the size class's slack, or, for blocks that fill
//! their size class, from the address (the block lives in a jemalloc arena
//! of its scope). A trailer could be rewritten in place, but an arena block
//! can only change scope by moving to an arena of the target, and which of
//! the two a block is depends on the allocator's configuration
//! ([`Attribution`](crate::Attribution), the backend), which a free
//! function cannot see without a probe. A move is exact on every placement
//! and every configuration by construction, needs no change to the
//! allocation path, and costs one allocation, one copy and one free: for a
//! 4 KiB page, about what reading it from the OS page cache costs. A shared
//! `Arc` cannot move (other owners point at its block), so it is refused
//! with the value given back: hand a page over before sharing it, or
//! allocate it in the cache's scope in the first place
//! (`CACHE.in_scope(|| Arc::new(page))`).
//!
//! # Records, leak checks, no tracker
//!
//! The old block's live record (a leak check of its scope recording sites)
//! goes with its free; the new block is recorded if a check records the
//! target scope, with the hand-over's call stack. Without the tracker
//! installed ([`is_installed`](crate::is_installed) is false) every value
//! is given back as it is, unmoved, and nothing panics.

use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use crate::scope::{Scope, ScopeId, ScopeInstance};

mod sealed {
    pub trait Sealed {}
}

/// A value whose heap block can be handed to another scope: `Box<T>`,
/// `Vec<T>`, `String`, `Arc<T>`, `Rc<T>`. See the [module docs](self).
pub trait HandOver: sealed::Sealed + Sized {
    /// The value given back: the value itself, or for a reference-counted
    /// pointer `Result<Self, Shared<Self>>`.
    type Output;

    /// Moves the value's block into `to`; use [`hand_over`] or
    /// [`Scope::adopt`].
    #[doc(hidden)]
    fn hand_over_to(self, to: ScopeId) -> Self::Output;
}

/// Hands `value`'s heap block to scope `to`: from now on it is counted in
/// `to`, and its free (on any thread) credits `to`. See the
/// [module docs](self) for what can be handed over and what it costs.
///
/// ```
/// # #[global_allocator]
/// # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
/// #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
/// use scope_alloc_tracker::{hand_over, ScopeId};
///
/// let req = ScopeId::register("doc-ho-request", None).unwrap();
/// let pool = ScopeId::register("doc-ho-pool", None).unwrap();
/// let buf = req.in_scope(|| Box::new([1u64; 8]));
/// assert_eq!(req.stats().live_bytes, 64);
/// let buf = hand_over(buf, pool);
/// assert_eq!((req.stats().live_bytes, pool.stats().live_bytes), (0, 64));
/// std::thread::spawn(move || drop(buf)).join().unwrap();
/// assert_eq!(pool.stats().live_bytes, 0);
/// ```
pub fn hand_over<V: HandOver>(value: V, to: impl Into<ScopeId>) -> V::Output {
    value.hand_over_to(to.into())
}

/// A reference-counted value that other owners still share: its block
/// cannot move, so it was not handed over. [`into_inner`](Shared::into_inner)
/// gives it back unchanged.
pub struct Shared<V> {
    value: V,
    strong: usize,
    weak: usize,
}

impl<V> Shared<V> {
    /// The value, unchanged and still charged to its old scope.
    pub fn into_inner(self) -> V {
        self.value
    }
    /// Strong references when the hand-over was refused.
    pub fn strong_count(&self) -> usize {
        self.strong
    }
    /// Weak references when the hand-over was refused.
    pub fn weak_count(&self) -> usize {
        self.weak
    }
}

impl<V> fmt::Debug for Shared<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("strong", &self.strong)
            .field("weak", &self.weak)
            .finish_non_exhaustive()
    }
}

impl<V> fmt::Display for Shared<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot hand over a shared pointer ({} strong, {} weak references): its block cannot \
             move; hand it over before sharing it, or allocate it in the target scope",
            self.strong, self.weak
        )
    }
}

impl<V> std::error::Error for Shared<V> {}

/// Whether the tracker is installed, cached both ways: the global allocator
/// is fixed for the life of the process.
fn tracking() -> bool {
    static STATE: AtomicU8 = AtomicU8::new(0);
    match STATE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let yes = crate::is_installed();
            STATE.store(if yes { 1 } else { 2 }, Ordering::Relaxed);
            yes
        }
    }
}

// === impl HandOver ===

impl<T> sealed::Sealed for Box<T> {}
impl<T> HandOver for Box<T> {
    type Output = Box<T>;
    fn hand_over_to(self, to: ScopeId) -> Box<T> {
        if !tracking() {
            return self;
        }
        crate::allocator::move_box(self, to)
    }
}

impl<T> sealed::Sealed for Vec<T> {}
impl<T> HandOver for Vec<T> {
    type Output = Vec<T>;
    fn hand_over_to(mut self, to: ScopeId) -> Vec<T> {
        if std::mem::size_of::<T>() == 0 || self.capacity() == 0 || !tracking() {
            return self;
        }
        // Same capacity, so the same layout and the same bytes counted.
        let mut fresh = to.in_scope(|| Vec::with_capacity(self.capacity()));
        fresh.append(&mut self);
        fresh
    }
}

impl sealed::Sealed for String {}
impl HandOver for String {
    type Output = String;
    fn hand_over_to(self, to: ScopeId) -> String {
        if self.capacity() == 0 || !tracking() {
            return self;
        }
        let mut fresh = to.in_scope(|| String::with_capacity(self.capacity()));
        fresh.push_str(&self);
        fresh
    }
}

impl<T> sealed::Sealed for Arc<T> {}
impl<T> HandOver for Arc<T> {
    type Output = Result<Arc<T>, Shared<Arc<T>>>;
    fn hand_over_to(mut self, to: ScopeId) -> Self::Output {
        if Arc::get_mut(&mut self).is_none() {
            return Err(Shared {
                strong: Arc::strong_count(&self),
                weak: Arc::weak_count(&self),
                value: self,
            });
        }
        if !tracking() {
            return Ok(self);
        }
        match Arc::try_unwrap(self) {
            Ok(value) => Ok(to.in_scope(|| Arc::new(value))),
            // Unreachable: unique above, and we hold the only reference.
            Err(this) => Err(Shared {
                strong: Arc::strong_count(&this),
                weak: Arc::weak_count(&this),
                value: this,
            }),
        }
    }
}

impl<T> sealed::Sealed for Rc<T> {}
impl<T> HandOver for Rc<T> {
    type Output = Result<Rc<T>, Shared<Rc<T>>>;
    fn hand_over_to(mut self, to: ScopeId) -> Self::Output {
        if Rc::get_mut(&mut self).is_none() {
            return Err(Shared {
                strong: Rc::strong_count(&self),
                weak: Rc::weak_count(&self),
                value: self,
            });
        }
        if !tracking() {
            return Ok(self);
        }
        match Rc::try_unwrap(self) {
            Ok(value) => Ok(to.in_scope(|| Rc::new(value))),
            Err(this) => Err(Shared {
                strong: Rc::strong_count(&this),
                weak: Rc::weak_count(&this),
                value: this,
            }),
        }
    }
}

// === adopt ===

impl ScopeId {
    /// Hands `value`'s heap block to this scope ([`hand_over`]).
    pub fn adopt<V: HandOver>(self, value: V) -> V::Output {
        hand_over(value, self)
    }
}

impl Scope {
    /// Hands `value`'s heap block to this scope ([`hand_over`]); inside an
    /// instance, to the scope this one stands for there
    /// ([`Scope::current_id`]).
    ///
    /// ```
    /// # #[global_allocator]
    /// # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
    /// #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
    /// use std::sync::Arc;
    /// use scope_alloc_tracker::Scope;
    ///
    /// static CACHE: Scope = Scope::new("doc-adopt-cache");
    /// let page = CACHE.adopt(Arc::new([0u8; 512])).unwrap();
    /// assert_eq!(CACHE.stats().live_allocs, 1);
    /// // Shared: refused, the value comes back unchanged.
    /// let other = Arc::clone(&page);
    /// let refused = CACHE.adopt(page).unwrap_err();
    /// assert_eq!(refused.strong_count(), 2);
    /// # drop((refused.into_inner(), other));
    /// ```
    pub fn adopt<V: HandOver>(&self, value: V) -> V::Output {
        hand_over(value, self.current_id())
    }
}

impl ScopeInstance {
    /// Hands `value`'s heap block to this instance ([`hand_over`]).
    pub fn adopt<V: HandOver>(&self, value: V) -> V::Output {
        hand_over(value, self.id())
    }
}
