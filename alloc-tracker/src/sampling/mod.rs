//! Where bytes came from: live-allocation records (leak checks) and
//! byte-interval samples. Filled in by the leak-check work.

use crate::allocator::Tag;
use crate::thread_state::ThreadState;

#[inline(always)]
pub(crate) fn on_alloc(_t: &ThreadState, tag: Tag, _addr: usize, _bytes: usize) -> Tag {
    tag
}

#[cold]
#[inline(never)]
pub(crate) fn on_free_recorded(_addr: usize, _tag: Tag) {}

#[inline(always)]
pub(crate) fn on_realloc(_old: usize, _new: usize, tag: Tag, _new_size: usize) -> Tag {
    tag
}
