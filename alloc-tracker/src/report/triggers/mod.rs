//! When reports are written without being asked: at exit, periodically,
//! on SIGUSR1; configured by a builder or by environment variables.
//!
//! Every trigger of the process writes through one lock ([`Target::dump_logged`](target::Target::dump_logged)),
//! so triggers never race each other; each dump also writes its own
//! temporary file ([`Report::write_to_file`](super::Report::write_to_file)),
//! so on-demand dumps from other threads cannot corrupt the file either.
//! At exit the periodic and SIGUSR1 threads are stopped and joined before
//! the exit dump is written.
//!
//! - `config`: the options ([`DumpsBuilder`], the environment variables),
//!   their validation and errors.
//! - `target`: the report file and the lock every triggered dump takes.
//! - `threads`: the periodic and SIGUSR1 threads.
//! - here: installing the triggers, the exit hook, [`DumpHandle`].

use std::sync::{Arc, Mutex, PoisonError};

use crate::hot::thread_state;

mod config;
mod target;
mod threads;

pub use config::{
    parse_duration, Dumps, DumpsBuilder, EnvError, OptionsError, DURATION_FORMS, ENV_DUMP,
    ENV_DUMP_AT_EXIT, ENV_DUMP_AT_PEAK, ENV_DUMP_EVERY, ENV_DUMP_FORMAT, ENV_DUMP_SIGNAL,
};
use target::Target;
use threads::{spawn_peak, spawn_periodic, spawn_signal, Trigger};

/// The exit-time target, read by the `atexit` hook; replaced by every
/// install that asks for it.
static EXIT_TARGET: Mutex<Option<Target>> = Mutex::new(None);

/// The periodic and SIGUSR1 threads still running, stopped by
/// [`DumpHandle::stop`] or, at the latest, by the exit hook.
static RUNNING: Mutex<Vec<Arc<Trigger>>> = Mutex::new(Vec::new());

/// At exit: stop and join every periodic and SIGUSR1 thread (a dump in
/// progress finishes first), then write the exit dump, so the exit dump is
/// the last one and nothing races it.
fn exit_dump() {
    let running = std::mem::take(&mut *RUNNING.lock().unwrap_or_else(PoisonError::into_inner));
    for trigger in running {
        trigger.stop();
    }
    let target = EXIT_TARGET
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(target) = target {
        target.dump_logged("exit-time");
    }
}

impl Dumps {
    /// Arms the triggers: registers the exit dump, starts the periodic
    /// thread and the SIGUSR1 thread. Their work runs in
    /// [`ScopeId::INTERNAL`](crate::ScopeId::INTERNAL), so it does not change other scopes' figures;
    /// failed dumps are reported on stderr and never panic the program.
    /// Triggered dumps are written one at a time, each through its own
    /// temporary file, so the report file is always a complete report.
    ///
    /// Installing again replaces the exit-time target; periodic and signal
    /// threads of earlier installs keep running until stopped. An exit
    /// hook (registered by the first install) stops every periodic and
    /// SIGUSR1 thread when the process exits normally, before the exit dump
    /// if there is one.
    ///
    /// # Errors
    /// [`OptionsError::ExitHookUnavailable`],
    /// [`OptionsError::SignalUnavailable`] or [`OptionsError::SpawnFailed`];
    /// whatever was started before the failure is stopped again.
    pub fn install(self) -> Result<DumpHandle, OptionsError> {
        thread_state::internal(|| {
            let target = Target { files: self.files };
            let mut handle = DumpHandle {
                triggers: Vec::new(),
            };
            if !self.peak_files.is_empty() {
                let _ = register_exit_hook();
                let peak = Target {
                    files: self.peak_files,
                };
                handle.start(spawn_peak(peak, self.peak_growth)?);
            }
            if self.at_exit {
                let mut slot = EXIT_TARGET.lock().unwrap_or_else(PoisonError::into_inner);
                let first = slot.is_none();
                *slot = Some(target.clone());
                drop(slot);
                if first && !register_exit_hook() {
                    *EXIT_TARGET.lock().unwrap_or_else(PoisonError::into_inner) = None;
                    return Err(OptionsError::ExitHookUnavailable);
                }
            } else if self.every.is_some() || self.on_signal {
                // Without an exit dump the hook only stops the threads, so
                // none is killed mid-dump; not fatal if it cannot register
                // (a dump cut short leaves at most a temporary file, never
                // a partial report).
                let _ = register_exit_hook();
            }
            if let Some(every) = self.every {
                handle.start(spawn_periodic(target.clone(), every)?);
            }
            if self.on_signal {
                match spawn_signal(target) {
                    Ok(trigger) => handle.start(trigger),
                    Err(e) => {
                        handle.stop();
                        return Err(e);
                    }
                }
            }
            Ok(handle)
        })
    }
}

