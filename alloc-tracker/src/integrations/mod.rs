//! Integrations with other crates, each behind its feature and in its own
//! module; the core of the tracker never imports them.
//!
//! - [`tokio`] (feature `tokio`): spawned tasks keep the spawner's scope.
//! - [`rayon`] (feature `rayon`): parallel work keeps the caller's scope,
//!   also when stolen by another worker.
//! - [`tracing`] (feature `tracing`): a `tracing_subscriber::Layer` that
//!   enters a scope for each span that names one.

#[cfg(feature = "rayon")]
#[cfg_attr(docsrs, doc(cfg(feature = "rayon")))]
pub mod rayon;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub mod tracing;
