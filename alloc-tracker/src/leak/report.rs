//! `LeakReport`: what a failed check found, grouped by call site.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use super::options::Expect;
use super::reach::{self, Classified, ReachSummary, SiteReach};
use super::retain::{RetainRuleError, RuleSource};
use crate::error::NotInstalled;
use crate::hot::thread_state;
use crate::sampling::{Frame, StackId};
use crate::scope::ScopeId;
use crate::stats::ScopeStats;

/// Allocations still live from one call site.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct LeakSite {
    /// Requested bytes still live from this site.
    pub bytes: u64,
    /// Allocations still live from this site.
    pub allocs: u64,
    /// A few of their sizes, largest first.
    pub example_sizes: Vec<usize>,
    /// Scope path the allocations were made in.
    pub scope: String,
    /// The call stack, innermost first, allocator frames trimmed.
    pub frames: Vec<Frame>,
    /// The retention rule that matched these blocks when they are a leak
    /// only because they are beyond its bound.
    #[cfg_attr(feature = "serde", serde(default))]
    pub beyond_rule: Option<String>,
    /// Which of these allocations are unreachable (definitely lost) and
    /// which are still reachable, with what holds them; `None` when the
    /// check did not scan ([`Reachability`](super::Reachability)).
    #[cfg_attr(feature = "serde", serde(default))]
    pub reach: Option<SiteReach>,
}

impl LeakSite {
    /// The innermost frame that is program code rather than `std`/`core`/
    /// `alloc`: usually the function that leaked. Never one of the
    /// tracker's own frames ([`Frame::is_tracker`]): the allocator's frames
    /// are trimmed by address, whatever the debug information says.
    pub fn origin(&self) -> Option<&Frame> {
        crate::sampling::origin(&self.frames)
    }
}

/// What made a check fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum LeakCause {
    /// The scope kept more than allowed: a leak.
    #[default]
    Leaked,
    /// [`TrackingAlloc`](crate::TrackingAlloc) is not the global
    /// allocator, so the check could not see anything ([`NotInstalled`]);
    /// every figure of the report is zero.
    NotInstalled,
    /// A retention rule source (`ALLOC_TRACKER_RETAIN`, the file named by
    /// `ALLOC_TRACKER_RETAIN_FILE`) does not parse or cannot be read; the
    /// check did not judge the scope ([`LeakReport::rule_error`] says why).
    BadRetainRules,
}

/// What one retention rule allowed at a check (see [`Retain`](super::Retain)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct AllowedRetention {
    /// The rule's label (its name, or its pattern).
    pub rule: String,
    /// The rule's pattern (`site:..` or `scope:..`).
    pub pattern: String,
    /// Where the rule came from.
    pub source: RuleSource,
    /// The rule's bound in bytes.
    pub bound_bytes: u64,
    /// Bytes of the blocks allowed.
    pub bytes: u64,
    /// Blocks allowed.
    pub allocs: u64,
    /// Bytes of matched blocks beyond the bound: leaks, listed among the
    /// report's sites.
    pub beyond_bound_bytes: u64,
    /// Matched blocks beyond the bound.
    pub beyond_bound_allocs: u64,
    /// The allowed blocks grouped by call site, most bytes first.
    pub sites: Vec<LeakSite>,
}

/// A rule given to a check that matched no retained block: a stale rule.
/// Only rules from code, the environment or a file are listed, not the
/// default rules (most checks keep nothing of the runtimes).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct UnusedRule {
    /// The rule's label (its name, or its pattern).
    pub rule: String,
    /// The rule's pattern.
    pub pattern: String,
    /// Where the rule came from.
    pub source: RuleSource,
    /// The rule's bound in bytes.
    pub bound_bytes: u64,
}

/// The retention part of a verdict, for the report and [`Drained`](super::Drained).
#[derive(Debug, Clone, Default)]
pub(crate) struct Retention {
    pub(crate) allowed: Vec<AllowedRetention>,
    pub(crate) unused: Vec<UnusedRule>,
    pub(crate) leak_sites: Vec<LeakSite>,
    pub(crate) overlapping_checks: u64,
}

