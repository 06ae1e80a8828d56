//! The in-memory sorted table that takes writes, with byte accounting.
//!
//! A [`Memtable`] is active (takes writes) until a checkpoint run freezes it;
//! frozen memtables are immutable and shared with the checkpointer through
//! an `Arc`. Deletes are tombstones (`None`) so that an incremental
//! checkpoint can persist them. All memtable allocations are charged to the
//! [`MEMTABLE`](crate::scopes::MEMTABLE) scope by the caller.

use std::collections::BTreeMap;
use std::ops::Bound;

/// Fixed per-entry cost used in byte accounting (tree node share, `Vec`
/// headers, LSN).
pub(crate) const ENTRY_OVERHEAD: usize = 64;

/// One version of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// `None` is a tombstone.
    pub(crate) value: Option<Vec<u8>>,
    /// LSN of the write that made this version.
    pub(crate) lsn: u64,
}

/// A sorted table of the latest version of each key written to it.
#[derive(Debug, Default)]
pub(crate) struct Memtable {
    map: BTreeMap<Vec<u8>, Entry>,
    bytes: usize,
}

/// Whether no key can lie between `start` and `end`: the start is above
/// the end, or they are equal and not both included. `BTreeMap::range`
/// panics on a start above the end and on equal excluded bounds.
pub(crate) fn is_empty_range(start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => {
            s >= e
        }
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
    }
}

fn cost(key: &[u8], value: &Option<Vec<u8>>) -> usize {
    key.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD
}

impl Memtable {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Inserts a version (a put, or a tombstone when `value` is `None`).
    pub(crate) fn insert(&mut self, key: Vec<u8>, value: Option<Vec<u8>>, lsn: u64) {
        let key_len = key.len();
        self.bytes += cost(&key, &value);
        if let Some(old) = self.map.insert(key, Entry { value, lsn }) {
            // The key is stored once: the old version's whole cost goes.
            self.bytes -= key_len + old.value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD;
        }
    }

    /// The version of `key`, if this table has one (tombstones included).
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.map.get(key)
    }

    /// Versions with keys between `start` and `end`, in key order; none
    /// if the range is empty or reversed.
    pub(crate) fn range<'a>(
        &'a self,
        start: Bound<&'a [u8]>,
        end: Bound<&'a [u8]>,
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a Entry)> + 'a {
        (!is_empty_range(start, end))
            .then(|| self.map.range::<[u8], _>((start, end)))
            .into_iter()
            .flatten()
    }

    /// All versions in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Entry)> {
        self.map.iter()
    }

    /// Moves the versions out (for merging into the base table).
    pub(crate) fn into_entries(self) -> impl Iterator<Item = (Vec<u8>, Entry)> {
        self.map.into_iter()
    }

    /// Accounted bytes (keys, values, per-entry overhead).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether no key was written.
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounting_follows_overwrites_and_tombstones() {
        let mut m = Memtable::new();
        m.insert(b"k".to_vec(), Some(vec![0; 10]), 1);
        assert_eq!(m.bytes(), 1 + 10 + ENTRY_OVERHEAD);
        m.insert(b"k".to_vec(), Some(vec![0; 4]), 2);
        assert_eq!(m.bytes(), 1 + 4 + ENTRY_OVERHEAD);
        m.insert(b"k".to_vec(), None, 3);
        assert_eq!(m.bytes(), 1 + ENTRY_OVERHEAD);
        assert_eq!(m.get(b"k").map(|e| e.lsn), Some(3));
    }

    #[test]
    fn reversed_and_empty_ranges_yield_nothing() {
        use Bound::{Excluded, Included, Unbounded};
        let mut m = Memtable::new();
        for k in [b"a", b"b", b"c"] {
            m.insert(k.to_vec(), Some(vec![1]), 1);
        }
        let keys = |s: Bound<&[u8]>, e: Bound<&[u8]>| m.range(s, e).count();
        assert_eq!(keys(Included(b"c"), Included(b"a")), 0);
        assert_eq!(keys(Excluded(b"b"), Excluded(b"b")), 0);
        assert_eq!(keys(Included(b"b"), Excluded(b"b")), 0);
        assert_eq!(keys(Excluded(b"b"), Included(b"b")), 0);
        assert_eq!(keys(Included(b"b"), Included(b"b")), 1);
        assert_eq!(keys(Excluded(b"a"), Unbounded), 2);
        assert_eq!(keys(Unbounded, Excluded(b"c")), 2);
    }
}
