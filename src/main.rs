//! `ckptdb`: runs a checkpointing workload on the embedded engine and shows,
//! per checkpoint run, whether it gave back every byte it allocated, then
//! the allocation report by subsystem. `ckptdb inspect` shows a data
//! directory without modifying it. `ckptdb --help` lists the options; the
//! exit codes are in `src/cli/exit.rs`.

mod cli;

use std::process::ExitCode;

use alloc_tracker::{Jemalloc, TrackingAlloc};
use clap::Parser as _;

use cli::args::{Cli, Command};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

fn main() -> ExitCode {
    let cli = Cli::parse();
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
