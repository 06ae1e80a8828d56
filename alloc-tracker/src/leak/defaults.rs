//! The default retention rules: what runtimes keep on purpose, matched by
//! frames specific to each runtime, each bounded. The frames were read
//! from real checks (tokio 1.54, tracing-subscriber 0.3, std's panic hook
//! with `RUST_BACKTRACE=1`); every rule is tested on and off against the
//! real crate in `tests/default_retention_rules_*.rs`.

use super::retain::{
    default_rule, rules_from_env, Defaults, Retain, RetainRuleError, DEFAULT_NAMES,
};

/// The rules every check applies unless turned off, for memory that the
/// runtimes keep on purpose (the way LeakSanitizer ships suppressions for
/// libc internals). Each matches frames specific to one runtime and is
/// bounded, so a user's leak through ordinary code is never hidden by one:
///
/// | name | matches a frame containing | bound | what it is |
/// |---|---|---|---|
/// | `tokio-park-thread` | `tokio::runtime::park::ParkThread::new` | 1 KiB | the thread's parker for `block_on`, made once per thread, kept in its TLS |
/// | `tokio-blocking-pool-thread` | `tokio::runtime::blocking::pool::Spawner::spawn_thread` (the function itself, not the closure every pool and worker thread runs its tasks under) | 16 KiB | a `spawn_blocking` pool thread's handle and state, kept while it idles |
/// | `tracing-subscriber-thread-buffers` | `<tracing_subscriber::registry::sharded::Registry as tracing_core::subscriber::Subscriber>::`, `tracing_subscriber::registry::stack::SpanStack::` | 64 KiB | the registry's per-thread slab shard and span stack |
/// | `std-backtrace-cache` | `std::backtrace_rs::` | 256 MiB | std's debug-info caches made by the panic hook with `RUST_BACKTRACE` (tens of MB for a debug binary) |
/// | `libtest-output-capture` | innermost frame past the allocation machinery `<alloc::vec::Vec<u8> as std::io::Write>::write…`, under `std::panicking::default_hook` or `std::io::stdio::print_to` | 1 MiB | the test harness's captured-output buffer, grown by a print or a panic message |
///
/// Turn them off in code ([`LeakCheckOptions::default_rules`](super::LeakCheckOptions::default_rules),
/// [`without_default`](super::LeakCheckOptions::without_default)) or in a
/// rule source (`-defaults`, `-default:<name>`).
///
/// ```
/// use scope_alloc_tracker::leak::{default_rules, DEFAULT_NAMES};
/// let rules = default_rules();
/// assert_eq!(rules.len(), DEFAULT_NAMES.len());
/// assert_eq!(rules[0].label(), "tokio-park-thread");
/// assert!(rules.iter().all(|r| r.bound() < u64::MAX));
/// ```
pub fn default_rules() -> Vec<Retain> {
    let rules = vec![
        // `block_on` parks the calling thread through a parker made on the
        // thread's first `block_on` and kept in its TLS (tens of bytes a
        // thread; sizes in `docs/attribution.md`).
        default_rule(
            "tokio-park-thread",
            None,
            &[&["tokio::runtime::park::ParkThread::new"]],
            1 << 10,
        ),
        // `spawn_blocking` starts a pool thread when none is idle; the pool
        // keeps its handle, name and shared state while the thread waits
        // for more work (a hundred-odd bytes a thread, kept 10 s by
        // default: tokio's `thread_keep_alive`).
        default_rule(
            "tokio-blocking-pool-thread",
            None,
            // Anchored: the thread's own frames are in
            // `spawn_thread::{{closure}}`, under every task it runs.
            &[&["tokio::runtime::blocking::pool::Spawner::spawn_thread$"]],
            16 << 10,
        ),
        // The registry's per-thread shard of its span slab (shard, page)
        // and the thread's span stack, made on a thread's first span and
        // kept for the thread's life (a few KiB for the first page).
        default_rule(
            "tracing-subscriber-thread-buffers",
            None,
            &[&[
                "tracing_subscriber::registry::sharded::Registry as tracing_core::subscriber::Subscriber>::",
                "tracing_subscriber::registry::stack::SpanStack::",
            ]],
            64 << 10,
        ),
        // The panic hook's backtrace (`RUST_BACKTRACE` set) or a
        // `std::backtrace::Backtrace` parses and caches the debug info of
        // up to four objects for the rest of the process: tens of KB for a
        // release binary without debug info, tens of MB for a debug test
        // binary. Only std's own symboliser has these frames.
        default_rule(
            "std-backtrace-cache",
            None,
            &[&["std::backtrace_rs::"]],
            256 << 20,
        ),
        // libtest captures a test's output in a buffer it keeps until the
        // test ends; the first `println!` or panic message inside the
        // scope grows it there. Only the buffer's own growth matches (the
        // innermost frame past the allocation machinery is its `write` or
        // `write_all`), not what a `Display` impl allocates while printed.
        default_rule(
            "libtest-output-capture",
            Some(&["<alloc::vec::Vec<u8> as std::io::Write>::write"]),
            &[&["std::panicking::default_hook", "std::io::stdio::print_to"]],
            1 << 20,
        ),
    ];
    debug_assert!(rules
        .iter()
        .map(|r| r.label())
        .eq(DEFAULT_NAMES.iter().map(|s| s.to_string())));
    rules
}

/// The check's rules in order of precedence: code, environment, file,
/// defaults (those not turned off).
pub(crate) fn rules_in_order(
    code: &[Retain],
    defaults: Defaults,
    defaults_off: &[String],
) -> Result<Vec<Retain>, RetainRuleError> {
    let from_env = rules_from_env()?;
    for name in defaults_off {
        if !DEFAULT_NAMES.contains(&name.as_str()) {
            return Err(RetainRuleError {
                origin: "LeakCheckOptions::without_default".into(),
                line: 0,
                text: name.clone(),
                problem: format!(
                    "no default rule is named `{name}` (they are: {})",
                    DEFAULT_NAMES.join(", ")
                ),
            });
        }
    }
    let mut rules = code.to_vec();
    rules.extend(from_env.rules);
    if defaults == Defaults::On && !from_env.all_defaults_off {
        rules.extend(default_rules().into_iter().filter(|r| {
            let name = r.label();
            !defaults_off.contains(&name) && !from_env.defaults_off.contains(&name)
        }));
    }
    Ok(rules)
}
