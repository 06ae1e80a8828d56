//! The human table: scopes as an indented tree sorted by live bytes, the
//! budgets (when any is set), the top sites, then jemalloc's figures.

use std::fmt::{self, Write as _};

use super::model::{BudgetReport, Report, SiteSource, UntrackedBasis};

/// How many sites the table lists.
const TOP_SITES: usize = 10;
/// How many frames of a site's stack are shown under it.
const SITE_FRAMES: usize = 4;

/// `1536` → `"1.5 KiB"`: bytes below 1 KiB exactly, larger sizes with one
/// decimal in KiB, MiB or GiB (the unit of every size in the text report).
///
/// ```
/// assert_eq!(scope_alloc_tracker::report::human_bytes(1536), "1.5 KiB");
/// assert_eq!(scope_alloc_tracker::report::human_bytes(512), "512 B");
/// ```
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// [`bytes`] with a sign: `+1.5 KiB`, `-12 B`, `0 B`.
pub(crate) fn signed_bytes(n: i64) -> String {
    match n {
        0 => "0 B".to_string(),
        n if n > 0 => format!("+{}", human_bytes(n as u64)),
        n => format!("-{}", human_bytes(n.unsigned_abs())),
    }
}

impl Report {
    /// Renders the human table into a `String`; the same text as
    /// `Display`.
    pub fn to_text(&self) -> String {
        crate::hot::thread_state::internal(|| self.to_string())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::hot::thread_state::internal(|| render(self, f))
    }
}

