// Own test binary: its children dump at exit and on SIGUSR1 (ALLOC_TRACKER_DUMP*).
//! Dumps that happen without a call: at process exit when
//! `ALLOC_TRACKER_DUMP` names a file, and on SIGUSR1. Each runs this test
//! binary again as a child process (selected by `REPORT_TEST_CHILD`) and
//! checks the file it leaves behind.
#![cfg(feature = "jemalloc")]

use std::path::PathBuf;
use std::process::Command;

use scope_alloc_tracker::report::{
    Report, ENV_DUMP, ENV_DUMP_AT_EXIT, ENV_DUMP_AT_PEAK, ENV_DUMP_EVERY, ENV_DUMP_FORMAT,
    ENV_DUMP_SIGNAL,
};
use scope_alloc_tracker::{Jemalloc, ScopeId, TrackingAlloc};

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
        .env_remove(ENV_DUMP_FORMAT)
        .env_remove(ENV_DUMP_AT_PEAK);
    cmd
}

fn is_child(mode: &str) -> bool {
    std::env::var(CHILD).is_ok_and(|m| m == mode)
}

/// Leaks `bytes` in a new scope named `name`. `black_box` keeps the
/// optimiser from removing an allocation nobody reads (it does in release
/// builds).
fn leak_in_scope(name: &str, bytes: usize) {
    let s = ScopeId::register(name, None).unwrap();
    s.in_scope(|| std::mem::forget(std::hint::black_box(vec![0u8; bytes])));
}

// === at exit ===

