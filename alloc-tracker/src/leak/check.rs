//! `LeakCheck`: baseline, recording, quiescence wait (ended early when a
//! scan finds the excess unreachable), verdict.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::defaults;
use super::options::{
    Expect, LeakCheckOptions, QuiescenceEnd, Sites, DEFAULT_QUIESCENCE, EARLY_SCAN_AFTER,
};
use super::overlap::Overlap;
use super::reach::{self, Reachability};
use super::report::{AllowedRetention, LeakReport, Retention, UnusedRule};
use super::retain::{Defaults, Retain, RetainRuleError};
use super::verdict::{self, Resolved};
use crate::error::NotInstalled;
use crate::sampling;
use crate::scope::{registry, ScopeId};
use crate::stats::ScopeStats;

/// A leak check on one scope and all scopes below it.
///
/// ```
/// use scope_alloc_tracker::leak::LeakCheck;
/// use scope_alloc_tracker::ScopeId;
/// # #[global_allocator]
/// # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
/// #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
///
/// let scope = ScopeId::register("doc-check", None).unwrap();
/// let check = LeakCheck::begin(scope);
/// scope.in_scope(|| drop(vec![1u8; 1000]));
/// assert!(check.finish().is_ok());
///
/// let check = LeakCheck::begin(scope);
/// let kept = scope.in_scope(|| vec![1u8; 1000]);
/// let report = check.finish().unwrap_err();
/// assert_eq!(report.leaked_bytes, 1000);
/// # drop(kept);
/// ```
///
/// Checks on different scopes run concurrently without seeing each other's
/// allocations (ordinary parallel `cargo test`); to check one static scope
/// from concurrent tests, check a fresh instance of it in each
/// (`LeakCheck::begin(&instance)` with `let instance = SCOPE.instance()?`,
/// or `assert_scope_drained!(instance of &SCOPE, ..)`). A check never
/// passes when the tracker is not installed. While a check that records
/// sites is active, every allocation in its scope walks the stack.
#[derive(Debug)]
#[must_use = "a check does nothing until finish() is called"]
pub struct LeakCheck {
    opts: LeakCheckOptions,
    baseline: ScopeStats,
    freed_elsewhere: u64,
    first_seq: u64,
    started: Instant,
    /// Scopes whose recording count this check raised (it lowers them on
    /// drop).
    recorded: Vec<ScopeId>,
    /// The retention rules in order of precedence, or why they could not
    /// be read.
    rules: Result<Vec<Retain>, RetainRuleError>,
    /// This check's registration against overlapping checks.
    overlap: Overlap,
}

/// A check that passed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Drained {
    /// Blocks kept that retention rules allowed, per rule.
    pub allowed: Vec<AllowedRetention>,
    /// Rules from code, environment or file that matched nothing.
    pub unused_rules: Vec<UnusedRule>,
    /// How long `finish` waited for the scope to drain.
    pub waited: Duration,
    /// The scope's (with children) figures over the check: live figures at
    /// the end, totals of the work done between begin and finish;
    /// `peak_bytes` is the scope's peak so far (peaks are not reset).
    pub during: ScopeStats,
    /// Bytes left live: within the tolerance, or allowed by rules.
    pub retained_bytes: u64,
}

impl std::fmt::Display for Drained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "drained: {} B retained (waited {:?})",
            self.retained_bytes, self.waited
        )?;
        super::report::write_retention(f, &self.allowed, &self.unused_rules)
    }
}

/// A reachability scan made during a check, with the scope's members it
/// covered and the scope's figures read right after it.
struct Scanned {
    members: Vec<ScopeId>,
    classified: reach::Classified,
    now: ScopeStats,
}

impl LeakCheckOptions {
    /// Starts the check.
    pub fn begin(self) -> LeakCheck {
        LeakCheck::start(self)
    }
}

impl LeakCheck {
    /// Begins a check on `scope` with default options: back to baseline,
    /// sites recorded, a quiescence wait of up to [`DEFAULT_QUIESCENCE`].
    pub fn begin(scope: impl Into<ScopeId>) -> LeakCheck {
        Self::options(scope).begin()
    }

    /// Options for a check on `scope`.
    pub fn options(scope: impl Into<ScopeId>) -> LeakCheckOptions {
        LeakCheckOptions {
            scope: scope.into(),
            expect: Expect::Baseline,
            sites: Sites::Record,
            quiescence: DEFAULT_QUIESCENCE,
            quiescence_end: QuiescenceEnd::WhenLost,
            tolerance_bytes: 0,
            rules: Vec::new(),
            defaults: Defaults::On,
            defaults_off: Vec::new(),
            reachability: Reachability::Scan,
        }
    }

