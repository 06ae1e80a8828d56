//! pprof heap profiles (feature `pprof`): the report's call sites as a
//! gzipped `profile.proto`, for `go tool pprof` and every tool that reads
//! it (pprof's web UI, `-diff_base`, Grafana Pyroscope, …).
//!
//! # What the profile holds
//!
//! - One sample per [`SiteReport`], its frames as the stack (innermost
//!   first, as pprof wants the leaf at `location_id[0]`).
//! - Two values per sample, the heap-profile convention:
//!   `inuse_space/bytes` (the site's [`bytes`](SiteReport::bytes): an
//!   unbiased estimate for sampled sites, exact for recorded ones) and
//!   `inuse_objects/count` (the site's [`allocs`](SiteReport::allocs): live
//!   *samples* for sampled sites, which is not an estimate of the number of
//!   objects, and exact allocations for recorded ones).
//!   `inuse_space` is the default sample type.
//! - String labels: `scope` (the scope's path, e.g. `checkpoint/write`),
//!   `source` (`sampled` or `recorded`) and, for recorded sites whose check
//!   scanned, `reach` (`unreachable`, `reachable` or `mixed`). Recorded sites come from leak
//!   checks ([`Report::add_leak`]); a leaked block may also have been
//!   sampled, so to read one kind only, filter:
//!   `go tool pprof -tagfocus=source=sampled` (or `=recorded`). Per scope:
//!   `-tagfocus=scope=checkpoint/write`, or `-tags` for the breakdown.
//! - Functions and lines from the symbolised [`Frame`]s: each distinct
//!   (function, file) is a `Function`, each distinct (function, file, line)
//!   a `Location` with one `Line` (inlined frames are separate frames
//!   already). There are no mappings or addresses: the profile is fully
//!   symbolised, pprof never needs the binary.
//! - `time_nanos` is the report's timestamp; comments name the process.
//!
//! Sites with zero bytes and zero allocations are left out. The message
//! types below are hand-written `prost` derives mirroring the fields of
//! upstream `profile.proto` (package `perftools.profiles`) that we write,
//! so the build needs no `protoc`.

use std::collections::HashMap;
use std::io::{self, Write as _};

use flate2::write::GzEncoder;
use flate2::Compression;
use prost::Message as _;

use super::model::{Report, SiteReport, SiteSource};
use crate::hot::thread_state;
use crate::sampling::Frame;

/// The `perftools.profiles` messages we write (field numbers as upstream).
mod proto {
    /// `Profile`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub(super) sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub(super) sample: Vec<Sample>,
        #[prost(message, repeated, tag = "4")]
        pub(super) location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub(super) function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub(super) string_table: Vec<String>,
        #[prost(int64, tag = "9")]
        pub(super) time_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub(super) period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub(super) period: i64,
        #[prost(int64, repeated, tag = "13")]
        pub(super) comment: Vec<i64>,
        #[prost(int64, tag = "14")]
        pub(super) default_sample_type: i64,
    }

    /// `ValueType`.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub(super) struct ValueType {
        #[prost(int64, tag = "1")]
        pub(super) r#type: i64,
        #[prost(int64, tag = "2")]
        pub(super) unit: i64,
    }

    /// `Sample`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub(super) location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub(super) value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub(super) label: Vec<Label>,
    }

    /// `Label` (string labels only).
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub(super) struct Label {
        #[prost(int64, tag = "1")]
        pub(super) key: i64,
        #[prost(int64, tag = "2")]
        pub(super) str: i64,
    }

    /// `Location`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Location {
        #[prost(uint64, tag = "1")]
        pub(super) id: u64,
        #[prost(message, repeated, tag = "4")]
        pub(super) line: Vec<Line>,
    }

    /// `Line`.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub(super) struct Line {
        #[prost(uint64, tag = "1")]
        pub(super) function_id: u64,
        #[prost(int64, tag = "2")]
        pub(super) line: i64,
    }

    /// `Function`.
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub(super) struct Function {
        #[prost(uint64, tag = "1")]
        pub(super) id: u64,
        #[prost(int64, tag = "2")]
        pub(super) name: i64,
        #[prost(int64, tag = "3")]
        pub(super) system_name: i64,
        #[prost(int64, tag = "4")]
        pub(super) filename: i64,
    }
}

/// Builds the tables of one profile: interned strings, functions and
/// locations, each id the position in its table plus one.
#[derive(Default)]
struct Builder {
    profile: proto::Profile,
    strings: HashMap<String, i64>,
    functions: HashMap<(i64, i64), u64>,
    locations: HashMap<(u64, i64), u64>,
}

impl Builder {
    fn new() -> Builder {
        let mut b = Builder::default();
        // string_table[0] must be "".
        b.string("");
        b
    }

    fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.profile.string_table.len() as i64;
        self.profile.string_table.push(s.to_string());
        self.strings.insert(s.to_string(), i);
        i
    }

    fn value_type(&mut self, ty: &str, unit: &str) -> proto::ValueType {
        proto::ValueType {
            r#type: self.string(ty),
            unit: self.string(unit),
        }
    }

    fn location(&mut self, frame: &Frame) -> u64 {
        let name = self.string(&frame.function);
        let file = match frame.short_file() {
            Some(f) => self.string(&f),
            None => 0,
        };
        let next_fn = self.profile.function.len() as u64 + 1;
        let function_id = *self.functions.entry((name, file)).or_insert(next_fn);
        if function_id == next_fn {
            self.profile.function.push(proto::Function {
                id: function_id,
                name,
                system_name: name,
                filename: file,
            });
        }
        let line = frame.line.map_or(0, i64::from);
        let next_loc = self.profile.location.len() as u64 + 1;
        let location_id = *self
            .locations
            .entry((function_id, line))
            .or_insert(next_loc);
        if location_id == next_loc {
            self.profile.location.push(proto::Location {
                id: location_id,
                line: vec![proto::Line { function_id, line }],
            });
        }
        location_id
    }

    fn sample(&mut self, site: &SiteReport) {
        let location_id = site.frames.iter().map(|f| self.location(f)).collect();
        let scope_key = self.string("scope");
        let scope = self.string(&site.scope);
        let source_key = self.string("source");
        let source = self.string(match site.source {
            SiteSource::Sampled => "sampled",
            SiteSource::Recorded => "recorded",
        });
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut label = vec![
            proto::Label {
                key: scope_key,
                str: scope,
            },
            proto::Label {
                key: source_key,
                str: source,
            },
        ];
        // A recorded site whose check scanned: `reach=unreachable`
        // (definitely lost), `reachable` or `mixed`.
        if let Some(r) = &site.reach {
            let verdict = match (r.unreachable_allocs, r.reachable_allocs) {
                (_, 0) => "unreachable",
                (0, _) => "reachable",
                _ => "mixed",
            };
            label.push(proto::Label {
                key: self.string("reach"),
                str: self.string(verdict),
            });
        }
        self.profile.sample.push(proto::Sample {
            location_id,
            value: vec![clamp(site.bytes), clamp(site.allocs)],
            label,
        });
    }
}

impl Report {
    /// The report's sites as an uncompressed `profile.proto` message (see
    /// [`to_pprof`](Self::to_pprof) for the gzipped file pprof reads).
    pub fn to_pprof_proto(&self) -> Vec<u8> {
        thread_state::internal(|| {
            let mut b = Builder::new();
            let space = b.value_type("inuse_space", "bytes");
            let objects = b.value_type("inuse_objects", "count");
            b.profile.sample_type = vec![space, objects];
            b.profile.default_sample_type = space.r#type;
            b.profile.period_type = Some(b.value_type("space", "bytes"));
            b.profile.time_nanos =
                i64::try_from(self.timestamp_unix_ms.saturating_mul(1_000_000)).unwrap_or(0);
            let comment = format!(
                "alloc-tracker heap profile of pid {}: sampled sites (estimated bytes) and recorded leak sites (exact); labels scope, source",
                self.pid
            );
            b.profile.comment = vec![b.string(&comment)];
            for site in &self.sites {
                if site.bytes > 0 || site.allocs > 0 {
                    b.sample(site);
                }
            }
            b.profile.encode_to_vec()
        })
    }

    /// The report's sites as a gzipped pprof heap profile: the bytes of a
    /// `.pb.gz` file for `go tool pprof`. The module documentation of
    /// `report::pprof` lists what it holds.
    ///
    /// ```
    /// use scope_alloc_tracker::report::{Report, SiteReport, SiteSource};
    ///
    /// let mut report = Report::default();
    /// report.sites.push(SiteReport::new(
    ///     "checkpoint",
    ///     SiteSource::Sampled,
    ///     &["alloc::vec::Vec<T>::with_capacity", "ckptdb::flush", "main"],
    ///     8192,
    ///     2,
    /// ));
    /// let gz = report.to_pprof()?;
    /// assert_eq!(gz[..2], [0x1f, 0x8b]); // gzip magic
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// # Errors
    /// Only if compression fails, which in-memory gzip does not.
    pub fn to_pprof(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_pprof(&mut out)?;
        Ok(out)
    }

    /// Writes [`to_pprof`](Self::to_pprof).
    ///
    /// # Errors
    /// The writer's I/O error.
    pub fn write_pprof(&self, w: &mut dyn io::Write) -> io::Result<()> {
        thread_state::internal(|| {
            let proto = self.to_pprof_proto();
            let mut gz = GzEncoder::new(w, Compression::default());
            gz.write_all(&proto)?;
            gz.finish()?.flush()
        })
    }
}
