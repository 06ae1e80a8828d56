//! Folded stacks for flame graphs, and the SVG flame graph itself (feature
//! `flamegraph`).

use std::collections::HashMap;
use std::io;

use super::model::{Report, SiteSource};
use crate::hot::thread_state;

/// The frame that holds a scope's live bytes not covered by its sampled
/// sites.
pub const UNSAMPLED_FRAME: &str = "[unsampled]";
/// Prefix of the root frame of recorded (leak check) sites, followed by the
/// scope path: `leak:checkpoint;main;…`.
pub const LEAK_ROOT_PREFIX: &str = "leak:";
/// The frame under a leak root for the part of a site's blocks that a
/// reachability scan found nothing pointing to (definitely lost).
pub const UNREACHABLE_FRAME: &str = "[unreachable]";
/// The frame under a leak root for the part still pointed to.
pub const REACHABLE_FRAME: &str = "[reachable]";

/// Makes a name safe for one field of a folded line: `;` separates frames
/// and a line ends at a newline.
fn clean(name: &str) -> String {
    name.replace(';', ",").replace(['\n', '\r'], " ")
}

/// How the lines of one scope are drawn: `budget` exact bytes shared by
/// sites whose figures add up to `sum`, each drawn as
/// `bytes * budget / sum` when `sum > budget`.
#[derive(Debug, Clone, Copy, Default)]
struct Share {
    budget: u64,
    sum: u64,
}

impl Share {
    /// `bytes` scaled down so the shares never add up to more than the
    /// budget (rounded down, so they add up to at most the budget).
    fn scale(self, bytes: u64) -> u64 {
        if self.sum <= self.budget {
            bytes
        } else {
            (u128::from(bytes) * u128::from(self.budget) / u128::from(self.sum)) as u64
        }
    }
}

/// The shares of one scope's recorded and sampled sites, and what is left
/// for its `[unsampled]` line.
#[derive(Debug, Clone, Copy, Default)]
struct ScopeShares {
    recorded: Share,
    sampled: Share,
    unsampled: u64,
}

impl Report {
    /// How each scope's exact live bytes are split between its recorded
    /// sites, its sampled sites and `[unsampled]` (see
    /// [`to_folded`](Self::to_folded)).
    fn shares(&self) -> HashMap<&str, ScopeShares> {
        let mut sums: HashMap<&str, (u64, u64)> = HashMap::new();
        for site in &self.sites {
            let (recorded, sampled) = sums.entry(site.scope.as_str()).or_default();
            match site.source {
                SiteSource::Recorded => *recorded += site.bytes,
                SiteSource::Sampled => *sampled += site.bytes,
            }
        }
        let mut shares = HashMap::with_capacity(self.scopes.len());
        for s in &self.scopes {
            let live = s.own.live_bytes;
            let (recorded_sum, sampled_sum) =
                sums.get(s.path.as_str()).copied().unwrap_or_default();
            let recorded = Share {
                budget: live.min(recorded_sum),
                sum: recorded_sum,
            };
            let recorded_drawn: u64 = self
                .sites_in(&s.path)
                .filter(|x| x.source == SiteSource::Recorded)
                .map(|x| recorded.scale(x.bytes))
                .sum();
            let left = live - recorded_drawn;
            let sampled = Share {
                budget: left.min(sampled_sum),
                sum: sampled_sum,
            };
            let sampled_drawn: u64 = self
                .sites_in(&s.path)
                .filter(|x| x.source == SiteSource::Sampled)
                .map(|x| sampled.scale(x.bytes))
                .sum();
            shares.insert(
                s.path.as_str(),
                ScopeShares {
                    recorded,
                    sampled,
                    unsampled: left - sampled_drawn,
                },
            );
        }
        shares
    }

