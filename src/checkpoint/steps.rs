//! The steps of a run after its fence: collect, encode and write the data
//! file, publish the manifest, move the checkpointed memtables into the
//! base table, and the idempotent cleanup after publication (with GC and
//! the file-leak invariant at the end). Each step runs in its phase scope.

use std::sync::Arc;

use scope_alloc_tracker::ScopeId;

use super::fault::{self, CrashPoint, FailPoint};
use super::file::{self, EntryRef, FileKind, FileMeta, Manifest, MANIFEST};
use super::{gc, global, incremental, CheckpointKind, CheckpointRun, Phase};
use crate::db::Inner;
use crate::error::{CheckpointError, StorageError};
use crate::memtable::Memtable;
use crate::scopes::ENGINE;

impl CheckpointRun<'_> {
    /// Everything between the fence and the leak check; the caller rolls
    /// back on an error before publication.
    pub(super) fn execute(&mut self) -> Result<(), CheckpointError> {
        let inner = self.inner;
        if self.state.cleanup_pending {
            // Best effort: if it fails again it stays pending, and the
            // cleanup after this run's publication retries it.
            if let Err(e) = self.cleanup() {
                tracing::warn!(error = %e, "pending checkpoint cleanup failed; will retry");
            }
        }
        let manifest_lsn = self.state.manifest.checkpoint_lsn;
        let chain_is_one_base =
            matches!(self.state.manifest.chain.as_slice(), [m] if m.kind.is_base());
        let nothing_new = self.frozen.is_empty() && self.fence <= manifest_lsn;
        let (lsn_start, lsn_end) = match self.kind {
            CheckpointKind::Incremental => (manifest_lsn + 1, self.fence.max(manifest_lsn)),
            CheckpointKind::Global => (0, self.fence.max(manifest_lsn)),
        };
        self.report(|r| {
            r.lsn_start = lsn_start;
            r.lsn_end = lsn_end;
        });
        let skip = match self.kind {
            CheckpointKind::Incremental => nothing_new,
            CheckpointKind::Global => {
                nothing_new
                    && (chain_is_one_base || self.state.manifest.chain.is_empty() && lsn_end == 0)
            }
        };
        if !skip {
            let meta = FileMeta {
                kind: match self.kind {
                    CheckpointKind::Incremental => FileKind::Incremental,
                    CheckpointKind::Global => FileKind::Global,
                },
                id: self.state.manifest.next_file_id,
                lsn_start,
                lsn_end,
            };
            let frozen = std::mem::take(&mut self.frozen);
            let base = self.base.take();
            let written = {
                let entries = crate::scopes::within(self.inner.ckpt_scopes.collect, || {
                    match (self.kind, &base) {
                        (CheckpointKind::Global, Some(b)) => global::collect(b, &frozen),
                        _ => incremental::collect(&frozen),
                    }
                });
                self.phase = Phase::Collected;
                inner.faults.crash(CrashPoint::AfterCollect);
                // Safe point: the entries are collected, nothing written.
                let r = self.check_budget("after collect").and_then(|()| {
                    crate::scopes::within(self.inner.ckpt_scopes.write, || {
                        self.write_data_file(&meta, &entries)
                    })
                });
                drop(entries);
                r
            };
            let consumed = frozen.len();
            drop(frozen);
            drop(base);
            let bytes = written?;
            self.phase = Phase::Written;
            // Safe point: the last before publication (the crossing count
            // catches a peak while encoding that has been freed since).
            self.check_budget("before publish")?;
            let mut next = crate::scopes::within(&ENGINE, || self.state.manifest.clone());
            next.generation += 1;
            next.checkpoint_lsn = lsn_end;
            next.next_file_id = meta.id + 1;
            match self.kind {
                CheckpointKind::Incremental => {
                    crate::scopes::within(&ENGINE, || next.chain.push(meta))
                }
                CheckpointKind::Global => {
                    next.chain.clear();
                    crate::scopes::within(&ENGINE, || next.chain.push(meta));
                }
            }
            crate::scopes::within(self.inner.ckpt_scopes.publish, || self.publish(next))?;
            self.report(|r| {
                r.empty = false;
                r.entries = bytes.1;
                r.bytes_written += bytes.0;
                r.files_written.push(meta.name());
            });
            self.apply_to_memory(consumed);
            self.cleanup_with_retries()?;
        } else {
            self.phase = Phase::Published;
        }
        self.gc_if_due()?;
        let verdict = gc::check_invariant(
            &*inner.storage,
            &inner.dir,
            &self.state.manifest,
            gc::allowed_incrementals(&self.state, inner.opts.max_incrementals),
        )?;
        if let Err(v) = verdict {
            inner.stats.record_file_leak();
            // Deleting unregistered files is part of cleanup: retry it.
            self.state.cleanup_pending = true;
            return Err(CheckpointError::FileLeak(v));
        }
        Ok(())
    }

    /// A budget safe point: fails if the run's scope is, or went, over the
    /// checkpoint budget.
    pub(super) fn check_budget(&self, at: &'static str) -> Result<(), CheckpointError> {
        match &self.budget {
            Some(b) => b.check(at),
            None => Ok(()),
        }
    }

    /// Writes `entries` to a temp file, fsyncs, renames it to its final
    /// name and fsyncs the directory. Returns (bytes, entries). A budget
    /// safe point once the batches are encoded, before anything is written
    /// (`after encode`).
    pub(super) fn write_data_file(
        &mut self,
        meta: &FileMeta,
        entries: &[EntryRef<'_>],
    ) -> Result<(u64, u64), CheckpointError> {
        let inner = self.inner;
        let storage = &*inner.storage;
        let tmp = inner.dir.join(file::data_tmp_name(meta.id));
        let dst = inner.dir.join(meta.name());
        self.unpublished.push(tmp.clone());
        self.unpublished.push(dst.clone());
        inner.faults.fail(FailPoint::DataWrite, &tmp)?;
        storage.create(&tmp)?;
        let batches = encode_parallel(inner, entries);
        self.check_budget("after encode")?;
        let mut crc = crc32fast::Hasher::new();
        let mut bytes = (file::HEADER_LEN + file::FOOTER_LEN) as u64;
        storage.append(&tmp, &file::encode_header(meta, entries.len() as u64))?;
        for b in &batches {
            crc.update(b);
            storage.append(&tmp, b)?;
            bytes += b.len() as u64;
        }
        drop(batches);
        storage.append(&tmp, &file::encode_footer(crc.finalize()))?;
        inner.faults.crash(CrashPoint::AfterDataWrite);
        storage.sync(&tmp)?;
        inner.faults.crash(CrashPoint::AfterDataSync);
        storage.rename(&tmp, &dst)?;
        storage.sync_dir(&inner.dir)?;
        inner.faults.crash(CrashPoint::AfterDataRename);
        Ok((bytes, entries.len() as u64))
    }

    /// Writes `MANIFEST.tmp`, fsyncs, renames it over `MANIFEST`. Once the
    /// rename returned, the run is published.
    pub(super) fn publish(&mut self, next: Manifest) -> Result<(), StorageError> {
        let inner = self.inner;
        let tmp = file::write_manifest_tmp(&*inner.storage, &inner.dir, &next)?;
        inner.faults.crash(CrashPoint::AfterManifestTemp);
        inner.faults.fail(FailPoint::ManifestPublish, &tmp)?;
        inner.storage.rename(&tmp, &inner.dir.join(MANIFEST))?;
        // Published: the files this run wrote are registered now.
        self.phase = Phase::Published;
        self.unpublished.clear();
        self.state.manifest = next;
        self.state.cleanup_pending = true;
        inner.faults.crash(CrashPoint::AfterManifestRename);
        Ok(())
    }

    /// Moves the `consumed` oldest frozen memtables into the base table.
    fn apply_to_memory(&mut self, consumed: usize) {
        let mut st = self.inner.state.write().unwrap_or_else(|e| e.into_inner());
        let st = &mut *st;
        crate::scopes::within(self.inner.mem.memtable_scope(), || {
            let n = consumed.min(st.frozen.len());
            let done: Vec<Arc<Memtable>> = st.frozen.drain(..n).collect();
            let base = Arc::make_mut(&mut st.base);
            for m in done {
                match Arc::try_unwrap(m) {
                    Ok(m) => {
                        for (k, e) in m.into_entries() {
                            match e.value {
                                Some(v) => base.insert(k, v),
                                None => base.remove(&k),
                            };
                        }
                    }
                    Err(m) => {
                        for (k, e) in m.iter() {
                            match &e.value {
                                Some(v) => base.insert(k.clone(), v.clone()),
                                None => base.remove(k),
                            };
                        }
                    }
                }
            }
        });
    }

    pub(super) fn cleanup_with_retries(&mut self) -> Result<(), CheckpointError> {
        let mut attempt = 0;
        loop {
            match self.cleanup() {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= 2 => {
                    return Err(CheckpointError::Cleanup {
                        published_lsn: self.state.manifest.checkpoint_lsn,
                        source: e,
                    })
                }
                Err(_) => attempt += 1,
            }
        }
    }

    /// The idempotent steps after publication: make the rename durable,
    /// truncate the WAL, delete files the manifest does not register.
    fn cleanup(&mut self) -> Result<(), StorageError> {
        let inner = self.inner;
        let storage = &*inner.storage;
        storage.sync_dir(&inner.dir)?;
        inner.faults.crash(CrashPoint::AfterPublish);
        inner.faults.fail(FailPoint::WalTruncate, &inner.dir)?;
        let covered = inner
            .wal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .covered_segments(self.state.manifest.checkpoint_lsn);
        for seg in &covered {
            storage.remove(seg)?;
            inner
                .wal
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .forget_segments(std::slice::from_ref(seg));
        }
        if !covered.is_empty() {
            storage.sync_dir(&inner.dir)?;
        }
        drop(covered);
        inner.faults.crash(CrashPoint::AfterWalTruncate);
        if !inner.faults.keep_stale() {
            let registered: Vec<String> = self
                .state
                .manifest
                .chain
                .iter()
                .map(FileMeta::name)
                .collect();
            let mut removed = false;
            for name in storage.list(&inner.dir)? {
                if file::is_checkpoint_file(&name) && !registered.contains(&name) {
                    storage.remove(&inner.dir.join(&name))?;
                    removed = true;
                }
            }
            if removed {
                storage.sync_dir(&inner.dir)?;
            }
        }
        inner.faults.crash(CrashPoint::AfterStaleDelete);
        self.state.cleanup_pending = false;
        Ok(())
    }
}

