//! Where triggered dumps go, and the one lock they are written under.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use crate::hot::thread_state;
use crate::report::dump::Format;
use crate::report::Report;

/// Where and how dumps are written: one report, in each file's format.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) files: Vec<(PathBuf, Format)>,
}

/// Held by every triggered dump: the exit, periodic and SIGUSR1 triggers
/// of the process write one at a time.
static DUMP_LOCK: Mutex<()> = Mutex::new(());

impl Target {
    /// Dumps, printing any error (or panic) on stderr. Triggered dumps are
    /// serialised by [`DUMP_LOCK`].
    pub(super) fn dump_logged(&self, why: &str) {
        thread_state::internal(|| {
            let _one_at_a_time = DUMP_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let report = Report::take();
                self.files
                    .iter()
                    .map(|(path, format)| report.write_to_file(path, *format))
                    .collect::<Vec<_>>()
            }));
            let mut stderr = std::io::stderr();
            match result {
                Ok(results) => {
                    for e in results.into_iter().filter_map(Result::err) {
                        let _ = writeln!(stderr, "alloc-tracker: {why} dump failed: {e}");
                    }
                }
                Err(payload) => {
                    let _ = writeln!(stderr, "alloc-tracker: {why} dump panicked");
                    std::mem::forget(payload);
                }
            }
        })
    }
}
