//! Folded stacks for flame graphs, and the SVG flame graph itself (feature
//! `flamegraph`).

use std::io;

use super::model::{Report, SiteSource};
use crate::thread_state;

/// The frame that holds a scope's live bytes not covered by its sampled
/// sites.
pub const UNSAMPLED_FRAME: &str = "[unsampled]";
/// Prefix of the root frame of recorded (leak check) sites, followed by the
/// scope path: `leak:checkpoint;main;…`.
pub const LEAK_ROOT_PREFIX: &str = "leak:";

/// Makes a name safe for one field of a folded line: `;` separates frames
/// and a line ends at a newline.
fn clean(name: &str) -> String {
    name.replace(';', ",").replace(['\n', '\r'], " ")
}

impl Report {
    /// The folded stacks of the report, one `stack bytes` line each.
    ///
    /// Each line is `scope;outermost frame;…;innermost frame bytes`, the
    /// format of Brendan Gregg's `flamegraph.pl` and `inferno`:
    ///
    /// - one line per sampled site, rooted at the scope's path, with its
    ///   estimated live bytes;
    /// - one `scope;[unsampled] bytes` line per scope whose own live bytes
    ///   exceed the sum of its sampled sites (all of them, when sampling is
    ///   off), so the graph covers every live byte;
    /// - one line per recorded leak site, rooted at `leak:scope`, with its
    ///   exact bytes (a separate tower: these bytes are also inside the
    ///   scope's own lines).
    ///
    /// `;` inside names becomes `,`. Lines with zero bytes are omitted.
    pub fn to_folded(&self) -> String {
        thread_state::internal(|| {
            let mut out = String::new();
            for s in &self.scopes {
                let sampled: u64 = self
                    .sites_in(&s.path)
                    .filter(|x| x.source == SiteSource::Sampled)
                    .map(|x| x.bytes)
                    .sum();
                let rest = s.own.live_bytes.saturating_sub(sampled);
                if rest > 0 {
                    out.push_str(&clean(&s.path));
                    out.push(';');
                    out.push_str(UNSAMPLED_FRAME);
                    out.push_str(&format!(" {rest}\n"));
                }
            }
            for site in &self.sites {
                if site.bytes == 0 {
                    continue;
                }
                if site.source == SiteSource::Recorded {
                    out.push_str(LEAK_ROOT_PREFIX);
                }
                out.push_str(&clean(&site.scope));
                for frame in site.frames.iter().rev() {
                    out.push(';');
                    out.push_str(&clean(&frame.function));
                }
                out.push_str(&format!(" {}\n", site.bytes));
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
    /// widths in live bytes; open it in a browser (it is interactive:
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
                "alloc-tracker report at {} ms since the Unix epoch; sampled sites are estimates",
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
