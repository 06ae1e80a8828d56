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

pub(crate) mod args;
mod checkpoints;
pub(crate) mod exit;
pub(crate) mod inspect;
mod progress;
pub(crate) mod run;
