//! Dumps that happen without a call: at process exit when
//! `ALLOC_TRACKER_DUMP` names a file, and on SIGUSR1. Each runs this test
//! binary again as a child process (selected by `REPORT_TEST_CHILD`) and
//! checks the file it leaves behind.

use std::path::PathBuf;
use std::process::Command;

use alloc_tracker::report::{Report, ENV_DUMP, ENV_DUMP_FORMAT};
use alloc_tracker::{Jemalloc, ScopeId, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

const CHILD: &str = "REPORT_TEST_CHILD";

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("alloc-tracker-{}-{name}", std::process::id()))
}

/// The command that runs only the test `name` of this binary as a child.
fn child(name: &str, mode: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, mode)
        .env_remove(ENV_DUMP)
        .env_remove(ENV_DUMP_FORMAT);
    cmd
}

fn is_child(mode: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|m| m == mode)
}

/// Leaks `bytes` in a new scope named `name`.
fn leak_in_scope(name: &str, bytes: usize) {
    let s = ScopeId::register(name, None).unwrap();
    s.in_scope(|| std::mem::forget(vec![0u8; bytes]));
}

// === at exit ===

#[test]
fn child_dumps_at_exit() {
    if !is_child("exit") {
        return;
    }
    let handle = alloc_tracker::report::dump_triggers_from_env().unwrap();
    assert!(handle.is_some(), "{ENV_DUMP} was not seen");
    leak_in_scope("exit-child", 12_345);
    // The report is written when the process exits.
}

#[test]
fn the_environment_variable_dumps_a_report_at_exit() {
    let path = temp_path("exit.txt");
    let _ = std::fs::remove_file(&path);
    let out = child("child_dumps_at_exit", "exit")
        .env(ENV_DUMP, &path)
        .env(
            ENV_DUMP_FORMAT,
            if cfg!(feature = "json") {
                "json"
            } else {
                "text"
            },
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("dump failed"),
        "{out:?}"
    );
    let text = std::fs::read_to_string(&path).expect("the exit-time report was written");
    std::fs::remove_file(&path).unwrap();
    #[cfg(feature = "json")]
    {
        let report = Report::from_json(&text).unwrap();
        assert_eq!(report.scope("exit-child").unwrap().own.live_bytes, 12_345);
        assert_ne!(report.pid, std::process::id());
    }
    #[cfg(not(feature = "json"))]
    assert!(text.contains("exit-child"), "{text}");
    let _ = Report::default();
}

#[test]
fn an_unwritable_exit_dump_is_reported_on_stderr_not_a_crash() {
    let path = temp_path("no-such-dir").join("exit.txt");
    let out = child("child_dumps_at_exit", "exit")
        .env(ENV_DUMP, &path)
        .env(ENV_DUMP_FORMAT, "text")
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exit-time dump failed"), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
}

#[test]
fn an_invalid_format_variable_is_an_error() {
    // Checked in a child so this process's environment stays untouched.
    let out = child("child_reads_bad_env", "bad-env")
        .env(ENV_DUMP, temp_path("never.txt"))
        .env(ENV_DUMP_FORMAT, "yaml")
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
}

#[test]
fn child_reads_bad_env() {
    if !is_child("bad-env") {
        return;
    }
    assert_eq!(
        alloc_tracker::report::dump_triggers_from_env().unwrap_err(),
        alloc_tracker::report::OptionsError::UnknownFormat
    );
}

// === SIGUSR1 ===

#[cfg(all(unix, feature = "signal"))]
mod sigusr1 {
    use std::io::{BufRead, BufReader};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use alloc_tracker::report::{Dumps, Format};

    use super::{child, is_child, leak_in_scope, temp_path};

    const CHILD_PATH: &str = "REPORT_TEST_PATH";

    fn wait_for(path: &Path, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !path.exists() {
            assert!(Instant::now() < deadline, "{what}: no report within 15 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn child_dumps_on_sigusr1() {
        if !is_child("signal") {
            return;
        }
        let path = PathBuf::from(std::env::var_os(CHILD_PATH).unwrap());
        let _handle = Dumps::builder()
            .path(&path)
            .format(Format::Prometheus)
            .on_sigusr1()
            .install()
            .unwrap();
        leak_in_scope("signal-child", 4_242);
        println!("READY");
        // Stay alive until the dump is there.
        wait_for(&path, "child");
    }

    #[test]
    fn sigusr1_dumps_a_report() {
        let path = temp_path("signal.prom");
        let _ = std::fs::remove_file(&path);
        let mut proc = child("sigusr1::child_dumps_on_sigusr1", "signal")
            .env(CHILD_PATH, &path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(proc.stdout.take().unwrap()).lines();
        let mut ready = false;
        for line in stdout.by_ref() {
            if line.unwrap().trim_end().ends_with("READY") {
                ready = true;
                break;
            }
        }
        assert!(ready, "the child never got ready");
        assert!(!path.exists(), "a report before the signal");
        let kill = Command::new("kill")
            .args(["-USR1", &proc.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        wait_for(&path, "parent");
        // Read the child's output to its end, so it never writes to a closed
        // pipe.
        stdout.for_each(drop);
        let status = proc.wait().unwrap();
        assert!(status.success(), "the child died: {status:?}");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(
            text.contains("alloc_tracker_live_bytes{scope=\"signal-child\"} 4242\n"),
            "{text}"
        );
    }
}
