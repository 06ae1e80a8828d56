//! `ckptdb run`: the workload driver.
//!
//! Writer threads apply the engine's deterministic [`Workload`] (one
//! operation stream per thread, continued across the restart) while this
//! thread updates the progress display and runs checkpoints every N writes
//! or M milliseconds, each under a leak check, printing one line per run.
//! In the middle the database is closed and reopened (recovery), and the
//! recovered state is compared with the state before the close. At the end
//! it prints the allocation report by scope and jemalloc's figures, and
//! writes the requested report files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloc_tracker::integrations::http::MetricsServer;
use alloc_tracker::integrations::prometheus::ScopeCollector;
use alloc_tracker::report::timeline::{MarkerStyle, Timeline, TimelineSampler};
use alloc_tracker::report::Report;
use alloc_tracker::sampling::{set_sampling, Sampling};
use alloc_tracker::Scope;
use ckptdb::workload::{WorkOp, Workload};
use ckptdb::{
    CheckpointError, CheckpointKind, Db, LeakMode, OpenError, Options, Runner, SyncPolicy,
    WriteError,
};

use super::args::{LeakSites, Restart, RunArgs, RunConfig, SyncArg, TimelineFormat};
use super::checkpoints::{self, RunResult};
use super::exit::{chain, CliError, Outcome};
use super::progress::Progress;
use alloc_tracker::report::human_bytes;

/// The binary's own allocations, kept apart from the engine's scopes in
/// the report.
static MAIN: Scope = Scope::new("main");
/// Generating the workload's keys and values (the writer threads).
static WORKLOAD: Scope = Scope::child_of(&MAIN, "workload");
/// Key counts and state digests around the restart.
static VERIFY: Scope = Scope::child_of(&MAIN, "verify");

/// How often the driving thread wakes up.
const TICK: Duration = Duration::from_millis(20);

/// After a run over the checkpoint budget, the memtable budget starts no
/// run for this long (the write-count and interval triggers still do).
const BUDGET_RETRY_DELAY: Duration = Duration::from_secs(1);

/// The checkpoint run that gets the planted leak with `--inject-leak` (or
/// the final run, if the workload is too short to reach it).
const LEAK_RUN: u64 = 2;

/// Runs the workload.
///
/// # Errors
/// [`CliError::Usage`] for bad arguments or an unusable data directory,
/// [`CliError::Failed`] when the engine fails.
pub(crate) fn run(args: RunArgs) -> Result<Outcome, CliError> {
    let cfg = args.validate()?;
    // Served until the run returns; the `checkpoint` scope always has its
    // own series, so an alert can watch it drain.
    let _metrics = match cfg.args.metrics_addr {
        Some(addr) => {
            let collector = ScopeCollector::new().always("checkpoint");
            let server = MetricsServer::builder()
                .collector(collector)
                .start(addr)
                .map_err(|e| CliError::usage(e.to_string()))?;
            println!("metrics: serving {}", server.url());
            Some(server)
        }
        None => None,
    };
    set_sampling(match cfg.args.sample_bytes {
        0 => Sampling::Off,
        every_bytes => Sampling::Bytes { every_bytes },
    });
    let (dir, temp) = data_dir(cfg.args.data_dir.as_deref())?;
    let shared = Shared::default();
    shared.gate.store(
        match cfg.args.checkpoint_every {
            0 => u64::MAX,
            every => every,
        },
        Ordering::Relaxed,
    );
    let mut driver = Driver::new(&cfg, &shared, dir)?;
    let outcome = driver.drive();
    if let Some(t) = temp {
        let path = t.path().to_path_buf();
        if let Err(e) = t.close() {
            eprintln!(
                "warning: could not remove the temporary directory {}: {e}",
                path.display()
            );
        }
    }
    outcome
}

