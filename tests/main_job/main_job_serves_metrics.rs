//! `ckptdb --metrics-addr` serves the allocation figures as OpenMetrics
//! text while the job runs, with the `checkpoint` scope always present
//! (issue 12). The scrape by a real Prometheus server is
//! `.ci/prometheus-scrape-test`.

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};

#[test]
fn the_main_job_serves_openmetrics_while_it_runs() {
    let mut job = Command::new(env!("CARGO_BIN_EXE_ckptdb"))
        .args([
            "--writes",
            "100000000",
            "--duration",
            "4s",
            "--threads",
            "2",
        ])
        .args([
            "--keys",
            "5000",
            "--value-size",
            "16..256",
            "--progress",
            "off",
        ])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(job.stdout.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("metrics: serving ").map(str::to_string))
        .expect("the job prints the metrics URL first");
    let addr = url
        .strip_prefix("http://")
        .and_then(|u| u.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("{url}"));
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    // Drain the rest of the output so the job never blocks on the pipe.
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = job.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", rest.join("\n"));
    assert!(response.starts_with("HTTP/1.0 200 OK"), "{response}");
    assert!(
        response.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{response}"
    );
    assert!(response.ends_with("# EOF\n"), "{response}");
    assert!(
        response.contains("\nalloc_tracker_live_bytes{scope=\"checkpoint\"} "),
        "{response}"
    );
    assert!(
        response.contains("\nalloc_tracker_subtree_live_bytes{scope=\"checkpoint\"} "),
        "{response}"
    );
    assert!(rest.iter().any(|l| l.contains("0 leaked")), "{rest:?}");
}
