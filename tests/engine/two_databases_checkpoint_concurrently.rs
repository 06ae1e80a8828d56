//! Two databases in one process checkpoint at the same time, each in its
//! own instance of the `checkpoint` scope (`checkpoint#n`): with the
//! planted leak switched on in one of them for one run, exactly that run of
//! that database is flagged, and every run of the other drains.

use crate::common;

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use ckptdb::{CheckpointError, CheckpointKind, CheckpointReport, Db, Faults, SyncPolicy};

const ROUNDS: u32 = 4;
/// The round in which database A's planted leak is on.
const LEAK_ROUND: u32 = 1;

/// A rendezvous of two threads that fails instead of hanging: if runs of
/// different databases were serialised, the second `begin` would wait for
/// the first run, which waits here for it.
#[derive(Default)]
struct Meet {
    arrived: Mutex<u32>,
    cv: Condvar,
}

impl Meet {
    fn wait(&self, what: &str) {
        let mut n = self.arrived.lock().unwrap();
        *n += 1;
        let target = n.div_ceil(2) * 2;
        let (n, timeout) = self
            .cv
            .wait_timeout_while(n, Duration::from_secs(60), |n| *n < target)
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "the other database never reached {what}: are runs of different databases serialised?"
        );
        drop(n);
        self.cv.notify_all();
    }
}

/// What one database's thread saw, run by run.
type Runs = Vec<Result<CheckpointReport, CheckpointError>>;

fn checkpoint_rounds(db: &Db, faults: &Faults, leaky: bool, meet: &Meet) -> Runs {
    let mut runs = Vec::new();
    for round in 0..ROUNDS {
        for i in 0..300u32 {
            let value = [round as u8; 100];
            db.put(format!("key{i}").as_bytes(), &value).unwrap();
        }
        faults.set_leak(leaky && round == LEAK_ROUND);
        // Both runs are begun (leak checks active, fences picked) before
        // either finishes: they overlap for certain.
        let run = db.checkpointer().begin(CheckpointKind::Incremental);
        meet.wait(&format!("begin of round {round}"));
        runs.push(run.and_then(|r| r.finish()));
        faults.set_leak(false);
        meet.wait(&format!("end of round {round}"));
    }
    runs
}

fn open(faults: &Arc<Faults>) -> (tempfile::TempDir, Db) {
    let dir = common::tempdir();
    let opts = common::test_options()
        .sync(SyncPolicy::None)
        .faults(Arc::clone(faults))
        .build()
        .unwrap();
    let db = Db::open(dir.path(), opts).unwrap();
    (dir, db)
}

#[test]
fn only_the_leaking_database_is_flagged_while_the_other_drains_every_run() {
    let _serial = common::serial();
    // Strict mode for both: a run that saw the other database's leak would
    // fail instead of draining.
    let faults_a = Arc::new(Faults::default());
    let faults_b = Arc::new(Faults::default());
    let (_dir_a, a) = open(&faults_a);
    let (_dir_b, b) = open(&faults_b);

    let (scope_a, scope_b) = (a.checkpoint_scope(), b.checkpoint_scope());
    assert_ne!(
        scope_a, scope_b,
        "each database has its own checkpoint scope"
    );
    for s in [scope_a, scope_b] {
        assert!(s.path().starts_with("checkpoint#"), "{}", s.path());
        assert_eq!(s.kind(), ckptdb::scopes::CHECKPOINT.id());
    }

    let meet = Meet::default();
    let (runs_a, runs_b) = std::thread::scope(|s| {
        let ta = s.spawn(|| checkpoint_rounds(&a, &faults_a, true, &meet));
        let tb = s.spawn(|| checkpoint_rounds(&b, &faults_b, false, &meet));
        (ta.join().unwrap(), tb.join().unwrap())
    });

    // A: exactly the leaking run fails, with a report on A's own scope
    // naming the planted function; its other runs drain.
    for (round, run) in runs_a.iter().enumerate() {
        if round as u32 == LEAK_ROUND {
            let Err(CheckpointError::Leak(report)) = run else {
                panic!("A round {round}: expected a leak, got {run:?}");
            };
            assert_eq!(report.scope, scope_a.path(), "{report}");
            assert!(report.leaked_bytes >= 300 * 100, "{report}");
            assert!(
                report
                    .sites
                    .iter()
                    .all(|s| s.scope.starts_with(&scope_a.path())),
                "{report}"
            );
            assert!(
                format!("{report}").contains("encode_batch_leaky"),
                "{report}"
            );
        } else {
            let report = run
                .as_ref()
                .unwrap_or_else(|e| panic!("A round {round}: {e}"));
            assert!(report.drained(), "A round {round}: {report:?}");
            assert!(!report.empty, "A round {round}: {report:?}");
        }
    }
    // B: every run drains, to zero, while A's leak is live in the process.
    for (round, run) in runs_b.iter().enumerate() {
        let report = run
            .as_ref()
            .unwrap_or_else(|e| panic!("B round {round}: {e}"));
        assert!(report.drained(), "B round {round}: {report:?}");
        assert!(
            !report.empty && report.allocated_bytes > 0,
            "B round {round}: {report:?}"
        );
    }
    assert_eq!(scope_b.stats_with_children().live_bytes, 0);
    assert!(scope_a.stats_with_children().live_bytes >= 300 * 100);

    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.leaks_detected, sa.checkpoints_failed), (1, 1));
    assert_eq!(sa.checkpoints_ok, u64::from(ROUNDS) - 1);
    assert_eq!((sb.leaks_detected, sb.checkpoints_failed), (0, 0));
    assert_eq!(sb.checkpoints_ok, u64::from(ROUNDS));
    // Closing releases the database's instance; A's still holds the planted
    // leak's bytes, so it stays in the table marked released (B's drained
    // instance is recycled at once, its id no longer meaningful).
    assert!(!scope_a.is_released());
    a.close().unwrap();
    assert!(scope_a.is_released(), "{}", scope_a.path());
    b.close().unwrap();
}
