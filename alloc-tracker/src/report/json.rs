//! JSON output and input (feature `json`).

use std::io;

use super::model::{Report, SCHEMA_VERSION};
use crate::hot::thread_state;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "jemalloc")]
    #[test]
    fn json_carries_the_budgets_and_their_crossings() {
        static BUDGETED: crate::Scope = crate::Scope::new("report-json-budgeted");
        let report = crate::report::text::tests::report_with_crossed_budget(&BUDGETED);
        let json = report.to_json();
        let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        let entry = v["budgets"]
            .as_array()
            .expect("a budgets array")
            .iter()
            .find(|b| b["scope"] == "report-json-budgeted")
            .unwrap_or_else(|| panic!("no budget entry in {json}"));
        assert_eq!(entry["crossings"], 3, "{entry}");
        assert_eq!(entry["soft_bytes"], 1000, "{entry}");
        assert_eq!(entry["over"], true, "{entry}");
        let back = Report::from_json(&json).expect("reads back");
        assert_eq!(back.budgets, report.budgets);
    }

    #[test]
    fn json_without_budgets_still_reads() {
        // A report written before budgets were reported has no such field.
        let report = Report {
            schema_version: SCHEMA_VERSION,
            ..Report::default()
        };
        let mut v: serde_json::Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
        let removed = v
            .as_object_mut()
            .and_then(|o| o.remove("budgets"))
            .expect("the field is written");
        assert_eq!(removed, serde_json::json!([]));
        let back = Report::from_json(&v.to_string()).expect("reads without budgets");
        assert!(back.budgets.is_empty());
    }
}
