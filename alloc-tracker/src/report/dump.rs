//! Writing reports to files: formats, the on-demand dump and its error.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::model::Report;
use crate::hot::thread_state;

/// An output format of a [`Report`].
///
/// Every variant exists whatever features are enabled, so configuration
/// stays valid across builds; [`Format::is_available`] says whether this
/// build can write it, and writing one that is not gives
/// [`DumpError::FormatDisabled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// The human table ([`Report::write_text`]); extensions `.txt`, `.log`.
    Text,
    /// JSON ([`Report::to_json`], feature `json`); extension `.json`.
    Json,
    /// Folded stacks ([`Report::to_folded`]); extensions `.folded`,
    /// `.collapsed`.
    Folded,
    /// An SVG flame graph ([`Report::write_flamegraph`], feature
    /// `flamegraph`); extension `.svg`.
    Svg,
    /// Prometheus text exposition ([`Report::to_prometheus`]); extension
    /// `.prom`.
    Prometheus,
    /// A gzipped pprof heap profile of the sites ([`Report::to_pprof`],
    /// feature `pprof`); extension `.pb.gz`.
    Pprof,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 6] = [
        Format::Text,
        Format::Json,
        Format::Folded,
        Format::Svg,
        Format::Prometheus,
        Format::Pprof,
    ];

    /// The format's name as accepted by `FromStr` and
    /// `ALLOC_TRACKER_DUMP_FORMAT`.
    pub const fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Folded => "folded",
            Format::Svg => "svg",
            Format::Prometheus => "prometheus",
            Format::Pprof => "pprof",
        }
    }

    /// The file extension written by `report_demo` and recognised by
    /// [`Format::from_path`].
    pub const fn extension(self) -> &'static str {
        match self {
            Format::Text => "txt",
            Format::Json => "json",
            Format::Folded => "folded",
            Format::Svg => "svg",
            Format::Prometheus => "prom",
            Format::Pprof => "pb.gz",
        }
    }

    /// The cargo feature this format needs, if any.
    pub const fn feature(self) -> Option<&'static str> {
        match self {
            Format::Json => Some("json"),
            Format::Svg => Some("flamegraph"),
            Format::Pprof => Some("pprof"),
            Format::Text | Format::Folded | Format::Prometheus => None,
        }
    }

    /// Whether this build can write the format.
    pub const fn is_available(self) -> bool {
        match self {
            Format::Json => cfg!(feature = "json"),
            Format::Svg => cfg!(feature = "flamegraph"),
            Format::Pprof => cfg!(feature = "pprof"),
            Format::Text | Format::Folded | Format::Prometheus => true,
        }
    }

    /// The format named by a path's extension (case-insensitive), if it is
    /// one of the known names ([`FromStr`](std::str::FromStr) lists them; `.log` is text too,
    /// `.pb.gz` is pprof).
    pub fn from_path(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?;
        if name.len() > 6 && name[name.len() - 6..].eq_ignore_ascii_case(".pb.gz") {
            return Some(Format::Pprof);
        }
        let ext = path.extension()?.to_str()?;
        Format::named(ext).or_else(|| ext.eq_ignore_ascii_case("log").then_some(Format::Text))
    }

    /// The format called `name` (case-insensitive), by name or alias.
    pub(crate) fn named(name: &str) -> Option<Format> {
        const NAMES: [(&str, Format); 10] = [
            ("text", Format::Text),
            ("txt", Format::Text),
            ("json", Format::Json),
            ("folded", Format::Folded),
            ("collapsed", Format::Folded),
            ("svg", Format::Svg),
            ("flamegraph", Format::Svg),
            ("prometheus", Format::Prometheus),
            ("prom", Format::Prometheus),
            ("pprof", Format::Pprof),
        ];
        NAMES
            .into_iter()
            .find(|(n, _)| name.eq_ignore_ascii_case(n))
            .map(|(_, f)| f)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A report could not be written.
///
/// It names the file, so the message is useful as it is; the file is
/// written to a temporary sibling first and renamed over the target, so a
/// failed dump never leaves a truncated report behind.
#[derive(Debug)]
#[non_exhaustive]
pub enum DumpError {
    /// Creating, writing or renaming the file failed.
    Io {
        /// The report file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The format needs a feature this build does not have.
    FormatDisabled {
        /// The report file.
        path: PathBuf,
        /// The format asked for.
        format: Format,
    },
}

impl DumpError {
    /// The report file that could not be written.
    pub fn path(&self) -> &Path {
        match self {
            DumpError::Io { path, .. } | DumpError::FormatDisabled { path, .. } => path,
        }
    }
}

impl fmt::Display for DumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DumpError::Io { path, source } => write!(
                f,
                "cannot write the allocation report to {}: {source}",
                path.display()
            ),
            DumpError::FormatDisabled { path, format } => write!(
                f,
                "cannot write the allocation report to {}: format `{format}` needs scope-alloc-tracker's `{}` feature",
                path.display(),
                format.feature().unwrap_or("?")
            ),
        }
    }
}

