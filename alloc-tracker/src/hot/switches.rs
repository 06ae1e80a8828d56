//! The global switches the allocation hot path reads, in one word: while
//! it is zero, no budget is set and no recording leak check runs, so the
//! fast path (`allocator/fast_path.rs`) may count an allocation alone.
//!
//! ```text
//!  31        30 ..................................... 0
//! +---------+----------------------------------------+
//! | budgets |  recording leak checks running (count) |
//! +---------+----------------------------------------+
//! ```

use std::sync::atomic::{AtomicU32, Ordering};

static WORD: AtomicU32 = AtomicU32::new(0);
const BUDGETS: u32 = 1 << 31;

/// No budget set and no recording leak check running: one relaxed load.
#[cfg_attr(not(feature = "jemalloc"), allow(dead_code))]
#[inline(always)]
pub(crate) fn quiet() -> bool {
    WORD.load(Ordering::Relaxed) == 0
}

/// Whether some scope has a budget.
#[inline(always)]
pub(crate) fn budgets() -> bool {
    WORD.load(Ordering::Relaxed) & BUDGETS != 0
}

/// Whether some recording leak check is running.
#[inline(always)]
pub(crate) fn recording() -> bool {
    WORD.load(Ordering::Relaxed) & !BUDGETS != 0
}

/// Some scope has a budget (`true`) or none has any more (`false`).
pub(crate) fn set_budgets(on: bool) {
    if on {
        WORD.fetch_or(BUDGETS, Ordering::SeqCst);
    } else {
        WORD.fetch_and(!BUDGETS, Ordering::SeqCst);
    }
}

/// A recording leak check starts.
pub(crate) fn recording_started() {
    WORD.fetch_add(1, Ordering::SeqCst);
}

/// A recording leak check ends (one call per [`recording_started`]).
pub(crate) fn recording_ended() {
    WORD.fetch_sub(1, Ordering::SeqCst);
}
