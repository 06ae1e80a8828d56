//! Command-line arguments (`clap` derive) and the parsers of their values.
//!
//! Parsing errors are clap's (exit code 2). Checks that involve several
//! arguments, or the file system, are in [`RunArgs::validate`], which turns
//! the arguments into a [`RunConfig`] or a usage error (also exit code 2).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use scope_alloc_tracker::report::Format;

use super::exit::CliError;

/// Longest value the engine accepts (its default `max_value_len`).
const MAX_VALUE_BYTES: u64 = 16 << 20;

/// `ckptdb`: an embedded key-value engine whose checkpoint runs must give
/// back every byte they allocate.
#[derive(Debug, Parser)]
#[command(
    name = "ckptdb",
    version,
    about = "Run a checkpointing key-value workload with a per-checkpoint leak verdict and an allocation report",
    long_about = "Runs the embedded engine on a real workload: several writer threads, periodic \
incremental and global checkpoints, a restart (close + reopen = recovery) in the middle. \
Prints one line per checkpoint run with its leak verdict, then the allocation report by \
subsystem and jemalloc's process figures.\n\n\
Without a subcommand, `run` is assumed: `ckptdb --writes 50000` is `ckptdb run --writes 50000`.\n\n\
Exit codes: 0 success; 1 a checkpoint run leaked (memory or files); 2 bad arguments or an \
unusable data directory or report path; 3 the run failed (I/O error, corrupt data directory, \
report not written).",
    args_conflicts_with_subcommands = true
)]
pub(crate) struct Cli {
    /// What to do (default: `run`).
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    /// Arguments of `run` when no subcommand is given.
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// The subcommands.
// Parsed once at start-up and matched once: the size of the larger variant
// costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the workload (the default).
    Run(RunArgs),
    /// Show a data directory's checkpoint chain, WAL segments and what
    /// recovery would do, without modifying anything.
    #[command(alias = "dump")]
    Inspect(InspectArgs),
}

/// Arguments of `inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The data directory to inspect.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: PathBuf,
}

/// When the progress display is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ProgressMode {
    /// A progress bar on a terminal, plain lines otherwise.
    Auto,
    /// Always the progress bar (hidden by indicatif when stderr is not a
    /// terminal).
    Bar,
    /// A plain progress line on stderr about every second.
    Plain,
    /// No progress output.
    Off,
}

/// Whether the run is interrupted by a close + reopen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Restart {
    /// Close and reopen the database when half the writes (or half the
    /// duration) are done.
    Middle,
    /// No restart.
    Never,
}

/// Whether leak checks record a call stack per checkpoint allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LeakSites {
    /// Record call stacks, so a leaking run names the function.
    Record,
    /// Count only.
    Off,
}

/// WAL sync policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SyncArg {
    /// Group commit: one fsync per 256 records or 5 ms.
    Group,
    /// fsync every write.
    EveryWrite,
    /// fsync only at checkpoints and close.
    None,
}

