//! The data plane: everything the allocator's hot path reads or writes,
//! and nothing it does not.
//!
//! ```text
//!   allocator/ ──reads/writes──► hot/ ◄──writes through its API── scope registry,
//!                                  ▲                               budgets, leak checks
//!                                  └──────────reads──────────────── stats, reports
//! ```
//!
//! - [`ids`]: [`ScopeId`](ids::ScopeId) and the table's capacity.
//! - [`tag`]: the 16 bits stored with a block.
//! - [`thread_state`]: the per-thread state (current scope, counter shard,
//!   re-entrancy flag, sampling countdown).
//! - [`counters`]: per-scope counters sharded per thread.
//! - [`per_scope`]: per-id atomics (parents, kinds, recording counts,
//!   peaks).
//! - [`budget`]: budget arrays and the allocator's budget hooks.
//! - [`switches`]: the one word that says whether anything beyond counting
//!   must run.
//!
//! This layer imports nothing else of the crate (CI's `.ci/import-circles`
//! keeps the import graph free of circles): the allocator is built on it,
//! and the control plane above sets its state through the functions here.
//! Nothing here allocates, and the hot path's functions never lock or
//! panic; the one lock (`budget::SETTING`) serialises budget *changes*.

pub(crate) mod budget;
pub(crate) mod counters;
pub(crate) mod ids;
pub(crate) mod per_scope;
pub(crate) mod switches;
pub(crate) mod tag;
pub(crate) mod thread_state;
