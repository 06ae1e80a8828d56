//! Is `TrackingAlloc` this program's global allocator?

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::NotInstalled;
use crate::hot::counters;
use crate::hot::thread_state;
use crate::ScopeId;

/// Set once a probe saw the tracker count an allocation (it cannot stop
/// being installed).
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Whether [`TrackingAlloc`](crate::TrackingAlloc) is this program's
/// `#[global_allocator]`.
///
/// Without it every figure is zero and no leak check can fail, so leak
/// checks refuse to run ([`NotInstalled`]). The first positive answer is
/// cached; until then each call allocates one 8-byte box (charged to the
/// tracker's internal scope) and checks that it was counted.
///
/// ```
/// # #[global_allocator]
/// # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
/// #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
/// assert!(scope_alloc_tracker::is_installed());
/// ```
pub fn is_installed() -> bool {
    if INSTALLED.load(Ordering::Relaxed) {
        return true;
    }
    // Allocations under the re-entrancy guard are charged to INTERNAL when
    // the tracker is installed; the count only grows.
    let before = counters::read(ScopeId::INTERNAL).allocs;
    thread_state::internal(|| drop(std::hint::black_box(Box::new(0u64))));
    let after = counters::read(ScopeId::INTERNAL).allocs;
    let yes = after > before;
    if yes {
        INSTALLED.store(true, Ordering::Relaxed);
    }
    yes
}

/// [`is_installed`] as a `Result`, for `?`.
///
/// # Errors
/// [`NotInstalled`], whose message names the missing
/// `#[global_allocator]` line.
pub fn ensure_installed() -> Result<(), NotInstalled> {
    if is_installed() {
        Ok(())
    } else {
        Err(NotInstalled)
    }
}
