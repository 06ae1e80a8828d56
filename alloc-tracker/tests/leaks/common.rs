//! What the modules of this test binary share.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Tests that change a process-wide setting (the sampling interval) take
/// the write side; every other test takes the read side, so none of them
/// runs under the changed setting.
static PROCESS: RwLock<()> = RwLock::new(());

/// Held for the whole of a test that leaves process-wide settings as they
/// are.
pub(crate) fn shared() -> RwLockReadGuard<'static, ()> {
    PROCESS.read().unwrap_or_else(|e| e.into_inner())
}

/// Held for the whole of a test that changes a process-wide setting: no
/// other test of the binary runs meanwhile.
pub(crate) fn alone() -> RwLockWriteGuard<'static, ()> {
    PROCESS.write().unwrap_or_else(|e| e.into_inner())
}

/// The name libtest gives the test `test` of the module `module` (its
/// `module_path!()`): the module's path without the crate's name. A filter
/// for the child processes that run one of this binary's tests again.
pub(crate) fn test_name(module: &str, test: &str) -> String {
    let path = module.split_once("::").map_or(module, |(_, path)| path);
    format!("{path}::{test}")
}