/// Encodes `entries` in batches, on `write_threads` helper threads when
/// there are many; helpers run in the caller's scope through
/// [`ScopeId::bind`].
fn encode_parallel(inner: &Inner, entries: &[EntryRef<'_>]) -> Vec<Vec<u8>> {
    const MIN_BATCH: usize = 512;
    let threads = inner.opts.write_threads;
    let leak = inner.faults.leak();
    if threads <= 1 || entries.len() < 2 * MIN_BATCH {
        return vec![encode_one(entries, leak)];
    }
    let per = entries.len().div_ceil(threads).max(MIN_BATCH);
    let scope = ScopeId::current();
    // The threads themselves (their handles, the closures' boxes) are made
    // outside the checkpoint scope: a thread releases its handle in its TLS
    // destructors, possibly after `join` returned, and that late free would
    // look like a leak to a check that has already finished waiting. Only
    // the work, bound to the run's scope, allocates in it.
    crate::scopes::within(&ENGINE, || {
        std::thread::scope(|s| {
            let handles: Vec<_> = entries
                .chunks(per)
                .enumerate()
                .map(|(i, chunk)| s.spawn(scope.bind(move || encode_one(chunk, leak && i == 0))))
                .collect();
            // The results belong to the run again.
            scope.in_scope(|| {
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            })
        })
    })
}

fn encode_one(entries: &[EntryRef<'_>], leak: bool) -> Vec<u8> {
    if leak {
        return fault::encode_batch_leaky(entries);
    }
    file::encode_batch(entries)
}
