//! `LeakCheckOptions`: what "drained" means for a check, whether it records
//! sites, how long it waits, which retention it allows and whether it scans
//! for reachability.

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
    /// check that drains returns as soon as it does, so only a failing
    /// check pays the whole wait; the report gives the time waited
    /// (`waited`).
    pub fn quiescence(mut self, wait: Duration) -> Self {
        self.quiescence = wait;
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
    /// [`Reachability::Scan`]; see `docs/reachability.md`). A passing check
    /// never scans.
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
/// another thread can free late); a check that drains returns at once, so only
/// failing checks pay it. Set another with [`LeakCheckOptions::quiescence`].
pub const DEFAULT_QUIESCENCE: Duration = Duration::from_secs(1);
