//! INTEGRATIONS: the tracker's figures in tools a fleet already runs, each
//! behind its own feature, one module each. The core (allocator, scopes,
//! stats, reports) never imports anything from here.
//!
//! | module | feature | what |
//! | --- | --- | --- |
//! | [`prometheus`] | `prometheus-client` | a [`prometheus_client`] collector: per-scope gauges and counters, top-N scopes plus an `[other]` bucket |
//! | [`http`] | `metrics-http` | a small built-in `/metrics` endpoint serving that collector as OpenMetrics text |
//!
//! Both export the series of [`Report::to_prometheus`](crate::report::Report::to_prometheus)
//! under the same names (`alloc_tracker_live_bytes{scope="checkpoint"}`,
//! …), so dashboards and the alerting rules in the repository's
//! `docs/prometheus/alerts.yml` work with either.

#[cfg(feature = "metrics-http")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics-http")))]
pub mod http;
#[cfg(feature = "prometheus-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus-client")))]
pub mod prometheus;