    /// The folded stacks of the report, one `stack bytes` line each.
    ///
    /// Each line is `scope;outermost frame;…;innermost frame bytes`, the
    /// format of Brendan Gregg's `flamegraph.pl` and `inferno`. Every live
    /// byte of a scope (its own [`live_bytes`](crate::ScopeStats::live_bytes),
    /// exact) is drawn exactly once, so the graph's total is the tracked
    /// live bytes and no frame is wider than what it stands for:
    ///
    /// - one line per recorded leak site, rooted at `leak:scope`
    ///   ([`LEAK_ROOT_PREFIX`]), with its exact bytes. These bytes are
    ///   taken out of the scope's own tower, not drawn a second time; if
    ///   the recorded sites add up to more than the scope's live bytes
    ///   (some were freed after the check), they are scaled down
    ///   proportionally to the live bytes; a site whose check scanned is
    ///   split under a second frame, [`UNREACHABLE_FRAME`] for its blocks
    ///   nothing points to and [`REACHABLE_FRAME`] for the others, in
    ///   proportion to their bytes;
    /// - one line per sampled site, rooted at the scope's path, with its
    ///   estimated live bytes. Estimates are scaled down proportionally
    ///   whenever the scope's sampled sites add up to more than its live
    ///   bytes left after the leak sites (a sample stands for about the
    ///   sampling interval, however small the allocation), so a scope's
    ///   sites never exceed its exact live bytes; they are never scaled up;
    /// - one `scope;[unsampled] bytes` line ([`UNSAMPLED_FRAME`]) with the
    ///   rest of the scope's live bytes (all of them, when sampling is off).
    ///
    /// Sites of a scope missing from the report (hand-made reports) are
    /// drawn as they are. Scaling rounds down; `;` inside names becomes
    /// `,`; lines with zero bytes are omitted. [`Report::sites`] keeps the
    /// unscaled estimates.
    pub fn to_folded(&self) -> String {
        thread_state::internal(|| {
            let shares = self.shares();
            let mut out = String::new();
            for s in &self.scopes {
                let rest = shares.get(s.path.as_str()).map_or(0, |x| x.unsampled);
                if rest > 0 {
                    out.push_str(&clean(&s.path));
                    out.push(';');
                    out.push_str(UNSAMPLED_FRAME);
                    out.push_str(&format!(" {rest}\n"));
                }
            }
            for site in &self.sites {
                let bytes = match shares.get(site.scope.as_str()) {
                    Some(x) if site.source == SiteSource::Recorded => x.recorded.scale(site.bytes),
                    Some(x) => x.sampled.scale(site.bytes),
                    None => site.bytes,
                };
                if bytes == 0 {
                    continue;
                }
                // A scanned leak site: one stack for its unreachable part,
                // one for its reachable part, below a frame that says which
                // (the site's bytes split in proportion, summing to it).
                let parts: Vec<(Option<&str>, u64)> = match (&site.reach, site.source) {
                    (Some(r), SiteSource::Recorded)
                        if r.unreachable_bytes + r.reachable_bytes > 0 =>
                    {
                        let total = u128::from(r.unreachable_bytes + r.reachable_bytes);
                        let lost =
                            (u128::from(bytes) * u128::from(r.unreachable_bytes) / total) as u64;
                        vec![
                            (Some(UNREACHABLE_FRAME), lost),
                            (Some(REACHABLE_FRAME), bytes - lost),
                        ]
                    }
                    _ => vec![(None, bytes)],
                };
                for (marker, part) in parts.into_iter().filter(|p| p.1 > 0) {
                    if site.source == SiteSource::Recorded {
                        out.push_str(LEAK_ROOT_PREFIX);
                    }
                    out.push_str(&clean(&site.scope));
                    if let Some(m) = marker {
                        out.push(';');
                        out.push_str(m);
                    }
                    for frame in site.frames.iter().rev() {
                        out.push(';');
                        out.push_str(&clean(&frame.function));
                    }
                    out.push_str(&format!(" {part}\n"));
                }
            }
            out
        })
    }

    /// Writes [`to_folded`](Self::to_folded).
    ///
    /// # Errors
    /// The writer's I/O error.
    pub fn write_folded(&self, w: &mut dyn io::Write) -> io::Result<()> {
        let folded = self.to_folded();
        w.write_all(folded.as_bytes())
    }

    /// Renders the folded stacks as an SVG flame graph with `inferno`,
    /// widths in live bytes (sampled estimates scaled to the exact figures,
    /// leak towers not counted twice: see [`to_folded`](Self::to_folded)); open it in a browser (it is interactive:
    /// click to zoom, Ctrl-F to search).
    ///
    /// A report without any live bytes gives a graph with a single
    /// `no live bytes` frame rather than an error.
    ///
    /// # Errors
    /// The writer's I/O error, or `inferno`'s error for malformed input.
    #[cfg(feature = "flamegraph")]
    #[cfg_attr(docsrs, doc(cfg(feature = "flamegraph")))]
    pub fn write_flamegraph(&self, w: &mut dyn io::Write) -> io::Result<()> {
        thread_state::internal(|| {
            let mut folded = self.to_folded();
            if folded.is_empty() {
                folded.push_str("no live bytes 1\n");
            }
            let mut opts = inferno::flamegraph::Options::default();
            opts.title = format!("Live bytes by scope and call site (pid {})", self.pid);
            opts.subtitle = Some(format!(
                "alloc-tracker report at {} ms since the Unix epoch; sampled sites are estimates, scaled to each scope's exact live bytes",
                self.timestamp_unix_ms
            ));
            opts.count_name = "bytes".to_string();
            opts.name_type = "Frame:".to_string();
            opts.colors =
                inferno::flamegraph::Palette::Basic(inferno::flamegraph::color::BasicPalette::Mem);
            opts.deterministic = true;
            inferno::flamegraph::from_lines(&mut opts, folded.lines(), w)
        })
    }

    /// [`write_flamegraph`](Self::write_flamegraph) into a `String`.
    ///
    /// # Errors
    /// `inferno`'s error for malformed input.
    #[cfg(feature = "flamegraph")]
    #[cfg_attr(docsrs, doc(cfg(feature = "flamegraph")))]
    pub fn to_flamegraph_svg(&self) -> io::Result<String> {
        thread_state::internal(|| {
            let mut out = Vec::new();
            self.write_flamegraph(&mut out)?;
            String::from_utf8(out).map_err(io::Error::other)
        })
    }
}