/// The data directory: the given one (created if missing, checked
/// writable) or a new temporary one.
fn data_dir(given: Option<&Path>) -> Result<(PathBuf, Option<tempfile::TempDir>), CliError> {
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

/// Counters shared with the writer threads.
#[derive(Debug, Default)]
struct Shared {
    /// Writes claimed (may exceed the limit by one per thread).
    claimed: AtomicU64,
    /// Writes applied.
    done: AtomicU64,
    /// Value bytes written.
    value_bytes: AtomicU64,
    /// Set to stop the writers (deadline, error).
    stop: AtomicBool,
    /// Writes may only be claimed below this number: when the writers reach
    /// a checkpoint's write count they wait for the driving thread to run
    /// it, so a run has exactly one checkpoint per `--checkpoint-every`
    /// writes, however the threads are scheduled. `u64::MAX` = no gate.
    gate: AtomicU64,
}

/// State of one `run` invocation.
struct Driver<'c> {
    cfg: &'c RunConfig,
    dir: PathBuf,
    opts: Options,
    progress: Progress,
    shared: &'c Shared,
    runs: Vec<RunResult>,
    next_at: u64,
    last_run: Instant,
    started: Instant,
    faults: std::sync::Arc<ckptdb::Faults>,
    leak_planted: bool,
    /// Readings of the timeline's scopes, with `--timeline`.
    timeline: Option<TimelineSampler>,
    /// Runs started by the memtable budget.
    by_budget: u64,
    /// Attempts rolled back over the checkpoint budget.
    over_budget: u64,
    /// No memtable-budget run before this (after an over-budget run).
    budget_retry_at: Option<Instant>,
    /// Writes throttled, and for how long, before the restart (the
    /// engine's counters start again at each open).
    throttled_before: (u64, Duration),
}

impl std::fmt::Debug for Driver<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("dir", &self.dir)
            .field("runs", &self.runs.len())
            .finish_non_exhaustive()
    }
}

impl<'c> Driver<'c> {
    fn new(cfg: &'c RunConfig, shared: &'c Shared, dir: PathBuf) -> Result<Driver<'c>, CliError> {
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
            // check too: its stack capture per allocation of a run was most
            // of the tracker's cost in this job (docs/main-job-profile.md).
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

    fn say(&self, line: &str) {
        self.progress.println(line);
    }

    fn header(&self, temp: bool) {
        let cfg = self.cfg;
        let a = &cfg.args;
        let r = self.cfg.value_range;
        self.say(&format!(
            "ckptdb run: {} writes by {} threads over {} keys, values {}..{} B ({} sizes), {}% deletes, seed {}",
            a.writes,
            a.threads,
            a.keys,
            r.min,
            r.max,
            self.cfg.value_sizes.len(),
            a.delete_percent,
            a.seed
        ));
        let mut triggers = Vec::new();
        if a.checkpoint_every > 0 {
            triggers.push(format!("every {} writes", a.checkpoint_every));
        }
        if a.checkpoint_interval_ms > 0 {
            triggers.push(format!("every {} ms", a.checkpoint_interval_ms));
        }
        if let Some(b) = a.memtable_budget {
            triggers.push(format!("at {} of memtable", human_bytes(b)));
        }
        if triggers.is_empty() {
            triggers.push("only at the end".to_string());
        }
        self.say(&format!(
            "  checkpoints {}, {} global, GC beyond {} incrementals; restart: {}{}",
            triggers.join(" or "),
            every_nth_run(a.global_every),
            a.max_incrementals,
            match a.restart {
                Restart::Middle => "close + reopen in the middle",
                Restart::Never => "none",
            },
            a.duration
                .map(|d| format!("; stop after {:.1} s", d.as_secs_f64()))
                .unwrap_or_default()
        ));
        self.say(&format!(
            "  leak check after every run ({}); allocation sampling {}",
            match a.leak_sites {
                LeakSites::Record => "call stacks recorded",
                LeakSites::Off => "counts only",
            },
            match a.sample_bytes {
                0 => "off".to_string(),
                n => format!("every {} on average", human_bytes(n)),
            }
        ));
        if a.memtable_budget.is_some() || a.checkpoint_budget.is_some() {
            let mut parts = Vec::new();
            if let Some(b) = a.memtable_budget {
                parts.push(format!("memtable {} above the base", human_bytes(b)));
            }
            if let Some(c) = a.memtable_ceiling {
                parts.push(format!("writers wait above {}", human_bytes(c)));
            }
            if let Some(b) = a.checkpoint_budget {
                parts.push(format!(
                    "checkpoint runs {} each (rolled back and retried over it; GC deferred over it)",
                    human_bytes(b)
                ));
            }
            self.say(&format!("  memory budgets: {}", parts.join("; ")));
        }
        if a.inject_leak {
            self.say("  --inject-leak: the engine's planted leak is switched on for one run");
        }
        if let Some(bytes) = a.inject_slow_leak {
            self.say(&format!(
                "  --inject-slow-leak: every run keeps {} more in checkpoint-results",
                human_bytes(bytes)
            ));
        }
        self.say(&format!(
            "data directory: {}{}",
            self.dir.display(),
            if temp {
                " (temporary, removed at exit)"
            } else {
                ""
            }
        ));
    }

