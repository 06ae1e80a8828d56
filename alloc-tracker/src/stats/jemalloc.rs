//! jemalloc's own process-wide figures, read through MIBs cached once.

use once_cell::sync::OnceCell;
use tikv_jemalloc_ctl::{epoch, epoch_mib, stats};

use crate::hot::thread_state;

/// jemalloc's process-wide statistics (`stats.*` after advancing `epoch`).
///
/// `allocated` counts every byte jemalloc handed out, ours and anyone
/// else's; compare it with [`Snapshot::tracked`](crate::Snapshot::tracked)'s
/// `live_usable_bytes` to see untracked bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JemallocStats {
    /// `stats.allocated`: bytes in live allocations (usable sizes).
    pub allocated: u64,
    /// `stats.active`: bytes in active pages.
    pub active: u64,
    /// `stats.resident`: bytes in physically resident pages.
    pub resident: u64,
    /// `stats.mapped`: bytes in active extents mapped by the allocator.
    pub mapped: u64,
    /// `stats.retained`: bytes in virtual memory retained for reuse.
    pub retained: u64,
    /// `stats.metadata`: bytes of jemalloc's own metadata.
    pub metadata: u64,
    /// `stats.arenas.<all>.tcache_bytes`: free blocks held in thread
    /// caches, ready for reuse (the threads' own tcaches and the tracker's
    /// per-(thread, scope) tcaches). jemalloc counts them in `allocated`.
    pub tcache_bytes: u64,
}

struct Mibs {
    epoch: epoch_mib,
    allocated: stats::allocated_mib,
    active: stats::active_mib,
    resident: stats::resident_mib,
    mapped: stats::mapped_mib,
    retained: stats::retained_mib,
    metadata: stats::metadata_mib,
}

fn mibs() -> Result<&'static Mibs, tikv_jemalloc_ctl::Error> {
    static MIBS: OnceCell<Mibs> = OnceCell::new();
    MIBS.get_or_try_init(|| {
        Ok(Mibs {
            epoch: epoch::mib()?,
            allocated: stats::allocated::mib()?,
            active: stats::active::mib()?,
            resident: stats::resident::mib()?,
            mapped: stats::mapped::mib()?,
            retained: stats::retained::mib()?,
            metadata: stats::metadata::mib()?,
        })
    })
}

impl JemallocStats {
    /// Advances jemalloc's statistics epoch and reads the figures.
    ///
    /// # Errors
    /// jemalloc's `mallctl` error if statistics are unavailable.
    pub fn read() -> Result<JemallocStats, tikv_jemalloc_ctl::Error> {
        thread_state::internal(|| {
            let m = mibs()?;
            m.epoch.advance()?;
            let tcache_bytes = crate::allocator::jemalloc_cached_bytes().unwrap_or(0);
            Ok(JemallocStats {
                tcache_bytes,
                allocated: m.allocated.read()? as u64,
                active: m.active.read()? as u64,
                resident: m.resident.read()? as u64,
                mapped: m.mapped.read()? as u64,
                retained: m.retained.read()? as u64,
                metadata: m.metadata.read()? as u64,
            })
        })
    }
}
