//! The only place that talks to the tracker's leak checker.
//!
//! Target API (`alloc_tracker::leak`, being written): `LeakCheck::options(scope)
//! .expect(Expect::Zero | Expect::Baseline).quiescence(d).begin()`, then
//! `check.finish() -> Result<Drained, LeakReport>`. Until it lands this
//! module implements the same contract with counters only: it polls the
//! scope subtree's live bytes for at most the quiescence time, and its
//! [`LeakReport`] has the same fields but no call-stack sites. Switching to
//! the real checker is a change to this file only (re-export its
//! `LeakReport`, `LeakSite`, `Frame`, map `Drained`).

use std::fmt;
use std::time::{Duration, Instant};

use alloc_tracker::ScopeId;

/// What "drained" means for one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Live bytes of the scope subtree back to zero.
    Zero,
    /// Live bytes back to their value when the check began.
    Baseline,
}

/// A check in progress.
#[derive(Debug)]
pub(crate) struct LeakGuard {
    scope: ScopeId,
    expect: Expect,
    quiescence: Duration,
    live_at_begin: u64,
    allocs_at_begin: u64,
    total_at_begin: u64,
}

/// The scope drained.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Drained {
    /// How long the check waited for frees in flight.
    pub(crate) waited: Duration,
    /// Bytes allocated in the scope subtree while the check was active.
    pub(crate) total_bytes: u64,
    /// Peak live bytes of the subtree (lifetime peak in the counter-only
    /// implementation).
    pub(crate) peak_bytes: u64,
}

/// One stack frame of a leak site.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Frame {
    /// Demangled function name.
    pub function: String,
    /// Source file, when known.
    pub file: Option<String>,
    /// Line, when known.
    pub line: Option<u32>,
}

/// Where leaked bytes were allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeakSite {
    /// Leaked bytes from this site.
    pub bytes: u64,
    /// Leaked allocations from this site.
    pub allocs: u64,
    /// The call stack, innermost first.
    pub frames: Vec<Frame>,
}

/// The scope did not drain: what is still live.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeakReport {
    /// Bytes still live (above the expectation).
    pub leaked_bytes: u64,
    /// Allocations still live (above the expectation).
    pub leaked_allocs: u64,
    /// Allocation sites, biggest first (empty without call stacks).
    pub sites: Vec<LeakSite>,
}

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes in {} allocations still live",
            self.leaked_bytes, self.leaked_allocs
        )?;
        if self.sites.is_empty() {
            return write!(f, " (no call stacks recorded)");
        }
        for site in &self.sites {
            write!(
                f,
                "\n  {} bytes in {} allocations at",
                site.bytes, site.allocs
            )?;
            for frame in &site.frames {
                write!(f, "\n    {}", frame.function)?;
                if let (Some(file), Some(line)) = (&frame.file, frame.line) {
                    write!(f, " ({file}:{line})")?;
                }
            }
        }
        Ok(())
    }
}

impl std::error::Error for LeakReport {}

/// Starts a check of `scope` (and its children).
pub(crate) fn begin(scope: ScopeId, expect: Expect, quiescence: Duration) -> LeakGuard {
    let s = scope.stats_with_children();
    LeakGuard {
        scope,
        expect,
        quiescence,
        live_at_begin: s.live_bytes,
        allocs_at_begin: s.live_allocs,
        total_at_begin: s.total_bytes,
    }
}

/// The live bytes of `scope` and its children.
pub(crate) fn live_bytes(scope: ScopeId) -> u64 {
    scope.stats_with_children().live_bytes
}

impl LeakGuard {
    /// Waits (bounded) for the scope to drain.
    ///
    /// # Errors
    /// The [`LeakReport`] when it did not drain within the quiescence time.
    pub(crate) fn finish(self) -> Result<Drained, LeakReport> {
        let start = Instant::now();
        let (target_bytes, target_allocs) = match self.expect {
            Expect::Zero => (0, 0),
            Expect::Baseline => (self.live_at_begin, self.allocs_at_begin),
        };
        loop {
            let s = self.scope.stats_with_children();
            if s.live_bytes <= target_bytes {
                return Ok(Drained {
                    waited: start.elapsed(),
                    total_bytes: s.total_bytes - self.total_at_begin,
                    peak_bytes: s.peak_bytes,
                });
            }
            if start.elapsed() >= self.quiescence {
                return Err(LeakReport {
                    leaked_bytes: s.live_bytes - target_bytes,
                    leaked_allocs: s.live_allocs.saturating_sub(target_allocs),
                    sites: Vec::new(),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
