//! `ckptdb`: runs a checkpointing workload on the embedded engine and shows,
//! per checkpoint run, whether it gave back every byte it allocated, then
//! the allocation report by subsystem. `ckptdb inspect` shows a data
//! directory without modifying it. `ckptdb --help` lists the options; the
//! exit codes are in `src/cli/exit.rs`. `ALLOC_TRACKER_DUMP=path` (and the
//! other `ALLOC_TRACKER_DUMP_*` variables of `alloc_tracker::report`) also
//! write the report at exit, periodically or on SIGUSR1.

mod cli;

use std::process::ExitCode;

use alloc_tracker::{Jemalloc, TrackingAlloc};
use clap::Parser as _;

use cli::args::{Cli, Command};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

fn main() -> ExitCode {
    let cli = Cli::parse();
    // ALLOC_TRACKER_DUMP=path (with _FORMAT, _EVERY, _SIGNAL=1) writes the
    // allocation report at exit, periodically or on SIGUSR1.
    let _dumps = match alloc_tracker::report::dump_triggers_from_env() {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Some(Command::Run(args)) => cli::run::run(args),
        Some(Command::Inspect(args)) => cli::inspect::run(args),
        None => cli::run::run(cli.run),
    };
    match result {
        Ok(outcome) => outcome.into(),
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
