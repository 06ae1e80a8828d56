//! The main binary with `--inject-slow-leak`: every checkpoint run keeps a
//! few hundred bytes in `checkpoint-results`, which every run's own drain
//! check passes (the job exits 0) while the leak trend over that scope is
//! printed with the site that grew, `remember_run_summary`. Without the
//! flag, no trend is reported.

use crate::common;
use common::main_job::{ckptdb, stdout_of};

fn run(extra: &[&str]) -> String {
    stdout_of(
        ckptdb()
            .args([
                "run",
                "--writes",
                "16000",
                "--threads",
                "2",
                "--keys",
                "4000",
                "--value-size",
                "16..256",
                "--checkpoint-every",
                "1000",
                // A mean interval of 64 B samples a 400-byte allocation with
                // probability 1 - exp(-400/64) > 0.99: the growing site is seen.
                "--sample-bytes",
                "64",
                "--progress",
                "off",
            ])
            .args(extra)
            .timeout(std::time::Duration::from_secs(180)),
        0,
    )
}

#[test]
fn a_slow_leak_passes_every_run_and_is_reported_as_a_trend() {
    let out = run(&["--inject-slow-leak", "400"]);
    assert!(out.contains("drained: yes"), "{out}");
    assert!(!out.contains("drained: NO"), "{out}");
    let trend = out
        .lines()
        .position(|l| l.contains("LEAK TREND after checkpoint run"))
        .unwrap_or_else(|| panic!("no trend reported:\n{out}"));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[trend].contains("ckptdb/checkpoint-results"),
        "{}",
        lines[trend]
    );
    // Sites are sampled: any of the trends reported names the one that grew.
    let site = lines[trend + 1..]
        .iter()
        .any(|l| l.contains("remember_run_summary"));
    assert!(site, "the growing site is named:\n{out}");
}

#[test]
fn without_the_slow_leak_no_trend_is_reported() {
    let out = run(&[]);
    assert!(!out.contains("LEAK TREND"), "{out}");
}
