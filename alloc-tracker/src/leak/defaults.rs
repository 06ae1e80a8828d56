//! The default retention rules: what runtimes keep on purpose, matched by
//! frames specific to each runtime, each bounded. Every rule is tested
//! against the real crate in `tests/default_retention_rules_*.rs`.

use super::retain::{default_rule, Retain, DEFAULT_NAMES};

/// The default rules, in `DEFAULT_NAMES` order.
pub(crate) fn rules() -> Vec<Retain> {
    let rules = vec![
        // `block_on` (a runtime's, or `futures`-style) parks the thread
        // through a parker made once per thread, kept in its TLS.
        default_rule(
            "tokio-park-thread",
            &[
                "tokio::runtime::park::ParkThread::new",
                "tokio::runtime::park::CachedParkThread",
            ],
            1 << 10,
        ),
        // A multi-thread worker's per-thread state, made lazily the first
        // time it runs a task on behalf of the checked scope.
        default_rule(
            "tokio-worker-state",
            &["tokio::runtime::scheduler::multi_thread::worker::run"],
            4 << 10,
        ),
        // The registry's per-thread span stacks and slab pages, made on a
        // thread's first span and kept for the thread's life.
        default_rule(
            "tracing-subscriber-thread-buffers",
            &[
                "tracing_subscriber::registry::sharded",
                "sharded_slab::",
                "thread_local::ThreadLocal",
            ],
            16 << 10,
        ),
        // The panic hook's backtrace (RUST_BACKTRACE set) loads and caches
        // the symbol tables of the executable once per process.
        default_rule(
            "std-backtrace-cache",
            &[
                "std::backtrace_rs::symbolize::gimli::Cache",
                "std::backtrace_rs::symbolize::gimli::resolve",
            ],
            256 << 10,
        ),
    ];
    debug_assert!(rules
        .iter()
        .map(|r| r.label())
        .eq(DEFAULT_NAMES.iter().map(|s| s.to_string())));
    rules
}
