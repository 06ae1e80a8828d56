//! A small built-in `/metrics` endpoint (feature `metrics-http`) for
//! programs that do not serve one already.
//!
//! [`MetricsServer`] binds the address it is given (use `127.0.0.1:PORT`
//! unless the metrics should be reachable from other hosts; port 0 picks a
//! free one, see [`MetricsServer::local_addr`]) and answers
//! `GET /metrics` with the [`ScopeCollector`]'s series as OpenMetrics
//! text: content type [`CONTENT_TYPE`], ending in `# EOF`. Everything
//! else gets 404 (or 405 for other methods). Requests are served one at a
//! time by one thread, whose work is charged to the tracker's own scope;
//! `tiny_http`'s own connection threads allocate outside any scope
//! (`unscoped`). The server stops when the [`MetricsServer`] is dropped
//! or [`shutdown`](MetricsServer::shutdown).
//!
//! ```
//! # #[global_allocator]
//! # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
//! #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
//! use std::io::{Read as _, Write as _};
//! use scope_alloc_tracker::integrations::http::MetricsServer;
//!
//! let server = MetricsServer::builder()
//!     .prefix("ckptdb")
//!     .label("instance", "test")
//!     .start("127.0.0.1:0".parse()?)?;
//! let mut conn = std::net::TcpStream::connect(server.local_addr())?;
//! conn.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
//! let mut response = String::new();
//! conn.read_to_string(&mut response)?;
//! assert!(response.starts_with("HTTP/1.0 200 OK"), "{response}");
//! assert!(response.contains("application/openmetrics-text"));
//! assert!(response.contains("ckptdb_alloc_tracker_live_bytes{instance=\"test\",scope=\"unscoped\"}"));
//! assert!(response.ends_with("# EOF\n"));
//! server.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use prometheus_client::registry::Registry;

use super::prometheus::ScopeCollector;
use crate::hot::thread_state;
use crate::scope::ScopeId;

/// The content type of the responses: OpenMetrics text 1.0.0.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The path the metrics are served on.
pub const METRICS_PATH: &str = "/metrics";

/// The endpoint could not be started.
#[derive(Debug)]
pub struct MetricsServerError {
    addr: SocketAddr,
    message: String,
}

impl MetricsServerError {
    /// The address that could not be served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl fmt::Display for MetricsServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot serve metrics on {}: {}", self.addr, self.message)
    }
}

impl std::error::Error for MetricsServerError {}

/// Builds a [`MetricsServer`]; see [`MetricsServer::builder`].
#[derive(Debug, Clone, Default)]
pub struct MetricsServerBuilder {
    prefix: Option<String>,
    labels: Vec<(String, String)>,
    collector: Option<ScopeCollector>,
}

impl MetricsServerBuilder {
    /// A prefix put before every series name (`ckptdb` gives
    /// `ckptdb_alloc_tracker_live_bytes`).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// A constant label on every series (`instance`, `service`, …).
    #[must_use]
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((name.into(), value.into()));
        self
    }

    /// The collector to serve (its top-N and pinned scopes); by default
    /// [`ScopeCollector::new`].
    #[must_use]
    pub fn collector(mut self, collector: ScopeCollector) -> Self {
        self.collector = Some(collector);
        self
    }

    /// Binds `addr` and starts serving.
    ///
    /// # Errors
    /// [`MetricsServerError`] naming the address when it cannot be bound
    /// (in use, not local, no permission) or the thread cannot start.
    pub fn start(self, addr: SocketAddr) -> Result<MetricsServer, MetricsServerError> {
        thread_state::internal(|| {
            let err = |message: String| MetricsServerError { addr, message };
            let labels = self.labels.into_iter().map(|(k, v)| (k.into(), v.into()));
            let mut registry = match self.prefix {
                Some(p) => Registry::with_prefix_and_labels(p, labels),
                None => Registry::with_labels(labels),
            };
            self.collector.unwrap_or_default().register(&mut registry);
            let server = Arc::new(tiny_http::Server::http(addr).map_err(|e| err(e.to_string()))?);
            let local_addr = server
                .server_addr()
                .to_ip()
                .ok_or_else(|| err("not an IP listener".into()))?;
            let serving = Arc::clone(&server);
            let thread = thread::Builder::new()
                .name("alloc-tracker-metrics".into())
                .spawn(move || ScopeId::INTERNAL.in_scope(|| serve(&serving, &registry)))
                .map_err(|e| err(e.to_string()))?;
            Ok(MetricsServer {
                server,
                local_addr,
                thread: Some(thread),
            })
        })
    }
}

/// Answers requests until the server is unblocked.
fn serve(server: &tiny_http::Server, registry: &Registry) {
    for request in server.incoming_requests() {
        let (status, content_type, body) = if request.url().split('?').next() != Some(METRICS_PATH)
        {
            (
                404,
                "text/plain; charset=utf-8",
                format!("not found; metrics are at {METRICS_PATH}\n"),
            )
        } else if !matches!(
            request.method(),
            tiny_http::Method::Get | tiny_http::Method::Head
        ) {
            (405, "text/plain; charset=utf-8", "only GET\n".to_string())
        } else {
            let mut body = String::new();
            match prometheus_client::encoding::text::encode(&mut body, registry) {
                Ok(()) => (200, CONTENT_TYPE, body),
                Err(_) => (
                    500,
                    "text/plain; charset=utf-8",
                    "encoding failed\n".to_string(),
                ),
            }
        };
        let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes())
            .expect("a valid header");
        let response = tiny_http::Response::from_string(body)
            .with_status_code(status)
            .with_header(header);
        // A client that went away is its own problem.
        let _ = request.respond(response);
    }
}

/// A running `/metrics` endpoint; see the [module docs](self).
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    local_addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsServer")
            .field("local_addr", &self.local_addr)
            .field("running", &self.thread.is_some())
            .finish_non_exhaustive()
    }
}

impl MetricsServer {
    /// Starts building an endpoint.
    pub fn builder() -> MetricsServerBuilder {
        MetricsServerBuilder::default()
    }

    /// Serves the default [`ScopeCollector`] on `addr`, without prefix or
    /// labels.
    ///
    /// # Errors
    /// See [`MetricsServerBuilder::start`].
    pub fn start(addr: SocketAddr) -> Result<MetricsServer, MetricsServerError> {
        MetricsServer::builder().start(addr)
    }

    /// The address actually bound (the port chosen for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL of the metrics: `http://ADDR/metrics`.
    pub fn url(&self) -> String {
        format!("http://{}{METRICS_PATH}", self.local_addr)
    }

    /// Stops serving and waits for the serving thread (a response in
    /// progress is finished first).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