    fn start(opts: LeakCheckOptions) -> LeakCheck {
        let members = registry::subtree(opts.scope);
        let mut recorded = Vec::new();
        if opts.sites == Sites::Record {
            // Build the stack unwinder (module list, allocator entry points)
            // here rather than inside the first recorded allocation.
            sampling::prepare_unwinder();
            crate::hot::switches::recording_started();
            for &s in &members {
                crate::hot::per_scope::recording(s).fetch_add(1, Ordering::SeqCst);
            }
            recorded = members.clone();
        }
        let overlap = crate::hot::thread_state::internal(|| Overlap::begin(&members));
        let rules = crate::hot::thread_state::internal(|| {
            defaults::rules_in_order(&opts.rules, opts.defaults, &opts.defaults_off)
        });
        let first_seq = sampling::records_seq();
        LeakCheck {
            rules,
            overlap,
            baseline: opts.scope.stats_with_children(),
            freed_elsewhere: members.iter().map(|s| sampling::freed_elsewhere(*s)).sum(),
            first_seq,
            started: Instant::now(),
            opts,
            recorded,
        }
    }

    /// The checked scope.
    pub fn scope(&self) -> ScopeId {
        self.opts.scope
    }

    /// Whether the scope is drained right now (no waiting, no report),
    /// retention rules applied.
    ///
    /// # Errors
    /// [`NotInstalled`] when [`TrackingAlloc`](crate::TrackingAlloc) is
    /// not the global allocator: every figure would read zero and the
    /// scope would look drained whatever it holds, so the check refuses,
    /// as [`finish`](Self::finish) does.
    pub fn is_drained(&self) -> Result<bool, NotInstalled> {
        super::ensure_installed()?;
        let Some(excess) = self.excess(&self.opts.scope.stats_with_children()) else {
            return Ok(true);
        };
        Ok(match &self.rules {
            Ok(rules) if !rules.is_empty() && self.opts.sites == Sites::Record => {
                let mut resolved = Resolved::default();
                let (bytes, allocs, _) = self.judge(excess, rules, &mut resolved, None);
                resolved.release();
                !self.over_tolerance(bytes, allocs)
            }
            _ => false,
        })
    }

    /// The live bytes and allocations "drained" means.
    fn expected(&self) -> (u64, u64) {
        match self.opts.expect {
            Expect::Baseline => (self.baseline.live_bytes, self.baseline.live_allocs),
            Expect::Zero => (0, 0),
        }
    }

    /// Bytes and allocations above what "drained" allows, if any.
    fn excess(&self, now: &ScopeStats) -> Option<(u64, u64)> {
        let (base_bytes, base_allocs) = self.expected();
        let bytes = now.live_bytes.saturating_sub(base_bytes);
        let allocs = now.live_allocs.saturating_sub(base_allocs);
        self.over_tolerance(bytes, allocs)
            .then_some((bytes, allocs))
    }

    fn over_tolerance(&self, bytes: u64, allocs: u64) -> bool {
        bytes > self.opts.tolerance_bytes || (allocs > 0 && self.opts.tolerance_bytes == 0)
    }

    /// The excess split by the retention rules: what is left as leak (the
    /// excess minus the allowed blocks), with the verdict's lists.
    fn judge(
        &self,
        excess: (u64, u64),
        rules: &[Retain],
        resolved: &mut Resolved,
        reach: Option<&reach::Classified>,
    ) -> (u64, u64, Retention) {
        if self.opts.sites == Sites::Off {
            let retention = Retention {
                unused: verdict::all_unused(rules),
                overlapping_checks: self.overlap.others(),
                ..Retention::default()
            };
            return (excess.0, excess.1, retention);
        }
        let members = registry::subtree(self.opts.scope);
        let mut blocks = verdict::gather(self.first_seq, &members);
        if let Some(c) = reach {
            for b in &mut blocks {
                b.reach = c
                    .verdict(reach::hide(b.hidden_addr), b.seq)
                    .map(|v| match v {
                        reach::BlockVerdict::Unreachable => verdict::Reach::Unreachable,
                        reach::BlockVerdict::Reachable { .. } => verdict::Reach::Reachable,
                    });
            }
        }
        let v = verdict::judge(&blocks, rules, resolved, reach);
        let mut retention = v.retention;
        retention.overlapping_checks = self.overlap.others();
        (
            excess.0.saturating_sub(v.allowed_bytes),
            excess.1.saturating_sub(v.allowed_allocs),
            retention,
        )
    }

