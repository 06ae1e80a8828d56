//! What triggers dumps and where they go: the options of [`Dumps`], from a
//! builder or from the `ALLOC_TRACKER_DUMP*` variables, validated before
//! anything starts; and the errors that name what is wrong with them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::report::dump::Format;

/// The report files written at exit, periodically and on signal: one path,
/// or a comma-separated list (`/tmp/r.json,/tmp/r.txt,/tmp/heap.pb.gz`),
/// each file in the format its extension names; one report is taken per
/// dump and written to every file.
pub const ENV_DUMP: &str = "ALLOC_TRACKER_DUMP";
/// Format name overriding the path's extension (`text`, `json`, `folded`,
/// `svg`, `prometheus`); only with a single path in [`ENV_DUMP`].
pub const ENV_DUMP_FORMAT: &str = "ALLOC_TRACKER_DUMP_FORMAT";
/// Interval of periodic dumps, in the grammar of [`parse_duration`]:
/// `30` or `30s` (seconds), `1.5s`, `500ms`, `5m`, `1h`. Needs [`ENV_DUMP`].
pub const ENV_DUMP_EVERY: &str = "ALLOC_TRACKER_DUMP_EVERY";
/// `1` to also dump on SIGUSR1 (unix, feature `signal`). Needs
/// [`ENV_DUMP`].
pub const ENV_DUMP_SIGNAL: &str = "ALLOC_TRACKER_DUMP_SIGNAL";
/// `0` to skip the dump at exit (it is on when [`ENV_DUMP`] is set).
pub const ENV_DUMP_AT_EXIT: &str = "ALLOC_TRACKER_DUMP_AT_EXIT";
/// Report files (a comma-separated list, format from each extension)
/// rewritten each time the tracked live bytes reach a new peak, 10% above
/// the last one written (see [`DumpsBuilder::at_peak`]); needs no
/// [`ENV_DUMP`].
pub const ENV_DUMP_AT_PEAK: &str = "ALLOC_TRACKER_DUMP_AT_PEAK";

/// The durations [`parse_duration`] accepts, for error messages.
pub const DURATION_FORMS: &str =
    "a non-negative decimal number with an optional unit ms, s, m or h (no unit: seconds), e.g. 1.5, 1.5s, 500ms, 2m, 1h";

/// The switches `ALLOC_TRACKER_DUMP_SIGNAL` and `_AT_EXIT` accept.
const SWITCH_FORMS: &str = "1, true, yes, on or 0, false, no, off";

/// The format names and extensions, for error messages.
const FORMAT_FORMS: &str = "text, json, folded, svg, prometheus or pprof";

/// Invalid dump options. Small, `Copy`, and never allocates; the
/// environment's variant with the variable's value is [`EnvError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptionsError {
    /// No report path was given (a periodic or SIGUSR1 trigger without
    /// [`ENV_DUMP`], or a builder without [`DumpsBuilder::path`]).
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
    /// The report path is an existing directory (or has no file name).
    PathIsDirectory,
    /// The report path's parent directory does not exist or is not a
    /// directory.
    NoDirectory,
    /// A format was forced ([`DumpsBuilder::format`], [`ENV_DUMP_FORMAT`])
    /// for several report files: name each file's format by its extension
    /// (or [`DumpsBuilder::file`]) instead.
    FormatForSeveralFiles,
    /// The growth that makes a new peak worth a dump is not a finite
    /// number above zero.
    InvalidPeakGrowth,
    /// SIGUSR1 dumps need unix and the `signal` feature, or registering the
    /// handler failed.
    SignalUnavailable,
    /// The dump at exit could not be registered (`atexit` failed).
    ExitHookUnavailable,
    /// A dumping thread could not be started.
    SpawnFailed,
    /// A duration does not parse ([`parse_duration`]).
    InvalidDuration,
    /// A switch is not one of `1`/`true`/`yes`/`on`/`0`/`false`/`no`/`off`.
    InvalidSwitch,
}

/// Format names as the options and `ALLOC_TRACKER_DUMP_FORMAT` give them.
impl FromStr for Format {
    type Err = OptionsError;

