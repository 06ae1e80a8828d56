//! Writing a file so that readers never see it partly written.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Fills a temporary sibling of `path` with `write`, syncs it and renames
/// it over `path`; on any error the temporary is removed and `path` is
/// untouched. The temporary (`<name>.tmp-<pid>-<n>`) is unique per call, so
/// concurrent writers to one path never write or rename each other's.
/// Callers that allocate run it under the re-entrancy guard.
pub(crate) fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut tmp_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    tmp_name.push(format!(".tmp-{}-{n}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut file = io::BufWriter::new(fs::File::create(&tmp)?);
        write(&mut file)?;
        file.flush()?;
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}
