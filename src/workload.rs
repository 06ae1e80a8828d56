//! A deterministic workload generator: keys from a fixed key space, mixed
//! value sizes, a share of deletes, several writer threads. The same seed
//! gives the same operations, so tests, the benchmark and the main binary
//! can replay and verify it.

use std::time::{Duration, Instant};

use crate::db::Db;
use crate::error::WriteError;

/// A small, fast, seedable PRNG (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One generated operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkOp {
    /// Put `key` = `value`.
    Put {
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Delete `key`.
    Delete {
        /// Key.
        key: Vec<u8>,
    },
}

/// Parameters of a workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Seed; thread `t` uses `seed + t`.
    pub seed: u64,
    /// Number of distinct keys.
    pub key_space: u64,
    /// Value sizes to mix, picked uniformly (none: empty values).
    pub value_sizes: Vec<usize>,
    /// Deletes per 100 operations.
    pub delete_percent: u64,
    /// Writer threads.
    pub threads: usize,
    /// Operations per thread.
    pub ops_per_thread: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            seed: 1,
            key_space: 10_000,
            value_sizes: vec![16, 100, 1000, 4000],
            delete_percent: 10,
            threads: 2,
            ops_per_thread: 5_000,
        }
    }
}

/// What [`Workload::run`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct WorkloadStats {
    /// Operations applied.
    pub ops: u64,
    /// Value bytes written.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl WorkloadStats {
    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The key for index `i`.
pub fn key(i: u64) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

/// A value of `len` bytes derived from `key` and `version`.
pub fn value(key: &[u8], version: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(crc32fast::hash(key) as u64 ^ version.rotate_left(17));
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

impl Workload {
    /// The operations of thread `thread`, in order.
    pub fn ops(&self, thread: usize) -> impl Iterator<Item = WorkOp> + '_ {
        let mut rng = Rng::new(self.seed.wrapping_add(thread as u64));
        (0..self.ops_per_thread).map(move |n| {
            let k = key(rng.below(self.key_space));
            if rng.below(100) < self.delete_percent {
                WorkOp::Delete { key: k }
            } else {
                let pick = rng.below(self.value_sizes.len() as u64) as usize;
                let len = self.value_sizes.get(pick).copied().unwrap_or(0);
                let v = value(&k, n ^ ((thread as u64) << 48), len);
                WorkOp::Put { key: k, value: v }
            }
        })
    }

    /// Applies the workload to `db` with `threads` writer threads.
    ///
    /// # Errors
    /// The first write error of any thread.
    pub fn run(&self, db: &Db) -> Result<WorkloadStats, WriteError> {
        let start = Instant::now();
        let results: Vec<Result<(u64, u64), WriteError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..self.threads)
                .map(|t| {
                    s.spawn(move || {
                        let (mut ops, mut bytes) = (0, 0);
                        for op in self.ops(t) {
                            match op {
                                WorkOp::Put { key, value } => {
                                    db.put(&key, &value)?;
                                    bytes += value.len() as u64;
                                }
                                WorkOp::Delete { key } => {
                                    db.delete(&key)?;
                                }
                            }
                            ops += 1;
                        }
                        Ok((ops, bytes))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut stats = WorkloadStats::default();
        for r in results {
            let (ops, bytes) = r?;
            stats.ops += ops;
            stats.bytes += bytes;
        }
        stats.elapsed = start.elapsed();
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_ops() {
        let w = Workload {
            ops_per_thread: 50,
            ..Workload::default()
        };
        let a: Vec<_> = w.ops(0).collect();
        let b: Vec<_> = w.ops(0).collect();
        assert_eq!(a, b);
        assert_ne!(a, w.ops(1).collect::<Vec<_>>());
    }

    #[test]
    fn no_value_sizes_means_empty_values() {
        let w = Workload {
            value_sizes: Vec::new(),
            delete_percent: 0,
            ops_per_thread: 10,
            ..Workload::default()
        };
        assert!(w
            .ops(0)
            .all(|op| matches!(op, WorkOp::Put { value, .. } if value.is_empty())));
    }
}
