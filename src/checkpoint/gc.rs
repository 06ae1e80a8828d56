//! Checkpoint GC: compacts a chain of base + incrementals into one
//! compacted file, and checks the file-leak invariant.
//!
//! Invariant (checked after every run, GC included): the checkpoint files
//! on disk are exactly the files the manifest registers, and the chain is
//! at most one base (global or compacted) followed by at most
//! `max_incrementals` incrementals in LSN order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::file::{decode_data_file, is_checkpoint_file, EntryRef, Manifest};
use crate::error::{CheckpointError, FileLeak, StorageError};
use crate::scopes::ERRORS;
use crate::storage::Storage;

/// Reads every file of the chain (validated) and returns their buffers.
pub(crate) fn read_chain(
    storage: &dyn Storage,
    dir: &Path,
    manifest: &Manifest,
) -> Result<Vec<Vec<u8>>, StorageError> {
    manifest
        .chain
        .iter()
        .map(|m| storage.read(&dir.join(m.name())))
        .collect()
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