    fn drive(&mut self) -> Result<Outcome, CliError> {
        let cfg = self.cfg;
        let a = &cfg.args;
        self.header(a.data_dir.is_none());
        let workload = Workload {
            seed: a.seed,
            key_space: a.keys,
            value_sizes: cfg.value_sizes.clone(),
            delete_percent: a.delete_percent,
            threads: a.threads as usize,
            ops_per_thread: u64::MAX,
        };
        let mut streams: Vec<Box<dyn Iterator<Item = WorkOp> + Send + '_>> = (0..a.threads
            as usize)
            .map(|t| Box::new(workload.ops(t)) as Box<dyn Iterator<Item = WorkOp> + Send>)
            .collect();

        if !cfg.timelines.is_empty() {
            let sampler = TimelineSampler::start(
                Timeline::new().title(format!(
                    "ckptdb run: live bytes per scope{}",
                    if a.inject_leak {
                        " (--inject-leak)"
                    } else {
                        ""
                    }
                )),
                &timeline_scopes(),
                Duration::from_millis(a.timeline_every_ms),
            )
            .map_err(|e| CliError::failed(format!("cannot start the timeline thread: {e}")))?;
            self.timeline = Some(sampler);
        }
        let mut db = self.open()?;
        self.started = Instant::now();
        self.last_run = Instant::now();
        let deadline = a.duration.map(|d| self.started + d);
        let half_deadline = a.duration.map(|d| self.started + d / 2);
        if a.restart == Restart::Middle {
            self.write_phase(&db, &mut streams, a.writes / 2, half_deadline)?;
            // Half the duration ended the first half; the second half goes
            // on unless the whole duration is over.
            if deadline.is_none_or(|d| Instant::now() < d) {
                self.shared.stop.store(false, Ordering::Relaxed);
            }
            let before = digest(&db);
            let lsn = db.stats().last_lsn;
            self.say(&format!(
                "restart: closing the database at LSN {lsn} ({} keys) and reopening it",
                before.0
            ));
            if let Some(t) = &self.timeline {
                t.mark("restart", MarkerStyle::Plain);
            }
            let s = db.stats();
            self.throttled_before = (s.writes_throttled, s.throttled);
            db.close().map_err(|e| {
                CliError::failed(format!("closing the database failed: {}", chain(&e)))
            })?;
            db = self.open()?;
            let after = digest(&db);
            if after != before {
                return Err(CliError::failed(format!(
                    "recovery did not restore the state: {} keys (checksum {:08x}) before the close, {} keys (checksum {:08x}) after",
                    before.0, before.1, after.0, after.1
                )));
            }
            self.say(&format!(
                "restart: recovered state matches the state before the close ({} keys, checksum {:08x})",
                after.0, after.1
            ));
            self.last_run = Instant::now();
        }
        self.write_phase(&db, &mut streams, a.writes, deadline)?;
        let writing = self.started.elapsed();
        let done = self.shared.done.load(Ordering::Relaxed);
        self.progress.finish(done, self.runs.len() as u64);

