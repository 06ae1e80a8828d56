//! JSON output and input (feature `json`).

use std::io;

use super::model::{Report, SCHEMA_VERSION};
use crate::thread_state;

impl Report {
    /// The report as pretty-printed JSON, with `schema_version` first.
    pub fn to_json(&self) -> String {
        thread_state::internal(|| {
            // Serializing plain data with string keys cannot fail.
            serde_json::to_string_pretty(self).unwrap_or_default()
        })
    }

    /// Writes the report as pretty-printed JSON.
    ///
    /// # Errors
    /// The writer's I/O error.
    pub fn write_json(&self, w: &mut dyn io::Write) -> io::Result<()> {
        thread_state::internal(|| {
            serde_json::to_writer_pretty(&mut *w, self).map_err(io::Error::other)?;
            writeln!(w)
        })
    }

    /// Reads a report written by [`to_json`](Self::to_json).
    ///
    /// # Errors
    /// Malformed JSON, missing fields, or a `schema_version` other than
    /// [`SCHEMA_VERSION`].
    pub fn from_json(json: &str) -> Result<Report, serde_json::Error> {
        thread_state::internal(|| {
            let report: Report = serde_json::from_str(json)?;
            if report.schema_version != SCHEMA_VERSION {
                return Err(serde::de::Error::custom(format_args!(
                    "report schema_version {} is not the supported version {SCHEMA_VERSION}",
                    report.schema_version
                )));
            }
            Ok(report)
        })
    }
}
