//! Bad options to the main binary: a clear message on stderr and exit code
//! 2, never a panic, and nothing written.

use assert_cmd::Command;
use predicates::prelude::*;

fn ckptdb(args: &[&str]) -> assert_cmd::assert::Assert {
    Command::new(env!("CARGO_BIN_EXE_ckptdb"))
        .args(args)
        .timeout(std::time::Duration::from_secs(60))
        .assert()
}

fn usage_error(args: &[&str], message: &str) {
    ckptdb(args)
        .code(2)
        .stderr(predicate::str::contains(message))
        .stderr(predicate::str::contains("panicked").not())
        .stdout(predicate::str::contains("checkpoint #").not());
}

#[test]
fn negative_value_size_is_rejected() {
    usage_error(&["--value-size", "-5..100"], "cannot be negative");
    usage_error(&["--min-value", "-1"], "cannot be negative");
}

#[test]
fn min_above_max_is_rejected() {
    usage_error(&["--value-size", "500..10"], "larger than the largest");
    usage_error(
        &["--min-value", "100", "--max-value", "10"],
        "larger than the largest",
    );
}

#[test]
fn zero_threads_and_writes_are_rejected() {
    usage_error(&["--threads", "0"], "--threads");
    usage_error(&["run", "--writes", "0"], "--writes");
}

#[test]
fn unknown_report_formats_are_rejected() {
    usage_error(
        &["--report", "out.json", "--report-format", "xml"],
        "unknown report format",
    );
    usage_error(&["--report", "report.xyz"], "cannot tell the report format");
}

#[test]
fn unusable_data_directories_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let under_file = file.join("db");
    usage_error(
        &["--data-dir", under_file.to_str().unwrap()],
        "cannot use data directory",
    );
    usage_error(
        &["--data-dir", file.to_str().unwrap()],
        "is not a directory",
    );
    usage_error(
        &[
            "inspect",
            "--data-dir",
            dir.path().join("missing").to_str().unwrap(),
        ],
        "cannot inspect",
    );
    // Nothing was created.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn help_lists_the_options_and_exit_codes() {
    ckptdb(&["--help"])
        .success()
        .stdout(predicate::str::contains("--data-dir"))
        .stdout(predicate::str::contains("--report-format"))
        .stdout(predicate::str::contains("--inject-leak"))
        .stdout(predicate::str::contains("inspect"))
        .stdout(predicate::str::contains("Exit codes"));
}

#[test]
fn a_bad_dump_environment_variable_is_rejected() {
    Command::new(env!("CARGO_BIN_EXE_ckptdb"))
        .args(["--writes", "100"])
        .env("ALLOC_TRACKER_DUMP", "/tmp/never-written.json")
        .env("ALLOC_TRACKER_DUMP_EVERY", "soon")
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("ALLOC_TRACKER_DUMP_EVERY"))
        .stdout(predicate::str::contains("checkpoint #").not());
}

/// Runs the main job with `vars` set (every other `ALLOC_TRACKER_DUMP*`
/// variable removed) and expects a usage error naming each of `names`
/// before any work.
fn dump_env_error(vars: &[(&str, &str)], names: &[&str]) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ckptdb"));
    cmd.args(["--writes", "100"]);
    for v in [
        "ALLOC_TRACKER_DUMP",
        "ALLOC_TRACKER_DUMP_FORMAT",
        "ALLOC_TRACKER_DUMP_EVERY",
        "ALLOC_TRACKER_DUMP_SIGNAL",
        "ALLOC_TRACKER_DUMP_AT_EXIT",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut a = cmd
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(2)
        .stdout(predicate::str::contains("checkpoint #").not())
        .stdout(predicate::str::contains("data directory").not());
    for n in names {
        a = a.stderr(predicate::str::contains(*n));
    }
}

#[test]
fn dump_settings_are_checked_before_any_work() {
    // Issue 12: a signal or periodic trigger without a report file.
    dump_env_error(
        &[("ALLOC_TRACKER_DUMP_SIGNAL", "1")],
        &[
            "ALLOC_TRACKER_DUMP_SIGNAL=\"1\"",
            "needs ALLOC_TRACKER_DUMP=",
        ],
    );
    dump_env_error(
        &[("ALLOC_TRACKER_DUMP_EVERY", "1s")],
        &[
            "ALLOC_TRACKER_DUMP_EVERY=\"1s\"",
            "needs ALLOC_TRACKER_DUMP=",
        ],
    );
    // A missing directory, a directory as the file.
    dump_env_error(
        &[("ALLOC_TRACKER_DUMP", "/nonexistent-ckptdb-dir/r.json")],
        &[
            "ALLOC_TRACKER_DUMP=\"/nonexistent-ckptdb-dir/r.json\"",
            "does not exist",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    dump_env_error(
        &[
            ("ALLOC_TRACKER_DUMP", &d),
            ("ALLOC_TRACKER_DUMP_FORMAT", "json"),
        ],
        &[&format!("ALLOC_TRACKER_DUMP=\"{d}\""), "is a directory"],
    );
    // A duration names the accepted forms.
    dump_env_error(
        &[
            ("ALLOC_TRACKER_DUMP", "/tmp/never-written.json"),
            ("ALLOC_TRACKER_DUMP_EVERY", "1.5x"),
        ],
        &["ALLOC_TRACKER_DUMP_EVERY=\"1.5x\"", "500ms"],
    );
}

#[test]
fn durations_parse_alike_on_the_command_line_and_in_the_environment() {
    // `1.5s` is a duration for --duration and for ALLOC_TRACKER_DUMP_EVERY.
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.prom");
    Command::new(env!("CARGO_BIN_EXE_ckptdb"))
        .args([
            "--writes",
            "2000",
            "--keys",
            "100",
            "--checkpoint-every",
            "1000",
        ])
        .args(["--progress", "off", "--duration", "1.5s"])
        .env("ALLOC_TRACKER_DUMP", &report)
        .env("ALLOC_TRACKER_DUMP_EVERY", "1.5s")
        .env_remove("ALLOC_TRACKER_DUMP_FORMAT")
        .env_remove("ALLOC_TRACKER_DUMP_SIGNAL")
        .env_remove("ALLOC_TRACKER_DUMP_AT_EXIT")
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .success();
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.contains("alloc_tracker_live_bytes{scope=\"checkpoint\"}"));
}

#[test]
fn unusable_metrics_addresses_are_rejected() {
    usage_error(&["--metrics-addr", "localhost"], "--metrics-addr");
    // An address in use: the message names it, before any work.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    usage_error(
        &["--metrics-addr", &addr],
        &format!("cannot serve metrics on {addr}"),
    );
}
