//! One `Db` per directory at a time: a second open, in this process or
//! another, is refused with `OpenError::Locked` naming the directory and
//! the holder's pid; a lock file left by a killed process blocks nobody;
//! `inspect` reads the directory while it is open. Without the lock, two
//! handles on one directory both appended the same LSN and the next open
//! failed with "record LSN out of sequence".
//!
//! A test binary of its own: its tests spawn child processes, and a child
//! forked while another test holds a database's LOCK file keeps a copy of
//! that descriptor until its `exec` (see `tests/engine/main.rs`).

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ckptdb::inspect::FileRole;
use ckptdb::{Db, OpenError, LOCK_FILE};
use scope_alloc_tracker::{Jemalloc, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

/// Set in the child process: the directory it opens and holds.
const CHILD_DIR: &str = "CKPTDB_TEST_LOCK_HOLDER_DIR";
/// The file the child creates once it holds the lock.
const READY: &str = "child-holds-the-lock";

/// The tests of this file run one at a time. A test that spawns a child
/// process forks this one, and between the fork and the child's `exec` the
/// child holds a copy of every open descriptor, the LOCK file of another
/// test's database included: that test's reopen after `close` then found
/// the directory still locked (1 run in 5).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn open(dir: &Path) -> Result<Db, OpenError> {
    Db::open(dir, common::test_options().build().unwrap())
}

fn assert_locked(err: OpenError, dir: &Path, pid: u32) {
    let msg = err.to_string();
    let OpenError::Locked { dir: d, holder } = err else {
        panic!("expected OpenError::Locked, got {msg}");
    };
    assert_eq!(d, dir);
    assert_eq!(holder, Some(pid), "{msg}");
    assert!(msg.contains(&dir.display().to_string()), "{msg}");
    assert!(msg.contains(&pid.to_string()), "{msg}");
}

#[test]
fn second_open_in_the_same_process_is_refused() {
    let _serial = serial();
    let dir = common::tempdir();
    let a = open(dir.path()).unwrap();
    a.put(b"k1", b"a").unwrap();
    assert_locked(
        open(dir.path()).unwrap_err(),
        dir.path(),
        std::process::id(),
    );
    // Refused twice in a row, and from another thread: the lock is per
    // open file description, not per process or thread.
    let err = std::thread::scope(|s| s.spawn(|| open(dir.path())).join().unwrap());
    assert_locked(err.unwrap_err(), dir.path(), std::process::id());
    // The first handle was not disturbed.
    a.put(b"k2", b"a").unwrap();
    a.close().unwrap();
    // Closing releases the lock; the log is intact (one LSN per write).
    let b = open(dir.path()).unwrap();
    assert_eq!(b.get(b"k1").as_deref(), Some(&b"a"[..]));
    assert_eq!(b.get(b"k2").as_deref(), Some(&b"a"[..]));
    assert_eq!(b.stats().last_lsn, 2);
    drop(b);
    // Dropping releases it too.
    drop(open(dir.path()).unwrap());
}

/// Not a test on its own: the body of the child process of
/// `second_process_is_refused_and_a_killed_holder_blocks_nobody`.
#[test]
fn child_holds_lock() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let dir = Path::new(&dir);
    let db = open(dir).unwrap();
    db.put(b"child", b"1").unwrap();
    std::fs::write(dir.join(READY), b"").unwrap();
    // Hold until killed (bounded, in case the parent died).
    std::thread::sleep(Duration::from_secs(120));
    drop(db);
}

fn spawn_holder(dir: &Path) -> Child {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_holds_lock", "--test-threads=1", "--quiet"])
        .env(CHILD_DIR, dir)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !dir.join(READY).exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the child did not take the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn second_process_is_refused_and_a_killed_holder_blocks_nobody() {
    let _serial = serial();
    let dir = common::tempdir();
    let mut child = spawn_holder(dir.path());
    assert_locked(open(dir.path()).unwrap_err(), dir.path(), child.id());

    // SIGKILL: no destructor runs, the LOCK file stays with the child's pid.
    child.kill().unwrap();
    child.wait().unwrap();
    let lock = dir.path().join(LOCK_FILE);
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        child.id().to_string()
    );
    let db = open(dir.path()).unwrap();
    assert_eq!(db.get(b"child").as_deref(), Some(&b"1"[..]));
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        std::process::id().to_string(),
        "the new holder records its pid"
    );
}

#[test]
fn a_lock_file_nobody_holds_does_not_block() {
    let _serial = serial();
    let dir = common::tempdir();
    std::fs::write(dir.path().join(LOCK_FILE), b"999999999\n").unwrap();
    drop(open(dir.path()).unwrap());
    std::fs::write(dir.path().join(LOCK_FILE), b"not a pid").unwrap();
    drop(open(dir.path()).unwrap());
}

#[test]
fn inspect_reads_an_open_directory_without_locking_it() {
    let _serial = serial();
    let dir = common::tempdir();
    let db = open(dir.path()).unwrap();
    db.put(b"k", b"v").unwrap();
    let ins = ckptdb::inspect::inspect(dir.path()).unwrap();
    let plan = ins.recovery.as_ref().expect("recovery would succeed");
    assert_eq!(plan.keys, 1);
    let lock = ins.files.iter().find(|f| f.name == LOCK_FILE).unwrap();
    assert_eq!(lock.role, FileRole::Lock);
    // Inspection left the lock with the Db, which still works.
    assert_locked(
        open(dir.path()).unwrap_err(),
        dir.path(),
        std::process::id(),
    );
    db.put(b"k2", b"v").unwrap();
}