    /// Whether waiting longer cannot change the verdict, by the scan `c`
    /// made while the scope held `excess`: it saw the whole process, every
    /// other thread stopped; every block recorded since the check began and
    /// still live is one it found unreachable, which no thread can free any
    /// more (nothing holds its address); those blocks make up the whole
    /// excess (none of it is bytes without a record, which a thread might
    /// still free); and they alone keep the scope above what "drained"
    /// allows, whatever else it frees.
    fn lost_for_good(&self, scanned: &Scanned, (bytes, allocs): (u64, u64)) -> bool {
        let c = &scanned.classified;
        if !c.complete || c.summary.error.is_some() {
            return false;
        }
        let blocks = verdict::gather(self.first_seq, &scanned.members);
        let mut lost = (0u64, 0u64);
        for b in &blocks {
            match c.verdict(reach::hide(b.hidden_addr), b.seq) {
                Some(reach::BlockVerdict::Unreachable) => {
                    lost.0 += b.size as u64;
                    lost.1 += 1;
                }
                // Held, or allocated after the scan began.
                _ => return false,
            }
        }
        let (base_bytes, base_allocs) = self.expected();
        bytes <= lost.0
            && allocs <= lost.1
            && self.over_tolerance(
                lost.0.saturating_sub(base_bytes),
                lost.1.saturating_sub(base_allocs),
            )
    }

    /// Ends the check: waits up to the quiescence time for the scope to
    /// drain, then returns [`Drained`] or a [`LeakReport`]. A failing check
    /// ends the wait early when a reachability scan finds its excess
    /// unreachable (see [`LeakCheckOptions::quiescence`]).
    ///
    /// # Errors
    /// A [`LeakReport`] when the scope still holds more than allowed, or
    /// when [`TrackingAlloc`](crate::TrackingAlloc) is not the global
    /// allocator (its [`cause`](LeakReport::cause) is then
    /// [`LeakCause::NotInstalled`](super::LeakCause::NotInstalled) and its
    /// message names the missing `#[global_allocator]` line).
    // The report is made once per failed check; boxing it would only add
    // noise for every caller.
    #[allow(clippy::result_large_err)]
    #[inline(always)]
    pub fn finish(self) -> Result<Drained, LeakReport> {
        // The stack just below the caller's frame still holds what the
        // checked work's dead frames left there, block addresses included.
        // `finish_marked`'s frame will lie there and be read as a root
        // (its slots that it never writes too): zero that stretch first.
        reach::scrub_dead_frames();
        self.finish_marked()
    }

    #[allow(clippy::result_large_err)]
    #[inline(never)]
    fn finish_marked(self) -> Result<Drained, LeakReport> {
        // The reachability scan reads this thread's stack from here up:
        // the frames of `finish`'s callers are roots, the scanner's are not.
        let stack_top = reach::stack_mark();
        self.finish_at(stack_top)
    }