#[test]
fn child_dumps_at_exit() {
    if !is_child("exit") {
        return;
    }
    let handle = scope_alloc_tracker::report::dump_triggers_from_env().unwrap();
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
fn child_loses_its_report_directory() {
    if !is_child("lose-dir") {
        return;
    }
    let _handle = scope_alloc_tracker::report::dump_triggers_from_env()
        .unwrap()
        .unwrap();
    let path = PathBuf::from(std::env::var_os(ENV_DUMP).unwrap());
    std::fs::remove_dir(path.parent().unwrap()).unwrap();
}

#[test]
fn an_unwritable_exit_dump_is_reported_on_stderr_not_a_crash() {
    // The directory exists at startup (else it is a startup error) and is
    // gone by the exit.
    let dir = temp_path("vanishing-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("exit.txt");
    let out = child("child_loses_its_report_directory", "lose-dir")
        .env(ENV_DUMP, &path)
        .env(ENV_DUMP_FORMAT, "text")
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exit-time dump failed"), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
}

/// Runs `child_reads_env` with `vars` and returns what it printed: `ok`
/// or `error: <var> <problem>: <message>`.
fn read_env(vars: &[(&str, &std::ffi::OsStr)]) -> String {
    let mut cmd = child("child_reads_env", "read-env");
    for v in [ENV_DUMP_EVERY, ENV_DUMP_SIGNAL, ENV_DUMP_AT_EXIT] {
        cmd.env_remove(v);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no result: {out:?}"))
        .to_string()
}

#[test]
fn child_reads_env() {
    if !is_child("read-env") {
        return;
    }
    match scope_alloc_tracker::report::dump_triggers_from_env() {
        Ok(Some(handle)) => {
            handle.stop();
            println!("RESULT ok");
        }
        Ok(None) => println!("RESULT none"),
        Err(e) => println!("RESULT error: {} {:?}: {e}", e.var(), e.problem()),
    }
}

#[test]
fn bad_dump_settings_are_errors_naming_variable_value_and_forms() {
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    let never = temp_path("never.txt");
    let never = never.as_os_str();
    let r = read_env(&[(ENV_DUMP, never), (ENV_DUMP_FORMAT, os("yaml"))]);
    assert!(
        r.starts_with("error: ALLOC_TRACKER_DUMP_FORMAT UnknownFormat"),
        "{r}"
    );
    assert!(r.contains("\"yaml\"") && r.contains("prometheus"), "{r}");

    // A trigger without a report file is an error naming what is missing,
    // not a trigger that does nothing (nor a SIGUSR1 that kills the
    // process).
    let r = read_env(&[(ENV_DUMP_SIGNAL, os("1"))]);
    assert!(
        r.starts_with("error: ALLOC_TRACKER_DUMP_SIGNAL NoPath"),
        "{r}"
    );
    assert!(r.contains("needs ALLOC_TRACKER_DUMP="), "{r}");
    let r = read_env(&[(ENV_DUMP_EVERY, os("30s"))]);
    assert!(
        r.starts_with("error: ALLOC_TRACKER_DUMP_EVERY NoPath"),
        "{r}"
    );
    assert_eq!(read_env(&[(ENV_DUMP_SIGNAL, os("0"))]), "none");

    // Paths are checked at startup, not at the first dump.
    let missing = temp_path("no-such-dir").join("r.txt");
    let r = read_env(&[(ENV_DUMP, missing.as_os_str())]);
    assert!(
        r.starts_with("error: ALLOC_TRACKER_DUMP NoDirectory"),
        "{r}"
    );
    assert!(
        r.contains(&format!("{:?}", missing.display().to_string())),
        "{r}"
    );
    let dir = std::env::temp_dir();
    let r = read_env(&[(ENV_DUMP, dir.as_os_str()), (ENV_DUMP_FORMAT, os("text"))]);
    assert!(
        r.starts_with("error: ALLOC_TRACKER_DUMP PathIsDirectory"),
        "{r}"
    );

    // Durations: the CLI's grammar, and a bad one lists it.
    let r = read_env(&[(ENV_DUMP, never), (ENV_DUMP_EVERY, os("1.5x"))]);
    assert!(
        r.starts_with("error: ALLOC_TRACKER_DUMP_EVERY InvalidDuration"),
        "{r}"
    );
    assert!(r.contains("\"1.5x\"") && r.contains("500ms"), "{r}");
    let r = read_env(&[(ENV_DUMP, never), (ENV_DUMP_EVERY, os("0s"))]);
    assert!(
        r.starts_with("error: ALLOC_TRACKER_DUMP_EVERY ZeroInterval"),
        "{r}"
    );
    let r = read_env(&[(ENV_DUMP, never), (ENV_DUMP_SIGNAL, os("perhaps"))]);
    assert!(
        r.starts_with("error: ALLOC_TRACKER_DUMP_SIGNAL InvalidSwitch"),
        "{r}"
    );
    for every in ["1.5s", "1.5", "1500ms"] {
        let r = read_env(&[
            (ENV_DUMP, never),
            (ENV_DUMP_EVERY, os(every)),
            (ENV_DUMP_AT_EXIT, os("0")),
        ]);
        assert_eq!(r, "ok", "{every}");
    }
    let _ = std::fs::remove_file(temp_path("never.txt"));
}

// === SIGUSR1 ===

#[cfg(all(unix, feature = "signal"))]
mod sigusr1 {
    use std::io::{BufRead, BufReader};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use scope_alloc_tracker::report::{Dumps, Format};

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

// === several files, and at the peak ===

#[test]
fn child_dumps_to_a_list_and_at_its_peak() {
    if !is_child("list-peak") {
        return;
    }
    let _handle = scope_alloc_tracker::report::dump_triggers_from_env()
        .unwrap()
        .unwrap();
    let peak_file = PathBuf::from(std::env::var_os(ENV_DUMP_AT_PEAK).unwrap());
    // A peak of 24 MiB held for long enough to be seen, then freed: the
    // exit report is nearly empty, the peak report has it.
    let s = ScopeId::register("peak-child", None).unwrap();
    let big = s.in_scope(|| std::hint::black_box(vec![1u8; 24 << 20]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !peak_file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(big);
    leak_in_scope("list-child", 4321);
}

#[test]
fn a_list_of_files_gets_one_report_each_and_a_peak_report_keeps_the_peak() {
    let json = temp_path("list.json");
    let text = temp_path("list.txt");
    let peak = temp_path("peak.txt");
    for p in [&json, &text, &peak] {
        let _ = std::fs::remove_file(p);
    }
    let out = child("child_dumps_to_a_list_and_at_its_peak", "list-peak")
        .env(ENV_DUMP, format!("{}, {}", json.display(), text.display()))
        .env(ENV_DUMP_AT_PEAK, &peak)
        .output()
        .unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    let t = std::fs::read_to_string(&text).expect("the text report was written");
    assert!(t.contains("list-child"), "{t}");
    let j = std::fs::read_to_string(&json).expect("the JSON report was written");
    #[cfg(feature = "json")]
    {
        let report = Report::from_json(&j).unwrap();
        assert_eq!(report.scope("list-child").unwrap().own.live_bytes, 4321);
        assert_eq!(report.scope("peak-child").unwrap().own.live_bytes, 0);
    }
    assert!(j.starts_with('{'), "{j}");
    let p = std::fs::read_to_string(&peak).expect("the peak report was written");
    let row = p
        .lines()
        .find(|l| l.starts_with("peak-child"))
        .unwrap_or_else(|| panic!("no peak-child row in the peak report:\n{p}"));
    assert!(
        row.contains("24.0 MiB"),
        "the peak report missed the peak: {row}"
    );
    for f in [&json, &text, &peak] {
        std::fs::remove_file(f).unwrap();
    }
}

#[test]
fn one_forced_format_for_several_files_is_refused() {
    use scope_alloc_tracker::report::{Dumps, Format, OptionsError};
    let err = Dumps::builder()
        .path(temp_path("a.txt"))
        .path(temp_path("b.txt"))
        .format(Format::Text)
        .at_exit()
        .build()
        .unwrap_err();
    assert_eq!(err, OptionsError::FormatForSeveralFiles);
    let err = Dumps::builder()
        .at_peak(temp_path("p.txt"))
        .peak_growth(0.0)
        .build()
        .unwrap_err();
    assert_eq!(err, OptionsError::InvalidPeakGrowth);
    // A peak file alone is a trigger of its own.
    let d = Dumps::builder()
        .at_peak(temp_path("p.txt"))
        .build()
        .unwrap();
    assert_eq!(d.peak_files().len(), 1);
    assert!(d.files().is_empty());
}