        // A last run, so everything written is checkpointed.
        let final_kind = self.next_kind();
        self.checkpoint(&db, final_kind, true, None)?;

        self.summary(&db, writing);
        // The timeline's last reading and the report are taken back to
        // back, so its last points are the report's figures.
        let timeline = self.timeline.take().map(|sampler| {
            let mut t = sampler.stop();
            t.sample(&timeline_scopes());
            t
        });
        let mut report = Report::take();
        for r in &self.runs {
            if let Some(leak) = &r.leak {
                report.add_leak(leak);
            }
        }
        let db_stats = db.stats();
        db.close()
            .map_err(|e| CliError::failed(format!("closing the database failed: {}", chain(&e))))?;
        println!();
        println!("== allocation report (taken before the final close) ==");
        print!("{report}");
        println!();
        println!(
            "engine: last LSN {}, checkpoint LSN {}, {} checkpoint file(s), {} WAL segment(s); since the last open {} runs ok, {} failed, {} leaked ({})",
            db_stats.last_lsn,
            db_stats.checkpoint_lsn,
            db_stats.chain_files,
            db_stats.wal_segments,
            db_stats.checkpoints_ok,
            db_stats.checkpoints_failed,
            db_stats.leaks_detected,
            human_bytes(db_stats.leaked_bytes)
        );
        let mut write_failed = None;
        for t in &cfg.reports {
            match report.write_to_file(&t.path, t.format) {
                Ok(()) => println!("report written: {} ({})", t.path.display(), t.format),
                Err(e) => {
                    eprintln!("error: {e}");
                    write_failed = Some(e.to_string());
                }
            }
        }
        for (path, format) in &cfg.timelines {
            let Some(t) = &timeline else { break };
            let written = match format {
                TimelineFormat::Svg => t.write_svg(path),
                TimelineFormat::Csv => t.write_csv(path),
            };
            match written {
                Ok(()) => println!("timeline written: {}", path.display()),
                Err(e) => {
                    eprintln!("error: {e}");
                    write_failed = Some(e.to_string());
                }
            }
        }
        let leaked: Vec<u64> = self
            .runs
            .iter()
            .filter(|r| !r.clean())
            .map(|r| r.number)
            .collect();
        let unchecked = unchecked_runs(&self.runs);
        let verdict = if leaked.is_empty() && unchecked > 0 {
            println!(
                "verdict: NOT CHECKED: {unchecked} of {} checkpoint runs unchecked (the tracker is not this program's global allocator)",
                self.runs.len()
            );
            Outcome::Clean
        } else if leaked.is_empty() {
            println!(
                "verdict: all {} checkpoint runs drained their allocation scope",
                self.runs.len()
            );
            Outcome::Clean
        } else {
            println!(
                "verdict: LEAK: checkpoint run(s) {} of {} did not drain (exit code 1)",
                leaked
                    .iter()
                    .map(|n| format!("#{n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.runs.len()
            );
            Outcome::Leaked
        };
        match write_failed {
            Some(e) => Err(CliError::failed(e)),
            None => Ok(verdict),
        }
    }

    /// Opens the database, printing what recovery found.
    fn open(&self) -> Result<Db, CliError> {
        let t = Instant::now();
        let db = Db::open(&self.dir, self.opts.clone()).map_err(|e| {
            let msg = format!(
                "cannot open the database in {}: {}",
                self.dir.display(),
                chain(&e)
            );
            match e {
                OpenError::InvalidOptions(_) => CliError::usage(msg),
                _ => CliError::failed(msg),
            }
        })?;
        let rec = db.recovery_report();
        let elapsed = t.elapsed().as_secs_f64() * 1e3;
        if rec.last_lsn == 0 && rec.chain_files.is_empty() && rec.torn_tail.is_none() {
            self.say(&format!(
                "open: new database, nothing to recover ({elapsed:.1} ms)"
            ));
        } else {
            let keys = VERIFY.in_scope(|| db.scan(..).len());
            self.say(&format!(
                "open: recovered {keys} keys up to LSN {}: checkpoint LSN {} from {} file(s) [{}], {} WAL records replayed ({elapsed:.1} ms)",
                rec.last_lsn,
                rec.checkpoint_lsn,
                rec.chain_files.len(),
                rec.chain_files.join(", "),
                rec.wal_records_replayed,
            ));
            self.say(&format!(
                "      torn WAL tail: {}; unregistered files removed: {}",
                rec.torn_tail.as_ref().map_or_else(
                    || "none".to_string(),
                    |(p, off)| format!("{} cut at byte {off}", p.display())
                ),
                if rec.removed_files.is_empty() {
                    "none".to_string()
                } else {
                    rec.removed_files.join(", ")
                }
            ));
        }
        Ok(db)
    }

    /// Writes until `limit` writes in total (all phases) are done, the
    /// deadline passes, or a writer fails; runs checkpoints meanwhile.
    fn write_phase(
        &mut self,
        db: &Db,
        streams: &mut [Box<dyn Iterator<Item = WorkOp> + Send + '_>],
        limit: u64,
        deadline: Option<Instant>,
    ) -> Result<(), CliError> {
        if self.shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let shared = self.shared;
        let mut ckpt_error = None;
        let results: Vec<Result<(), WriteError>> = std::thread::scope(|s| {
            let handles: Vec<_> = streams
                .iter_mut()
                .map(|ops| {
                    s.spawn(
                        WORKLOAD
                            .id()
                            .bind(move || writer(db, ops.as_mut(), shared, limit, deadline)),
                    )
                })
                .collect();
            loop {
                std::thread::sleep(TICK);
                let finished = handles.iter().all(|h| h.is_finished());
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    shared.stop.store(true, Ordering::Relaxed);
                }
                let done = shared.done.load(Ordering::Relaxed);
                self.progress.update(done, self.runs.len() as u64);
                if finished {
                    break;
                }
                let due = ckpt_error.is_none() && self.due(done);
                // The memtable budget, when it is the only reason.
                let by_budget = ckpt_error.is_none()
                    && !due
                    && self.budget_retry_at.is_none_or(|t| Instant::now() >= t)
                    && db.memtable_over_budget();
                if due || by_budget {
                    if self.cfg.args.checkpoint_every > 0 {
                        // Let the writers on to the next checkpoint's count:
                        // they keep writing while this one runs.
                        shared.gate.store(self.next_at, Ordering::Release);
                    }
                    let kind = self.next_kind();
                    let trigger = by_budget.then_some("memtable budget");
                    if let Err(e) = self.checkpoint(db, kind, false, trigger) {
                        ckpt_error = Some(e);
                        shared.stop.store(true, Ordering::Relaxed);
                    }
                }
            }
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        if let Some(e) = ckpt_error {
            return Err(e);
        }
        for r in results {
            r.map_err(|e| CliError::failed(format!("write failed: {}", chain(&e))))?;
        }
        Ok(())
    }

    /// Whether a checkpoint is due after `done` writes.
    fn due(&mut self, done: u64) -> bool {
        let cfg = self.cfg;
        let a = &cfg.args;
        let by_writes = a.checkpoint_every > 0 && done >= self.next_at;
        let by_time = a.checkpoint_interval_ms > 0
            && self.last_run.elapsed() >= Duration::from_millis(a.checkpoint_interval_ms);
        if by_writes {
            while self.next_at <= done {
                self.next_at += a.checkpoint_every;
            }
        }
        by_writes || by_time
    }

    fn next_kind(&self) -> CheckpointKind {
        let n = self.runs.len() as u64 + 1;
        if n % u64::from(self.cfg.args.global_every) == 0 {
            CheckpointKind::Global
        } else {
            CheckpointKind::Incremental
        }
    }

    /// Runs one checkpoint and prints its line. A run over the checkpoint
    /// budget was rolled back: a global one is retried at once as an
    /// incremental one, an incremental one at the next trigger (the final
    /// run fails then).
    fn checkpoint(
        &mut self,
        db: &Db,
        kind: CheckpointKind,
        last: bool,
        trigger: Option<&'static str>,
    ) -> Result<(), CliError> {
        let number = self.runs.len() as u64 + 1;
        let plant = self.cfg.args.inject_leak && !self.leak_planted && (number >= LEAK_RUN || last);
        if plant {
            self.faults.set_leak(true);
            self.leak_planted = true;
        }
        let mut kind = kind;
        let result = loop {
            match checkpoints::run(db, number, kind, self.cfg.args.leak_sites) {
                Err(CheckpointError::OverBudget {
                    budget_bytes,
                    live_bytes,
                    crossed,
                    at,
                    ..
                }) => {
                    self.over_budget += 1;
                    let global = kind == CheckpointKind::Global;
                    let retry = if global {
                        "retrying as incremental"
                    } else if last {
                        "the final run: not retried"
                    } else {
                        "retrying at the next trigger"
                    };
                    let what = if crossed {
                        format!("went over it before the check {at}")
                    } else {
                        format!("{} live {at}", human_bytes(live_bytes))
                    };
                    self.say(&format!(
                        "checkpoint #{number:<3} {:<11}  over checkpoint budget: rolled back, {retry} ({what}; budget {})",
                        checkpoints::kind_name(kind),
                        human_bytes(budget_bytes),
                    ));
                    if let Some(t) = &self.timeline {
                        t.mark(format!("#{number} over budget"), MarkerStyle::Alert);
                    }
                    if global {
                        kind = CheckpointKind::Incremental;
                        continue;
                    }
                    if last {
                        break Err(CheckpointError::OverBudget {
                            budget_bytes,
                            live_bytes,
                            crossed,
                            at,
                        });
                    }
                    if plant {
                        self.faults.set_leak(false);
                        self.leak_planted = false;
                    }
                    // Not at once again: the data it has to write is the
                    // same or more.
                    self.budget_retry_at = Some(Instant::now() + BUDGET_RETRY_DELAY);
                    self.last_run = Instant::now();
                    return Ok(());
                }
                other => break other,
            }
        };
        if plant {
            self.faults.set_leak(false);
        }
        let result = result.map_err(|e| {
            CliError::failed(format!(
                "checkpoint run #{number} ({}) failed: {}",
                checkpoints::kind_name(kind),
                chain(&e)
            ))
        })?;
        let mut result = result;
        result.trigger = trigger;
        self.budget_retry_at = None;
        if trigger.is_some() {
            self.by_budget += 1;
        }
        self.say(&checkpoints::describe(&result));
        if let Some(t) = &self.timeline {
            t.sample_now();
            if result.clean() {
                t.mark(format!("#{number}"), MarkerStyle::Plain);
            } else {
                t.mark(format!("#{number} LEAK"), MarkerStyle::Alert);
            }
        }
        self.runs.push(result);
        self.last_run = Instant::now();
        Ok(())
    }

    /// Prints the totals; `writing` is the time from the first write to
    /// the last (restart included).
    fn summary(&self, db: &Db, writing: Duration) {
        let done = self.shared.done.load(Ordering::Relaxed);
        let secs = writing.as_secs_f64();
        let value_bytes = self.shared.value_bytes.load(Ordering::Relaxed);
        let globals = self
            .runs
            .iter()
            .filter(|r| r.report.kind == CheckpointKind::Global)
            .count();
        let clean = self.runs.iter().filter(|r| r.clean()).count();
        let unchecked = unchecked_runs(&self.runs);
        println!();
        println!(
            "writes: {done} in {secs:.1} s ({:.0} writes/s), {} of values; {} keys live at LSN {}",
            done as f64 / secs.max(1e-9),
            human_bytes(value_bytes),
            VERIFY.in_scope(|| db.scan(..).len()),
            db.stats().last_lsn,
        );
        println!(
            "checkpoints: {} runs ({} incremental, {globals} global), {} drained, {} leaked{}",
            self.runs.len(),
            self.runs.len() - globals,
            clean - unchecked,
            self.runs.len() - clean,
            match unchecked {
                0 => String::new(),
                n => format!(", {n} unchecked (no tracker)"),
            }
        );
        let a = &self.cfg.args;
        let stats = db.stats();
        if a.memtable_budget.is_some() || a.checkpoint_budget.is_some() || stats.trends_flagged > 0
        {
            println!(
                "memory budgets: {} runs started by the memtable budget, {} attempts over the checkpoint budget (rolled back), {} GCs deferred over it, {} writes throttled ({:.1} ms in all); leak trends flagged: {}",
                self.by_budget,
                self.over_budget,
                self.runs
                    .iter()
                    .filter(|r| r.report.gc_deferred.is_some())
                    .count(),
                stats.writes_throttled + self.throttled_before.0,
                (stats.throttled + self.throttled_before.1).as_secs_f64() * 1e3,
                stats.trends_flagged
            );
        }
    }
}

/// One writer thread: claims writes until `limit`, the deadline, or a
/// stop.
fn writer(
    db: &Db,
    ops: &mut (dyn Iterator<Item = WorkOp> + Send + '_),
    shared: &Shared,
    limit: u64,
    deadline: Option<Instant>,
) -> Result<(), WriteError> {
    let result = (|| {
        for n in 0u64.. {
            if shared.stop.load(Ordering::Relaxed) {
                break;
            }
            // The driving thread may be busy with a checkpoint: check the
            // deadline here too (every 64 writes: reading the clock costs).
            if n % 64 == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let claim = shared.claimed.fetch_add(1, Ordering::Relaxed);
            if claim >= limit {
                shared.claimed.fetch_sub(1, Ordering::Relaxed);
                break;
            }
            if claim >= shared.gate.load(Ordering::Acquire) {
                // A checkpoint is due at this write count: wait for it.
                shared.claimed.fetch_sub(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            let Some(op) = ops.next() else {
                shared.claimed.fetch_sub(1, Ordering::Relaxed);
                break;
            };
            match op {
                WorkOp::Put { key, value } => {
                    db.put(&key, &value)?;
                    shared
                        .value_bytes
                        .fetch_add(value.len() as u64, Ordering::Relaxed);
                }
                WorkOp::Delete { key } => {
                    db.delete(&key)?;
                }
            }
            shared.done.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    })();
    if result.is_err() {
        shared.stop.store(true, Ordering::Relaxed);
    }
    result
}

/// Runs whose leak check could not see anything (no tracker installed).
fn unchecked_runs(runs: &[RunResult]) -> usize {
    runs.iter()
        .filter(|r| r.report.drain == ckptdb::Drain::Unchecked)
        .count()
}

/// The scopes drawn by `--timeline`.
fn timeline_scopes() -> [alloc_tracker::ScopeId; 5] {
    use ckptdb::scopes::{CHECKPOINT, CHECKPOINT_RESULTS, MEMTABLE, RECOVERY, WAL};
    [
        CHECKPOINT.id(),
        MEMTABLE.id(),
        WAL.id(),
        CHECKPOINT_RESULTS.id(),
        RECOVERY.id(),
    ]
}

/// Key count and a checksum of every key and value, in key order.
fn digest(db: &Db) -> (usize, u32) {
    VERIFY.in_scope(|| {
        let all = db.scan(..);
        let mut h = crc32fast::Hasher::new();
        for (k, v) in &all {
            h.update(&(k.len() as u32).to_le_bytes());
            h.update(k);
            h.update(&(v.len() as u32).to_le_bytes());
            h.update(v);
        }
        (all.len(), h.finalize())
    })
}

/// `every run`, `every 2nd run`, `every 4th run`.
fn every_nth_run(n: u32) -> String {
    match n {
        1 => "every run".to_string(),
        2 => "every 2nd run".to_string(),
        3 => "every 3rd run".to_string(),
        n => format!("every {n}th run"),
    }
}