/// Why a [`LeakCheck`](super::LeakCheck) failed: a leak, or a tracker that
/// is not installed ([`LeakReport::cause`]).
///
/// `Display` gives a compact report in the style of LeakSanitizer; the
/// fields are public for other formats.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct LeakReport {
    /// Why the check failed.
    #[cfg_attr(feature = "serde", serde(default))]
    pub cause: LeakCause,
    /// Path of the checked scope.
    pub scope: String,
    /// Raw id of the checked scope.
    pub scope_id: u16,
    /// What a bad rule source said, for [`LeakCause::BadRetainRules`].
    #[cfg_attr(feature = "serde", serde(default))]
    pub rule_error: Option<RetainRuleError>,
    /// Whether the check expected the baseline or zero.
    pub expected_zero: bool,
    /// Live bytes (with children) when the check began.
    pub baseline_bytes: u64,
    /// Live allocations when the check began.
    pub baseline_allocs: u64,
    /// Live bytes when the check gave up.
    pub final_bytes: u64,
    /// Live allocations when the check gave up.
    pub final_allocs: u64,
    /// Bytes above what was expected: the leak.
    pub leaked_bytes: u64,
    /// Allocations above what was expected.
    pub leaked_allocs: u64,
    /// Totals of the work done during the check.
    pub during: ScopeStats,
    /// Whether the sites account for every leaked allocation (all made
    /// during the check with site recording on). Allocations that predate
    /// the check, or were made with recording off, cannot be attributed.
    pub sites_exact: bool,
    /// Leaked allocations grouped by call site, most bytes first.
    pub sites: Vec<LeakSite>,
    /// Blocks kept that retention rules allow, per rule (not leaks).
    #[cfg_attr(feature = "serde", serde(default))]
    pub allowed: Vec<AllowedRetention>,
    /// Rules from code, environment or file that matched nothing.
    #[cfg_attr(feature = "serde", serde(default))]
    pub unused_rules: Vec<UnusedRule>,
    /// Other leak checks on this scope, or on a scope above or below it,
    /// that were active while this one was (each sees the other's blocks).
    #[cfg_attr(feature = "serde", serde(default))]
    pub overlapping_checks: u64,
    /// Frees of the scope's allocations during the check made by another
    /// thread or while another scope was current (not a leak; context).
    pub freed_elsewhere: u64,
    /// How long the check waited for the scope to drain before the scan
    /// that gave its verdict (the scan's own time is
    /// [`ReachSummary::scan_time`]): the whole quiescence time, or less
    /// when a scan found the excess unreachable and ended the wait early
    /// (see [`LeakCheckOptions::quiescence`](super::LeakCheckOptions::quiescence)).
    pub waited: Duration,
    /// How long the check was active.
    pub active_for: Duration,
    /// The reachability scan of the retained blocks (over all sites, with
    /// the holders grouped); `None` when the check did not scan. A check
    /// that waited its whole quiescence time after an early scan reuses
    /// that scan when the scope's figures did not change since (see
    /// `docs/reachability.md`, "The early end of the wait").
    #[cfg_attr(feature = "serde", serde(default))]
    pub reachability: Option<ReachSummary>,
}

impl LeakReport {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build(
        scope: ScopeId,
        expect: Expect,
        with_sites: bool,
        baseline: ScopeStats,
        now: ScopeStats,
        during: ScopeStats,
        leaked_bytes: u64,
        leaked_allocs: u64,
        retention: Retention,
        freed_elsewhere: u64,
        waited: Duration,
        active_for: Duration,
        reach: Option<&Classified>,
    ) -> LeakReport {
        thread_state::internal(|| {
            let recorded: u64 = retention.leak_sites.iter().map(|s| s.bytes).sum();
            LeakReport {
                cause: LeakCause::Leaked,
                rule_error: None,
                scope: scope.path(),
                scope_id: scope.as_u16(),
                expected_zero: expect == Expect::Zero,
                baseline_bytes: baseline.live_bytes,
                baseline_allocs: baseline.live_allocs,
                final_bytes: now.live_bytes,
                final_allocs: now.live_allocs,
                leaked_bytes,
                leaked_allocs,
                during,
                sites_exact: with_sites && recorded == leaked_bytes,
                sites: retention.leak_sites,
                allowed: retention.allowed,
                unused_rules: retention.unused,
                overlapping_checks: retention.overlapping_checks,
                freed_elsewhere,
                waited,
                active_for,
                reachability: reach.map(|c| c.summary.clone()),
            }
        })
    }

    /// The report of a check whose retention rules could not be read.
    pub(crate) fn bad_rules(
        scope: ScopeId,
        expect: Expect,
        error: RetainRuleError,
        active_for: Duration,
    ) -> LeakReport {
        let mut r = Self::not_installed(scope, expect, active_for);
        r.cause = LeakCause::BadRetainRules;
        r.rule_error = Some(error);
        r
    }

