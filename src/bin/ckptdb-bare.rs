//! `ckptdb-bare`: the main job (`src/main.rs`) over bare jemalloc instead
//! of `TrackingAlloc<Jemalloc>`. BENCHMARK ONLY: `bench/e2e.sh` runs it
//! against `ckptdb` to measure what the tracker costs end to end.
//!
//! It compiles the very same `src/cli/` (included by path, not copied), so
//! the two binaries differ only in their `#[global_allocator]`. With no
//! tracker installed nothing is attributed: the engine (production leak
//! mode) reports every run `drained: unchecked (no tracker)` and the
//! verdict is `NOT CHECKED` (`--inject-leak` is NOT detected, the run exits
//! 0), and the allocation report by scope is empty; jemalloc's own process
//! figures are still printed. A separate binary rather than a cargo feature, so that
//! `--all-features` builds (clippy, `cargo test --workspace --all-features`)
//! keep the tracked `ckptdb` the main-job tests rely on.

#[path = "../cli/mod.rs"]
mod cli;

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: scope_alloc_tracker::Jemalloc = scope_alloc_tracker::Jemalloc;

fn main() -> ExitCode {
    eprintln!(
        "ckptdb-bare: benchmark build over bare jemalloc; no tracker, leak checks count nothing"
    );
    cli::main()
}