    /// Parses a format name: `text`/`txt`, `json`, `folded`/`collapsed`,
    /// `svg`/`flamegraph`, `prometheus`/`prom`, `pprof` (case-insensitive).
    fn from_str(s: &str) -> Result<Format, OptionsError> {
        Format::named(s.trim()).ok_or(OptionsError::UnknownFormat)
    }
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionsError::NoPath => f.write_str("no report path given"),
            OptionsError::NoTrigger => {
                f.write_str("no dump trigger chosen (at exit, periodic or on SIGUSR1)")
            }
            OptionsError::ZeroInterval => f.write_str("the dump interval must not be zero"),
            OptionsError::UnknownFormat => {
                write!(f, "unknown report format (expected {FORMAT_FORMS})")
            }
            OptionsError::NoFormat => f.write_str(
                "no report format given and the path's extension (.txt, .json, .folded, .svg, .prom, .pb.gz) names none",
            ),
            OptionsError::FormatDisabled(format) => write!(
                f,
                "report format `{format}` needs scope-alloc-tracker's `{}` feature",
                format.feature().unwrap_or("?")
            ),
            OptionsError::PathIsDirectory => {
                f.write_str("the report path is a directory, not a file")
            }
            OptionsError::NoDirectory => {
                f.write_str("the report's directory does not exist or is not a directory")
            }
            OptionsError::FormatForSeveralFiles => f.write_str(
                "one format forced for several report files (name each file's format by its extension)",
            ),
            OptionsError::InvalidPeakGrowth => {
                f.write_str("the peak growth must be a finite fraction above zero (0.1 for 10%)")
            }
            OptionsError::SignalUnavailable => f.write_str(
                "SIGUSR1 dumps need a unix target and scope-alloc-tracker's `signal` feature, and the handler must register",
            ),
            OptionsError::ExitHookUnavailable => {
                f.write_str("the exit-time dump could not be registered with atexit")
            }
            OptionsError::SpawnFailed => f.write_str("the report dumping thread could not start"),
            OptionsError::InvalidDuration => write!(f, "not a duration (expected {DURATION_FORMS})"),
            OptionsError::InvalidSwitch => write!(f, "not a switch (expected {SWITCH_FORMS})"),
        }
    }
}

impl std::error::Error for OptionsError {}

/// An `ALLOC_TRACKER_DUMP*` variable is invalid, or the combination is.
///
/// The message names the variable, its value and what it accepts:
///
/// ```
/// use scope_alloc_tracker::report::{EnvError, OptionsError, ENV_DUMP_EVERY};
///
/// let e = EnvError::new(ENV_DUMP_EVERY, "soon", OptionsError::InvalidDuration);
/// assert_eq!(e.var(), "ALLOC_TRACKER_DUMP_EVERY");
/// let msg = e.to_string();
/// assert!(msg.contains("ALLOC_TRACKER_DUMP_EVERY=\"soon\""), "{msg}");
/// assert!(msg.contains("500ms"), "{msg}");
/// ```
///
/// Unlike [`OptionsError`] it allocates (it holds the value); it is made
/// once, at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvError {
    var: &'static str,
    value: String,
    problem: OptionsError,
}

impl EnvError {
    /// The error for variable `var` set to `value`.
    pub fn new(var: &'static str, value: impl Into<String>, problem: OptionsError) -> EnvError {
        EnvError {
            var,
            value: value.into(),
            problem,
        }
    }

    /// The variable's name (one of the `ENV_DUMP*` constants).
    pub fn var(&self) -> &'static str {
        self.var
    }

    /// Its value as read (lossily converted to UTF-8).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// What is wrong with it.
    pub fn problem(&self) -> OptionsError {
        self.problem
    }
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}={:?}: {}", self.var, self.value, self.problem)?;
        match self.problem {
            OptionsError::NoPath => {
                write!(f, "; {} needs {ENV_DUMP}=<report file> as well", self.var)
            }
            OptionsError::PathIsDirectory | OptionsError::NoDirectory | OptionsError::NoFormat => {
                write!(
                    f,
                    "; {ENV_DUMP} takes a file path in an existing directory, ending in .txt, .json, .folded, .svg, .prom or .pb.gz (or set {ENV_DUMP_FORMAT})"
                )
            }
            _ => Ok(()),
        }
    }
}

impl std::error::Error for EnvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.problem)
    }
}

