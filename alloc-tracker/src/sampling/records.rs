//! The live-record table: one entry per recorded block, keyed by address.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use once_cell::sync::Lazy;

use super::stacks::StackId;
use crate::scope::{ScopeId, MAX_SCOPES};

/// What is known of a recorded live block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    /// The scope the block was allocated in.
    pub(crate) scope: ScopeId,
    /// Requested size.
    pub(crate) size: usize,
    /// Tracker's number of the allocating thread.
    pub(crate) thread: u32,
    /// Global allocation sequence number (orders records against checks).
    pub(crate) seq: u64,
    /// Call stack of the allocation.
    pub(crate) stack: StackId,
    /// Made for a leak check (every allocation of the scope recorded).
    pub(crate) exact: bool,
    /// Made by sampling; `weight` estimates the bytes it stands for.
    pub(crate) sampled: bool,
    /// Bytes this record stands for: `size` for exact records.
    pub(crate) weight: u64,
}

/// Hashes a block address with one multiplication (Fibonacci hashing):
/// addresses are not chosen by an adversary, and SipHash cost as much as
/// the rest of a recorded allocation's bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct AddrHasher(u64);

impl std::hash::Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, v: usize) {
        self.0 = (v as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Keyed by [`key`]`(address)`, never the address itself: see [`key`].
type Records = DashMap<usize, Record, std::hash::BuildHasherDefault<AddrHasher>>;

/// The table's key for a block address: the address bit-inverted. The
/// reachability scan of a failed leak check (`leak/reach`) reads all of the
/// process's memory, this table included; a plain address here (or in a
/// freed bucket the map did not overwrite) would make every recorded block
/// look held. An inverted user-space address has its top bits set, so it
/// never looks like a pointer. Its own inverse.
#[inline]
const fn key(addr: usize) -> usize {
    !addr
}

static RECORDS: Lazy<Records> = Lazy::new(Records::default);
static SEQ: AtomicU64 = AtomicU64::new(1);
static STALE: AtomicU64 = AtomicU64::new(0);
/// Per scope: frees of exactly recorded blocks made by another thread or
/// while another scope was current.
static FREED_ELSEWHERE: [AtomicU64; MAX_SCOPES] = [const { AtomicU64::new(0) }; MAX_SCOPES];

pub(crate) fn next_seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// The sequence number the next record will get.
pub(crate) fn current_seq() -> u64 {
    SEQ.load(Ordering::Relaxed)
}

/// Inserts a record; `false` if the table could not take it.
pub(crate) fn insert(addr: usize, r: Record) -> bool {
    RECORDS.insert(key(addr), r);
    true
}

pub(crate) fn remove(addr: usize, _tag: crate::hot::tag::Tag, thread: u32, scope: ScopeId) {
    if let Some((_, r)) = RECORDS.remove(&key(addr)) {
        if r.exact && (r.thread != thread || r.scope != scope) {
            FREED_ELSEWHERE[r.scope.index()].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Moves a record to a new address and size; `false` if there was none.
pub(crate) fn rekey(old: usize, new: usize, new_size: usize) -> bool {
    match RECORDS.remove(&key(old)) {
        Some((_, mut r)) => {
            if r.exact {
                r.weight = new_size as u64;
            }
            r.size = new_size;
            RECORDS.insert(key(new), r);
            true
        }
        None => false,
    }
}

pub(crate) fn note_stale() {
    STALE.fetch_add(1, Ordering::Relaxed);
}

/// Frees of `scope`'s recorded blocks made by another thread or scope.
pub(crate) fn freed_elsewhere(scope: ScopeId) -> u64 {
    FREED_ELSEWHERE[scope.index()].load(Ordering::Relaxed)
}

/// Calls `f` on every record. Runs under the re-entrancy guard (callers'
/// duty); `f` must not allocate through recorded scopes.
pub(crate) fn for_each_record(mut f: impl FnMut(usize, &Record)) {
    for e in RECORDS.iter() {
        f(key(*e.key()), e.value());
    }
}
