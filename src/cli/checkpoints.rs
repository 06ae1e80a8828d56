//! One checkpoint run as the command line shows it: the engine's run under
//! a site-recording leak check of the database's `checkpoint#n` scope, and
//! its one-line verdict.
//!
//! The engine judges every run itself ([`CheckpointReport::drain`]); in
//! production leak mode it only logs the sites of a leak. The check here
//! wraps the same run so that the sites of a leaking run can be printed and
//! added to the allocation report.

use scope_alloc_tracker::report::human_bytes;
use std::fmt::Write as _;
use std::time::Duration;

use ckptdb::{CheckpointError, CheckpointKind, CheckpointReport, Db, Drain};
use scope_alloc_tracker::leak::{Expect, LeakCheck, LeakReport, Sites};

use super::args::LeakSites;

/// How long the wrapping check waits for late frees (the engine's own
/// check has already waited: its quiescence time, or less when a scan found
/// that nothing holds its excess any more, so nothing can free it).
const QUIESCENCE: Duration = Duration::from_millis(50);

/// The result of one run.
#[derive(Debug)]
pub(crate) struct RunResult {
    /// Run number, from 1.
    pub(crate) number: u64,
    /// The engine's report.
    pub(crate) report: CheckpointReport,
    /// The leak check's report, when the run did not drain.
    pub(crate) leak: Option<LeakReport>,
    /// What started the run, when it is worth saying (the memtable
    /// budget).
    pub(crate) trigger: Option<&'static str>,
}

impl RunResult {
    /// Whether the run did not leak (drained, or unchecked without a
    /// tracker) and kept the file invariant.
    pub(crate) fn clean(&self) -> bool {
        !matches!(self.report.drain, Drain::Leaked { .. }) && self.report.file_leak.is_none()
    }
}

/// Runs checkpoint `number` of `kind` on `db`.
///
/// # Errors
/// The engine's [`CheckpointError`].
pub(crate) fn run(
    db: &Db,
    number: u64,
    kind: CheckpointKind,
    sites: LeakSites,
) -> Result<RunResult, CheckpointError> {
    let sites = match sites {
        LeakSites::Record => Sites::Record,
        LeakSites::Off => Sites::Off,
    };
    let check = LeakCheck::options(db.checkpoint_scope())
        .expect(Expect::Baseline)
        .sites(sites)
        .quiescence(QUIESCENCE)
        .begin();
    let report = db.checkpoint_now(kind)?;
    let ours = check.finish().err();
    let leak = if report.drained() { None } else { ours };
    Ok(RunResult {
        number,
        report,
        leak,
        trigger: None,
    })
}

/// `incremental` / `global`.
pub(crate) fn kind_name(kind: CheckpointKind) -> &'static str {
    match kind {
        CheckpointKind::Incremental => "incremental",
        CheckpointKind::Global => "global",
    }
}

/// The run's line, plus the leak's sites under it when it leaked.
pub(crate) fn describe(r: &RunResult) -> String {
    let rep = &r.report;
    let mut s = format!(
        "checkpoint #{:<3} {:<11}  LSN {:>7}..{:<7}  {:>7.1} ms  allocated {:>9}  ",
        r.number,
        kind_name(rep.kind),
        rep.lsn_start,
        rep.lsn_end,
        rep.duration.as_secs_f64() * 1e3,
        // The engine fills in the figures of a run that drained; for one
        // that leaked, the wrapping check has them.
        human_bytes(match &r.leak {
            Some(leak) if !rep.drained() => leak.during.total_bytes,
            _ => rep.allocated_bytes,
        }),
    );
    if rep.empty {
        s.push_str("nothing new           ");
    } else {
        let _ = write!(
            s,
            "{:>7} entries {:>9}  ",
            rep.entries,
            human_bytes(rep.bytes_written)
        );
    }
    if let Some(gc) = &rep.gc {
        let _ = write!(s, "gc: {} files -> {}  ", gc.merged_files, gc.compacted);
    }
    if let Some(d) = &rep.gc_deferred {
        let what = if d.crossed {
            format!("went over it before the check {}", d.at)
        } else {
            format!("{} live {}", human_bytes(d.live_bytes), d.at)
        };
        let _ = write!(
            s,
            "gc: deferred over checkpoint budget, {} files kept for the next run ({what}; budget {})  ",
            d.chain_files,
            human_bytes(d.budget_bytes)
        );
    }
    if let Some(t) = r.trigger {
        let _ = write!(s, "trigger: {t}  ");
    }
    match rep.drain {
        Drain::Drained { .. } => s.push_str("drained: yes"),
        Drain::Unchecked => s.push_str("drained: unchecked (no tracker)"),
        Drain::Leaked { bytes: b, allocs } => {
            let _ = write!(
                s,
                "drained: NO\n  LEAK in checkpoint run #{}: {} in {allocs} allocation(s) still live after the run",
                r.number,
                human_bytes(b)
            );
            match &r.leak {
                Some(leak) if !leak.sites.is_empty() => {
                    for line in leak.to_string().lines() {
                        let _ = write!(s, "\n    {line}");
                    }
                }
                _ => s.push_str("\n    (no call sites recorded; run with --leak-sites record)"),
            }
        }
    }
    if let Some(v) = &rep.file_leak {
        let _ = write!(s, "\n  FILE LEAK after checkpoint run #{}: {v}", r.number);
    }
    for t in &rep.trends {
        let _ = write!(s, "\n  LEAK TREND after checkpoint run #{}: ", r.number);
        for (i, line) in t.to_string().lines().enumerate() {
            if i > 0 {
                s.push_str("\n    ");
            }
            s.push_str(line);
        }
    }
    s
}
