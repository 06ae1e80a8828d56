//! Checkpoint GC: compacts a chain of base + incrementals into one
//! compacted file, and checks the file-leak invariant.
//!
//! GC runs at the end of a run, after the run's own publication, when the
//! chain holds more than `max_incrementals` incrementals, in the run's
//! `checkpoint#n/gc` scope. It reads every file of the chain, merges them
//! into one image, encodes and writes it, then publishes a manifest whose
//! chain is that one compacted file.
//!
//! # GC and the checkpoint budget
//!
//! GC is under the run's checkpoint budget (the `gc` scope is below the
//! run's `checkpoint#n`), with its own safe points: after reading each
//! file of the chain (so a chain too large is not read whole), after the
//! merge, after encoding (before the file is written) and before
//! publishing the compacted checkpoint. A check counts only the
//! crossings since GC began (the run's earlier checks have passed).
//!
//! Over the budget, GC is *deferred*, not the run failed: the run's own
//! publication already stands, and undoing it is not possible without loss
//! (the WAL segments it covers are truncated and its memtables folded into
//! the base once it is published). So GC alone is abandoned: the
//! compacted file, if written, is removed; the manifest and the old chain
//! are unchanged; the run's report says so
//! ([`CheckpointReport::gc_deferred`](super::CheckpointReport::gc_deferred)),
//! the event is counted (`DbStats::gcs_deferred_over_budget`), and the next
//! run, which finds the chain still too long, retries GC. A budget that
//! never admits a GC lets the chain grow by one file per run (recovery
//! reads more files) until the budget is raised: memory is bounded, the
//! chain length is not.
//!
//! Invariant (checked after every run, GC included): the checkpoint files
//! on disk are exactly the files the manifest registers, and the chain is
//! at most one base (global or compacted) followed by at most
//! `max_incrementals` incrementals in LSN order, unless GC is pending
//! (deferred by the budget, or the chain was found longer at open), when
//! the length bound waits for the next GC ([`allowed_incrementals`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::budget;
use super::fault::CrashPoint;
use super::file::{decode_data_file, is_checkpoint_file, EntryRef, FileKind, FileMeta, Manifest};
use super::CheckpointRun;
use crate::db::CkptState;
use crate::error::{CheckpointError, FileLeak, StorageError};
use crate::scopes::{ENGINE, ERRORS};
use crate::storage::Storage;

/// What GC did in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Files merged into the compacted file.
    pub merged_files: usize,
    /// Name of the compacted file.
    pub compacted: String,
}

/// A GC abandoned over the checkpoint budget (see the module docs of
/// `checkpoint::gc`): nothing it wrote was kept, the chain is unchanged,
/// and the next run retries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcDeferred {
    /// Files in the chain GC would have merged (still registered).
    pub chain_files: usize,
    /// The checkpoint budget, in bytes of the run's own allocations.
    pub budget_bytes: u64,
    /// Live bytes of the run's scope (with children, above what an earlier
    /// leaking run left) at the check.
    pub live_bytes: u64,
    /// Whether the scope went over the budget and back under between two
    /// checks (then `live_bytes` may be below the budget).
    pub crossed: bool,
    /// The safe point: `while reading the chain`, `after merge`,
    /// `after encode` or `before publish`.
    pub at: &'static str,
}

/// Reads every file of the chain and returns their buffers, calling
/// `after_each` after each file (a budget safe point: reading stops at its
/// first error).
pub(crate) fn read_chain(
    storage: &dyn Storage,
    dir: &Path,
    manifest: &Manifest,
    mut after_each: impl FnMut() -> Result<(), CheckpointError>,
) -> Result<Vec<Vec<u8>>, CheckpointError> {
    let mut buffers = Vec::with_capacity(manifest.chain.len());
    for m in &manifest.chain {
        let data =
            storage
                .read(&dir.join(m.name()))
                .map_err(|source| CheckpointError::Cleanup {
                    published_lsn: manifest.checkpoint_lsn,
                    source,
                })?;
        buffers.push(data);
        after_each()?;
    }
    Ok(buffers)
}

/// Merges the chain's buffers (read by [`read_chain`]) into one full image,
/// without tombstones, in key order.
pub(crate) fn merge_chain<'a>(
    dir: &Path,
    manifest: &Manifest,
    buffers: &'a [Vec<u8>],
) -> Result<Vec<EntryRef<'a>>, CheckpointError> {
    let mut merged: BTreeMap<&'a [u8], Option<&'a [u8]>> = BTreeMap::new();
    for (meta, data) in manifest.chain.iter().zip(buffers) {
        let path = dir.join(meta.name());
        decode_data_file(&path, data, meta, |k, v| {
            merged.insert(k, v);
        })
        .map_err(CheckpointError::Corrupt)?;
    }
    Ok(merged.into_iter().filter(|(_, v)| v.is_some()).collect())
}

/// Number of incrementals registered.
pub(crate) fn incrementals(manifest: &Manifest) -> usize {
    manifest.chain.iter().filter(|m| !m.kind.is_base()).count()
}

/// The invariant's bound on the number of incrementals: `max_incrementals`,
/// or none while GC is pending (deferred over the checkpoint budget).
pub(crate) fn allowed_incrementals(state: &CkptState, max_incrementals: usize) -> usize {
    if state.gc_pending {
        usize::MAX
    } else {
        max_incrementals
    }
}

