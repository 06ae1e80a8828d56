//! Issue 13, item 3: bad input to a public API gets an empty result or a
//! typed error, never a panic. Random operation sequences against a
//! `BTreeMap` model, mixing valid calls with reversed and empty scan
//! ranges (`Memtable::range` used to panic: "range start is greater than
//! range end in BTreeMap"), keys and values at and past their limits, and
//! reads of keys no write may use.
//!
//! A closed `Db` cannot be called: `Db::close` takes the handle by value
//! (a `compile_fail` doctest on it pins that).

use crate::common;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use ckptdb::{CheckpointKind, Db, WriteError};
use proptest::prelude::*;

const MAX_KEY: usize = 8;
const MAX_VALUE: usize = 32;

#[derive(Debug, Clone)]
enum Action {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Get(Vec<u8>),
    Scan(Bound<Vec<u8>>, Bound<Vec<u8>>),
    Checkpoint(bool),
    Reopen,
}

/// Keys of every interesting length: empty, short, at the limit, one and
/// many bytes past it.
fn any_key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        6 => proptest::collection::vec(b'a'..b'e', 1..3),
        2 => proptest::collection::vec(b'a'..b'e', MAX_KEY..=MAX_KEY),
        2 => proptest::collection::vec(b'a'..b'e', MAX_KEY + 1..=MAX_KEY + 1),
        1 => proptest::collection::vec(any::<u8>(), MAX_KEY + 2..200),
    ]
}

fn any_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..4),
        1 => Just(vec![7; MAX_VALUE]),
        1 => Just(vec![7; MAX_VALUE + 1]),
        1 => proptest::collection::vec(any::<u8>(), MAX_VALUE + 2..300),
    ]
}

fn any_bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        any_key().prop_map(Bound::Included),
        any_key().prop_map(Bound::Excluded),
        Just(Bound::Unbounded),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (any_key(), any_value()).prop_map(|(k, v)| Action::Put(k, v)),
        2 => any_key().prop_map(Action::Delete),
        2 => any_key().prop_map(Action::Get),
        4 => (any_bound(), any_bound()).prop_map(|(s, e)| Action::Scan(s, e)),
        // The same key for both ends: equal bounds, every inclusion mix.
        2 => (any_key(), any::<(bool, bool)>()).prop_map(|(k, (a, b))| {
            let b1 = if a { Bound::Included(k.clone()) } else { Bound::Excluded(k.clone()) };
            let b2 = if b { Bound::Included(k) } else { Bound::Excluded(k) };
            Action::Scan(b1, b2)
        }),
        1 => any::<bool>().prop_map(Action::Checkpoint),
        1 => Just(Action::Reopen),
    ]
}

fn open(dir: &Path, storage: &Arc<common::CrashStorage>) -> Db {
    let opts = common::test_options()
        .max_key_len(MAX_KEY)
        .max_value_len(MAX_VALUE)
        .wal_segment_bytes(4096)
        .storage(storage.clone())
        .build()
        .unwrap();
    Db::open(dir, opts).unwrap()
}

fn valid_key(k: &[u8]) -> bool {
    !k.is_empty() && k.len() <= MAX_KEY
}

fn in_bounds(k: &[u8], start: &Bound<Vec<u8>>, end: &Bound<Vec<u8>>) -> bool {
    let above = match start {
        Bound::Included(s) => k >= s.as_slice(),
        Bound::Excluded(s) => k > s.as_slice(),
        Bound::Unbounded => true,
    };
    let below = match end {
        Bound::Included(e) => k <= e.as_slice(),
        Bound::Excluded(e) => k < e.as_slice(),
        Bound::Unbounded => true,
    };
    above && below
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn bad_input_gets_empty_results_or_typed_errors(actions in proptest::collection::vec(action(), 1..80)) {
        let _serial = common::serial();
        let dir = Path::new("/db");
        let storage = common::CrashStorage::new();
        let mut db = open(dir, &storage);
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for a in actions {
            match a {
                Action::Put(k, v) => match db.put(&k, &v) {
                    Ok(_) => {
                        prop_assert!(valid_key(&k) && v.len() <= MAX_VALUE);
                        model.insert(k, v);
                    }
                    Err(WriteError::KeyTooLarge { len, max }) => {
                        prop_assert!(!valid_key(&k));
                        prop_assert_eq!((len, max), (k.len(), MAX_KEY));
                    }
                    Err(WriteError::ValueTooLarge { len, max }) => {
                        prop_assert!(valid_key(&k));
                        prop_assert_eq!((len, max), (v.len(), MAX_VALUE));
                    }
                    Err(e) => prop_assert!(false, "put: {}", e),
                },
                Action::Delete(k) => match db.delete(&k) {
                    Ok(_) => {
                        prop_assert!(valid_key(&k));
                        model.remove(&k);
                    }
                    Err(WriteError::KeyTooLarge { .. }) => prop_assert!(!valid_key(&k)),
                    Err(e) => prop_assert!(false, "delete: {}", e),
                },
                Action::Get(k) => prop_assert_eq!(db.get(&k), model.get(&k).cloned()),
                Action::Scan(start, end) => {
                    let want: Vec<(Vec<u8>, Vec<u8>)> = model
                        .iter()
                        .filter(|(k, _)| in_bounds(k, &start, &end))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    prop_assert_eq!(db.scan((start, end)), want);
                }
                Action::Checkpoint(global) => {
                    let kind = if global { CheckpointKind::Global } else { CheckpointKind::Incremental };
                    prop_assert!(db.checkpoint_now(kind).unwrap().drained());
                }
                Action::Reopen => {
                    drop(db);
                    db = open(dir, &storage);
                }
            }
        }
        let all: BTreeMap<Vec<u8>, Vec<u8>> = db.scan(..).into_iter().collect();
        prop_assert_eq!(all, model);
    }
}

#[test]
fn reversed_and_empty_scans_return_nothing() {
    let _serial = common::serial();
    let storage = common::CrashStorage::new();
    let db = open(Path::new("/db"), &storage);
    for k in [b"a", b"b", b"c"] {
        db.put(k, b"v").unwrap();
    }
    db.checkpoint_now(CheckpointKind::Incremental).unwrap();
    db.put(b"bb", b"v").unwrap();
    // Reversed, in the memtable and in the checkpointed base alike.
    assert!(db.scan(b"c".to_vec()..b"a".to_vec()).is_empty());
    assert!(db.scan(b"c".to_vec()..=b"a".to_vec()).is_empty());
    assert!(db
        .scan((
            Bound::Excluded(b"b".to_vec()),
            Bound::Excluded(b"b".to_vec())
        ))
        .is_empty());
    assert!(db.scan(b"b".to_vec()..b"b".to_vec()).is_empty());
    assert_eq!(db.scan(b"b".to_vec()..=b"b".to_vec()).len(), 1);
    assert_eq!(db.scan(b"b".to_vec()..b"c".to_vec()).len(), 2);
}