/// Parses a duration: a non-negative decimal number with an optional unit,
/// `ms`, `s`, `m` or `h`; a number without a unit is seconds. `1.5`,
/// `1.5s`, `500ms`, `0.25m`, `2h` all parse; `1e3`, `-1s`, `5 days` do not.
/// Spaces around the number and the unit are ignored. Exact to the
/// nanosecond (no floating point).
///
/// This is the grammar of [`ENV_DUMP_EVERY`], and the main job's
/// `--duration` uses it too.
///
/// ```
/// use std::time::Duration;
/// use scope_alloc_tracker::report::parse_duration;
///
/// assert_eq!(parse_duration("1.5"), Some(Duration::from_millis(1500)));
/// assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
/// assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
/// assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
/// assert_eq!(parse_duration("soon"), None);
/// ```
pub fn parse_duration(s: &str) -> Option<Duration> {
    const NANOS: u128 = 1_000_000_000;
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit_nanos: u128 = match unit.trim() {
        "ms" => NANOS / 1000,
        "" | "s" => NANOS,
        "m" => 60 * NANOS,
        "h" => 3600 * NANOS,
        _ => return None,
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return None;
    }
    let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut nanos = int.checked_mul(unit_nanos)?;
    let mut scale = unit_nanos;
    for d in frac.bytes() {
        scale /= 10;
        nanos = nanos.checked_add(u128::from(d - b'0') * scale)?;
    }
    let secs = u64::try_from(nanos / NANOS).ok()?;
    Some(Duration::new(secs, (nanos % NANOS) as u32))
}

/// Builds a [`Dumps`] configuration; see [`Dumps::builder`].
#[derive(Debug, Clone)]
pub struct DumpsBuilder {
    /// The report files of the exit, periodic and SIGUSR1 triggers.
    pub(super) files: Vec<(PathBuf, Option<Format>)>,
    /// The report files rewritten at each new peak.
    pub(super) peak_files: Vec<(PathBuf, Option<Format>)>,
    peak_growth: f64,
    format: Option<Format>,
    at_exit: bool,
    every: Option<Duration>,
    on_signal: bool,
}

impl Default for DumpsBuilder {
    fn default() -> Self {
        DumpsBuilder {
            files: Vec::new(),
            peak_files: Vec::new(),
            peak_growth: 0.1,
            format: None,
            at_exit: false,
            every: None,
            on_signal: false,
        }
    }
}

