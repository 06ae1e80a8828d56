//! A service that handles every request in a transient scope instance of
//! `requests` (the per-request pattern) and serves `/metrics`: what CI's
//! Prometheus scrape test (`.ci/prometheus-scrape-test`) runs to check that
//! 10,000 requests give one bounded set of series with the right totals.
//!
//! Each request allocates 100 + 200 + 300 bytes in its instance and 50
//! bytes in the static child `requests/parse` (below the instance), and
//! frees them all.
//!
//! Usage: `request_service ADDR REQUESTS HOLD_SECONDS`, e.g.
//! `cargo run --release -p scope-alloc-tracker --features metrics-http --example
//! request_service -- 127.0.0.1:9899 10000 30`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use scope_alloc_tracker::integrations::http::MetricsServer;
use scope_alloc_tracker::{Jemalloc, Scope, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

static REQUESTS: Scope = Scope::new("requests");
static PARSE: Scope = Scope::child_of(&REQUESTS, "parse");

const THREADS: u64 = 4;

fn handle(body_len: usize) -> usize {
    let request = REQUESTS
        .instance()
        .expect("the scope table has room for an instance per in-flight request");
    request.in_scope(|| {
        let body = black_box(vec![1u8; body_len]);
        let headers = black_box(vec![2u8; 200]);
        let response = black_box(vec![3u8; 300]);
        let parsed = PARSE.in_scope(|| black_box(vec![4u8; 50]));
        body.len() + headers.len() + response.len() + parsed.len()
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: request_service ADDR REQUESTS HOLD_SECONDS";
    let addr: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let requests: u64 = args.next().ok_or(usage)?.parse()?;
    let hold: u64 = args.next().ok_or(usage)?.parse()?;
    let server = MetricsServer::builder().start(addr)?;
    println!("metrics: serving http://{}/metrics", server.local_addr());
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let mine = requests / THREADS + u64::from(t < requests % THREADS);
                (0..mine).map(|_| handle(100)).sum::<usize>()
            })
        })
        .collect();
    let mut bytes = 0;
    for w in workers {
        bytes += w.join().map_err(|_| "a worker panicked")?;
    }
    println!("requests: {requests} done, {bytes} bytes handled");
    std::thread::sleep(Duration::from_secs(hold));
    server.shutdown();
    Ok(())
}
