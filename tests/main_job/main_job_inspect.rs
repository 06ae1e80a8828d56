//! `ckptdb inspect` reads a data directory without changing it: same file
//! set, sizes, contents and modification times, even when recovery would
//! truncate a torn WAL tail and remove a stale checkpoint file. It lists
//! the `LOCK` file on its own line and says whether the database is open
//! (held by which process), again without creating or changing anything.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use crate::common;
use common::main_job::{ckptdb, inspect};

type Snapshot = BTreeMap<String, (u64, SystemTime, Vec<u8>)>;

fn snapshot(dir: &Path) -> Snapshot {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                (
                    meta.len(),
                    meta.modified().unwrap(),
                    std::fs::read(e.path()).unwrap(),
                ),
            )
        })
        .collect()
}

#[test]
fn inspect_does_not_modify_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("db");
    ckptdb()
        .args(["--writes", "6000", "--threads", "2", "--keys", "2000"])
        .args(["--value-size", "8..64", "--checkpoint-every", "2000"])
        .args(["--restart", "never", "--progress", "off", "--data-dir"])
        .arg(&data)
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success();

    // Damage recovery would repair: a torn WAL tail and a stale temp file.
    let mut wal: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    wal.sort();
    let last = wal.last().expect("a WAL segment");
    let mut bytes = std::fs::read(last).unwrap();
    bytes.extend_from_slice(&[0x17, 0, 0, 0, 1, 2, 3]);
    std::fs::write(last, &bytes).unwrap();
    std::fs::write(data.join("ckpt-00000000000000000099.dat.tmp"), b"half").unwrap();

    let before = snapshot(&data);
    let out = ckptdb()
        .arg("inspect")
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(snapshot(&data), before, "inspect changed the directory");

    assert!(stdout.contains("checkpoint chain"), "{stdout}");
    assert!(stdout.contains("torn tail at byte"), "{stdout}");
    assert!(stdout.contains("would be cut at byte"), "{stdout}");
    assert!(
        stdout.contains("remove ckpt-00000000000000000099.dat.tmp"),
        "{stdout}"
    );
    assert!(stdout.contains("replay the WAL from LSN"), "{stdout}");
    assert!(stdout.contains("nothing was modified"), "{stdout}");
}

fn lock_lines(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.contains("LOCK")).collect()
}

#[test]
fn inspect_says_whether_the_database_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("db");

    // Never opened: no LOCK file, and inspection does not create one.
    std::fs::create_dir(&data).unwrap();
    let stdout = inspect(&data);
    assert_eq!(
        lock_lines(&stdout),
        ["lock: no LOCK file: the database is not open"],
        "{stdout}"
    );
    assert!(
        !data.join(ckptdb::LOCK_FILE).exists(),
        "inspect created LOCK"
    );

    // Opened and closed by the main job: a LOCK file nobody holds, listed
    // on its own line only (not among the other files).
    ckptdb()
        .args(["--writes", "2000", "--threads", "1", "--keys", "500"])
        .args(["--value-size", "8..64", "--checkpoint-every", "1000"])
        .args(["--restart", "never", "--progress", "off", "--data-dir"])
        .arg(&data)
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success();
    let before = snapshot(&data);
    let stdout = inspect(&data);
    let lines = lock_lines(&stdout);
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].starts_with("lock: LOCK ("), "{stdout}");
    assert!(
        lines[0].ends_with("not held: the database is not open"),
        "{stdout}"
    );
    assert_eq!(snapshot(&data), before, "inspect changed the directory");

    // Open in this process: held, by our pid; the Db keeps working and
    // keeps its lock after the inspection.
    let opts = ckptdb::Options::builder()
        .runner(ckptdb::Runner::Manual)
        .build()
        .unwrap();
    let db = ckptdb::Db::open(&data, opts).unwrap();
    db.put(b"k", b"v").unwrap();
    let before = snapshot(&data);
    let stdout = inspect(&data);
    let lines = lock_lines(&stdout);
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(
        lines[0].contains(&format!(
            "held by process {}: the database is OPEN",
            std::process::id()
        )),
        "{stdout}"
    );
    assert_eq!(snapshot(&data), before, "inspect changed the directory");
    assert!(matches!(
        ckptdb::Db::open(&data, ckptdb::Options::builder().build().unwrap()),
        Err(ckptdb::OpenError::Locked { .. })
    ));
    db.put(b"k2", b"v").unwrap();
}