fn render(r: &Report, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(
        f,
        "allocation report: pid {}, taken at {} ms after the Unix epoch",
        r.pid, r.timestamp_unix_ms
    )?;
    writeln!(
        f,
        "tracked: {} live in {} allocations, peak {}, {} allocated in total; tracker overhead {} live",
        human_bytes(r.tracked.live_bytes),
        r.tracked.live_allocs,
        human_bytes(r.tracked.peak_bytes),
        human_bytes(r.tracked.total_bytes),
        human_bytes(r.overhead_live_bytes()),
    )?;
    writeln!(f)?;

    // The scope table. Scopes that never allocated (with their children)
    // are left out. A scope's own row is followed by a row for its
    // recycled instances, then its children: the rows under a scope add up
    // to its figures with children.
    let header = [
        "scope",
        "live",
        "live allocs",
        "incl. children",
        "peak",
        "peak incl. children",
        "allocated",
        "allocs",
    ];
    let mut rows: Vec<[String; 8]> = Vec::new();
    let mut hidden = 0;
    let indent = |depth: usize| "  ".repeat(depth);
    for (depth, s) in r.tree() {
        if s.with_children.total_allocs == 0 && s.with_children.live_bytes == 0 {
            hidden += 1;
            continue;
        }
        rows.push([
            format!("{}{}", indent(depth), s.name),
            human_bytes(s.own.live_bytes),
            s.own.live_allocs.to_string(),
            human_bytes(s.with_children.live_bytes),
            human_bytes(s.own.peak_bytes),
            human_bytes(s.with_children.peak_bytes),
            human_bytes(s.own.total_bytes),
            s.own.total_allocs.to_string(),
        ]);
        if s.recycled_count > 0 {
            rows.push([
                format!(
                    "{}({} recycled instances)",
                    indent(depth + 1),
                    s.recycled_count
                ),
                human_bytes(0),
                "0".to_string(),
                human_bytes(0),
                format!("max {}", human_bytes(s.recycled.peak_bytes)),
                String::new(),
                human_bytes(s.recycled.total_bytes),
                s.recycled.total_allocs.to_string(),
            ]);
        }
    }
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |f: &mut fmt::Formatter<'_>, cells: &[&str]| -> fmt::Result {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 0 {
                let _ = write!(out, "{cell:<w$}");
            } else {
                let _ = write!(out, "  {cell:>w$}");
            }
        }
        writeln!(f, "{}", out.trim_end())
    };
    line(f, &header)?;
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(f, &rule.iter().map(String::as_str).collect::<Vec<_>>())?;
    for row in &rows {
        line(f, &row.iter().map(String::as_str).collect::<Vec<_>>())?;
    }
    if hidden > 0 {
        writeln!(f, "({hidden} scopes without allocations not shown)")?;
    }
    render_budgets(&r.budgets, f)?;

    // Top sites.
    writeln!(f)?;
    if r.sites.is_empty() {
        writeln!(
            f,
            "no call sites: sampling is off (scope_alloc_tracker::sampling::set_sampling) and no leak report was added"
        )?;
    } else {
        let mut sites: Vec<_> = r.sites.iter().collect();
        sites.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.source.cmp(&b.source)));
        writeln!(
            f,
            "top sites ({} of {}; sampled bytes are estimates):",
            sites.len().min(TOP_SITES),
            sites.len()
        )?;
        let width = sites
            .iter()
            .take(TOP_SITES)
            .map(|s| human_bytes(s.bytes).len())
            .max()
            .unwrap_or(0);
        for (i, s) in sites.iter().take(TOP_SITES).enumerate() {
            let kind = match s.source {
                SiteSource::Sampled => "sampled",
                SiteSource::Recorded => "leaked",
            };
            let origin = s
                .origin()
                .map_or_else(|| "an unknown site".to_string(), |o| o.to_string());
            writeln!(
                f,
                "#{:<2} {:>width$}  {kind} in `{}` ({} allocs) at {origin}",
                i + 1,
                human_bytes(s.bytes),
                s.scope,
                s.allocs,
            )?;
            if let Some(r) = &s.reach {
                write!(
                    f,
                    "      unreachable {} in {}, reachable {} in {}",
                    human_bytes(r.unreachable_bytes),
                    r.unreachable_allocs,
                    human_bytes(r.reachable_bytes),
                    r.reachable_allocs
                )?;
                match r.holders.first() {
                    Some(h) => writeln!(f, "; held by {}", h.holder)?,
                    None => writeln!(f)?,
                }
            }
            let start = s.frames.iter().position(|fr| !fr.is_std()).unwrap_or(0);
            for fr in s.frames.iter().skip(start + 1).take(SITE_FRAMES) {
                writeln!(f, "      {}", fr.function)?;
            }
        }
    }

    // jemalloc.
    writeln!(f)?;
    match &r.jemalloc {
        None => writeln!(f, "jemalloc: figures not available")?,
        Some(j) => {
            writeln!(f, "jemalloc (process-wide):")?;
            let figs = [
                ("allocated", j.allocated),
                ("active", j.active),
                ("resident", j.resident),
                ("mapped", j.mapped),
                ("retained", j.retained),
                ("metadata", j.metadata),
            ];
            let w = figs
                .iter()
                .map(|(_, v)| human_bytes(*v).len())
                .max()
                .unwrap_or(0);
            for (name, v) in figs {
                writeln!(f, "  {name:<10} {:>w$}", human_bytes(v))?;
            }
            let basis = match j.untracked_basis {
                UntrackedBasis::UsableBytes => "allocated minus tracked live usable bytes",
                UntrackedBasis::RequestedBytes => {
                    "allocated minus tracked live requested bytes; usable sizes not counted, so size-class rounding is included"
                }
            };
            writeln!(
                f,
                "  {:<10} {:>w$}  ({basis}: in no live tracked block)",
                "not live",
                signed_bytes(j.untracked_bytes)
            )?;
            writeln!(
                f,
                "    {:<8} {:>w$}  (free blocks held in thread caches for reuse, the tracker's per-(thread, scope) tcaches included)",
                "cached",
                human_bytes(j.cached_bytes)
            )?;
            writeln!(
                f,
                "    {:<8} {:>w$}  (live blocks the tracker did not count: made before it was installed, or by C code calling jemalloc)",
                "untracked",
                signed_bytes(j.untracked_live_bytes())
            )?;
        }
    }
    Ok(())
}

