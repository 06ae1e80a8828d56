//! Comparing two reports: what grew and what shrank.

use std::collections::BTreeMap;
use std::fmt;

use super::model::{Report, SiteReport, SiteSource};
use super::text::{human_bytes, signed_bytes};
use crate::hot::thread_state;
use crate::sampling::Frame;
use crate::stats::ScopeStats;

/// How one scope changed between two reports (own figures, children not
/// included). Scopes are matched by path; several scopes with one path are
/// summed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ScopeDelta {
    /// The scope's path.
    pub path: String,
    /// Live bytes in the earlier report (0 if the scope was not there).
    pub before_live_bytes: u64,
    /// Live bytes in the later report (0 if the scope was not there).
    pub after_live_bytes: u64,
    /// `after_live_bytes - before_live_bytes`.
    pub live_bytes: i64,
    /// Change of live allocations.
    pub live_allocs: i64,
    /// Bytes allocated between the two reports (growth of `total_bytes`).
    pub allocated_bytes: u64,
    /// Allocations made between the two reports.
    pub allocations: u64,
    /// Frees between the two reports.
    pub frees: u64,
}

/// How one call site changed between two reports. Sites are matched by
/// scope path, source and function names.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct SiteDelta {
    /// Path of the scope of the site.
    pub scope: String,
    /// Sampled estimate or exact record.
    pub source: SiteSource,
    /// The call stack, innermost frame first (from the later report if the
    /// site is in both).
    pub frames: Vec<Frame>,
    /// Bytes in the earlier report.
    pub before_bytes: u64,
    /// Bytes in the later report.
    pub after_bytes: u64,
    /// `after_bytes - before_bytes`.
    pub bytes: i64,
    /// Change of the allocation (or sample) count.
    pub allocs: i64,
}

impl SiteDelta {
    /// The innermost frame that is program code, or the innermost frame.
    pub fn origin(&self) -> Option<&Frame> {
        crate::sampling::origin(&self.frames)
    }
}

/// The difference between two reports ([`Report::diff`]). `Display` lists
/// what grew, then what shrank.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ReportDiff {
    /// Milliseconds between the two reports (negative if "before" is
    /// younger).
    pub elapsed_ms: i64,
    /// Change of all tracked live bytes.
    pub tracked_live_bytes: i64,
    /// Change of the tracker's own live bytes.
    pub overhead_live_bytes: i64,
    /// Change of jemalloc's untracked bytes, if both reports have them.
    pub untracked_bytes: Option<i64>,
    /// Scopes whose live figures changed or that allocated in between,
    /// largest growth first, largest shrink last.
    pub scopes: Vec<ScopeDelta>,
    /// Sites whose bytes changed, largest growth first, largest shrink
    /// last.
    pub sites: Vec<SiteDelta>,
}

impl ReportDiff {
    /// Scopes whose live bytes grew, largest growth first.
    pub fn grew(&self) -> impl Iterator<Item = &ScopeDelta> {
        self.scopes.iter().filter(|s| s.live_bytes > 0)
    }

    /// Scopes whose live bytes shrank, largest shrink first.
    pub fn shrank(&self) -> impl Iterator<Item = &ScopeDelta> {
        self.scopes.iter().rev().filter(|s| s.live_bytes < 0)
    }

    /// Sites whose bytes grew, largest growth first.
    pub fn sites_grew(&self) -> impl Iterator<Item = &SiteDelta> {
        self.sites.iter().filter(|s| s.bytes > 0)
    }

    /// Sites whose bytes shrank, largest shrink first.
    pub fn sites_shrank(&self) -> impl Iterator<Item = &SiteDelta> {
        self.sites.iter().rev().filter(|s| s.bytes < 0)
    }

    /// The delta of the scope with this path, if it changed.
    pub fn scope(&self, path: &str) -> Option<&ScopeDelta> {
        self.scopes.iter().find(|s| s.path == path)
    }
}

fn delta(after: u64, before: u64) -> i64 {
    after as i64 - before as i64
}

fn sum_by_path(r: &Report) -> BTreeMap<&str, ScopeStats> {
    let mut m: BTreeMap<&str, Vec<ScopeStats>> = BTreeMap::new();
    for s in &r.scopes {
        m.entry(s.path.as_str()).or_default().push(s.own);
    }
    m.into_iter()
        .map(|(k, v)| (k, ScopeStats::sum(v.into_iter())))
        .collect()
}

type SiteKey<'a> = (&'a str, SiteSource, Vec<&'a str>);

fn sites_by_key(r: &Report) -> BTreeMap<SiteKey<'_>, (u64, u64, &SiteReport)> {
    let mut m: BTreeMap<SiteKey<'_>, (u64, u64, &SiteReport)> = BTreeMap::new();
    for s in &r.sites {
        let key = (
            s.scope.as_str(),
            s.source,
            s.frames.iter().map(|f| f.function.as_str()).collect(),
        );
        let e = m.entry(key).or_insert((0, 0, s));
        e.0 += s.bytes;
        e.1 += s.allocs;
    }
    m
}

