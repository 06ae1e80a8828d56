//! Exit codes and the error type of the command line.
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | success: every checkpoint run drained |
//! | 1 | a checkpoint run leaked memory or broke the file-leak invariant |
//! | 2 | bad arguments, an unusable data directory or report path (clap's own errors exit 2 too) |
//! | 3 | the run failed: I/O error, corrupt data directory, report not written |

use std::fmt;
use std::process::ExitCode;

/// How the program ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything drained.
    Clean,
    /// At least one checkpoint run leaked.
    Leaked,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> ExitCode {
        match o {
            Outcome::Clean => ExitCode::SUCCESS,
            Outcome::Leaked => ExitCode::from(1),
        }
    }
}

/// Why the program stops early.
#[derive(Debug)]
pub(crate) enum CliError {
    /// Bad arguments or environment the user can fix (exit code 2).
    Usage(String),
    /// The work itself failed (exit code 3).
    Failed(String),
}

impl CliError {
    /// A usage error.
    pub(crate) fn usage(msg: impl Into<String>) -> CliError {
        CliError::Usage(msg.into())
    }

    /// A failure of the run.
    pub(crate) fn failed(msg: impl Into<String>) -> CliError {
        CliError::Failed(msg.into())
    }

    /// The process exit code.
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            CliError::Failed(_) => ExitCode::from(3),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Failed(m) => f.write_str(m),
        }
    }
}

/// Prints the error's chain of causes on one line each.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let msg = c.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = c.source();
    }
    s
}
