//! The one unsafe step of a hand-over (`crate::hand_over`): moving a boxed
//! value into a block allocated in another scope without running its
//! destructor and without passing it through the stack (a `Box<[u8; 1 <<
//! 20]>` would overflow a debug build's stack if moved by value).

use core::mem::{size_of, MaybeUninit};
use core::ptr;

use crate::scope::ScopeId;

/// Moves `*b` into a new box allocated while `to` is current; the old
/// block is freed (credited to the scope that allocated it). A box of a
/// zero-sized type owns no block and is returned as it is.
pub(crate) fn move_box<T>(b: Box<T>, to: ScopeId) -> Box<T> {
    if size_of::<T>() == 0 {
        return b;
    }
    let mut fresh: Box<MaybeUninit<T>> = to.in_scope(Box::new_uninit);
    let old = Box::into_raw(b);
    // SAFETY: `old` comes from `Box::into_raw`, so it is valid for reads of
    // one initialised `T`; `fresh` is a distinct live allocation with room
    // for one `T` (same layout), so the two ranges do not overlap.
    unsafe { ptr::copy_nonoverlapping(old, fresh.as_mut_ptr(), 1) };
    // SAFETY: `old` was allocated by `Box<T>` with `Layout::new::<T>()`,
    // which is the layout of `MaybeUninit<T>`; rebuilding the box as
    // `MaybeUninit<T>` frees the block without dropping the `T`, whose
    // bits now live (once) in `fresh`.
    drop(unsafe { Box::from_raw(old.cast::<MaybeUninit<T>>()) });
    // SAFETY: `fresh` was fully initialised by the copy above.
    unsafe { fresh.assume_init() }
}
