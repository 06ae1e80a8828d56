//! The reachability lines of a [`LeakReport`](crate::leak::LeakReport)'s
//! text, and the merging of two sites' figures.

use std::fmt;

use super::{HolderGroup, ReachSummary, SiteReach};

/// How many holders of a site the text lists.
const SHOWN_HOLDERS: usize = 4;

/// Adds `b`'s figures and holders to `a` (two sites found to be one).
pub(crate) fn merge(a: &mut SiteReach, b: SiteReach) {
    a.unreachable_bytes += b.unreachable_bytes;
    a.unreachable_allocs += b.unreachable_allocs;
    a.reachable_bytes += b.reachable_bytes;
    a.reachable_allocs += b.reachable_allocs;
    for g in b.holders {
        match a.holders.iter_mut().find(|h| h.holder == g.holder) {
            Some(h) => {
                h.bytes += g.bytes;
                h.allocs += g.allocs;
                h.max_chain = h.max_chain.max(g.max_chain);
            }
            None => a.holders.push(g),
        }
    }
    a.holders
        .sort_by(|x, y| y.bytes.cmp(&x.bytes).then(y.allocs.cmp(&x.allocs)));
}

fn holder_line(f: &mut fmt::Formatter<'_>, indent: &str, g: &HolderGroup) -> fmt::Result {
    write!(
        f,
        "{indent}{} B in {} allocation(s) held by {}",
        g.bytes, g.allocs, g.holder
    )?;
    if g.max_chain > 0 {
        write!(
            f,
            " (through up to {} other retained block(s))",
            g.max_chain
        )?;
    }
    writeln!(f)
}

/// The report-wide lines.
pub(crate) fn fmt_summary(f: &mut fmt::Formatter<'_>, r: &ReachSummary) -> fmt::Result {
    if let Some(e) = &r.error {
        return writeln!(f, "  reachability: not scanned ({e})");
    }
    let t = &r.total;
    write!(
        f,
        "  reachability: {} B in {} allocation(s) UNREACHABLE (definitely lost), {} B in {} allocation(s) still reachable",
        t.unreachable_bytes, t.unreachable_allocs, t.reachable_bytes, t.reachable_allocs
    )?;
    write!(
        f,
        " (scanned {} KiB in {:?}",
        r.scanned_bytes / 1024,
        r.scan_time
    )?;
    write!(
        f,
        "; other threads: {} stopped, {} blocked, {} running",
        r.threads_stopped, r.threads_blocked, r.threads_running
    )?;
    if r.threads_running > 0 {
        write!(
            f,
            " (a running thread can move pointers during the scan, see docs/reachability.md)"
        )?;
    }
    writeln!(f, ")")?;
    for g in &t.holders {
        holder_line(f, "    ", g)?;
    }
    Ok(())
}

/// A site's line.
pub(crate) fn fmt_site(f: &mut fmt::Formatter<'_>, r: &SiteReach) -> fmt::Result {
    writeln!(
        f,
        "      unreachable: {} B in {}; reachable: {} B in {}",
        r.unreachable_bytes, r.unreachable_allocs, r.reachable_bytes, r.reachable_allocs
    )?;
    for g in r.holders.iter().take(SHOWN_HOLDERS) {
        holder_line(f, "        ", g)?;
    }
    if r.holders.len() > SHOWN_HOLDERS {
        writeln!(
            f,
            "        ... {} more holders",
            r.holders.len() - SHOWN_HOLDERS
        )?;
    }
    Ok(())
}