/// The budgets section: one line per budgeted scope; nothing without
/// budgets.
fn render_budgets(budgets: &[BudgetReport], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if budgets.is_empty() {
        return Ok(());
    }
    writeln!(f)?;
    writeln!(f, "budgets ({}):", budgets.len())?;
    let width = budgets
        .iter()
        .map(|b| b.scope.chars().count())
        .max()
        .unwrap_or(0);
    for report in budgets {
        let b = &report.status;
        let mut line = format!(
            "  {:<width$}  {} live, soft limit {}",
            report.scope,
            human_bytes(b.live_bytes),
            human_bytes(b.soft_bytes),
        );
        if let Some(hard) = b.hard_bytes {
            let _ = write!(line, ", hard limit {}", human_bytes(hard));
        }
        let _ = write!(
            line,
            ": {}, {} crossing{}",
            if b.over { "OVER" } else { "within" },
            b.crossings,
            if b.crossings == 1 { "" } else { "s" }
        );
        if b.hard_bytes.is_some() || b.refused > 0 {
            let _ = write!(line, ", {} refused", b.refused);
        }
        writeln!(f, "{line}")?;
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
        assert_eq!(human_bytes(5 << 40), "5120.0 GiB");
        assert_eq!(signed_bytes(-2048), "-2.0 KiB");
        assert_eq!(signed_bytes(7), "+7 B");
    }

    /// Sets a budget on `scope`, crosses it three times (ending over it),
    /// takes a report and clears the budget.
    #[cfg(feature = "jemalloc")]
    pub(crate) fn report_with_crossed_budget(scope: &crate::Scope) -> Report {
        use crate::Budget;
        let budget = Budget::soft(1000)
            .hard(1 << 20)
            .unwrap_or(Budget::soft(1000));
        scope.set_budget(budget);
        for _ in 0..2 {
            let v = scope.in_scope(|| std::hint::black_box(vec![1u8; 2000]));
            drop(v);
        }
        let kept = scope.in_scope(|| std::hint::black_box(vec![1u8; 1500]));
        let report = Report::take();
        scope.clear_budget();
        drop(kept);
        report
    }

    #[cfg(feature = "jemalloc")]
    #[test]
    fn a_crossed_budget_is_listed_with_its_crossings() {
        static BUDGETED: crate::Scope = crate::Scope::new("report-text-budgeted");
        let report = report_with_crossed_budget(&BUDGETED);
        let b = report
            .budget("report-text-budgeted")
            .expect("the budgeted scope is in the report")
            .status;
        assert_eq!((b.soft_bytes, b.hard_bytes), (1000, Some(1 << 20)));
        assert_eq!(b.crossings, 3);
        assert!(b.over && b.live_bytes >= 1500, "{b:?}");
        assert_eq!(b.refused, 0);

        let text = report.to_text();
        assert!(text.contains("\nbudgets ("), "{text}");
        let line = text
            .lines()
            .find(|l| l.contains("report-text-budgeted") && l.contains("soft limit"))
            .unwrap_or_else(|| panic!("no budget line in\n{text}"));
        for part in [
            "soft limit 1000 B",
            "hard limit 1.0 MiB",
            "OVER",
            "3 crossings",
            "0 refused",
        ] {
            assert!(line.contains(part), "{part:?} not in {line:?}");
        }
    }

    #[test]
    fn a_report_without_budgets_prints_no_budget_section() {
        let mut report = Report::default();
        let mut scope = crate::report::ScopeReport::new(7, "cache", None);
        scope.own.live_bytes = 4096;
        scope.own.total_allocs = 1;
        scope.with_children = scope.own;
        report.scopes.push(scope);
        let text = report.to_text();
        assert!(text.contains("cache"), "{text}");
        assert!(!text.contains("budget"), "{text}");
        assert!(!text.contains("soft limit"), "{text}");
    }

    #[test]
    fn budget_lines_without_a_hard_limit_omit_it() {
        let mut report = Report::default();
        report.budgets.push(crate::report::BudgetReport {
            scope: "jobs".to_string(),
            status: crate::budget::BudgetStatus {
                soft_bytes: 2048,
                live_bytes: 100,
                crossings: 1,
                ..Default::default()
            },
        });
        let text = report.to_text();
        let line = text
            .lines()
            .find(|l| l.contains("jobs"))
            .unwrap_or_default();
        assert_eq!(
            line.trim(),
            "jobs  100 B live, soft limit 2.0 KiB: within, 1 crossing"
        );
    }
}
