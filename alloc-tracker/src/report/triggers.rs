//! When reports are written without being asked: at exit, periodically,
//! on SIGUSR1; configured by a builder or by environment variables.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::dump::{dump, Format};
use crate::scope::ScopeId;
use crate::thread_state;

/// The report file written at exit, periodically and on signal.
pub const ENV_DUMP: &str = "ALLOC_TRACKER_DUMP";
/// Format name overriding the path's extension (`text`, `json`, `folded`,
/// `svg`, `prometheus`).
pub const ENV_DUMP_FORMAT: &str = "ALLOC_TRACKER_DUMP_FORMAT";
/// Interval of periodic dumps: `30` or `30s` (seconds), `500ms`, `5m`.
pub const ENV_DUMP_EVERY: &str = "ALLOC_TRACKER_DUMP_EVERY";
/// `1` to also dump on SIGUSR1 (unix, feature `signal`).
pub const ENV_DUMP_SIGNAL: &str = "ALLOC_TRACKER_DUMP_SIGNAL";
/// `0` to skip the dump at exit (it is on when [`ENV_DUMP`] is set).
pub const ENV_DUMP_AT_EXIT: &str = "ALLOC_TRACKER_DUMP_AT_EXIT";

/// Invalid dump options. Small, `Copy`, and never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptionsError {
    /// No report path was given.
    NoPath,
    /// No trigger (at exit, periodic, signal) was chosen.
    NoTrigger,
    /// The periodic interval is zero.
    ZeroInterval,
    /// A format name is not one of the known ones.
    UnknownFormat,
    /// No format was given and the path's extension names none.
    NoFormat,
    /// The format needs a cargo feature this build does not have.
    FormatDisabled(Format),
    /// SIGUSR1 dumps need unix and the `signal` feature, or registering the
    /// handler failed.
    SignalUnavailable,
    /// The dump at exit could not be registered (`atexit` failed).
    ExitHookUnavailable,
    /// A dumping thread could not be started.
    SpawnFailed,
    /// An environment variable has a value that cannot be parsed.
    InvalidEnv {
        /// The variable's name.
        var: &'static str,
    },
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionsError::NoPath => f.write_str("no report path given"),
            OptionsError::NoTrigger => {
                f.write_str("no dump trigger chosen (at exit, periodic or on SIGUSR1)")
            }
            OptionsError::ZeroInterval => f.write_str("the dump interval must not be zero"),
            OptionsError::UnknownFormat => f.write_str(
                "unknown report format (expected text, json, folded, svg, prometheus or pprof)",
            ),
            OptionsError::NoFormat => f.write_str(
                "no report format given and the path's extension (.txt, .json, .folded, .svg, .prom, .pb.gz) names none",
            ),
            OptionsError::FormatDisabled(format) => write!(
                f,
                "report format `{format}` needs alloc-tracker's `{}` feature",
                format.feature().unwrap_or("?")
            ),
            OptionsError::SignalUnavailable => f.write_str(
                "SIGUSR1 dumps need a unix target and alloc-tracker's `signal` feature, and the handler must register",
            ),
            OptionsError::ExitHookUnavailable => {
                f.write_str("the exit-time dump could not be registered with atexit")
            }
            OptionsError::SpawnFailed => f.write_str("the report dumping thread could not start"),
            OptionsError::InvalidEnv { var } => write!(f, "invalid value of ${var}"),
        }
    }
}

impl std::error::Error for OptionsError {}

/// Where and how dumps are written.
#[derive(Debug, Clone)]
struct Target {
    path: PathBuf,
    format: Format,
}

impl Target {
    /// Dumps, printing any error (or panic) on stderr.
    fn dump_logged(&self, why: &str) {
        thread_state::internal(|| {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                dump(&self.path, self.format)
            }));
            let mut stderr = std::io::stderr();
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let _ = writeln!(stderr, "alloc-tracker: {why} dump failed: {e}");
                }
                Err(payload) => {
                    let _ = writeln!(stderr, "alloc-tracker: {why} dump panicked");
                    std::mem::forget(payload);
                }
            }
        })
    }
}

/// Builds a [`Dumps`] configuration; see [`Dumps::builder`].
#[derive(Debug, Clone, Default)]
pub struct DumpsBuilder {
    path: Option<PathBuf>,
    format: Option<Format>,
    at_exit: bool,
    every: Option<Duration>,
    on_signal: bool,
}

