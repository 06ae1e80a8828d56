//! INTEGRATIONS: the tracker's figures and scopes in tools a program or a
//! fleet already runs, each behind its own feature, one module each. The
//! core (allocator, scopes, stats, reports) never imports anything from here.
//!
//! | module | feature | what |
//! | --- | --- | --- |
//! | [`prometheus`] | `prometheus-client` | a [`prometheus_client`] collector: per-scope gauges and counters, top-N scopes plus an `[other]` bucket |
//! | [`http`] | `metrics-http` | a small built-in `/metrics` endpoint serving that collector as OpenMetrics text |
//! | [`tokio`] | `tokio` | spawned tasks keep the spawner's scope |
//! | [`rayon`] | `rayon` | parallel work keeps the caller's scope, also when stolen by another worker |
//! | [`tracing`] | `tracing` | a `tracing_subscriber::Layer` that enters a scope for each span that names one |
//!
//! The metrics modules export the series of
//! [`Report::to_prometheus`](crate::report::Report::to_prometheus) under the
//! same names (`alloc_tracker_live_bytes{scope="checkpoint"}`, …), so
//! dashboards and the alerting rules in the repository's
//! `docs/prometheus/alerts.yml` work with either.

#[cfg(feature = "metrics-http")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics-http")))]
pub mod http;
#[cfg(feature = "prometheus-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus-client")))]
pub mod prometheus;
#[cfg(feature = "rayon")]
#[cfg_attr(docsrs, doc(cfg(feature = "rayon")))]
pub mod rayon;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub mod tracing;
