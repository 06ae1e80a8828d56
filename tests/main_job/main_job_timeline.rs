//! `--timeline`: the main job's memory over time agrees with its own JSON
//! report, marks every checkpoint run, shows the planted leak as a step,
//! and the chart is well-formed SVG; `--report x.pb.gz` writes a pprof
//! profile.

use std::collections::HashMap;
use std::path::Path;

use assert_cmd::Command;

use crate::common;
use common::main_job::{ckptdb, stdout_of};

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
        "off",
        "--timeline-every-ms",
        "5",
    ])
    .args(extra)
    .timeout(std::time::Duration::from_secs(180));
    cmd
}

/// The CSV of a timeline: points per scope (seconds, bytes) and markers
/// (seconds, label).
#[derive(Debug, Default)]
struct Csv {
    points: HashMap<String, Vec<(f64, u64)>>,
    markers: Vec<(f64, String)>,
}

fn read_csv(path: &Path) -> Csv {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("kind,seconds,name,live_bytes"));
    let mut csv = Csv::default();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 4, "{line}");
        let t: f64 = f[1].parse().unwrap();
        match f[0] {
            "point" => csv
                .points
                .entry(f[2].to_string())
                .or_default()
                .push((t, f[3].parse().unwrap())),
            "marker" => csv.markers.push((t, f[2].to_string())),
            other => panic!("kind {other:?} in {line}"),
        }
    }
    csv
}

/// Live bytes including children per scope path, from the JSON report.
fn report_live(path: &Path) -> HashMap<String, u64> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .expect("the JSON report parses");
    v["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_string(),
                s["with_children"]["live_bytes"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The checkpoint scope's reading taken at a marker (the run's end).
fn at_marker(series: &[(f64, u64)], t: f64) -> u64 {
    series
        .iter()
        .rfind(|(at, _)| *at <= t + 1e-6)
        .map(|p| p.1)
        .expect("a reading at or before the marker")
}

const SCOPES: [&str; 5] = [
    "checkpoint",
    "ckptdb/memtable",
    "ckptdb/wal",
    "ckptdb/checkpoint-results",
    "ckptdb/recovery",
];

fn check_svg(path: &Path, labels: &[&str]) {
    let svg = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the timeline SVG is XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(str::to_string))
        .collect();
    for l in labels {
        assert!(
            texts.iter().any(|t| t.contains(l)),
            "{l:?} not among the SVG's texts {texts:?}"
        );
    }
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline") || n.has_tag_name("path"))
        .count();
    assert!(lines >= SCOPES.len(), "{lines} lines drawn");
}

#[test]
fn clean_run_timeline_matches_its_report_and_drains_at_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let stdout = stdout_of(
        small_run(&[
            "--timeline",
            p("t.svg").to_str().unwrap(),
            "--timeline",
            p("t.csv").to_str().unwrap(),
            "--report",
            p("r.json").to_str().unwrap(),
            "--report",
            p("r.pb.gz").to_str().unwrap(),
        ])
        .env_remove("ALLOC_TRACKER_DUMP"),
        0,
    );
    assert!(stdout.contains("timeline written:"), "{stdout}");
    assert!(stdout.contains("(pprof)"), "{stdout}");
    let gz = std::fs::read(p("r.pb.gz")).unwrap();
    assert_eq!(gz[..2], [0x1f, 0x8b], "the pprof report is gzip");

    let csv = read_csv(&p("t.csv"));
    let report = report_live(&p("r.json"));
    // The last reading is taken right before the report, with nothing in
    // between that allocates in these scopes: they agree exactly.
    for scope in SCOPES {
        let series = &csv.points[scope];
        assert!(series.len() > 10, "{scope}: {} readings", series.len());
        assert!(series.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(
            series.last().unwrap().1,
            report[scope],
            "{scope}: last reading vs the JSON report"
        );
    }
    assert!(report["ckptdb/memtable"] > 0);

    // One marker per checkpoint run, plus the restart; the checkpoint scope
    // reads zero at the end of every run, and was above zero during runs.
    let runs = stdout
        .lines()
        .filter(|l| l.starts_with("checkpoint #"))
        .count();
    let run_markers: Vec<&(f64, String)> = csv
        .markers
        .iter()
        .filter(|m| m.1.starts_with('#'))
        .collect();
    assert_eq!(run_markers.len(), runs, "{:?}", csv.markers);
    assert!(csv.markers.iter().any(|m| m.1 == "restart"));
    let ckpt = &csv.points["checkpoint"];
    for (t, label) in &run_markers {
        assert_eq!(at_marker(ckpt, *t), 0, "checkpoint scope after run {label}");
    }
    assert!(ckpt.iter().any(|p| p.1 > 0), "no reading during a run");
    check_svg(
        &p("t.svg"),
        &["checkpoint", "ckptdb/memtable", "#1", "restart", "seconds"],
    );
}

#[test]
fn leaking_run_is_a_step_in_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let stdout = stdout_of(
        small_run(&[
            "--inject-leak",
            "--timeline",
            p("t.svg").to_str().unwrap(),
            "--timeline",
            p("t.csv").to_str().unwrap(),
            "--report",
            p("r.json").to_str().unwrap(),
        ])
        .env_remove("ALLOC_TRACKER_DUMP"),
        1,
    );
    let csv = read_csv(&p("t.csv"));
    let report = report_live(&p("r.json"));
    let ckpt = &csv.points["checkpoint"];
    assert_eq!(ckpt.last().unwrap().1, report["checkpoint"]);
    let leaked = report["checkpoint"];
    assert!(leaked > 0, "the leak stays in the checkpoint scope");

    let leak_marker = csv
        .markers
        .iter()
        .find(|m| m.1.contains("LEAK"))
        .unwrap_or_else(|| panic!("no leak marker: {:?}\n{stdout}", csv.markers));
    assert_eq!(leak_marker.1, "#2 LEAK");
    let first = csv.markers.iter().find(|m| m.1 == "#1").unwrap();
    // Before: drained. From the leaking run on: never below the leak.
    assert_eq!(at_marker(ckpt, first.0), 0);
    assert!(
        ckpt.iter()
            .filter(|p| p.0 >= leak_marker.0)
            .all(|p| p.1 >= leaked),
        "checkpoint readings after the leak dip below {leaked}"
    );
    check_svg(&p("t.svg"), &["#2 LEAK", "checkpoint"]);
}

#[test]
fn timeline_path_must_name_a_known_kind() {
    let out = small_run(&["--timeline", "/tmp/t.png"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(".svg") && stderr.contains(".csv"),
        "{stderr}"
    );
    let out = small_run(&["--timeline", "/nonexistent-dir/t.svg"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}