impl DumpsBuilder {
    /// The report file. Every trigger overwrites it with the latest report.
    #[must_use]
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// The format; by default the one named by the path's extension
    /// ([`Format::from_path`]).
    #[must_use]
    pub fn format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }

    /// Dump when the process exits normally (`main` returns or
    /// `std::process::exit`); not on abort or fatal signals.
    #[must_use]
    pub fn at_exit(mut self) -> Self {
        self.at_exit = true;
        self
    }

    /// Dump every `interval` from a background thread.
    #[must_use]
    pub fn every(mut self, interval: Duration) -> Self {
        self.every = Some(interval);
        self
    }

    /// Dump whenever the process receives SIGUSR1 (`kill -USR1 <pid>`).
    /// Needs unix and the `signal` feature; the signal handler only wakes
    /// a dumping thread, all work happens there.
    #[must_use]
    pub fn on_sigusr1(mut self) -> Self {
        self.on_signal = true;
        self
    }

    /// Applies the environment variables: [`ENV_DUMP`] sets the path and
    /// turns the exit dump on (unless [`ENV_DUMP_AT_EXIT`] is `0`),
    /// [`ENV_DUMP_FORMAT`] the format, [`ENV_DUMP_EVERY`] the interval,
    /// [`ENV_DUMP_SIGNAL`]`=1` the SIGUSR1 trigger. Unset or empty
    /// variables change nothing.
    ///
    /// # Errors
    /// [`OptionsError::InvalidEnv`] or [`OptionsError::UnknownFormat`] for
    /// values that do not parse.
    pub fn from_env(mut self) -> Result<Self, OptionsError> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(path) = var(ENV_DUMP) {
            self.path = Some(PathBuf::from(path));
            self.at_exit = true;
        }
        if let Some(v) = var(ENV_DUMP_AT_EXIT) {
            self.at_exit = parse_switch(&v).ok_or(OptionsError::InvalidEnv {
                var: ENV_DUMP_AT_EXIT,
            })?;
        }
        if let Some(v) = var(ENV_DUMP_FORMAT) {
            let v = v.to_str().ok_or(OptionsError::UnknownFormat)?;
            self.format = Some(v.parse()?);
        }
        if let Some(v) = var(ENV_DUMP_EVERY) {
            let interval = v
                .to_str()
                .and_then(parse_interval)
                .ok_or(OptionsError::InvalidEnv {
                    var: ENV_DUMP_EVERY,
                })?;
            self.every = Some(interval);
        }
        if let Some(v) = var(ENV_DUMP_SIGNAL) {
            self.on_signal = parse_switch(&v).ok_or(OptionsError::InvalidEnv {
                var: ENV_DUMP_SIGNAL,
            })?;
        }
        Ok(self)
    }

    /// Validates the options.
    ///
    /// # Errors
    /// [`OptionsError`]: no path, no trigger, a zero interval, no format
    /// or one not compiled in, SIGUSR1 asked for where it is unavailable.
    pub fn build(self) -> Result<Dumps, OptionsError> {
        let path = self.path.ok_or(OptionsError::NoPath)?;
        if !self.at_exit && self.every.is_none() && !self.on_signal {
            return Err(OptionsError::NoTrigger);
        }
        if self.every == Some(Duration::ZERO) {
            return Err(OptionsError::ZeroInterval);
        }
        let format = match self.format {
            Some(f) => f,
            None => Format::from_path(&path).ok_or(OptionsError::NoFormat)?,
        };
        if !format.is_available() {
            return Err(OptionsError::FormatDisabled(format));
        }
        if self.on_signal && !cfg!(all(unix, feature = "signal")) {
            return Err(OptionsError::SignalUnavailable);
        }
        Ok(Dumps {
            target: Target { path, format },
            at_exit: self.at_exit,
            every: self.every,
            on_signal: self.on_signal,
        })
    }

    /// Validates the options and starts the triggers
    /// ([`Dumps::install`]).
    ///
    /// # Errors
    /// See [`build`](Self::build) and [`Dumps::install`].
    pub fn install(self) -> Result<DumpHandle, OptionsError> {
        self.build()?.install()
    }
}

/// `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`.
fn parse_switch(v: &std::ffi::OsStr) -> Option<bool> {
    let v = v.to_str()?.trim();
    let is = |names: &[&str]| names.iter().any(|n| v.eq_ignore_ascii_case(n));
    if is(&["1", "true", "yes", "on"]) {
        Some(true)
    } else if is(&["0", "false", "no", "off"]) {
        Some(false)
    } else {
        None
    }
}