impl Report {
    /// What changed from `before` to `self`: per scope (matched by path)
    /// and per site (matched by scope, source and function names).
    ///
    /// Scopes appear when their live bytes or allocations changed or they
    /// allocated in between; sites when their bytes or counts changed.
    pub fn diff(&self, before: &Report) -> ReportDiff {
        thread_state::internal(|| {
            let a = sum_by_path(before);
            let b = sum_by_path(self);
            let mut paths: Vec<&str> = a.keys().chain(b.keys()).copied().collect();
            paths.sort_unstable();
            paths.dedup();
            let mut scopes: Vec<ScopeDelta> = paths
                .into_iter()
                .map(|p| {
                    let x = a.get(p).copied().unwrap_or_default();
                    let y = b.get(p).copied().unwrap_or_default();
                    ScopeDelta {
                        path: p.to_string(),
                        before_live_bytes: x.live_bytes,
                        after_live_bytes: y.live_bytes,
                        live_bytes: delta(y.live_bytes, x.live_bytes),
                        live_allocs: delta(y.live_allocs, x.live_allocs),
                        allocated_bytes: y.total_bytes.saturating_sub(x.total_bytes),
                        allocations: y.total_allocs.saturating_sub(x.total_allocs),
                        frees: y.total_frees.saturating_sub(x.total_frees),
                    }
                })
                .filter(|d| d.live_bytes != 0 || d.live_allocs != 0 || d.allocations != 0)
                .collect();
            scopes.sort_by(|x, y| y.live_bytes.cmp(&x.live_bytes).then(x.path.cmp(&y.path)));

            let sa = sites_by_key(before);
            let sb = sites_by_key(self);
            let mut keys: Vec<&SiteKey<'_>> = sa.keys().chain(sb.keys()).collect();
            keys.sort_unstable();
            keys.dedup();
            let mut sites: Vec<SiteDelta> = keys
                .into_iter()
                .filter_map(|k| {
                    let x = sa.get(k);
                    let y = sb.get(k);
                    let site = y.or(x)?.2;
                    let (xb, xa) = x.map_or((0, 0), |v| (v.0, v.1));
                    let (yb, ya) = y.map_or((0, 0), |v| (v.0, v.1));
                    (xb != yb || xa != ya).then(|| SiteDelta {
                        scope: site.scope.clone(),
                        source: site.source,
                        frames: site.frames.clone(),
                        before_bytes: xb,
                        after_bytes: yb,
                        bytes: delta(yb, xb),
                        allocs: delta(ya, xa),
                    })
                })
                .collect();
            sites.sort_by(|x, y| y.bytes.cmp(&x.bytes).then(x.scope.cmp(&y.scope)));

            ReportDiff {
                elapsed_ms: delta(self.timestamp_unix_ms, before.timestamp_unix_ms),
                tracked_live_bytes: delta(self.tracked.live_bytes, before.tracked.live_bytes),
                overhead_live_bytes: delta(self.overhead.live_bytes, before.overhead.live_bytes),
                untracked_bytes: match (&self.jemalloc, &before.jemalloc) {
                    (Some(y), Some(x)) => Some(y.untracked_bytes - x.untracked_bytes),
                    _ => None,
                },
                scopes,
                sites,
            }
        })
    }
}

impl fmt::Display for ReportDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        thread_state::internal(|| {
            writeln!(
                f,
                "report diff over {} ms: tracked live {}, tracker overhead {}{}",
                self.elapsed_ms,
                signed_bytes(self.tracked_live_bytes),
                signed_bytes(self.overhead_live_bytes),
                match self.untracked_bytes {
                    Some(u) => format!(", untracked {}", signed_bytes(u)),
                    None => String::new(),
                }
            )?;
            let scope_line = |f: &mut fmt::Formatter<'_>, d: &ScopeDelta| {
                writeln!(
                    f,
                    "  {:>12}  {:<30} {} -> {} live, {:+} allocs; {} in {} allocations, {} frees in between",
                    signed_bytes(d.live_bytes),
                    d.path,
                    human_bytes(d.before_live_bytes),
                    human_bytes(d.after_live_bytes),
                    d.live_allocs,
                    human_bytes(d.allocated_bytes),
                    d.allocations,
                    d.frees
                )
            };
            let site_line = |f: &mut fmt::Formatter<'_>, d: &SiteDelta| {
                let kind = match d.source {
                    SiteSource::Sampled => "sampled",
                    SiteSource::Recorded => "leaked",
                };
                writeln!(
                    f,
                    "  {:>12}  {kind} in `{}` at {} ({} -> {})",
                    signed_bytes(d.bytes),
                    d.scope,
                    d.origin()
                        .map_or_else(|| "an unknown site".to_string(), |o| o.function.clone()),
                    human_bytes(d.before_bytes),
                    human_bytes(d.after_bytes),
                )
            };
            let grew: Vec<_> = self.grew().collect();
            let shrank: Vec<_> = self.shrank().collect();
            if grew.is_empty() && shrank.is_empty() {
                writeln!(f, "no scope's live bytes changed")?;
            }
            if !grew.is_empty() {
                writeln!(f, "grew:")?;
                for d in grew {
                    scope_line(f, d)?;
                }
            }
            if !shrank.is_empty() {
                writeln!(f, "shrank:")?;
                for d in shrank {
                    scope_line(f, d)?;
                }
            }
            let unchanged: Vec<_> = self.scopes.iter().filter(|s| s.live_bytes == 0).collect();
            if !unchanged.is_empty() {
                writeln!(f, "allocated and freed again (live bytes unchanged):")?;
                for d in unchanged {
                    scope_line(f, d)?;
                }
            }
            let sg: Vec<_> = self.sites_grew().collect();
            let ss: Vec<_> = self.sites_shrank().collect();
            if !sg.is_empty() {
                writeln!(f, "sites that grew:")?;
                for d in sg {
                    site_line(f, d)?;
                }
            }
            if !ss.is_empty() {
                writeln!(f, "sites that shrank:")?;
                for d in ss {
                    site_line(f, d)?;
                }
            }
            Ok(())
        })
    }
}