/// Arguments of `run`.
#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    /// Data directory; an existing one is recovered, never clobbered.
    /// Default: a temporary directory removed at exit.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// Total writes (puts and deletes) across all threads.
    #[arg(long, value_name = "N", default_value_t = 500_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) writes: u64,

    /// Number of distinct keys.
    #[arg(long, value_name = "N", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) keys: u64,

    /// Value sizes in bytes, `MIN..MAX` (or one size); sizes are mixed
    /// log-uniformly over the range. Suffixes k/KiB, m/MiB accepted.
    #[arg(long, value_name = "MIN..MAX", default_value = "16..4096",
          value_parser = parse_size_range, allow_hyphen_values = true)]
    pub(crate) value_size: SizeRange,

    /// Smallest value size (overrides the MIN of --value-size).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, allow_hyphen_values = true)]
    pub(crate) min_value: Option<u64>,

    /// Largest value size (overrides the MAX of --value-size).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, allow_hyphen_values = true)]
    pub(crate) max_value: Option<u64>,

    /// Deletes per 100 writes.
    #[arg(long, value_name = "PERCENT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=100))]
    pub(crate) delete_percent: u64,

    /// Writer threads.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) threads: u32,

    /// Seed of the deterministic workload.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) seed: u64,

    /// Run a checkpoint every N writes (0: no write-count trigger).
    #[arg(long, value_name = "N", default_value_t = 40_000)]
    pub(crate) checkpoint_every: u64,

    /// Also run a checkpoint when this many milliseconds passed since the
    /// previous one (0: no time trigger).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub(crate) checkpoint_interval_ms: u64,

    /// Every K-th checkpoint run is global (1: all global).
    #[arg(long, value_name = "K", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) global_every: u32,

    /// GC compacts the chain once more than this many incrementals are
    /// registered.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub(crate) max_incrementals: u64,

    /// Close and reopen (recover) the database in the middle of the run.
    #[arg(long, value_enum, default_value_t = Restart::Middle)]
    pub(crate) restart: Restart,

    /// Stop writing after this long (e.g. `30s`, `1.5s`, `500ms`, `2m`; a
    /// plain number is seconds; the grammar of ALLOC_TRACKER_DUMP_EVERY). The restart then happens at half of it.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) duration: Option<Duration>,

    /// WAL sync policy.
    #[arg(long, value_enum, default_value_t = SyncArg::Group)]
    pub(crate) sync: SyncArg,

    /// Mean sampling interval of live-allocation call stacks in bytes
    /// (0: off). Sampled sites appear in the report and flame graph.
    #[arg(long, value_name = "BYTES", default_value = "512KiB", value_parser = parse_bytes,
          allow_hyphen_values = true)]
    pub(crate) sample_bytes: u64,

    /// Record a call stack for every allocation of each checkpoint run, so
    /// a run that leaks names the function that kept the bytes. `off`: the
    /// engine's own check and this one count only (no stack captures).
    #[arg(long, value_enum, default_value_t = LeakSites::Record)]
    pub(crate) leak_sites: LeakSites,

    /// Also write the allocation report to PATH (repeatable). The format
    /// comes from the extension (.txt .json .folded .svg .prom .pb.gz) unless
    /// --report-format is given.
    #[arg(long = "report", value_name = "PATH")]
    pub(crate) reports: Vec<PathBuf>,

    /// Format of every --report file: text, json, folded, svg, prometheus,
    /// pprof.
    #[arg(long, value_name = "FORMAT", value_parser = parse_format)]
    pub(crate) report_format: Option<Format>,

    /// Also record the live bytes of the `checkpoint`, `memtable`, `wal`,
    /// `checkpoint-results` and `recovery` scopes over the run and write
    /// them to PATH (repeatable): `.svg` draws the line chart with a marker
    /// per checkpoint run (red for a run that leaked), `.csv` lists the
    /// points and markers.
    #[arg(long = "timeline", value_name = "PATH")]
    pub(crate) timelines: Vec<PathBuf>,

    /// Interval of the --timeline readings in milliseconds (there is also
    /// one at the end of every checkpoint run).
    #[arg(long, value_name = "MS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub(crate) timeline_every_ms: u64,

    /// Memory-driven flush: also run a checkpoint when the engine's
    /// `memtable` scope holds more than BYTES above the checkpointed base
    /// (e.g. 8MiB). The line of a run it starts ends with `trigger:
    /// memtable budget`.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, allow_hyphen_values = true)]
    pub(crate) memtable_budget: Option<u64>,

    /// Above BYTES of memtable (above the base; at least
    /// --memtable-budget) writers wait, up to 1 s per write, for a
    /// checkpoint run to drain it.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, allow_hyphen_values = true,
          requires = "memtable_budget")]
    pub(crate) memtable_ceiling: Option<u64>,

    /// A budget on each checkpoint run's own allocations (the
    /// `checkpoint` scope): a run over it is rolled back and retried (a
    /// global run as an incremental one), printing `over checkpoint
    /// budget: rolled back, retrying`.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, allow_hyphen_values = true)]
    pub(crate) checkpoint_budget: Option<u64>,

    /// Plant the engine's demonstration leak (`encode_batch_leaky`) in one
    /// checkpoint run: that run is flagged with its call sites and the
    /// process exits with code 1.
    #[arg(long)]
    pub(crate) inject_leak: bool,

    /// Plant a slow leak: every checkpoint run keeps BYTES more in the
    /// `checkpoint-results` scope (`remember_run_summary`). No single run's
    /// check sees it (the run's own scope drains); the leak trend over
    /// `checkpoint-results` flags it after a few runs (`LEAK TREND`).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, allow_hyphen_values = true)]
    pub(crate) inject_slow_leak: Option<u64>,

    /// Progress display on stderr.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub(crate) progress: ProgressMode,

    /// Serve the allocation figures as OpenMetrics text on
    /// http://ADDR/metrics while the job runs (e.g. 127.0.0.1:9464; port 0
    /// picks a free port, printed at start).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<std::net::SocketAddr>,
}