/// `30`, `30s`, `500ms`, `5m`, `1h`.
fn parse_interval(v: &str) -> Option<Duration> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: u64 = v[..split].parse().ok()?;
    match v[split..].trim() {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

// === impl Dumps ===

/// A validated set of dump triggers.
///
/// ```no_run
/// use std::time::Duration;
/// use alloc_tracker::report::{Dumps, Format};
///
/// let handle = Dumps::builder()
///     .path("/tmp/alloc-report.prom")
///     .format(Format::Prometheus)
///     .every(Duration::from_secs(15))
///     .at_exit()
///     .install()?;
/// // ... run the program ...
/// handle.stop(); // stops the periodic dumps; the exit dump stays armed
/// # Ok::<(), alloc_tracker::report::OptionsError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Dumps {
    target: Target,
    at_exit: bool,
    every: Option<Duration>,
    on_signal: bool,
}

/// The exit-time target, read by the `atexit` hook; replaced by every
/// install that asks for it.
static EXIT_TARGET: Mutex<Option<Target>> = Mutex::new(None);

fn exit_dump() {
    let target = EXIT_TARGET
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(target) = target {
        target.dump_logged("exit-time");
    }
}

impl Dumps {
    /// Starts building dump triggers.
    pub fn builder() -> DumpsBuilder {
        DumpsBuilder::default()
    }

    /// The report file.
    pub fn path(&self) -> &Path {
        &self.target.path
    }

    /// The report format.
    pub fn format(&self) -> Format {
        self.target.format
    }

    /// Arms the triggers: registers the exit dump, starts the periodic
    /// thread and the SIGUSR1 thread. Their work runs in
    /// [`ScopeId::INTERNAL`], so it does not change other scopes' figures;
    /// failed dumps are reported on stderr and never panic the program.
    ///
    /// Installing again replaces the exit-time target; periodic and signal
    /// threads of earlier installs keep running until stopped.
    ///
    /// # Errors
    /// [`OptionsError::ExitHookUnavailable`],
    /// [`OptionsError::SignalUnavailable`] or [`OptionsError::SpawnFailed`];
    /// whatever was started before the failure is stopped again.
    pub fn install(self) -> Result<DumpHandle, OptionsError> {
        thread_state::internal(|| {
            let mut handle = DumpHandle {
                periodic: None,
                signal: None,
            };
            if self.at_exit {
                let mut slot = EXIT_TARGET.lock().unwrap_or_else(PoisonError::into_inner);
                let first = slot.is_none();
                *slot = Some(self.target.clone());
                drop(slot);
                if first && !register_exit_hook() {
                    *EXIT_TARGET.lock().unwrap_or_else(PoisonError::into_inner) = None;
                    return Err(OptionsError::ExitHookUnavailable);
                }
            }
            if let Some(every) = self.every {
                handle.periodic = Some(spawn_periodic(self.target.clone(), every)?);
            }
            if self.on_signal {
                handle.signal = Some(signal::spawn(self.target.clone())?);
            }
            Ok(handle)
        })
    }
}

/// Registers [`exit_dump`] with `atexit` once per process.
fn register_exit_hook() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| crate::allocator::at_exit(exit_dump))
}

