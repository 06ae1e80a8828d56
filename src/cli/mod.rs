//! The command line of the main binary: `run` (the default) drives a
//! workload against the engine and reports per-checkpoint leak verdicts and
//! the allocation report; `inspect` shows a data directory read-only.
//!
//! - `args`: the `clap` definitions and value parsers; validation.
//! - `run`: the workload driver (writers, checkpoints, restart, report).
//! - `checkpoints`: one checkpoint run under a leak check, and its line.
//! - `progress`: progress bar or plain progress lines.
//! - `inspect`: printing an inspection.
//! - `exit`: exit codes and the error type.
//!
//! [`main`] is the whole program; the binaries around it only choose the
//! global allocator (`src/main.rs`: the tracker; `src/bin/ckptdb-bare.rs`:
//! bare jemalloc, for benchmarks).

pub(crate) mod args;
mod checkpoints;
pub(crate) mod exit;
pub(crate) mod inspect;
mod progress;
pub(crate) mod run;

use std::process::ExitCode;

use clap::Parser as _;

use args::{Cli, Command};

/// The main job: parses the command line, runs `run` or `inspect`, and
/// maps the outcome to the exit code.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    // ALLOC_TRACKER_DUMP=path (with _FORMAT, _EVERY, _SIGNAL=1) writes the
    // allocation report at exit, periodically or on SIGUSR1.
    let _dumps = match scope_alloc_tracker::report::dump_triggers_from_env() {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Some(Command::Run(args)) => run::run(args),
        Some(Command::Inspect(args)) => inspect::run(args),
        None => run::run(cli.run),
    };
    match result {
        Ok(outcome) => outcome.into(),
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
