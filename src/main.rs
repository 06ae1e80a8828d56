//! `ckptdb`: runs a checkpointing workload on the embedded engine and shows,
//! per checkpoint run, whether it gave back every byte it allocated, then
//! the allocation report by subsystem. `ckptdb inspect` shows a data
//! directory without modifying it. `ckptdb --help` lists the options; the
//! exit codes are in `src/cli/exit.rs`. `ALLOC_TRACKER_DUMP=path` (and the
//! other `ALLOC_TRACKER_DUMP_*` variables of `scope_alloc_tracker::report`) also
//! write the report at exit, periodically or on SIGUSR1.
//!
//! The program itself is [`cli::main`]; this file only installs the
//! tracker. `src/bin/ckptdb-bare.rs` is the same program over bare jemalloc
//! (benchmark only: `bench/e2e.sh`).

mod cli;

use std::process::ExitCode;

use scope_alloc_tracker::{Jemalloc, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

fn main() -> ExitCode {
    cli::main()
}
