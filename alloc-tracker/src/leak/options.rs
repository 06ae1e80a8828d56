//! `LeakCheckOptions`: what "drained" means for a check, whether it records
//! sites, how long it waits (and whether it may stop waiting early), which
//! retention it allows and whether it scans for reachability.

use std::time::Duration;

use super::reach::Reachability;
use super::retain::{Defaults, Retain};
use crate::scope::ScopeId;

/// What "drained" means for a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Expect {
    /// Live bytes and allocations of the scope (with its children) return
    /// to what they were when the check began.
    #[default]
    Baseline,
    /// Live bytes and allocations of the scope (with its children) return
    /// to zero.
    Zero,
}

/// Whether a check records each allocation of its scope with a call stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Sites {
    /// Record every allocation made in the scope during the check, so a
    /// failure names the call sites (slower: a stack walk per allocation).
    #[default]
    Record,
    /// Count only; a failure reports figures without sites.
    Off,
}

/// Whether a failing check may end its quiescence wait before the deadline
/// (see [`LeakCheckOptions::quiescence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum QuiescenceEnd {
    /// End the wait as soon as waiting cannot change the verdict: when a
    /// reachability scan, made once after [`EARLY_SCAN_AFTER`] of waiting,
    /// finds every retained block of the excess unreachable (nothing holds
    /// its address, so no thread can free it), with every other thread
    /// stopped for the scan. Only for checks that record sites
    /// ([`Sites::Record`]) and scan
    /// ([`Reachability`] not `Off`); other checks wait the whole time.
    #[default]
    WhenLost,
    /// Always wait the whole quiescence time before declaring a leak (the
    /// report's scan, if any, is made after it).
    Full,
}

/// How long a failing check waits before the one reachability scan that may
/// end its wait early ([`QuiescenceEnd::WhenLost`]): late frees of a tokio
/// worker or a thread pool usually come sooner, so a check they drain
/// passes without scanning. A check whose quiescence time is under five
/// times this (100 ms) never scans early: the scan would save it little.
pub const EARLY_SCAN_AFTER: Duration = Duration::from_millis(20);

/// How a [`LeakCheck`](super::LeakCheck) judges its scope. Made by
/// [`LeakCheck::options`](super::LeakCheck::options); started by
/// [`begin`](Self::begin).
#[derive(Debug, Clone)]
#[must_use = "call .begin() to start the check"]
pub struct LeakCheckOptions {
    pub(super) scope: ScopeId,
    pub(super) expect: Expect,
    pub(super) sites: Sites,
    pub(super) quiescence: Duration,
    pub(super) quiescence_end: QuiescenceEnd,
    pub(super) tolerance_bytes: u64,
    pub(super) rules: Vec<Retain>,
    pub(super) defaults: Defaults,
    pub(super) defaults_off: Vec<String>,
    pub(super) reachability: Reachability,
}

impl LeakCheckOptions {
    /// What drained means (default [`Expect::Baseline`]).
    pub fn expect(mut self, expect: Expect) -> Self {
        self.expect = expect;
        self
    }

    /// Whether to record call sites (default [`Sites::Record`]).
    pub fn sites(mut self, sites: Sites) -> Self {
        self.sites = sites;
        self
    }

    /// How long [`LeakCheck::finish`](super::LeakCheck::finish) may wait for work handed to other
    /// threads to free its memory, polling, before it declares a leak
    /// (default [`DEFAULT_QUIESCENCE`], 1 s; `Duration::ZERO` for none). A
    /// check that drains returns as soon as it does; the report gives the
    /// time waited (`waited`).
    ///
    /// A failing check ends the wait early when waiting cannot change its
    /// verdict ([`QuiescenceEnd::WhenLost`], the default): if the scope
    /// still holds more than allowed after [`EARLY_SCAN_AFTER`], a
    /// reachability scan (once, with the other threads stopped) looks for
    /// pointers to the retained blocks; when every block of the excess is
    /// unreachable and every other thread was stopped for the scan, nothing
    /// can free those blocks any more, and the check fails at once with
    /// that scan's verdicts (`waited` is then far below this time). When
    /// some block is still held, was allocated since, or has no record (a
    /// check without sites, or bytes that predate the check), or when the
    /// unreachable blocks alone would not make the check fail, it waits the
    /// whole time as before. Checks that do not record sites or that do not
    /// scan ([`Reachability::Off`]; [`Reachability::ScanWhileRunning`] in
    /// a process with other threads) always wait the whole time.
    ///
    /// The limit: the scan is conservative and cannot see a pointer the
    /// program hides: XOR-ed or otherwise encoded, tagged in high bits,
    /// kept only past the block's end (a one-past-the-end pointer without
    /// the start), or kept only in memory the scan does not read (shared
    /// mappings, swapped-out pages); see `docs/reachability.md`. A block
    /// held that way looks unreachable; if another thread then frees it
    /// within the quiescence time, the full wait would have passed and the
    /// early end fails the check. A program that hides pointers to blocks
    /// another thread frees late should ask for the whole wait with
    /// [`quiescence_end(QuiescenceEnd::Full)`](Self::quiescence_end).
    pub fn quiescence(mut self, wait: Duration) -> Self {
        self.quiescence = wait;
        self
    }

