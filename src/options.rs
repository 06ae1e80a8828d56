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
    pub(crate) memtable_budget: u64,
    pub(crate) memtable_ceiling: u64,
    pub(crate) checkpoint_budget: u64,
    pub(crate) flat_scopes: Vec<scope_alloc_tracker::ScopeId>,
    pub(crate) trend_points: usize,
    pub(crate) trend_min_slope_bytes: u64,
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
            .field("memtable_budget", &self.memtable_budget)
            .field("memtable_ceiling", &self.memtable_ceiling)
            .field("checkpoint_budget", &self.checkpoint_budget)
            .field("flat_scopes", &self.flat_scopes)
            .field("trend_points", &self.trend_points)
            .field("trend_min_slope_bytes", &self.trend_min_slope_bytes)
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
            memtable_budget: 0,
            memtable_ceiling: 0,
            checkpoint_budget: 0,
            flat_scopes: Vec::new(),
            trend_points: 6,
            trend_min_slope_bytes: 256,
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
        /// (<= 10 s). With leak sites recorded, a failing check stops
        /// waiting early once a reachability scan finds that nothing holds
        /// its excess any more (nothing could free it).
        leak_quiescence: Duration
    );
    setter!(
        /// Whether a checkpoint run's leak check records the call stack of
        /// every allocation the run makes (default: on). On, a run that
        /// leaks is reported with the call sites still holding its bytes;
        /// off, with counts only, and the run captures no stack per
        /// allocation (what recording costs is measured in the tracker's
        /// `docs/attribution.md`, "Call stacks"). Either way every run is
        /// checked and judged by the same counts.
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

    /// Memory-driven flush: a checkpoint run starts once the `memtable`
    /// scope holds more than `bytes` above the checkpointed base table
    /// (which lives in the same scope and never drains), beside the
    /// write-count, interval and dirty-bytes triggers. The background
    /// runner is woken by the write that crosses it; with
    /// [`Runner::Manual`] the owner polls
    /// [`Db::memtable_over_budget`](crate::Db::memtable_over_budget).
    /// 0 (the default): no budget. Each database has its own instance of
    /// the `memtable` scope ([`Db::memtable_scope`](crate::Db::memtable_scope)),
    /// so the budget counts this database's memtable only.
    pub fn memtable_budget(mut self, bytes: u64) -> Self {
        self.opts.memtable_budget = bytes;
        self
    }

    /// A ceiling above the memtable budget: while the memtable holds more
    /// than `bytes` above the base, each write first waits (at most 1 s)
    /// for a checkpoint run to drain it. Writes are slowed, never failed.
    /// 0 (the default): none. Needs a memtable budget, and `bytes` at
    /// least that budget.
    pub fn memtable_ceiling(mut self, bytes: u64) -> Self {
        self.opts.memtable_ceiling = bytes;
        self
    }

    /// A budget on each checkpoint run's own allocations (the `checkpoint`
    /// scope with its children). A run that goes over it fails at its next
    /// safe point before publication with
    /// [`CheckpointError::OverBudget`](crate::CheckpointError::OverBudget)
    /// and is rolled back; the data stays for the next run. 0 (the
    /// default): none. Change it at run time with
    /// [`Db::set_checkpoint_budget`](crate::Db::set_checkpoint_budget).
    pub fn checkpoint_budget(mut self, bytes: u64) -> Self {
        self.opts.checkpoint_budget = bytes;
        self
    }

    /// Marks `scope` (with its children) as one that should stay flat
    /// across checkpoint runs: in production leak mode the engine watches
    /// it for steady growth after each run, as it does
    /// `ckptdb/checkpoint-results` (see [`trend_points`](Self::trend_points)).
    pub fn watch_flat_scope(mut self, scope: impl Into<scope_alloc_tracker::ScopeId>) -> Self {
        self.opts.flat_scopes.push(scope.into());
        self
    }

    setter!(
        /// How many successive checkpoint runs a watched scope must grow
        /// over to be reported as a leak trend (default 6, >= 2).
        trend_points: usize
    );
    setter!(
        /// The least average growth per run, in bytes, that counts as a
        /// trend (default 256, >= 1).
        trend_min_slope_bytes: u64
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
        if o.memtable_ceiling != 0 {
            if o.memtable_budget == 0 {
                return Err(OptionsError::Conflict(
                    "memtable_ceiling without a memtable_budget",
                ));
            }
            range(
                "memtable_ceiling",
                o.memtable_ceiling,
                o.memtable_ceiling >= o.memtable_budget,
                ">= memtable_budget",
            )?;
        }
        range(
            "trend_points",
            o.trend_points as u64,
            (2..=1024).contains(&o.trend_points),
            "2..=1024",
        )?;
        range(
            "trend_min_slope_bytes",
            o.trend_min_slope_bytes,
            o.trend_min_slope_bytes >= 1,
            ">= 1",
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
