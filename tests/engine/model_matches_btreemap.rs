//! Property test: random put/delete/checkpoint/reopen/power-cut sequences
//! against a `BTreeMap` model. Runs on `CrashStorage`; a power cut
//! (`crash()`) after `sync()` must keep everything.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ckptdb::{CheckpointKind, Db, SyncPolicy};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Action {
    Put(u8, Vec<u8>),
    Delete(u8),
    Checkpoint(bool),
    Reopen,
    SyncThenPowerCut,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (0u8..40, proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(k, v)| Action::Put(k, v)),
        2 => (0u8..40).prop_map(Action::Delete),
        2 => any::<bool>().prop_map(Action::Checkpoint),
        1 => Just(Action::Reopen),
        1 => Just(Action::SyncThenPowerCut),
    ]
}

fn open(dir: &Path, storage: &Arc<common::CrashStorage>) -> Db {
    let opts = common::test_options()
        .sync(SyncPolicy::None)
        .max_incrementals(2)
        .wal_segment_bytes(4096)
        .storage(storage.clone())
        .build()
        .unwrap();
    Db::open(dir, opts).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_model(actions in proptest::collection::vec(action(), 1..60)) {
        let _serial = common::serial();
        let dir = Path::new("/db");
        let mut storage = common::CrashStorage::new();
        let mut db = open(dir, &storage);
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for a in actions {
            match a {
                Action::Put(k, v) => {
                    let key = vec![b'k', k];
                    db.put(&key, &v).unwrap();
                    model.insert(key, v);
                }
                Action::Delete(k) => {
                    let key = vec![b'k', k];
                    db.delete(&key).unwrap();
                    model.remove(&key);
                }
                Action::Checkpoint(global) => {
                    let kind = if global { CheckpointKind::Global } else { CheckpointKind::Incremental };
                    let r = db.checkpoint_now(kind).unwrap();
                    prop_assert!(r.drained());
                    prop_assert_eq!(db.check_file_invariant().unwrap(), Ok(()));
                }
                Action::Reopen => {
                    drop(db);
                    db = open(dir, &storage);
                }
                Action::SyncThenPowerCut => {
                    db.sync().unwrap();
                    storage = storage.crash();
                    drop(db);
                    db = open(dir, &storage);
                }
            }
            let got: BTreeMap<Vec<u8>, Vec<u8>> = db.scan(..).into_iter().collect();
            prop_assert_eq!(&got, &model);
        }
    }
}

/// Power cut after N syncs during a write + checkpoint workload: every
/// write acknowledged (synced) before the cut is there after reboot, and
/// nothing else but the one write in flight.
#[test]
fn power_cut_keeps_every_synced_write() {
    let _serial = common::serial();
    let dir = Path::new("/db");
    for freeze in (5..400).step_by(23) {
        let storage = common::CrashStorage::new();
        storage.freeze_after(freeze);
        let opts = common::test_options()
            .sync(SyncPolicy::EveryWrite)
            .max_incrementals(2)
            .wal_segment_bytes(4096)
            .storage(storage.clone())
            .build()
            .unwrap();
        let db = Db::open(dir, opts).unwrap();
        let mut states = vec![BTreeMap::new()];
        let mut acked = 0;
        for n in 0..300u32 {
            let key = format!("k{}", n % 37).into_bytes();
            let mut next = states.last().cloned().unwrap_or_default();
            if n % 11 == 0 {
                db.delete(&key).unwrap();
                next.remove(&key);
            } else {
                let v = n.to_le_bytes().to_vec();
                db.put(&key, &v).unwrap();
                next.insert(key, v);
            }
            states.push(next);
            if !storage.is_frozen() {
                acked = n as usize + 1;
            }
            if n % 25 == 24 {
                let kind = if n % 100 == 99 {
                    CheckpointKind::Global
                } else {
                    CheckpointKind::Incremental
                };
                db.checkpoint_now(kind).unwrap();
            }
        }
        let rebooted = storage.crash();
        drop(db);
        let opts = common::test_options()
            .storage(rebooted.clone())
            .build()
            .unwrap();
        let db = Db::open(dir, opts).unwrap_or_else(|e| panic!("freeze {freeze}: {e}"));
        let got: BTreeMap<Vec<u8>, Vec<u8>> = db.scan(..).into_iter().collect();
        assert!(
            got == states[acked] || states.get(acked + 1) == Some(&got),
            "freeze after {freeze} syncs: state is not the model after {acked} acked writes"
        );
    }
}
