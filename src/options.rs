//! [`Options`] and its builder. `build()` validates; bad options are a typed
//! [`OptionsError`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::OptionsError;
use crate::storage::{FileStorage, Storage};

/// When the WAL is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Every `put`/`delete` is fsynced before it returns.
    EveryWrite,
    /// Group commit: fsync once `max_batch` records are unsynced or the
    /// oldest unsynced record is `max_delay` old (checked on each write and
    /// by the background runner). A write is durable once
    /// [`Db::durable_lsn`](crate::Db::durable_lsn) reaches its LSN, or after
    /// [`Db::sync`](crate::Db::sync).
    GroupCommit {
        /// Records per fsync.
        max_batch: u32,
        /// Longest time a record stays unsynced (while the runner runs).
        max_delay: Duration,
    },
    /// Never fsync the WAL except on [`Db::sync`](crate::Db::sync),
    /// checkpoints and close.
    None,
}

/// What a checkpoint run does when its allocation scope did not drain, or
/// when the file-leak invariant is broken after GC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakMode {
    /// The run fails with [`CheckpointError::Leak`](crate::CheckpointError::Leak)
    /// or [`CheckpointError::FileLeak`](crate::CheckpointError::FileLeak).
    Strict,
    /// The violation is logged with `tracing` (top sites), counted in
    /// [`DbStats`](crate::DbStats), and the run succeeds.
    Production,
}

/// Whether the background checkpoint runner thread is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// Start it: it checkpoints on `checkpoint_interval` and when dirty
    /// bytes exceed `checkpoint_dirty_bytes`.
    Background,
    /// Only [`Db::checkpoint_now`](crate::Db::checkpoint_now) runs checkpoints.
    Manual,
}

/// Engine options. Make them with [`Options::builder`].
#[derive(Clone)]
pub struct Options {
    pub(crate) sync: SyncPolicy,
    pub(crate) wal_segment_bytes: u64,
    pub(crate) runner: Runner,
    pub(crate) checkpoint_interval: Duration,
    pub(crate) checkpoint_dirty_bytes: u64,
    pub(crate) global_every: u32,
    pub(crate) max_incrementals: usize,
    pub(crate) leak_mode: LeakMode,
    pub(crate) leak_quiescence: Duration,
    pub(crate) record_leak_sites: bool,
    pub(crate) write_threads: usize,
    pub(crate) max_key_len: usize,
    pub(crate) max_value_len: usize,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) faults: Arc<crate::checkpoint::fault::Faults>,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("sync", &self.sync)
            .field("wal_segment_bytes", &self.wal_segment_bytes)
            .field("runner", &self.runner)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("checkpoint_dirty_bytes", &self.checkpoint_dirty_bytes)
            .field("global_every", &self.global_every)
            .field("max_incrementals", &self.max_incrementals)
            .field("leak_mode", &self.leak_mode)
            .field("leak_quiescence", &self.leak_quiescence)
            .field("record_leak_sites", &self.record_leak_sites)
            .field("write_threads", &self.write_threads)
            .field("max_key_len", &self.max_key_len)
            .field("max_value_len", &self.max_value_len)
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sync: SyncPolicy::GroupCommit {
                max_batch: 64,
                max_delay: Duration::from_millis(5),
            },
            wal_segment_bytes: 8 << 20,
            runner: Runner::Background,
            checkpoint_interval: Duration::from_secs(30),
            checkpoint_dirty_bytes: 16 << 20,
            global_every: 8,
            max_incrementals: 4,
            leak_mode: if cfg!(debug_assertions) {
                LeakMode::Strict
            } else {
                LeakMode::Production
            },
            leak_quiescence: Duration::from_millis(200),
            record_leak_sites: true,
            write_threads: 2,
            max_key_len: 4096,
            max_value_len: 16 << 20,
            storage: Arc::new(FileStorage::new()),
            faults: Arc::default(),
        }
    }
}

impl Options {
    /// A builder starting from the defaults: group commit (64 records or
    /// 5 ms), 8 MiB WAL segments, background runner every 30 s or 16 MiB of
    /// dirty data, every 8th automatic checkpoint global, GC beyond 4
    /// incrementals, strict leak mode in debug builds and production mode
    /// in release builds.
    pub fn builder() -> OptionsBuilder {
        OptionsBuilder {
            opts: Options::default(),
        }
    }

    /// The fault injector shared by every `Db` opened with these options.
    #[doc(hidden)]
    pub fn faults(&self) -> &Arc<crate::checkpoint::fault::Faults> {
        &self.faults
    }

    /// The leak mode.
    pub fn leak_mode(&self) -> LeakMode {
        self.leak_mode
    }
}

