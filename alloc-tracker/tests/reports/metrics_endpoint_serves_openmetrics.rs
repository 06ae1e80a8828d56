//! The `/metrics` endpoint (feature `metrics-http`) serves the collector's
//! series as OpenMetrics text: the right content type, `# EOF` at the end,
//! the prefix and constant labels given, at most top-N scopes plus
//! `[other]`, figures equal to the scope counters; other paths and methods
//! are refused, and an address in use is an error naming it.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};

use scope_alloc_tracker::integrations::http::{MetricsServer, CONTENT_TYPE};
use scope_alloc_tracker::integrations::prometheus::{ScopeCollector, OTHER_SCOPE};
use scope_alloc_tracker::{Scope, ScopeId};

/// Sends `request_line` and returns (status line, headers, body).
fn http(addr: SocketAddr, request_line: &str) -> (String, String, String) {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(conn, "{request_line} HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("headers");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (
        status.to_string(),
        headers.to_ascii_lowercase(),
        body.to_string(),
    )
}

#[test]
fn metrics_endpoint_serves_bounded_openmetrics_with_prefix_and_labels() {
    let _shared = crate::common::shared();
    static BIG: Scope = Scope::new("endpoint-big");
    static PINNED: Scope = Scope::new("endpoint-pinned");
    let big = BIG.in_scope(|| std::hint::black_box(vec![1u8; 1 << 20]));
    PINNED.in_scope(|| drop(std::hint::black_box(vec![1u8; 10])));
    // Many small scopes that must end up in `[other]`.
    let small: Vec<Vec<u8>> = (0..30)
        .map(|i| {
            let s = ScopeId::register(&format!("endpoint-small-{i}"), None).unwrap();
            s.in_scope(|| std::hint::black_box(vec![0u8; 100 + i]))
        })
        .collect();
    let server = MetricsServer::builder()
        .prefix("ckptdb")
        .label("instance", "it")
        .collector(ScopeCollector::new().top(3).always("endpoint-pinned"))
        .start("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let (status, headers, body) = http(server.local_addr(), "GET /metrics");
    assert_eq!(status, "HTTP/1.0 200 OK", "{headers}\n{body}");
    assert!(
        headers.contains(&format!(
            "content-type: {}",
            CONTENT_TYPE.to_ascii_lowercase()
        )),
        "{headers}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert_eq!(body.matches("# EOF").count(), 1);

    let live = |scope: &str| -> Option<u64> {
        let prefix =
            format!("ckptdb_alloc_tracker_live_bytes{{instance=\"it\",scope=\"{scope}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map(|v| v.parse().unwrap())
    };
    assert_eq!(live("endpoint-big"), Some(1 << 20), "{body}");
    // Pinned although tiny (it drained to zero).
    assert_eq!(live("endpoint-pinned"), Some(0), "{body}");
    // Bounded: 3 ranked + 1 pinned + [other], and the small scopes are in
    // [other] (the largest of them is smaller than endpoint-big).
    let scopes: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("ckptdb_alloc_tracker_live_bytes{"))
        .collect();
    assert_eq!(scopes.len(), 5, "{scopes:#?}");
    let other = live(OTHER_SCOPE).expect("an [other] series");
    let in_other: u64 = (0..30)
        .filter(|i| live(&format!("endpoint-small-{i}")).is_none())
        .map(|i| 100 + i as u64)
        .sum();
    assert!(other >= in_other, "{other} < {in_other}");
    // OpenMetrics counters: TYPE without, sample with `_total`.
    assert!(body.contains("# TYPE ckptdb_alloc_tracker_allocations counter\n"));
    assert!(body.contains(
        "ckptdb_alloc_tracker_allocations_total{instance=\"it\",scope=\"endpoint-big\"} 1\n"
    ));
    // Usable sizes are not counted here: no usable-bytes series.
    assert!(!body.contains("usable_bytes"), "{body}");
    assert!(body.contains("ckptdb_alloc_tracker_other_scopes{instance=\"it\"} "));

    // Other paths and methods.
    let (status, _, _) = http(server.local_addr(), "GET /");
    assert!(status.contains(" 404 "), "{status}");
    let (status, _, _) = http(server.local_addr(), "POST /metrics");
    assert!(status.contains(" 405 "), "{status}");

    // The address is taken now: an error naming it, not a panic.
    let err = MetricsServer::start(server.local_addr()).unwrap_err();
    assert_eq!(err.addr(), server.local_addr());
    assert!(
        err.to_string().contains(&server.local_addr().to_string()),
        "{err}"
    );

    let addr = server.local_addr();
    server.shutdown();
    // tiny_http closes its listening socket from its own accept thread,
    // shortly after the server is dropped.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while TcpStream::connect(addr).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still accepting connections 10 s after shutdown"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop((big, small));
}