impl DumpsBuilder {
    /// Validates the options and starts the triggers
    /// ([`Dumps::install`]).
    ///
    /// # Errors
    /// See [`build`](Self::build) and [`Dumps::install`].
    pub fn install(self) -> Result<DumpHandle, OptionsError> {
        self.build()?.install()
    }
}

/// Registers [`exit_dump`] with `atexit` once per process.
fn register_exit_hook() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| crate::allocator::at_exit(exit_dump))
}

/// The running triggers of one [`Dumps::install`].
///
/// Dropping it leaves them running until the process exits (the usual
/// case: install once at startup); the exit hook stops them before the
/// exit dump. [`stop`](Self::stop) ends the periodic and SIGUSR1 threads
/// earlier. The exit dump stays armed either way.
#[derive(Debug)]
pub struct DumpHandle {
    triggers: Vec<Arc<Trigger>>,
}

impl DumpHandle {
    /// Keeps `trigger` in this handle and in the process's list.
    fn start(&mut self, trigger: Trigger) {
        let trigger = Arc::new(trigger);
        RUNNING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&trigger));
        self.triggers.push(trigger);
    }

    /// Stops the periodic and SIGUSR1 threads and waits for them (a dump
    /// in progress finishes first). After this, SIGUSR1 is ignored rather
    /// than killing the process.
    pub fn stop(mut self) {
        let mine = std::mem::take(&mut self.triggers);
        RUNNING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|t| !mine.iter().any(|m| Arc::ptr_eq(t, m)));
        for t in mine {
            t.stop();
        }
    }
}

/// Installs the dump triggers named by the environment, if
/// [`ENV_DUMP`] (`ALLOC_TRACKER_DUMP`) is set: call it once at startup,
/// before any work, so a bad setting stops the program early.
///
/// ```no_run
/// # #[global_allocator]
/// # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
/// #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
/// fn main() -> std::process::ExitCode {
///     // ALLOC_TRACKER_DUMP=/tmp/report.json,/tmp/report.txt \
///     // ALLOC_TRACKER_DUMP_AT_PEAK=/tmp/heap-peak.pb.gz ./my-program
///     if let Err(e) = scope_alloc_tracker::report::dump_triggers_from_env() {
///         eprintln!("error: {e}"); // names the variable, its value, what it accepts
///         return std::process::ExitCode::from(2);
///     }
///     // ... the report is written when main returns.
///     std::process::ExitCode::SUCCESS
/// }
/// ```
///
/// [`ENV_DUMP`] takes a comma-separated list of files (one report, written
/// in each file's format); [`ENV_DUMP_AT_PEAK`] files are rewritten each
/// time the tracked live bytes reach a new peak, 10% above the last one
/// written ([`DumpsBuilder::at_peak`]): the heap profile of a service at its
/// highest, with the sampled sites live then.
///
/// Returns `Ok(None)` when neither [`ENV_DUMP`] nor [`ENV_DUMP_AT_PEAK`] is
/// set.
///
/// # Errors
/// [`EnvError`] naming the variable and its value: unparsable values,
/// [`ENV_DUMP_EVERY`], [`ENV_DUMP_SIGNAL`] or [`ENV_DUMP_FORMAT`] without
/// [`ENV_DUMP`], a report path that is a directory or whose directory does
/// not exist, a format not compiled in.
pub fn dump_triggers_from_env() -> Result<Option<DumpHandle>, EnvError> {
    thread_state::internal(|| {
        let builder = Dumps::builder().from_env()?;
        if builder.files.is_empty() && builder.peak_files.is_empty() {
            return Ok(None);
        }
        builder
            .clone()
            .install()
            .map(Some)
            .map_err(|problem| builder.blame(problem))
    })
}