    /// Whether a failing check may end its quiescence wait early when its
    /// excess is unreachable (default [`QuiescenceEnd::WhenLost`]), or
    /// always waits the whole time ([`QuiescenceEnd::Full`]). See
    /// [`quiescence`](Self::quiescence).
    pub fn quiescence_end(mut self, end: QuiescenceEnd) -> Self {
        self.quiescence_end = end;
        self
    }

    /// Bytes that may stay live on purpose (a cache warmed once). They are
    /// still listed in the report's `retained_*` figures, never hidden.
    pub fn tolerance_bytes(mut self, bytes: u64) -> Self {
        self.tolerance_bytes = bytes;
        self
    }

    /// Declares a retention: blocks the rule matches may stay live after
    /// the check, up to its bound; beyond it they are leaks. Several rules
    /// may be given; a block goes to the first that matches it, rules from
    /// code first, then those of `ALLOC_TRACKER_RETAIN`, of the file named
    /// by `ALLOC_TRACKER_RETAIN_FILE`, and the [`default_rules`](super::default_rules).
    /// See [`Retain`].
    pub fn retain(mut self, rule: Retain) -> Self {
        self.rules.push(rule);
        self
    }

    /// Whether the [`default_rules`](super::default_rules) apply (default
    /// [`Defaults::On`]).
    pub fn default_rules(mut self, defaults: Defaults) -> Self {
        self.defaults = defaults;
        self
    }

    /// Turns one default rule off by name (see
    /// [`DEFAULT_NAMES`](super::DEFAULT_NAMES)).
    pub fn without_default(mut self, name: impl Into<String>) -> Self {
        self.defaults_off.push(name.into());
        self
    }

    /// Whether a failed check that records sites scans the process's
    /// memory to split the retained blocks into unreachable (definitely
    /// lost) and reachable, with what holds them (default
    /// [`Reachability::Scan`]; see `docs/reachability.md`). A check that
    /// drains within [`EARLY_SCAN_AFTER`] never scans; one still holding
    /// more than allowed then scans once to learn whether it may end its
    /// wait early (see [`quiescence`](Self::quiescence)), and may still
    /// drain afterwards and pass.
    ///
    /// ```
    /// # #[global_allocator]
    /// # static A: scope_alloc_tracker::TrackingAlloc<scope_alloc_tracker::Jemalloc> =
    /// #     scope_alloc_tracker::TrackingAlloc::new(scope_alloc_tracker::Jemalloc);
    /// use scope_alloc_tracker::leak::{LeakCheck, Reachability};
    /// let scope = scope_alloc_tracker::ScopeId::register("doc-reach", None).unwrap();
    /// let check = LeakCheck::options(scope).reachability(Reachability::Off).begin();
    /// let kept = scope.in_scope(|| vec![0u8; 64]);
    /// let report = check.finish().unwrap_err();
    /// assert!(report.reachability.is_none());
    /// # drop(kept);
    /// ```
    pub fn reachability(mut self, reachability: Reachability) -> Self {
        self.reachability = reachability;
        self
    }
}

/// How long a check waits by default for the scope to drain before it declares
/// a leak: late frees of work handed to other threads. A tokio worker frees a
/// finished task's cell a little after the task's output was delivered; a
/// thread pool drops a job's closure after the job signalled; on a loaded
/// machine that can take tens of milliseconds. The default applies to every
/// check, sync or async (late frees are not an async matter: any work handed to
/// another thread can free late); a check that drains returns at once, and a
/// failing check whose excess a reachability scan finds unreachable ends the
/// wait after [`EARLY_SCAN_AFTER`] and the scan ([`QuiescenceEnd::WhenLost`]),
/// so only failing checks whose excess is still held, or that cannot scan,
/// pay it whole. Set another with [`LeakCheckOptions::quiescence`].
pub const DEFAULT_QUIESCENCE: Duration = Duration::from_secs(1);