    #[inline(never)]
    #[allow(clippy::result_large_err)]
    fn finish_at(self, stack_top: usize) -> Result<Drained, LeakReport> {
        if !super::is_installed() {
            return Err(LeakReport::not_installed(
                self.opts.scope,
                self.opts.expect,
                self.started.elapsed(),
            ));
        }
        let rules = match &self.rules {
            Ok(rules) => rules,
            Err(e) => {
                return Err(LeakReport::bad_rules(
                    self.opts.scope,
                    self.opts.expect,
                    e.clone(),
                    self.started.elapsed(),
                ))
            }
        };
        let deadline = Instant::now() + self.opts.quiescence;
        let waited_from = Instant::now();
        let mut pause = Duration::from_micros(200);
        let mut resolved = Resolved::default();
        let base = match self.opts.expect {
            Expect::Baseline => self.baseline.live_bytes,
            Expect::Zero => 0,
        };
        let scan = self.opts.sites == Sites::Record && self.opts.reachability != Reachability::Off;
        // The one early scan (it stops the world), when the excess outlives
        // the first moments of the wait; done once it was made, or when it
        // may not be.
        let mut looked = !(scan
            && self.opts.quiescence_end == QuiescenceEnd::WhenLost
            && self.opts.quiescence >= EARLY_SCAN_AFTER * 5);
        // That scan, when it did not end the wait, with the scope's figures
        // read right after it: a report on the same figures reuses it.
        let mut early: Option<Scanned> = None;
        let result = loop {
            // Decided before reading the figures, so that the last poll
            // reads them after the deadline even when judging the previous
            // one (symbolising its stacks) took longer than the wait.
            let past_deadline = Instant::now() >= deadline;
            let now = self.opts.scope.stats_with_children();
            let waited = waited_from.elapsed();
            let judged = match self.excess(&now) {
                None => None,
                // Without rules, only the final report needs the blocks.
                Some(e) if rules.is_empty() => Some((e.0, e.1, None)),
                Some(e) => {
                    let (bytes, allocs, r) = self.judge(e, rules, &mut resolved, None);
                    Some((bytes, allocs, Some(r)))
                }
            };
            let (leaked, retention) = match judged {
                None => (None, None),
                Some((b, a, r)) if !self.over_tolerance(b, a) => (None, r),
                Some((b, a, r)) => (Some((b, a)), r),
            };
            match leaked {
                None => {
                    let mut retention = retention.unwrap_or_else(|| Retention {
                        unused: verdict::all_unused(rules),
                        ..Retention::default()
                    });
                    // Retention a rule allowed must still be held by
                    // something: an unreachable block is a leak whatever
                    // rule matches it (a `mem::forget` made through the
                    // code path that fills a cache). So a check that
                    // passes only thanks to rules scans too.
                    if scan && !retention.allowed.is_empty() {
                        let scanned = self.scan(&mut resolved, stack_top);
                        match self.judge_scanned(&scanned, rules, &mut resolved, waited) {
                            Err(report) => break Err(report),
                            Ok(Some(r)) => retention = r,
                            Ok(None) => {}
                        }
                    }
                    break Ok(Drained {
                        allowed: retention.allowed,
                        unused_rules: retention.unused,
                        waited,
                        during: self.during(&now),
                        retained_bytes: now.live_bytes.saturating_sub(base),
                    });
                }
                Some(_) if !looked && !past_deadline && waited >= EARLY_SCAN_AFTER => {
                    looked = true;
                    let scanned = self.scan(&mut resolved, stack_top);
                    if let Some(e) = self.excess(&scanned.now) {
                        if !self.lost_for_good(&scanned, e) {
                            early = Some(scanned);
                        } else if let Err(report) =
                            self.judge_scanned(&scanned, rules, &mut resolved, waited)
                        {
                            break Err(report);
                        }
                    }
                    // Something may still free the excess: wait as before.
                }
                Some(_) if !past_deadline => {
                    std::thread::sleep(
                        pause.min(deadline.saturating_duration_since(Instant::now())),
                    );
                    pause = (pause * 2).min(Duration::from_millis(10));
                }
                Some((bytes, allocs)) => {
                    let retention = match retention {
                        Some(r) => r,
                        None => self.judge((bytes, allocs), rules, &mut resolved, None).2,
                    };
                    // The early scan still describes the scope when no
                    // block of it was allocated or freed since: no second
                    // stop of the world. Otherwise blocks came and went,
                    // and pointers moved with them: scan again.
                    let scanned = match early.take().filter(|e| e.now == now) {
                        Some(reused) => Some(reused),
                        None if scan => Some(self.scan(&mut resolved, stack_top)),
                        None => None,
                    };
                    let Some(scanned) = scanned else {
                        let members = registry::subtree(self.opts.scope);
                        let leaked = (bytes, allocs);
                        break Err(self.report(now, leaked, retention, &members, waited, None));
                    };
                    // With the scan, judge again: an unreachable block is a
                    // leak whatever rule matches it, and each site says
                    // which of its blocks are reachable and from what.
                    let (bytes, allocs, retention) = match self.excess(&scanned.now) {
                        Some(e) => self.judge(e, rules, &mut resolved, Some(&scanned.classified)),
                        None => (bytes, allocs, retention),
                    };
                    break Err(self.report_scanned(&scanned, (bytes, allocs), retention, waited));
                }
            }
        };
        resolved.release();
        result
    }

    /// Stops the world and classifies the blocks of the scope and its
    /// children, then reads the scope's figures: blocks freed during the
    /// scan are gone from the figures and from the blocks judged; blocks
    /// allocated since have no verdict.
    fn scan(&self, resolved: &mut Resolved, stack_top: usize) -> Scanned {
        // The symboliser's caches are live heap the scan would read as
        // possible holders: drop them first.
        std::mem::take(resolved).release();
        let members = registry::subtree(self.opts.scope);
        let classified =
            reach::classify(&members, self.first_seq, stack_top, self.opts.reachability);
        let now = self.opts.scope.stats_with_children();
        Scanned {
            members,
            classified,
            now,
        }
    }

