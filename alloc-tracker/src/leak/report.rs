//! `LeakReport`: what a failed check found, grouped by call site.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use super::check::Expect;
use crate::error::NotInstalled;
use crate::sampling::{self, Frame, StackId};
use crate::scope::ScopeId;
use crate::stats::ScopeStats;
use crate::thread_state;

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
    /// Frees of the scope's allocations during the check made by another
    /// thread or while another scope was current (not a leak; context).
    pub freed_elsewhere: u64,
    /// How long the check waited for the scope to drain.
    pub waited: Duration,
    /// How long the check was active.
    pub active_for: Duration,
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
        first_seq: u64,
        members: &[ScopeId],
        freed_elsewhere: u64,
        waited: Duration,
        active_for: Duration,
    ) -> LeakReport {
        thread_state::internal(|| {
            let mut groups: HashMap<(ScopeId, StackId), (u64, u64, Vec<usize>)> = HashMap::new();
            if with_sites {
                sampling::for_each_record(|_, r| {
                    if r.exact && r.seq >= first_seq && members.contains(&r.scope) {
                        let g = groups.entry((r.scope, r.stack)).or_default();
                        g.0 += r.size as u64;
                        g.1 += 1;
                        g.2.push(r.size);
                    }
                });
            }
            let sites: Vec<LeakSite> = groups
                .into_iter()
                .map(|((scope, stack), (bytes, allocs, mut sizes))| {
                    sizes.sort_unstable_by(|a, b| b.cmp(a));
                    sizes.dedup();
                    sizes.truncate(3);
                    LeakSite {
                        bytes,
                        allocs,
                        example_sizes: sizes,
                        scope: scope.path(),
                        frames: sampling::resolve(stack),
                    }
                })
                .collect();
            // Different return addresses (unrolled loops, inlined copies)
            // can resolve to the same source stack: merge those.
            let mut merged: Vec<LeakSite> = Vec::with_capacity(sites.len());
            for site in sites {
                match merged
                    .iter_mut()
                    .find(|m| m.scope == site.scope && m.frames == site.frames)
                {
                    Some(m) => {
                        m.bytes += site.bytes;
                        m.allocs += site.allocs;
                        m.example_sizes.extend(site.example_sizes);
                        m.example_sizes.sort_unstable_by(|a, b| b.cmp(a));
                        m.example_sizes.dedup();
                        m.example_sizes.truncate(3);
                    }
                    None => merged.push(site),
                }
            }
            let mut sites = merged;
            sites.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.allocs.cmp(&a.allocs)));
            sampling::release_symbol_cache();
            let recorded: u64 = sites.iter().map(|s| s.bytes).sum();
            LeakReport {
                cause: LeakCause::Leaked,
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
                sites,
                freed_elsewhere,
                waited,
                active_for,
            }
        })
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
            freed_elsewhere: 0,
            waited: Duration::ZERO,
            active_for,
        }
    }

    /// Whether any site's stack names a function containing `name`.
    pub fn mentions_function(&self, name: &str) -> bool {
        self.sites
            .iter()
            .any(|s| s.frames.iter().any(|f| f.function.contains(name)))
    }
}

/// How many frames of each site `Display` prints.
const SHOWN_FRAMES: usize = 8;

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.cause == LeakCause::NotInstalled {
            return writeln!(
                f,
                "leak check on scope `{}` cannot run: {NotInstalled}",
                self.scope
            );
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
        if self.sites.is_empty() {
            writeln!(f, "  no call sites recorded (site recording off, or the leaked blocks predate the check)")?;
        }
        for (i, s) in self.sites.iter().enumerate() {
            writeln!(
                f,
                "  #{} {} B in {} allocation(s) (sizes {:?}) in `{}`, allocated from {}",
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
                writeln!(f, "      ({start} std frames inside)")?;
            }
            for fr in s.frames.iter().skip(start).take(SHOWN_FRAMES) {
                writeln!(f, "      {fr}")?;
            }
            let rest = s.frames.len().saturating_sub(start + SHOWN_FRAMES);
            if rest > 0 {
                writeln!(f, "      ... {rest} more frames")?;
            }
        }
        if !self.sites_exact && !self.sites.is_empty() {
            writeln!(
                f,
                "  (sites cover {} of the {} leaked bytes)",
                self.sites.iter().map(|s| s.bytes).sum::<u64>(),
                self.leaked_bytes
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for LeakReport {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.cause {
            LeakCause::NotInstalled => Some(&NotInstalled),
            LeakCause::Leaked => None,
        }
    }
}