/// An inclusive range of sizes in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SizeRange {
    /// Smallest.
    pub(crate) min: u64,
    /// Largest.
    pub(crate) max: u64,
}

/// A report file and its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReportTarget {
    /// Where.
    pub(crate) path: PathBuf,
    /// In which format.
    pub(crate) format: Format,
}

/// What a --timeline file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimelineFormat {
    /// The SVG line chart.
    Svg,
    /// The points and markers as CSV.
    Csv,
}

/// The validated configuration of a run.
#[derive(Debug, Clone)]
pub(crate) struct RunConfig {
    /// The arguments as given.
    pub(crate) args: RunArgs,
    /// Value sizes to mix.
    pub(crate) value_sizes: Vec<usize>,
    /// The value size range after --min-value/--max-value.
    pub(crate) value_range: SizeRange,
    /// Report files.
    pub(crate) reports: Vec<ReportTarget>,
    /// Timeline files.
    pub(crate) timelines: Vec<(PathBuf, TimelineFormat)>,
}

impl RunArgs {
    /// Checks what clap cannot check alone and resolves report formats.
    ///
    /// # Errors
    /// [`CliError::Usage`] naming the bad argument.
    pub(crate) fn validate(self) -> Result<RunConfig, CliError> {
        let range = SizeRange {
            min: self.min_value.unwrap_or(self.value_size.min),
            max: self.max_value.unwrap_or(self.value_size.max),
        };
        if range.min > range.max {
            return Err(CliError::usage(format!(
                "the smallest value size ({}) is larger than the largest ({})",
                range.min, range.max
            )));
        }
        if range.max > MAX_VALUE_BYTES {
            return Err(CliError::usage(format!(
                "value size {} exceeds the engine's limit of {MAX_VALUE_BYTES} bytes",
                range.max
            )));
        }
        for (name, v) in [
            ("--memtable-budget", self.memtable_budget),
            ("--memtable-ceiling", self.memtable_ceiling),
            ("--checkpoint-budget", self.checkpoint_budget),
        ] {
            if v == Some(0) {
                return Err(CliError::usage(format!("{name} must be at least 1 byte")));
            }
        }
        if let (Some(b), Some(c)) = (self.memtable_budget, self.memtable_ceiling) {
            if c < b {
                return Err(CliError::usage(format!(
                    "--memtable-ceiling ({c}) is below --memtable-budget ({b})"
                )));
            }
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err(CliError::usage("--duration must be longer than zero"));
        }
        let mut reports = Vec::with_capacity(self.reports.len());
        for path in &self.reports {
            let format = match self.report_format.or_else(|| Format::from_path(path)) {
                Some(f) => f,
                None => {
                    return Err(CliError::usage(format!(
                        "cannot tell the report format of {} from its extension; use .txt, .json, .folded, .svg, .prom or .pb.gz, or --report-format",
                        path.display()
                    )))
                }
            };
            if !format.is_available() {
                return Err(CliError::usage(format!(
                    "report format `{format}` is not compiled into this build"
                )));
            }
            if path.is_dir() {
                return Err(CliError::usage(format!(
                    "report path {} is a directory",
                    path.display()
                )));
            }
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            if !parent.is_dir() {
                return Err(CliError::usage(format!(
                    "cannot write report {}: directory {} does not exist",
                    path.display(),
                    parent.display()
                )));
            }
            reports.push(ReportTarget {
                path: path.clone(),
                format,
            });
        }
        let mut timelines = Vec::with_capacity(self.timelines.len());
        for path in &self.timelines {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            let format = if ext.eq_ignore_ascii_case("svg") {
                TimelineFormat::Svg
            } else if ext.eq_ignore_ascii_case("csv") {
                TimelineFormat::Csv
            } else {
                return Err(CliError::usage(format!(
                    "cannot tell what to write to timeline {}: use .svg (chart) or .csv (points)",
                    path.display()
                )));
            };
            writable("timeline", path)?;
            timelines.push((path.clone(), format));
        }
        Ok(RunConfig {
            value_sizes: value_sizes(range),
            value_range: range,
            reports,
            timelines,
            args: self,
        })
    }
}

