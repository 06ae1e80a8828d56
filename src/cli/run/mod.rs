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
//!
//! - here: the entry point and the run loop (open, write phases, the
//!   restart, checkpoints as they fall due);
//! - `setup`: from the validated arguments to the engine's options and the
//!   data directory;
//! - `writers`: the writer threads and the counters they share;
//! - `summary`: what is printed before and after the run, the report
//!   files and the verdict.

mod setup;
mod summary;
mod writers;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ckptdb::workload::{WorkOp, Workload};
use ckptdb::{CheckpointError, CheckpointKind, Db, OpenError, Options, WriteError};
use scope_alloc_tracker::integrations::http::MetricsServer;
use scope_alloc_tracker::integrations::prometheus::ScopeCollector;
use scope_alloc_tracker::report::timeline::{MarkerStyle, Timeline, TimelineSampler};
use scope_alloc_tracker::report::Report;
use scope_alloc_tracker::sampling::{set_sampling, Sampling};
use scope_alloc_tracker::Scope;

use super::args::{Restart, RunArgs, RunConfig};
use super::checkpoints::{self, RunResult};
use super::exit::{chain, CliError, Outcome};
use super::progress::Progress;
use scope_alloc_tracker::report::human_bytes;
use setup::data_dir;
use summary::timeline_scopes;
use writers::{writer, Shared};

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
    fn say(&self, line: &str) {
        self.progress.println(line);
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
        self.finish(&report, &db_stats, &timeline)
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
        if n.is_multiple_of(u64::from(self.cfg.args.global_every)) {
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
