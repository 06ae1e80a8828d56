//! What `run` prints: the header before the workload, the totals after
//! it, the allocation report and the engine's figures; the report and
//! timeline files it writes; the verdict.

use std::sync::atomic::Ordering;
use std::time::Duration;

use ckptdb::{CheckpointKind, Db, DbStats};
use scope_alloc_tracker::report::timeline::Timeline;
use scope_alloc_tracker::report::{human_bytes, Report};

use super::super::args::{LeakSites, Restart, TimelineFormat};
use super::super::checkpoints::RunResult;
use super::super::exit::{CliError, Outcome};
use super::{Driver, VERIFY};

impl Driver<'_> {
    /// Prints what the run will do.
    pub(super) fn header(&self, temp: bool) {
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

    /// Prints the allocation report and the engine's figures, writes the
    /// report and timeline files, and prints the verdict.
    pub(super) fn finish(
        &self,
        report: &Report,
        db_stats: &DbStats,
        timeline: &Option<Timeline>,
    ) -> Result<Outcome, CliError> {
        let cfg = self.cfg;
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

    /// Prints the totals; `writing` is the time from the first write to
    /// the last (restart included).
    pub(super) fn summary(&self, db: &Db, writing: Duration) {
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

/// Runs whose leak check could not see anything (no tracker installed).
pub(super) fn unchecked_runs(runs: &[RunResult]) -> usize {
    runs.iter()
        .filter(|r| r.report.drain == ckptdb::Drain::Unchecked)
        .count()
}

/// The scopes drawn by `--timeline`.
pub(super) fn timeline_scopes() -> [scope_alloc_tracker::ScopeId; 5] {
    use ckptdb::scopes::{CHECKPOINT, CHECKPOINT_RESULTS, MEMTABLE, RECOVERY, WAL};
    [
        CHECKPOINT.id(),
        MEMTABLE.id(),
        WAL.id(),
        CHECKPOINT_RESULTS.id(),
        RECOVERY.id(),
    ]
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