/// Checks the file-leak invariant against what is on disk.
///
/// # Errors
/// The I/O error of listing the directory.
pub(crate) fn check_invariant(
    storage: &dyn Storage,
    dir: &Path,
    manifest: &Manifest,
    max_incrementals: usize,
) -> Result<Result<(), FileLeak>, StorageError> {
    let on_disk: BTreeSet<String> = storage
        .list(dir)?
        .into_iter()
        .filter(|n| is_checkpoint_file(n))
        .collect();
    let registered: BTreeSet<String> = manifest.chain.iter().map(|m| m.name()).collect();
    let bad_chain = manifest.chain_problem().is_some() || incrementals(manifest) > max_incrementals;
    if on_disk == registered && !bad_chain {
        return Ok(Ok(()));
    }
    // The violation outlives the run: build it in the errors scope.
    Ok(Err(crate::scopes::within(&ERRORS, || FileLeak {
        unregistered: on_disk.difference(&registered).cloned().collect(),
        missing: registered.difference(&on_disk).cloned().collect(),
        bad_chain,
    })))
}

// === impl CheckpointRun (GC) ===

impl CheckpointRun<'_> {
    /// Runs GC, in the run's `gc` scope, if the chain holds more than
    /// `max_incrementals` incrementals. Over the checkpoint budget, GC is
    /// deferred and the run goes on: see the module docs.
    ///
    /// # Errors
    /// GC's own failures (I/O, a corrupt chain file), as before budgets.
    pub(super) fn gc_if_due(&mut self) -> Result<(), CheckpointError> {
        let inner = self.inner;
        if incrementals(&self.state.manifest) <= inner.opts.max_incrementals {
            self.state.gc_pending = false;
            return Ok(());
        }
        // GC's checks count the crossings from here on: the run's own
        // have been checked before publication.
        self.budget = self.budget.map(budget::RunBudget::since_now);
        match crate::scopes::within(inner.ckpt_scopes.gc, || self.gc())? {
            None => self.state.gc_pending = false,
            Some(deferred) => {
                self.state.gc_pending = true;
                inner
                    .mem
                    .gcs_deferred
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(
                    at = deferred.at,
                    live_bytes = deferred.live_bytes,
                    budget_bytes = deferred.budget_bytes,
                    chain_files = deferred.chain_files,
                    "checkpoint GC over the checkpoint budget: deferred to the next run"
                );
                self.report(|r| r.gc_deferred = Some(deferred));
            }
        }
        Ok(())
    }

    /// Compacts the chain into one file. `Ok(Some(_))`: deferred over the
    /// checkpoint budget, everything it wrote removed.
    fn gc(&mut self) -> Result<Option<GcDeferred>, CheckpointError> {
        let inner = self.inner;
        let old = crate::scopes::within(&ENGINE, || self.state.manifest.clone());
        let meta = FileMeta {
            kind: FileKind::Compacted,
            id: old.next_file_id,
            lsn_start: 0,
            lsn_end: old.checkpoint_lsn,
        };
        let merged_files = old.chain.len();
        let published_lsn = old.checkpoint_lsn;
        // Safe points after each file read: a chain too large for the
        // budget is not read whole (it grows by a file at every run while
        // GC is deferred).
        let written = read_chain(&*inner.storage, &inner.dir, &old, || {
            self.check_budget("while reading the chain")
        })
        .and_then(|buffers| {
            let r = merge_chain(&inner.dir, &old, &buffers).and_then(|entries| {
                // Safe point: merged, not encoded. The last one,
                // `after encode`, is in `write_data_file`.
                self.check_budget("after merge")?;
                let r = self.write_data_file(&meta, &entries);
                drop(entries);
                r
            });
            drop(buffers);
            r
        });
        // Safe point: the compacted file is durable, not registered.
        let written = written.and_then(|_| {
            inner.faults.crash(CrashPoint::AfterGcWrite);
            self.check_budget("before publish")
        });
        match written {
            Ok(()) => {}
            Err(CheckpointError::OverBudget {
                budget_bytes,
                live_bytes,
                crossed,
                at,
            }) => {
                // Abandoned: the compacted file (or its temp) goes, the
                // manifest and the chain stay.
                self.rollback();
                return Ok(Some(GcDeferred {
                    chain_files: merged_files,
                    budget_bytes,
                    live_bytes,
                    crossed,
                    at,
                }));
            }
            Err(e) => {
                self.rollback();
                return Err(match e {
                    CheckpointError::Storage(source) => CheckpointError::Cleanup {
                        published_lsn,
                        source,
                    },
                    other => other,
                });
            }
        }
        let mut next = old;
        next.generation += 1;
        next.next_file_id = meta.id + 1;
        next.chain.clear();
        crate::scopes::within(&ENGINE, || next.chain.push(meta));
        if let Err(e) = self.publish(next) {
            self.rollback();
            self.phase = super::Phase::Published;
            return Err(CheckpointError::Cleanup {
                published_lsn: self.state.manifest.checkpoint_lsn,
                source: e,
            });
        }
        inner.faults.crash(CrashPoint::AfterGcPublish);
        self.report(|r| {
            r.gc = Some(GcReport {
                merged_files,
                compacted: meta.name(),
            });
            r.files_written.push(meta.name());
        });
        self.cleanup_with_retries().map(|()| None)
    }
}