/// Builds validated [`Options`].
#[derive(Debug, Clone)]
pub struct OptionsBuilder {
    opts: Options,
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.opts.$name = value;
            self
        }
    };
}

impl OptionsBuilder {
    setter!(
        /// WAL sync policy.
        sync: SyncPolicy
    );
    setter!(
        /// A WAL segment is rotated once it exceeds this many bytes (>= 4 KiB).
        wal_segment_bytes: u64
    );
    setter!(
        /// Whether the background runner thread is started.
        runner: Runner
    );
    setter!(
        /// Background checkpoint interval (>= 1 ms).
        checkpoint_interval: Duration
    );
    setter!(
        /// Background checkpoint once this many bytes are dirty (>= 1).
        checkpoint_dirty_bytes: u64
    );
    setter!(
        /// Every n-th background checkpoint is global (>= 1; 1 = all global).
        global_every: u32
    );
    setter!(
        /// GC compacts the incrementals once more than this many are
        /// registered (>= 1).
        max_incrementals: usize
    );
    setter!(
        /// Strict or production leak handling.
        leak_mode: LeakMode
    );
    setter!(
        /// How long the leak check waits for the checkpoint scope to drain
        /// (<= 10 s).
        leak_quiescence: Duration
    );
    setter!(
        /// Whether a checkpoint run's leak check records the call stack of
        /// every allocation the run makes (default: on). On, a run that
        /// leaks is reported with the call sites still holding its bytes;
        /// off, with counts only, and the run captures no stack per
        /// allocation (in the main job, stack capture during runs was most
        /// of the tracker's CPU cost: see `PROFILE.md`). Either way every
        /// run is checked and judged by the same counts.
        record_leak_sites: bool
    );
    setter!(
        /// Helper threads encoding checkpoint data (1..=16).
        write_threads: usize
    );
    setter!(
        /// Longest key in bytes (1..=65535).
        max_key_len: usize
    );
    setter!(
        /// Longest value in bytes (<= 1 GiB).
        max_value_len: usize
    );
    setter!(
        /// The storage all I/O goes through.
        storage: Arc<dyn Storage>
    );

    /// Fault injection: the planted leak always, I/O faults and crash points
    /// with the `fault-injection` feature.
    #[doc(hidden)]
    pub fn faults(mut self, faults: Arc<crate::checkpoint::fault::Faults>) -> Self {
        self.opts.faults = faults;
        self
    }

    /// Validates and returns the options.
    ///
    /// # Errors
    /// [`OptionsError`] naming the first invalid option.
    pub fn build(self) -> Result<Options, OptionsError> {
        let o = &self.opts;
        let range = |name, value: u64, ok: bool, expected| {
            if ok {
                Ok(())
            } else {
                Err(OptionsError::OutOfRange {
                    name,
                    value,
                    expected,
                })
            }
        };
        range(
            "wal_segment_bytes",
            o.wal_segment_bytes,
            (4096..=1 << 32).contains(&o.wal_segment_bytes),
            "4 KiB..=4 GiB",
        )?;
        let ms = o.checkpoint_interval.as_millis() as u64;
        range("checkpoint_interval", ms, ms >= 1, ">= 1 ms")?;
        range(
            "checkpoint_dirty_bytes",
            o.checkpoint_dirty_bytes,
            o.checkpoint_dirty_bytes >= 1,
            ">= 1",
        )?;
        range(
            "global_every",
            o.global_every.into(),
            o.global_every >= 1,
            ">= 1",
        )?;
        range(
            "max_incrementals",
            o.max_incrementals as u64,
            o.max_incrementals >= 1,
            ">= 1",
        )?;
        let q = o.leak_quiescence.as_millis() as u64;
        range("leak_quiescence", q, q <= 10_000, "<= 10 s")?;
        range(
            "write_threads",
            o.write_threads as u64,
            (1..=16).contains(&o.write_threads),
            "1..=16",
        )?;
        range(
            "max_key_len",
            o.max_key_len as u64,
            (1..=65535).contains(&o.max_key_len),
            "1..=65535",
        )?;
        range(
            "max_value_len",
            o.max_value_len as u64,
            o.max_value_len <= 1 << 30,
            "<= 1 GiB",
        )?;
        if let SyncPolicy::GroupCommit {
            max_batch,
            max_delay,
        } = o.sync
        {
            range("sync.max_batch", max_batch.into(), max_batch >= 1, ">= 1")?;
            if max_delay.is_zero() {
                return Err(OptionsError::Conflict(
                    "group commit with a zero delay; use SyncPolicy::EveryWrite",
                ));
            }
        }
        Ok(self.opts)
    }
}