impl DumpsBuilder {
    /// A report file, its format named by its extension
    /// ([`Format::from_path`]); call it again for more files (one report,
    /// written in each file's format). Every trigger overwrites them with
    /// the latest report.
    #[must_use]
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.push((path.into(), None));
        self
    }

    /// A report file in `format`, whatever its extension.
    #[must_use]
    pub fn file(mut self, path: impl Into<PathBuf>, format: Format) -> Self {
        self.files.push((path.into(), Some(format)));
        self
    }

    /// The format of the one file given with [`path`](Self::path), instead
    /// of the one its extension names (several files:
    /// [`OptionsError::FormatForSeveralFiles`]).
    #[must_use]
    pub fn format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }

    /// Also rewrite `path` (format from its extension) each time the
    /// tracked live bytes reach a new peak at least [`peak_growth`] above
    /// the last one written (and at least 1 MiB): a heap profile
    /// (`.pb.gz`) of a service at its highest memory, with the sampled
    /// sites live then, not the near-empty one of exit time. A background
    /// thread reads the figures every 100 ms, so a peak shorter than that
    /// can be missed. Call it again for more files.
    ///
    /// [`peak_growth`]: Self::peak_growth
    #[must_use]
    pub fn at_peak(mut self, path: impl Into<PathBuf>) -> Self {
        self.peak_files.push((path.into(), None));
        self
    }

    /// How far above the last peak written a new peak must be to be
    /// written too, as a fraction (default 0.1: 10%).
    #[must_use]
    pub fn peak_growth(mut self, fraction: f64) -> Self {
        self.peak_growth = fraction;
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
    /// [`ENV_DUMP_FORMAT`] the format, [`ENV_DUMP_EVERY`] the interval
    /// ([`parse_duration`]), [`ENV_DUMP_SIGNAL`]`=1` the SIGUSR1 trigger.
    /// Unset or empty variables change nothing.
    ///
    /// # Errors
    /// [`EnvError`] naming the variable and its value: a value that does
    /// not parse, or [`ENV_DUMP_FORMAT`], [`ENV_DUMP_EVERY`] or
    /// [`ENV_DUMP_SIGNAL`]`=1` set while neither [`ENV_DUMP`] nor
    /// [`path`](Self::path) gives a report file ([`OptionsError::NoPath`]).
    pub fn from_env(mut self) -> Result<Self, EnvError> {
        let var = |name: &'static str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(|v| (name, v.to_string_lossy().into_owned()))
        };
        let err =
            |(name, value): (&'static str, String), problem| EnvError::new(name, value, problem);
        if let Some((_, list)) = var(ENV_DUMP) {
            self.files
                .extend(split_list(&list).map(|p| (PathBuf::from(p), None)));
            self.at_exit = true;
        }
        if let Some((_, list)) = var(ENV_DUMP_AT_PEAK) {
            self.peak_files
                .extend(split_list(&list).map(|p| (PathBuf::from(p), None)));
        }
        if let Some(v) = var(ENV_DUMP_AT_EXIT) {
            self.at_exit = parse_switch(&v.1).ok_or_else(|| err(v, OptionsError::InvalidSwitch))?;
        }
        if let Some(v) = var(ENV_DUMP_FORMAT) {
            self.format = Some(
                v.1.parse()
                    .map_err(|_| err(v.clone(), OptionsError::UnknownFormat))?,
            );
            if self.files.is_empty() {
                return Err(err(v, OptionsError::NoPath));
            }
        }
        if let Some(v) = var(ENV_DUMP_EVERY) {
            let every = parse_duration(&v.1)
                .ok_or_else(|| err(v.clone(), OptionsError::InvalidDuration))?;
            if every.is_zero() {
                return Err(err(v, OptionsError::ZeroInterval));
            }
            if self.files.is_empty() {
                return Err(err(v, OptionsError::NoPath));
            }
            self.every = Some(every);
        }
        if let Some(v) = var(ENV_DUMP_SIGNAL) {
            self.on_signal =
                parse_switch(&v.1).ok_or_else(|| err(v.clone(), OptionsError::InvalidSwitch))?;
            if self.on_signal && self.files.is_empty() {
                return Err(err(v, OptionsError::NoPath));
            }
        }
        Ok(self)
    }

    /// Validates the options, including the path against the file system:
    /// it must not be a directory, and its directory must exist.
    ///
    /// # Errors
    /// [`OptionsError`]: no path, no trigger, a zero interval, no format
    /// or one not compiled in, a path that is a directory or whose
    /// directory is missing, SIGUSR1 asked for where it is unavailable.
    pub fn build(self) -> Result<Dumps, OptionsError> {
        if self.files.is_empty() && self.peak_files.is_empty() {
            return Err(OptionsError::NoPath);
        }
        let triggered = self.at_exit || self.every.is_some() || self.on_signal;
        if !triggered && self.peak_files.is_empty() {
            return Err(OptionsError::NoTrigger);
        }
        if triggered && self.files.is_empty() {
            return Err(OptionsError::NoPath);
        }
        if self.every == Some(Duration::ZERO) {
            return Err(OptionsError::ZeroInterval);
        }
        if self.format.is_some() && self.files.len() > 1 {
            return Err(OptionsError::FormatForSeveralFiles);
        }
        if !(self.peak_growth.is_finite() && self.peak_growth > 0.0) {
            return Err(OptionsError::InvalidPeakGrowth);
        }
        let check = |(path, format): (PathBuf, Option<Format>), forced: Option<Format>| {
            let format = match forced.or(format) {
                Some(f) => f,
                None => Format::from_path(&path).ok_or(OptionsError::NoFormat)?,
            };
            if !format.is_available() {
                return Err(OptionsError::FormatDisabled(format));
            }
            if path.is_dir() || path.file_name().is_none() {
                return Err(OptionsError::PathIsDirectory);
            }
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !dir.is_dir() {
                return Err(OptionsError::NoDirectory);
            }
            Ok((path, format))
        };
        let files = self
            .files
            .into_iter()
            .map(|f| check(f, self.format))
            .collect::<Result<Vec<_>, _>>()?;
        let peak_files = self
            .peak_files
            .into_iter()
            .map(|f| check(f, None))
            .collect::<Result<Vec<_>, _>>()?;
        if self.on_signal && !cfg!(all(unix, feature = "signal")) {
            return Err(OptionsError::SignalUnavailable);
        }
        Ok(Dumps {
            files,
            peak_files,
            peak_growth: self.peak_growth,
            at_exit: self.at_exit,
            every: self.every,
            on_signal: self.on_signal,
        })
    }

    /// The variable to blame for `problem` when the options came from the
    /// environment, with its value.
    pub(super) fn blame(&self, problem: OptionsError) -> EnvError {
        let culprit = match problem {
            OptionsError::ZeroInterval | OptionsError::InvalidDuration => ENV_DUMP_EVERY,
            OptionsError::SignalUnavailable => ENV_DUMP_SIGNAL,
            OptionsError::UnknownFormat | OptionsError::FormatDisabled(_)
                if std::env::var_os(ENV_DUMP_FORMAT).is_some_and(|v| !v.is_empty()) =>
            {
                ENV_DUMP_FORMAT
            }
            OptionsError::NoTrigger => ENV_DUMP_AT_EXIT,
            _ => ENV_DUMP,
        };
        let value = std::env::var_os(culprit)
            .map(|v| v.to_string_lossy().into_owned())
            .or_else(|| {
                (culprit == ENV_DUMP)
                    .then(|| self.files.first().map(|p| p.0.display().to_string()))
                    .flatten()
            })
            .unwrap_or_default();
        EnvError::new(culprit, value, problem)
    }
}

