//! The jemalloc controls the arenas use, each behind a typed function.
//!
//! tikv-jemalloc-ctl models none of these names (its typed API covers the
//! global `stats.*`, `opt.*`, `arenas.narenas`...; `stats/jemalloc.rs` uses
//! it for those). Here its typed `raw` layer does the `mallctl` calls: the
//! value's type is the function's type parameter, and the per-arena names
//! go through a MIB (`mallctlnametomib`, then the index patched in) instead
//! of names built as strings. `arenas.create` is the one raw `mallctl`
//! call left (in `mod.rs`): it reads a pointer and writes an index, two
//! types `raw::update` cannot express.
//!
//! Nothing here allocates: `mallctl` uses jemalloc's internal allocator.

use core::ffi::c_uint;

use tikv_jemalloc_ctl::raw;

/// `tcache.create`: a new explicit tcache's index.
pub(super) fn tcache_create() -> Option<c_uint> {
    // SAFETY: "tcache.create" reads as an `unsigned` (`c_uint`).
    unsafe { raw::read::<c_uint>(b"tcache.create\0") }.ok()
}

/// `tcache.destroy`: flushes and destroys explicit tcache `index`; `false`
/// if jemalloc refused.
pub(super) fn tcache_destroy(index: c_uint) -> bool {
    // SAFETY: "tcache.destroy" is written with an `unsigned` (`c_uint`).
    unsafe { raw::write::<c_uint>(b"tcache.destroy\0", index) }.is_ok()
}

/// jemalloc's `MALLCTL_ARENAS_ALL`: the index meaning "all arenas merged".
const ARENAS_ALL: usize = 4096;

/// `arena.<index>.dirty_decay_ms = ms`; `false` if jemalloc refused.
pub(super) fn set_dirty_decay_ms(index: c_uint, ms: isize) -> bool {
    let mut mib = [0usize; 3];
    if raw::name_to_mib(b"arena.0.dirty_decay_ms\0", &mut mib).is_err() {
        return false;
    }
    mib[1] = index as usize;
    // SAFETY: "arena.<i>.dirty_decay_ms" is written with an `ssize_t`
    // (`isize`).
    unsafe { raw::write_mib::<isize>(&mib, ms) }.is_ok()
}

/// `stats.arenas.<MALLCTL_ARENAS_ALL>.tcache_bytes`, as of the last
/// `epoch` advance.
pub(super) fn tcache_bytes_all_arenas() -> Option<usize> {
    let mut mib = [0usize; 4];
    raw::name_to_mib(b"stats.arenas.0.tcache_bytes\0", &mut mib).ok()?;
    mib[2] = ARENAS_ALL;
    // SAFETY: "stats.arenas.<i>.tcache_bytes" reads as a `size_t` (`usize`).
    unsafe { raw::read_mib::<usize>(&mib) }.ok()
}