/// Checks that a timeline file can be created at `path`: not a directory,
/// in a directory that exists.
fn writable(what: &str, path: &std::path::Path) -> Result<(), CliError> {
    if path.is_dir() {
        return Err(CliError::usage(format!(
            "{what} path {} is a directory",
            path.display()
        )));
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !parent.is_dir() {
        return Err(CliError::usage(format!(
            "cannot write {what} {}: directory {} does not exist",
            path.display(),
            parent.display()
        )));
    }
    Ok(())
}

/// Up to eight sizes spread log-uniformly over `range`, both ends included.
fn value_sizes(range: SizeRange) -> Vec<usize> {
    const STEPS: u32 = 8;
    if range.min == range.max {
        return vec![range.min as usize];
    }
    let lo = (range.min.max(1)) as f64;
    let hi = range.max as f64;
    let mut sizes: Vec<usize> = (0..STEPS)
        .map(|i| {
            let t = f64::from(i) / f64::from(STEPS - 1);
            (lo * (hi / lo).powf(t)).round() as usize
        })
        .collect();
    sizes[0] = range.min as usize;
    sizes[STEPS as usize - 1] = range.max as usize;
    sizes.dedup();
    sizes
}

/// Parses a byte count: `4096`, `4k`, `4KiB`, `1m`, `1MiB` (binary units).
///
/// # Errors
/// A message for clap: negative, empty, or not a number.
pub(crate) fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("sizes cannot be negative: `{s}`"));
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "`{s}` is not a size in bytes (e.g. 4096, 4KiB, 1MiB)"
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is too large a size"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("unknown size unit in `{s}` (use B, KiB, MiB, GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large a size"))
}

/// Parses `MIN..MAX`, `MIN..=MAX`, `MIN-MAX` or a single size.
///
/// # Errors
/// A message for clap: negative sizes, MIN > MAX, or bad numbers.
pub(crate) fn parse_size_range(s: &str) -> Result<SizeRange, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("value sizes cannot be negative: `{s}`"));
    }
    let (a, b) = if let Some((a, b)) = t.split_once("..=") {
        (a, b)
    } else if let Some((a, b)) = t.split_once("..") {
        (a, b)
    } else {
        (t, t)
    };
    let min = parse_bytes(a)?;
    let max = parse_bytes(b)?;
    if min > max {
        return Err(format!(
            "the smallest value size ({min}) is larger than the largest ({max})"
        ));
    }
    Ok(SizeRange { min, max })
}

/// Parses a duration in alloc-tracker's grammar
/// ([`scope_alloc_tracker::report::parse_duration`], shared with
/// `ALLOC_TRACKER_DUMP_EVERY`): `1.5`, `1.5s`, `500ms`, `2m`, `1h`.
///
/// # Errors
/// A message for clap naming the value and the accepted forms.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim().starts_with('-') {
        return Err(format!("durations cannot be negative: `{s}`"));
    }
    scope_alloc_tracker::report::parse_duration(s).ok_or_else(|| {
        format!(
            "`{s}` is not a duration; expected {}",
            scope_alloc_tracker::report::DURATION_FORMS
        )
    })
}

/// Parses a report format name.
///
/// # Errors
/// A message for clap listing the formats.
pub(crate) fn parse_format(s: &str) -> Result<Format, String> {
    s.parse::<Format>().map_err(|_| {
        format!(
            "unknown report format `{s}`; expected text, json, folded, svg, prometheus or pprof"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ranges() {
        assert_eq!(parse_bytes("512KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("4k"), Ok(4096));
        assert!(parse_bytes("-1").is_err());
        assert!(parse_bytes("12 furlongs").is_err());
        assert_eq!(
            parse_size_range("16..4096"),
            Ok(SizeRange { min: 16, max: 4096 })
        );
        assert_eq!(
            parse_size_range("100"),
            Ok(SizeRange { min: 100, max: 100 })
        );
        assert!(parse_size_range("-5..10").is_err());
        assert!(parse_size_range("10..5").is_err());
        let v = value_sizes(SizeRange { min: 16, max: 4096 });
        assert_eq!((v[0], *v.last().unwrap()), (16, 4096));
        assert!(v.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(value_sizes(SizeRange { min: 0, max: 1 }), vec![0, 1]);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("-3s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