    /// Judges what the scope holds in `scanned`'s figures with its
    /// verdicts: the report when that is more than allowed, else the
    /// retention the rules allowed (`None` when nothing is in excess).
    #[allow(clippy::result_large_err)]
    fn judge_scanned(
        &self,
        scanned: &Scanned,
        rules: &[Retain],
        resolved: &mut Resolved,
        waited: Duration,
    ) -> Result<Option<Retention>, LeakReport> {
        let Some(excess) = self.excess(&scanned.now) else {
            return Ok(None);
        };
        let (bytes, allocs, retention) =
            self.judge(excess, rules, resolved, Some(&scanned.classified));
        if !self.over_tolerance(bytes, allocs) {
            return Ok(Some(retention));
        }
        Err(self.report_scanned(scanned, (bytes, allocs), retention, waited))
    }

    /// The report of a failed check on `scanned`'s figures and verdicts.
    fn report_scanned(
        &self,
        scanned: &Scanned,
        leaked: (u64, u64),
        retention: Retention,
        waited: Duration,
    ) -> LeakReport {
        self.report(
            scanned.now,
            leaked,
            retention,
            &scanned.members,
            waited,
            Some(&scanned.classified),
        )
    }

    /// The report of a failed check.
    fn report(
        &self,
        now: ScopeStats,
        (bytes, allocs): (u64, u64),
        retention: Retention,
        members: &[ScopeId],
        waited: Duration,
        reach: Option<&reach::Classified>,
    ) -> LeakReport {
        let freed_elsewhere = members
            .iter()
            .map(|s| sampling::freed_elsewhere(*s))
            .sum::<u64>()
            .saturating_sub(self.freed_elsewhere);
        LeakReport::build(
            self.opts.scope,
            self.opts.expect,
            self.opts.sites == Sites::Record,
            self.baseline,
            now,
            self.during(&now),
            bytes,
            allocs,
            retention,
            freed_elsewhere,
            waited,
            self.started.elapsed(),
            reach,
        )
    }

    /// Ends the check and panics with the report if the scope did not
    /// drain; returns what [`finish`](Self::finish) returns on success.
    ///
    /// With the `json` feature, when the environment variable
    /// `ALLOC_TRACKER_LEAK_DIR` names a directory, the report is first
    /// written there as JSON (`leak-<scope>-<pid>-<n>.json`) so that CI can
    /// keep it; the panic message gives the file's path.
    ///
    /// # Panics
    /// When the scope still holds more than allowed after the quiescence
    /// wait; the panic message is the [`LeakReport`]. When the tracker is
    /// not the global allocator; the message names the missing line.
    #[track_caller]
    pub fn assert_drained(self) -> Drained {
        match self.finish() {
            Ok(d) => d,
            Err(report) => match save_report(&report) {
                Some(Ok(path)) => panic!("{report}  (report saved to {})", path.display()),
                Some(Err(e)) => panic!("{report}  (could not save the report: {e})"),
                None => panic!("{report}"),
            },
        }
    }

    fn during(&self, now: &ScopeStats) -> ScopeStats {
        let b = &self.baseline;
        ScopeStats {
            total_allocs: now.total_allocs - b.total_allocs,
            total_bytes: now.total_bytes - b.total_bytes,
            total_usable_bytes: now.total_usable_bytes - b.total_usable_bytes,
            total_frees: now.total_frees - b.total_frees,
            total_freed_bytes: now.total_freed_bytes - b.total_freed_bytes,
            ..*now
        }
    }
}

impl Drop for LeakCheck {
    fn drop(&mut self) {
        if self.opts.sites == Sites::Record {
            for &s in &self.recorded {
                crate::hot::per_scope::stop_recording(s);
            }
            crate::hot::switches::recording_ended();
        }
    }
}

/// Writes `report` as JSON into `$ALLOC_TRACKER_LEAK_DIR`, if set.
#[cfg(feature = "json")]
fn save_report(report: &LeakReport) -> Option<std::io::Result<std::path::PathBuf>> {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::var_os("ALLOC_TRACKER_LEAK_DIR")?;
    Some(crate::hot::thread_state::internal(|| {
        let name: String = report
            .scope
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path =
            std::path::Path::new(&dir).join(format!("leak-{name}-{}-{n}.json", std::process::id()));
        let json = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
        std::fs::write(&path, json)?;
        Ok(path)
    }))
}

#[cfg(not(feature = "json"))]
fn save_report(_: &LeakReport) -> Option<std::io::Result<std::path::PathBuf>> {
    None
}
