//! The only place that talks to the tracker's leak checker
//! (`scope_alloc_tracker::leak`).
//!
//! A check begins before a run takes its first allocation and finishes after
//! the run dropped everything it held; it covers the database's own
//! `checkpoint#n` scope and the scopes below it, waits (bounded) for frees
//! made by helper threads, and records a call stack for each allocation
//! made in the scope while it is active (unless the options turn site
//! recording off), so a failure names the function that kept the bytes.
//!
//! A check can see nothing when the tracker is not the global allocator:
//! [`tracker_installed`] tells `Db::open`, which refuses to open in strict
//! mode and says so once in production mode.

use std::time::Duration;

pub(crate) use scope_alloc_tracker::leak::LeakCause;
use scope_alloc_tracker::leak::{LeakCheck, Sites};
pub use scope_alloc_tracker::leak::{LeakReport, LeakSite};
pub use scope_alloc_tracker::Frame;
use scope_alloc_tracker::ScopeId;

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
pub(crate) struct LeakGuard(LeakCheck);

/// The scope drained.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Drained {
    /// How long the check waited for frees in flight.
    pub(crate) waited: Duration,
    /// Bytes allocated in the scope subtree while the check was active.
    pub(crate) total_bytes: u64,
    /// Peak live bytes of the subtree (not reset between runs).
    pub(crate) peak_bytes: u64,
}

/// Starts a check of `scope` (and its children); `record_sites` makes it
/// capture a call stack per allocation of the scope while it runs.
pub(crate) fn begin(
    scope: ScopeId,
    expect: Expect,
    quiescence: Duration,
    record_sites: bool,
) -> LeakGuard {
    let expect = match expect {
        Expect::Zero => scope_alloc_tracker::leak::Expect::Zero,
        Expect::Baseline => scope_alloc_tracker::leak::Expect::Baseline,
    };
    LeakGuard(
        LeakCheck::options(scope)
            .expect(expect)
            .sites(if record_sites {
                Sites::Record
            } else {
                Sites::Off
            })
            .quiescence(quiescence)
            .begin(),
    )
}

/// Whether `TrackingAlloc` is this program's global allocator (without
/// it, every check fails with [`LeakCause::NotInstalled`]).
///
/// # Errors
/// [`NotInstalled`](scope_alloc_tracker::NotInstalled), whose message names the
/// missing `#[global_allocator]` line.
pub(crate) fn tracker_installed() -> Result<(), scope_alloc_tracker::NotInstalled> {
    scope_alloc_tracker::ensure_installed()
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
    pub(crate) fn finish(self) -> Result<Drained, Box<LeakReport>> {
        match self.0.finish() {
            Ok(d) => Ok(Drained {
                waited: d.waited,
                total_bytes: d.during.total_bytes,
                peak_bytes: d.during.peak_bytes,
            }),
            // The report outlives the run: it belongs with the errors.
            Err(report) => Err(crate::scopes::within(&crate::scopes::ERRORS, || {
                Box::new(report)
            })),
        }
    }
}