    /// The report of a check that could not run because the tracker is not
    /// installed.
    pub(crate) fn not_installed(
        scope: ScopeId,
        expect: Expect,
        active_for: Duration,
    ) -> LeakReport {
        LeakReport {
            cause: LeakCause::NotInstalled,
            rule_error: None,
            scope: scope.path(),
            scope_id: scope.as_u16(),
            expected_zero: expect == Expect::Zero,
            baseline_bytes: 0,
            baseline_allocs: 0,
            final_bytes: 0,
            final_allocs: 0,
            leaked_bytes: 0,
            leaked_allocs: 0,
            during: ScopeStats::default(),
            sites_exact: false,
            sites: Vec::new(),
            allowed: Vec::new(),
            unused_rules: Vec::new(),
            overlapping_checks: 0,
            freed_elsewhere: 0,
            waited: Duration::ZERO,
            active_for,
            reachability: None,
        }
    }

    /// Whether any site's stack names a function containing `name`.
    pub fn mentions_function(&self, name: &str) -> bool {
        self.sites
            .iter()
            .any(|s| s.frames.iter().any(|f| f.function.contains(name)))
    }
}

/// Groups blocks `(scope, stack, size, beyond_rule, (key, seq))` by site,
/// merging stacks that resolve to the same frames, most bytes first.
pub(crate) fn group_sites(
    // The last field: the block's address as `reach::hide` keeps it, and
    // its record's sequence number.
    blocks: impl IntoIterator<Item = (ScopeId, StackId, usize, Option<String>, (usize, u64))>,
    mut frames_of: impl FnMut(StackId) -> Vec<Frame>,
    reach: Option<&Classified>,
) -> Vec<LeakSite> {
    type Key = (ScopeId, StackId, Option<String>);
    // Per site: bytes, allocs, sizes, and each block's size, address kept
    // as `reach::hide` encodes it and sequence number (only with a scan).
    type Group = (u64, u64, Vec<usize>, Vec<(u64, (usize, u64))>);
    let mut groups: HashMap<Key, Group> = HashMap::new();
    for (scope, stack, size, beyond, key) in blocks {
        let g = groups.entry((scope, stack, beyond)).or_default();
        g.0 += size as u64;
        g.1 += 1;
        g.2.push(size);
        if reach.is_some() {
            g.3.push((size as u64, key));
        }
    }
    let mut merged: Vec<LeakSite> = Vec::with_capacity(groups.len());
    for ((scope, stack, beyond_rule), (bytes, allocs, sizes, keys)) in groups {
        let site = LeakSite {
            bytes,
            allocs,
            example_sizes: sizes,
            scope: scope.path(),
            frames: frames_of(stack),
            beyond_rule,
            reach: reach.map(|c| {
                reach::group(
                    keys.iter()
                        .map(|&(size, (key, seq))| (size, c.verdict(reach::hide(key), seq))),
                )
            }),
        };
        // Different return addresses (unrolled loops, inlined copies) can
        // resolve to the same source stack: merge those.
        match merged.iter_mut().find(|m| {
            m.scope == site.scope && m.frames == site.frames && m.beyond_rule == site.beyond_rule
        }) {
            Some(m) => {
                m.bytes += site.bytes;
                m.allocs += site.allocs;
                m.example_sizes.extend(site.example_sizes);
                if let (Some(a), Some(b)) = (&mut m.reach, site.reach) {
                    reach::merge(a, b);
                }
            }
            None => merged.push(site),
        }
    }
    for m in &mut merged {
        m.example_sizes.sort_unstable_by(|a, b| b.cmp(a));
        m.example_sizes.dedup();
        m.example_sizes.truncate(3);
    }
    merged.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then(b.allocs.cmp(&a.allocs))
            .then_with(|| a.frames.len().cmp(&b.frames.len()))
    });
    merged
}

