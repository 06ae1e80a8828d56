//! From the validated arguments to what the run needs: the engine's
//! options and the data directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ckptdb::{LeakMode, Options, Runner, SyncPolicy};

use super::super::args::{LeakSites, RunConfig, SyncArg};
use super::super::exit::CliError;
use super::super::progress::Progress;
use super::{Driver, Shared};

/// The data directory: the given one (created if missing, checked
/// writable) or a new temporary one.
pub(super) fn data_dir(
    given: Option<&Path>,
) -> Result<(PathBuf, Option<tempfile::TempDir>), CliError> {
    let Some(dir) = given else {
        let t = tempfile::Builder::new()
            .prefix("ckptdb-run-")
            .tempdir()
            .map_err(|e| {
                CliError::usage(format!("cannot create a temporary data directory: {e}"))
            })?;
        return Ok((t.path().to_path_buf(), Some(t)));
    };
    let unusable = |e: std::io::Error| {
        CliError::usage(format!("cannot use data directory {}: {e}", dir.display()))
    };
    if dir.exists() && !dir.is_dir() {
        return Err(CliError::usage(format!(
            "cannot use data directory {}: it exists and is not a directory",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(unusable)?;
    // Writable? A probe file, removed at once; it is not an engine file, so
    // it never confuses recovery.
    let probe = dir.join(format!(".ckptdb-write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"probe").map_err(unusable)?;
    std::fs::remove_file(&probe).map_err(unusable)?;
    Ok((dir.to_path_buf(), None))
}

impl<'c> Driver<'c> {
    /// The driver of a run with `cfg`, in the data directory `dir`: the
    /// engine's options from the arguments.
    pub(super) fn new(
        cfg: &'c RunConfig,
        shared: &'c Shared,
        dir: PathBuf,
    ) -> Result<Driver<'c>, CliError> {
        let a = &cfg.args;
        let sync = match a.sync {
            SyncArg::Group => SyncPolicy::GroupCommit {
                max_batch: 256,
                max_delay: Duration::from_millis(5),
            },
            SyncArg::EveryWrite => SyncPolicy::EveryWrite,
            SyncArg::None => SyncPolicy::None,
        };
        let builder = Options::builder()
            .runner(Runner::Manual)
            .leak_mode(LeakMode::Production)
            // `--leak-sites off` means counts only for the engine's own
            // check too: it then walks no stack per allocation of a run
            // (what recording costs: docs/attribution.md, "Call stacks").
            .record_leak_sites(a.leak_sites == LeakSites::Record)
            .sync(sync)
            .max_incrementals(a.max_incrementals as usize)
            .memtable_budget(a.memtable_budget.unwrap_or(0))
            .memtable_ceiling(a.memtable_ceiling.unwrap_or(0))
            .checkpoint_budget(a.checkpoint_budget.unwrap_or(0));
        let faults = std::sync::Arc::new(ckptdb::Faults::default());
        if let Some(bytes) = a.inject_slow_leak {
            faults.set_results_leak(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        let builder = builder.faults(std::sync::Arc::clone(&faults));
        let opts = builder
            .build()
            .map_err(|e| CliError::usage(format!("invalid engine options: {e}")))?;
        Ok(Driver {
            cfg,
            dir,
            opts,
            progress: Progress::new(a.progress, a.writes),
            shared,
            runs: Vec::new(),
            next_at: a.checkpoint_every,
            last_run: Instant::now(),
            started: Instant::now(),
            faults,
            leak_planted: false,
            timeline: None,
            by_budget: 0,
            over_budget: 0,
            budget_retry_at: None,
            throttled_before: (0, Duration::ZERO),
        })
    }
}
