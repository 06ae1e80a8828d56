//! The main binary run as a subprocess on small workloads: every checkpoint
//! run drains, the planted leak is flagged with its function and exit code
//! 1, the JSON report parses, and a reused data directory is recovered.

use assert_cmd::Command;

use crate::common;
use common::main_job::{ckptdb, inspect, stdout_of};

/// The binary with a small, quick workload.
fn small_run(extra: &[&str]) -> Command {
    let mut cmd = ckptdb();
    cmd.args([
        "run",
        "--writes",
        "20000",
        "--threads",
        "2",
        "--keys",
        "5000",
        "--value-size",
        "16..256",
        "--checkpoint-every",
        "4000",
        "--progress",
        "plain",
    ])
    .args(extra)
    .timeout(std::time::Duration::from_secs(120));
    cmd
}

fn checkpoint_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.starts_with("checkpoint #"))
        .collect()
}

#[test]
fn default_run_drains_every_checkpoint_run() {
    let stdout = stdout_of(&mut small_run(&[]), 0);
    let lines = checkpoint_lines(&stdout);
    // 20000 writes: runs at 4000, 8000, 12000 and 16000 writes (the
    // writers wait at each count for its run), plus the final run.
    assert_eq!(lines.len(), 5, "{stdout}");
    for l in &lines {
        assert!(l.ends_with("drained: yes"), "{l}");
    }
    assert!(lines.iter().any(|l| l.contains(" global ")), "{stdout}");
    assert!(!stdout.contains("LEAK"), "{stdout}");
    assert!(
        stdout.contains("restart: recovered state matches"),
        "{stdout}"
    );
    // The allocation table by subsystem and jemalloc's figures.
    for needle in [
        "allocation report",
        "memtable",
        "wal",
        "recovery",
        "checkpoint",
        "jemalloc (process-wide)",
        "verdict: all",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?}:\n{stdout}");
    }
}

#[test]
fn injected_leak_is_flagged_with_the_leaking_function_and_exit_code_1() {
    let stdout = stdout_of(&mut small_run(&["--inject-leak"]), 1);
    let lines = checkpoint_lines(&stdout);
    let leaked: Vec<_> = lines.iter().filter(|l| l.contains("drained: NO")).collect();
    assert_eq!(leaked.len(), 1, "exactly the planted run leaks:\n{stdout}");
    assert!(leaked[0].starts_with("checkpoint #2 "), "{stdout}");
    assert!(stdout.contains("LEAK in checkpoint run #2"), "{stdout}");
    assert!(stdout.contains("encode_batch_leaky"), "{stdout}");
    // Judged on the database's own instance of the checkpoint scope.
    assert!(stdout.contains("leak in scope `checkpoint#1`"), "{stdout}");
    assert!(stdout.contains("in `checkpoint#1/write`"), "{stdout}");
    // The runs after it are judged against the leaked baseline and drain.
    assert!(lines.last().unwrap().ends_with("drained: yes"), "{stdout}");
    assert!(stdout.contains("verdict: LEAK"), "{stdout}");
}

#[test]
fn json_report_parses_and_has_the_checkpoint_scope() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let svg = dir.path().join("flame.svg");
    let mut cmd = small_run(&["--report"]);
    cmd.arg(&json).arg("--report").arg(&svg);
    let stdout = stdout_of(&mut cmd, 0);
    assert!(stdout.contains("report written"), "{stdout}");
    let text = std::fs::read_to_string(&json).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let scopes = v["scopes"].as_array().expect("scopes array");
    let paths: Vec<&str> = scopes.iter().filter_map(|s| s["path"].as_str()).collect();
    for p in [
        "checkpoint",
        "checkpoint/write",
        "ckptdb/memtable",
        "ckptdb/wal",
    ] {
        assert!(paths.contains(&p), "{p} not in {paths:?}");
    }
    // Each open of the database ran in its own instance (`checkpoint#n`).
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("checkpoint#") && p.ends_with("/write")),
        "no checkpoint#n/write in {paths:?}"
    );
    let ckpt = scopes.iter().find(|s| s["path"] == "checkpoint").unwrap();
    assert!(ckpt["with_children"]["total_bytes"].as_u64().unwrap() > 0);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
}

fn recovered_keys(stdout: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("open: recovered "))
        .unwrap_or_else(|| panic!("no recovery line:\n{stdout}"));
    line["open: recovered ".len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad recovery line {line}"))
}

fn live_keys(stdout: &str) -> u64 {
    let line = stdout.lines().find(|l| l.starts_with("writes: ")).unwrap();
    let (_, rest) = line.split_once("; ").unwrap();
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn reusing_a_data_directory_recovers_it_and_inspect_shows_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("db");
    let data_arg = data.to_str().unwrap();
    let first = stdout_of(
        &mut small_run(&["--data-dir", data_arg, "--restart", "never"]),
        0,
    );
    assert!(first.contains("open: new database"), "{first}");
    let keys_after_first = live_keys(&first);
    assert!(keys_after_first > 0);

    let second = stdout_of(
        &mut small_run(&["--data-dir", data_arg, "--restart", "never", "--seed", "7"]),
        0,
    );
    // The second run starts from the first run's data, not from scratch.
    assert_eq!(recovered_keys(&second), keys_after_first, "{second}");
    assert!(second.contains("up to LSN 20000"), "{second}");
    assert!(second.contains("LSN   20001.."), "{second}");

    let inspect = inspect(&data);
    assert!(inspect.contains("checkpoint chain"), "{inspect}");
    assert!(inspect.contains("checkpoint LSN 40000"), "{inspect}");
    assert!(inspect.contains("load base checkpoint ckpt-"), "{inspect}");
    assert!(inspect.contains("WAL segments"), "{inspect}");
}

#[test]
fn the_dump_environment_variable_writes_the_report_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("at-exit.json");
    let mut cmd = small_run(&[]);
    cmd.env("ALLOC_TRACKER_DUMP", &json);
    stdout_of(&mut cmd, 0);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("written at exit")).unwrap();
    let scopes = v["scopes"].as_array().expect("scopes array");
    assert!(scopes.iter().any(|s| s["path"] == "checkpoint/write"));
}