/// `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off`.
/// The entries of a comma-separated list of paths, blanks skipped.
fn split_list(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|p| !p.is_empty())
}

fn parse_switch(v: &str) -> Option<bool> {
    let v = v.trim();
    let is = |names: &[&str]| names.iter().any(|n| v.eq_ignore_ascii_case(n));
    if is(&["1", "true", "yes", "on"]) {
        Some(true)
    } else if is(&["0", "false", "no", "off"]) {
        Some(false)
    } else {
        None
    }
}

/// A validated set of dump triggers.
///
/// ```no_run
/// use std::time::Duration;
/// use scope_alloc_tracker::report::{Dumps, Format};
///
/// let handle = Dumps::builder()
///     .path("/tmp/alloc-report.prom")
///     .format(Format::Prometheus)
///     .every(Duration::from_secs(15))
///     .at_exit()
///     .install()?;
/// // ... run the program ...
/// handle.stop(); // stops the periodic dumps; the exit dump stays armed
/// # Ok::<(), scope_alloc_tracker::report::OptionsError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Dumps {
    pub(super) files: Vec<(PathBuf, Format)>,
    pub(super) peak_files: Vec<(PathBuf, Format)>,
    pub(super) peak_growth: f64,
    pub(super) at_exit: bool,
    pub(super) every: Option<Duration>,
    pub(super) on_signal: bool,
}

impl Dumps {
    /// Starts building dump triggers.
    pub fn builder() -> DumpsBuilder {
        DumpsBuilder::default()
    }

    /// The first report file (of the exit, periodic and SIGUSR1 triggers,
    /// else of the peak trigger).
    pub fn path(&self) -> &Path {
        self.first().map_or(Path::new(""), |f| f.0.as_path())
    }

    /// The first report file's format.
    pub fn format(&self) -> Format {
        self.first().map_or(Format::Text, |f| f.1)
    }

    /// Every report file of the exit, periodic and SIGUSR1 triggers, with
    /// its format.
    pub fn files(&self) -> &[(PathBuf, Format)] {
        &self.files
    }

    /// Every report file rewritten at a new peak, with its format.
    pub fn peak_files(&self) -> &[(PathBuf, Format)] {
        &self.peak_files
    }

    /// `build` refuses a configuration without any file.
    fn first(&self) -> Option<&(PathBuf, Format)> {
        self.files.first().or(self.peak_files.first())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5"), Some(ms(1500)));
        assert_eq!(parse_duration(" 1.5 s "), Some(ms(1500)));
        assert_eq!(parse_duration("500ms"), Some(ms(500)));
        assert_eq!(parse_duration("0.5ms"), Some(Duration::from_micros(500)));
        assert_eq!(parse_duration(".25m"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in [
            "", "x", "s", ".", "1.2.3", "-1s", "1e3", "5 days", "inf", "1.5 x",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(parse_duration("99999999999999999999999h"), None);
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
            Dumps::builder()
                .path("/tmp")
                .format(Format::Text)
                .at_exit()
                .build()
                .unwrap_err(),
            OptionsError::PathIsDirectory
        );
        assert_eq!(
            Dumps::builder()
                .path("/nonexistent-dir/x.txt")
                .at_exit()
                .build()
                .unwrap_err(),
            OptionsError::NoDirectory
        );
        assert_eq!(
            "yaml".parse::<Format>().unwrap_err(),
            OptionsError::UnknownFormat
        );
        let ok = b().every(Duration::from_secs(1)).build().unwrap();
        assert_eq!(ok.format(), Format::Text);
    }

    #[test]
    fn env_errors_name_variable_value_and_forms() {
        let e = EnvError::new(ENV_DUMP_SIGNAL, "1", OptionsError::NoPath);
        let msg = e.to_string();
        assert!(msg.contains("ALLOC_TRACKER_DUMP_SIGNAL=\"1\""), "{msg}");
        assert!(msg.contains("needs ALLOC_TRACKER_DUMP="), "{msg}");
        let msg = EnvError::new(ENV_DUMP, "/nope/r.json", OptionsError::NoDirectory).to_string();
        assert!(msg.contains("ALLOC_TRACKER_DUMP=\"/nope/r.json\""), "{msg}");
        assert!(msg.contains("existing directory"), "{msg}");
        let msg = EnvError::new(ENV_DUMP_SIGNAL, "maybe", OptionsError::InvalidSwitch).to_string();
        assert!(msg.contains("1, true, yes, on"), "{msg}");
    }
}