/// How many frames of each site `Display` prints.
const SHOWN_FRAMES: usize = 8;

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.cause, &self.rule_error) {
            (LeakCause::NotInstalled, _) => {
                return writeln!(
                    f,
                    "leak check on scope `{}` cannot run: {NotInstalled}",
                    self.scope
                );
            }
            (LeakCause::BadRetainRules, e) => {
                let e = e.as_ref().map_or(String::new(), ToString::to_string);
                return writeln!(f, "leak check on scope `{}` cannot run: {e}", self.scope);
            }
            _ => {}
        }
        let expected = if self.expected_zero {
            "zero".to_string()
        } else {
            format!(
                "baseline {} B in {} allocs",
                self.baseline_bytes, self.baseline_allocs
            )
        };
        writeln!(
            f,
            "leak in scope `{}`: {} B in {} allocations still live (expected {}; now {} B in {} allocs; waited {:?})",
            self.scope, self.leaked_bytes, self.leaked_allocs, expected, self.final_bytes, self.final_allocs, self.waited
        )?;
        writeln!(
            f,
            "  during the check: {} allocs / {} B allocated, {} frees ({} by another thread or scope)",
            self.during.total_allocs, self.during.total_bytes, self.during.total_frees, self.freed_elsewhere
        )?;
        if let Some(r) = &self.reachability {
            reach::fmt_summary(f, r)?;
        }
        if self.sites.is_empty() {
            writeln!(f, "  no call sites recorded (site recording off, or the leaked blocks predate the check)")?;
        }
        for (i, s) in self.sites.iter().enumerate() {
            write_site(f, "  ", i, s, SHOWN_FRAMES)?;
        }
        if !self.sites_exact && !self.sites.is_empty() {
            writeln!(
                f,
                "  (sites cover {} of the {} leaked bytes)",
                self.sites.iter().map(|s| s.bytes).sum::<u64>(),
                self.leaked_bytes
            )?;
        }
        write_retention(f, &self.allowed, &self.unused_rules)?;
        if self.overlapping_checks > 0 {
            writeln!(
                f,
                "  note: {} other leak check(s) on this scope (or one above or below it) overlapped this one, and each sees the other's blocks: the sites above may be theirs. Check a fresh instance in each test: `assert_scope_drained!(instance of &KIND, ..)`, `LeakCheck::begin(&KIND.instance()?)` or `#[scope_alloc_tracker::test]`",
                self.overlapping_checks
            )?;
        }
        Ok(())
    }
}

/// One site: its figures, origin and the frames from the origin out.
fn write_site(
    f: &mut fmt::Formatter<'_>,
    indent: &str,
    i: usize,
    s: &LeakSite,
    shown: usize,
) -> fmt::Result {
    let beyond = s.beyond_rule.as_ref().map_or(String::new(), |r| {
        format!(" [beyond the bound of rule `{r}`]")
    });
    writeln!(
        f,
        "{indent}#{} {} B in {} allocation(s) (sizes {:?}) in `{}`, allocated from {}{beyond}",
        i + 1,
        s.bytes,
        s.allocs,
        s.example_sizes,
        s.scope,
        s.origin()
            .map_or("an unknown site".to_string(), |o| o.to_string()),
    )?;
    // The stack from the origin outwards; std frames inside it are
    // summarised.
    let start = s.frames.iter().position(|fr| !fr.is_std()).unwrap_or(0);
    if start > 0 {
        writeln!(f, "{indent}    ({start} std frames inside)")?;
    }
    if let Some(r) = &s.reach {
        reach::fmt_site(f, r)?;
    }
    for fr in s.frames.iter().skip(start).take(shown) {
        writeln!(f, "{indent}    {fr}")?;
    }
    let rest = s.frames.len().saturating_sub(start + shown);
    if rest > 0 {
        writeln!(f, "{indent}    ... {rest} more frames")?;
    }
    Ok(())
}

/// How many frames of each allowed site `Display` prints.
const SHOWN_ALLOWED_FRAMES: usize = 3;

/// The allowed retention per rule, then the unused rules (also used by
/// `Drained`'s `Display`).
pub(crate) fn write_retention(
    f: &mut fmt::Formatter<'_>,
    allowed: &[AllowedRetention],
    unused: &[UnusedRule],
) -> fmt::Result {
    for a in allowed {
        writeln!(
            f,
            "  allowed retention (not a leak): {} B in {} allocation(s) by rule `{}` ({}, {:?}, bound {} B){}",
            a.bytes,
            a.allocs,
            a.rule,
            a.pattern,
            a.source,
            a.bound_bytes,
            if a.beyond_bound_allocs > 0 {
                format!(
                    "; {} B in {} allocation(s) beyond the bound are leaks",
                    a.beyond_bound_bytes, a.beyond_bound_allocs
                )
            } else {
                String::new()
            }
        )?;
        for (i, s) in a.sites.iter().enumerate() {
            write_site(f, "    ", i, s, SHOWN_ALLOWED_FRAMES)?;
        }
    }
    for u in unused {
        writeln!(
            f,
            "  unused retention rule `{}` ({}, {:?}, bound {} B) matched nothing: remove it if it is stale",
            u.rule, u.pattern, u.source, u.bound_bytes
        )?;
    }
    Ok(())
}

impl std::error::Error for LeakReport {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.cause {
            LeakCause::NotInstalled => Some(&NotInstalled),
            LeakCause::BadRetainRules => self
                .rule_error
                .as_ref()
                .map(|e| e as &(dyn std::error::Error + 'static)),
            LeakCause::Leaked => None,
        }
    }
}
