//! `ckptdb inspect`: prints a data directory's checkpoint chain, WAL
//! segments and what recovery would do, from
//! [`ckptdb::inspect::inspect`], which modifies nothing.

use ckptdb::inspect::{self, FileRole, Inspection, LockState, ManifestState, PlannedAction};

use super::args::InspectArgs;
use super::exit::{chain, CliError, Outcome};
use scope_alloc_tracker::report::human_bytes;

/// Inspects `args.data_dir` and prints the result.
///
/// # Errors
/// [`CliError::Usage`] if the directory is missing or unreadable;
/// [`CliError::Failed`] if recovery would fail (after printing everything
/// that could be read).
pub(crate) fn run(args: InspectArgs) -> Result<Outcome, CliError> {
    let dir = &args.data_dir;
    let ins = inspect::inspect(dir)
        .map_err(|e| CliError::usage(format!("cannot inspect {}: {}", dir.display(), chain(&e))))?;
    print!("{}", render(&ins));
    match &ins.recovery {
        Ok(_) => Ok(Outcome::Clean),
        Err(e) => Err(CliError::failed(format!(
            "recovery of {} would fail: {}",
            dir.display(),
            chain(e)
        ))),
    }
}

/// The `LOCK` file and whether the database is open, in one line.
fn lock_line(ins: &Inspection) -> String {
    let file = ins
        .files
        .iter()
        .find(|f| f.role == FileRole::Lock)
        .map_or_else(
            || format!("lock: {}", ckptdb::LOCK_FILE),
            |f| format!("lock: {} ({})", f.name, human_bytes(f.bytes)),
        );
    match &ins.lock {
        LockState::NoLockFile => "lock: no LOCK file: the database is not open".to_string(),
        LockState::Free => format!("{file} not held: the database is not open"),
        LockState::Held { holder } => format!(
            "{file} held by {}: the database is OPEN (what follows may change while it runs)",
            holder.map_or_else(
                || "an unknown process (no pid in the file)".to_string(),
                |pid| format!("process {pid}")
            )
        ),
        LockState::Unknown(e) => {
            format!("{file} could not be tested ({e}): whether the database is open is unknown")
        }
        other => format!("{file} {other:?}"),
    }
}

/// The printed form of an inspection.
fn render(ins: &Inspection) -> String {
    let mut out = Vec::<String>::new();
    let total: u64 = ins.files.iter().map(|f| f.bytes).sum();
    out.push(format!(
        "data directory {}: {} files, {}{}",
        ins.dir.display(),
        ins.files.len(),
        human_bytes(total),
        if ins.is_empty() {
            " (no ckptdb files: an empty or foreign directory)"
        } else {
            ""
        }
    ));
    out.push(lock_line(ins));

    out.push(String::new());
    match &ins.manifest {
        ManifestState::Absent => {
            out.push("manifest: none (no checkpoint published yet)".to_string());
        }
        ManifestState::Corrupt(c) => out.push(format!("manifest: CORRUPT: {c}")),
        ManifestState::Valid(m) => {
            out.push(format!(
                "manifest: generation {}, checkpoint LSN {}, next file id {}",
                m.generation, m.checkpoint_lsn, m.next_file_id
            ));
            out.push(format!(
                "checkpoint chain ({} files, base first):",
                m.chain.len()
            ));
            if m.chain.is_empty() {
                out.push("  (empty)".to_string());
            }
            for e in &m.chain {
                out.push(format!(
                    "  {:<11}  {}  LSN {:>7}..{:<7}  {:>10}  {}",
                    inspect::kind_name(e.meta.kind),
                    e.name,
                    e.meta.lsn_start,
                    e.meta.lsn_end,
                    e.bytes.map_or_else(|| "MISSING".to_string(), human_bytes),
                    e.entries.map_or_else(
                        || "header unreadable".to_string(),
                        |n| format!("{n} entries")
                    ),
                ));
            }
        }
        other => out.push(format!("manifest: {other:?}")),
    }

    out.push(String::new());
    out.push(format!("WAL segments ({}, oldest first):", ins.wal.len()));
    if ins.wal.is_empty() {
        out.push("  (none)".to_string());
    }
    for s in &ins.wal {
        let lsns = match (s.first_lsn, s.last_lsn) {
            (Some(f), Some(l)) => format!("LSN {f}..{l}"),
            (Some(f), None) => format!("from LSN {f}, no records"),
            (None, _) => "torn header".to_string(),
        };
        let mut line = format!(
            "  {}  {:>10}  {:<22}  {} records",
            s.name,
            human_bytes(s.bytes),
            lsns,
            s.records
        );
        if let Some(at) = s.torn_at {
            line.push_str(&format!("  torn tail at byte {at}"));
        }
        if let Some(c) = &s.corruption {
            line.push_str(&format!("  CORRUPT: {c}"));
        }
        out.push(line);
    }

    let others: Vec<String> = ins
        .files
        .iter()
        .filter(|f| {
            !matches!(
                f.role,
                FileRole::Manifest | FileRole::WalSegment | FileRole::Lock
            )
                && !matches!(&ins.manifest, ManifestState::Valid(m) if m.chain.iter().any(|e| e.name == f.name))
        })
        .map(|f| format!("  {}  {}", f.name, human_bytes(f.bytes)))
        .collect();
    if !others.is_empty() {
        out.push(String::new());
        out.push("other files (not in the chain):".to_string());
        out.extend(others);
    }

    out.push(String::new());
    out.push("recovery would:".to_string());
    match &ins.recovery {
        Err(e) => out.push(format!("  FAIL: {}", chain(e))),
        Ok(plan) => {
            let r = &plan.report;
            match r.chain_files.split_first() {
                None => out.push("  load no checkpoint (empty chain)".to_string()),
                Some((base, incs)) => {
                    out.push(format!("  load base checkpoint {base}"));
                    if incs.is_empty() {
                        out.push("  apply no incremental".to_string());
                    } else {
                        out.push(format!(
                            "  apply {} incremental(s): {}",
                            incs.len(),
                            incs.join(", ")
                        ));
                    }
                }
            }
            out.push(format!(
                "  replay the WAL from LSN {}: {} records, up to LSN {}",
                r.checkpoint_lsn + 1,
                r.wal_records_replayed,
                r.last_lsn
            ));
            out.push(format!(
                "  torn tail: {}",
                r.torn_tail.as_ref().map_or_else(
                    || "none".to_string(),
                    |(p, off)| format!("{} would be cut at byte {off}", p.display())
                )
            ));
            if plan.actions.is_empty() {
                out.push("  change nothing on disk".to_string());
            }
            for a in &plan.actions {
                out.push(match a {
                    PlannedAction::Remove { file } => format!("  remove {file}"),
                    PlannedAction::Truncate { file, len } => {
                        format!("  truncate {file} to {len} bytes")
                    }
                    PlannedAction::Other { op, file } => format!("  {op} {file}"),
                    _ => format!("  {a:?}"),
                });
            }
            out.push(format!("  and end with {} live keys", plan.keys));
        }
    }
    out.push("(nothing was modified: inspection reads only)".to_string());
    let mut s = out.join("\n");
    s.push('\n');
    s
}
