//! Global checkpoint: the full image `[0, fence]` (base table plus frozen
//! memtables, tombstones applied). Once published it replaces the chain.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::file::EntryRef;
use crate::memtable::Memtable;

/// The checkpointed base table: the image at the manifest's checkpoint LSN.
pub(crate) type Base = BTreeMap<Vec<u8>, Vec<u8>>;

/// Every live key of `base` overlaid with `frozen` (oldest first), in key
/// order, without tombstones.
pub(crate) fn collect<'a>(base: &'a Base, frozen: &'a [Arc<Memtable>]) -> Vec<EntryRef<'a>> {
    if frozen.is_empty() {
        return base
            .iter()
            .map(|(k, v)| (k.as_slice(), Some(v.as_slice())))
            .collect();
    }
    let mut merged: BTreeMap<&[u8], Option<&[u8]>> = base
        .iter()
        .map(|(k, v)| (k.as_slice(), Some(v.as_slice())))
        .collect();
    for m in frozen {
        for (k, e) in m.iter() {
            merged.insert(k, e.value.as_deref());
        }
    }
    merged.into_iter().filter(|(_, v)| v.is_some()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_remove_base_keys() {
        let mut base = Base::new();
        base.insert(b"a".to_vec(), b"1".to_vec());
        base.insert(b"b".to_vec(), b"2".to_vec());
        let mut m = Memtable::new();
        m.insert(b"a".to_vec(), None, 5);
        m.insert(b"c".to_vec(), Some(b"3".to_vec()), 6);
        let frozen = vec![Arc::new(m)];
        let got = collect(&base, &frozen);
        assert_eq!(
            got,
            vec![(&b"b"[..], Some(&b"2"[..])), (&b"c"[..], Some(&b"3"[..]))]
        );
    }
}