/// Spawns a tracker thread that runs `work` in the internal scope.
fn spawn_internal(
    name: &str,
    work: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, OptionsError> {
    thread_state::internal(|| {
        thread::Builder::new()
            .name(name.to_string())
            .spawn(move || ScopeId::INTERNAL.in_scope(work))
            .map_err(|_| OptionsError::SpawnFailed)
    })
}

/// A stop flag the periodic thread sleeps on.
#[derive(Debug, Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

fn spawn_periodic(
    target: Target,
    every: Duration,
) -> Result<(Arc<Stop>, JoinHandle<()>), OptionsError> {
    let stop = Arc::new(Stop::default());
    let stop2 = Arc::clone(&stop);
    let thread = spawn_internal("alloc-tracker-dump", move || loop {
        let stopped = stop2.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        let (stopped, _) = stop2
            .wake
            .wait_timeout_while(stopped, every, |s| !*s)
            .unwrap_or_else(PoisonError::into_inner);
        if *stopped {
            return;
        }
        drop(stopped);
        target.dump_logged("periodic");
    })?;
    Ok((stop, thread))
}

#[cfg(all(unix, feature = "signal"))]
mod signal {
    use std::thread::JoinHandle;

    use signal_hook::consts::SIGUSR1;
    use signal_hook::iterator::{Handle, Signals};

    use super::{spawn_internal, OptionsError, Target};

    /// What stops a SIGUSR1 thread.
    pub(super) type Stopper = (Handle, JoinHandle<()>);

    /// Registers SIGUSR1 with signal-hook (its handler only writes to a
    /// self-pipe) and dumps from a thread that reads the pipe.
    pub(super) fn spawn(target: Target) -> Result<Stopper, OptionsError> {
        let mut signals = Signals::new([SIGUSR1]).map_err(|_| OptionsError::SignalUnavailable)?;
        let handle = signals.handle();
        match spawn_internal("alloc-tracker-sigusr1", move || {
            for _ in signals.forever() {
                target.dump_logged("SIGUSR1");
            }
        }) {
            Ok(thread) => Ok((handle, thread)),
            Err(e) => {
                handle.close();
                Err(e)
            }
        }
    }

    pub(super) fn stop((handle, thread): Stopper) {
        handle.close();
        let _ = thread.join();
    }
}

#[cfg(not(all(unix, feature = "signal")))]
mod signal {
    use super::{OptionsError, Target};

    /// Never made: SIGUSR1 dumps are unavailable in this build.
    #[derive(Debug)]
    pub(super) enum Stopper {}

    pub(super) fn spawn(_target: Target) -> Result<Stopper, OptionsError> {
        Err(OptionsError::SignalUnavailable)
    }

    pub(super) fn stop(stopper: Stopper) {
        match stopper {}
    }
}

/// The running triggers of one [`Dumps::install`].
///
/// Dropping it leaves them running for the rest of the process (the usual
/// case: install once at startup); [`stop`](Self::stop) ends the periodic
/// and SIGUSR1 threads. The exit dump stays armed either way.
#[derive(Debug)]
pub struct DumpHandle {
    periodic: Option<(Arc<Stop>, JoinHandle<()>)>,
    signal: Option<signal::Stopper>,
}

impl DumpHandle {
    /// Stops the periodic and SIGUSR1 threads and waits for them (a dump
    /// in progress finishes first). After this, SIGUSR1 is ignored rather
    /// than killing the process.
    pub fn stop(mut self) {
        if let Some((stop, thread)) = self.periodic.take() {
            *stop.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
            stop.wake.notify_all();
            let _ = thread.join();
        }
        if let Some(s) = self.signal.take() {
            signal::stop(s);
        }
    }
}

/// Installs the dump triggers named by the environment, if
/// [`ENV_DUMP`] (`ALLOC_TRACKER_DUMP`) is set: call it once at startup.
///
/// ```no_run
/// # #[global_allocator]
/// # static A: alloc_tracker::TrackingAlloc<alloc_tracker::Jemalloc> =
/// #     alloc_tracker::TrackingAlloc::new(alloc_tracker::Jemalloc);
/// fn main() {
///     // ALLOC_TRACKER_DUMP=/tmp/report.json ./my-program
///     if let Err(e) = alloc_tracker::report::dump_triggers_from_env() {
///         eprintln!("allocation reports disabled: {e}");
///     }
///     // ... the report is written when main returns.
/// }
/// ```
///
/// Returns `Ok(None)` when the variable is unset or empty.
///
/// # Errors
/// [`OptionsError`] for unparsable variables or invalid combinations.
pub fn dump_triggers_from_env() -> Result<Option<DumpHandle>, OptionsError> {
    thread_state::internal(|| {
        let builder = Dumps::builder().from_env()?;
        if builder.path.is_none() {
            return Ok(None);
        }
        builder.install().map(Some)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_interval("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_interval("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_interval("x"), None);
        assert_eq!(parse_interval("5 days"), None);
    }

    #[test]
    fn validation() {
        let b = || Dumps::builder().path("/tmp/x.txt");
        assert_eq!(
            Dumps::builder().at_exit().build().unwrap_err(),
            OptionsError::NoPath
        );
        assert_eq!(b().build().unwrap_err(), OptionsError::NoTrigger);
        assert_eq!(
            b().every(Duration::ZERO).build().unwrap_err(),
            OptionsError::ZeroInterval
        );
        assert_eq!(
            Dumps::builder()
                .path("/tmp/x.unknown")
                .at_exit()
                .build()
                .unwrap_err(),
            OptionsError::NoFormat
        );
        assert_eq!(
            "yaml".parse::<Format>().unwrap_err(),
            OptionsError::UnknownFormat
        );
        let ok = b().every(Duration::from_secs(1)).build().unwrap();
        assert_eq!(ok.format(), Format::Text);
    }
}
