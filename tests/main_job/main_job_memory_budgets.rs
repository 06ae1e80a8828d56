//! The main binary with `--memtable-budget` and `--checkpoint-budget`:
//! runs started by the memtable budget say so in their line, a global run
//! over the checkpoint budget is rolled back and retried as an incremental
//! one, and the job still ends clean with the data recovered at the
//! restart.

use crate::common;
use common::main_job::{ckptdb, stdout_of};

fn run(extra: &[&str]) -> String {
    stdout_of(
        ckptdb()
            .args([
                "run",
                "--writes",
                "20000",
                "--threads",
                "2",
                "--keys",
                "8000",
                "--value-size",
                "512..2048",
                "--checkpoint-every",
                "0",
                "--progress",
                "off",
            ])
            .args(extra)
            .timeout(std::time::Duration::from_secs(120)),
        0,
    )
}

#[test]
fn budgets_act_and_say_so() {
    // (GC of the chain needs more than 4 MiB too: it is deferred, the run
    // line says so, and the chain waits for a GC the budget admits.)
    let stdout = run(&[
        "--memtable-budget",
        "1MiB",
        "--memtable-ceiling",
        "2MiB",
        "--checkpoint-budget",
        "4MiB",
        "--global-every",
        "3",
    ]);
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("checkpoint #"))
        .collect();
    let by_budget = lines
        .iter()
        .filter(|l| l.contains("trigger: memtable budget  drained: yes"))
        .count();
    // ~25 MiB of values at 1 MiB per run: many runs, all but the final one
    // started by the budget (the write-count trigger is off).
    assert!(by_budget >= 5, "{stdout}");
    // The full image (~10 MiB) does not fit in 4 MiB: globals are rolled
    // back and retried as incrementals.
    let over: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("over checkpoint budget: rolled back, retrying as incremental"))
        .collect();
    assert!(!over.is_empty(), "{stdout}");
    assert!(over.iter().all(|l| l.contains(" global ")), "{stdout}");
    assert!(
        stdout.contains("memory budgets: memtable 1.0 MiB above the base"),
        "{stdout}"
    );
    assert!(
        stdout.contains("runs started by the memtable budget"),
        "{stdout}"
    );
    let deferred = lines
        .iter()
        .filter(|l| l.contains("gc: deferred over checkpoint budget") && l.contains("drained: yes"))
        .count();
    assert!(deferred >= 1, "{stdout}");
    assert!(
        stdout.contains(&format!("{deferred} GCs deferred over it")),
        "{stdout}"
    );
    assert!(
        stdout.contains("restart: recovered state matches"),
        "{stdout}"
    );
    assert!(stdout.contains("verdict: all"), "{stdout}");
}

#[test]
fn bad_budgets_are_usage_errors() {
    for args in [
        &["--memtable-budget", "0"][..],
        &["--memtable-ceiling", "1MiB"],
        &["--memtable-budget", "2MiB", "--memtable-ceiling", "1MiB"],
        &["--checkpoint-budget", "lots"],
    ] {
        let out = ckptdb()
            .args(["run", "--writes", "10", "--progress", "off"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
