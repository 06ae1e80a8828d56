//! Incremental checkpoint: the changes in the frozen memtables, i.e. every
//! key written in `(previous fence, fence]`, tombstones included.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::file::EntryRef;
use crate::memtable::Memtable;

/// Newest version of each key across `frozen` (oldest first), in key order.
pub(crate) fn collect(frozen: &[Arc<Memtable>]) -> Vec<EntryRef<'_>> {
    if let [only] = frozen {
        return only
            .iter()
            .map(|(k, e)| (k.as_slice(), e.value.as_deref()))
            .collect();
    }
    let mut merged: BTreeMap<&[u8], Option<&[u8]>> = BTreeMap::new();
    for m in frozen {
        for (k, e) in m.iter() {
            merged.insert(k, e.value.as_deref());
        }
    }
    merged.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_memtables_win_and_tombstones_stay() {
        let mut a = Memtable::new();
        a.insert(b"k".to_vec(), Some(b"old".to_vec()), 1);
        a.insert(b"x".to_vec(), Some(b"x".to_vec()), 2);
        let mut b = Memtable::new();
        b.insert(b"k".to_vec(), None, 3);
        let frozen = vec![Arc::new(a), Arc::new(b)];
        let got = collect(&frozen);
        assert_eq!(got, vec![(&b"k"[..], None), (&b"x"[..], Some(&b"x"[..]))]);
    }
}