impl std::error::Error for DumpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DumpError::Io { source, .. } => Some(source),
            DumpError::FormatDisabled { .. } => None,
        }
    }
}

impl Report {
    /// Writes the report in `format`.
    ///
    /// # Errors
    /// The writer's I/O error; an error of kind `Unsupported` if the format
    /// is not compiled in ([`Format::is_available`]).
    pub fn write_format(&self, format: Format, w: &mut dyn io::Write) -> io::Result<()> {
        thread_state::internal(|| match format {
            Format::Text => self.write_text(w),
            #[cfg(feature = "json")]
            Format::Json => self.write_json(w),
            Format::Folded => self.write_folded(w),
            #[cfg(feature = "flamegraph")]
            Format::Svg => self.write_flamegraph(w),
            Format::Prometheus => self.write_prometheus(w),
            #[cfg(feature = "pprof")]
            Format::Pprof => self.write_pprof(w),
            #[allow(unreachable_patterns)]
            other => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "format `{other}` needs scope-alloc-tracker's `{}` feature",
                    other.feature().unwrap_or("?")
                ),
            )),
        })
    }

    /// Writes the human table ([`Display`](fmt::Display)).
    ///
    /// # Errors
    /// The writer's I/O error.
    pub fn write_text(&self, w: &mut dyn io::Write) -> io::Result<()> {
        let text = self.to_text();
        w.write_all(text.as_bytes())
    }

    /// Writes the report to `path` in `format`, through a temporary file in
    /// the same directory (`<path>.tmp-<pid>-<n>`, unique per call) renamed
    /// over `path`, so readers never see a partial report, even while other
    /// threads dump to the same path.
    ///
    /// # Errors
    /// [`DumpError`] naming `path`.
    pub fn write_to_file(&self, path: impl AsRef<Path>, format: Format) -> Result<(), DumpError> {
        let path = path.as_ref();
        thread_state::internal(|| {
            if !format.is_available() {
                return Err(DumpError::FormatDisabled {
                    path: path.to_path_buf(),
                    format,
                });
            }
            super::atomic_file::write_atomically(path, |w| self.write_format(format, w)).map_err(
                |source| DumpError::Io {
                    path: path.to_path_buf(),
                    source,
                },
            )
        })
    }
}

/// Takes a report now and writes it to `path` in `format`.
///
/// Everything it allocates is charged to the tracker's internal scope, so
/// it can be called from inside any scope without changing its figures.
///
/// # Errors
/// [`DumpError`] naming `path` if the file cannot be written (missing
/// directory, a directory at `path`, no permission, disk full) or the
/// format is not compiled in. It never panics.
pub fn dump(path: impl AsRef<Path>, format: Format) -> Result<(), DumpError> {
    // `write_to_file` checks the format and runs under the re-entrancy
    // guard; only taking the report needs it here.
    thread_state::internal(Report::take).write_to_file(path, format)
}
