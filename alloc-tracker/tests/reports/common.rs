//! What the modules of this test binary share.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Tests that change a process-wide setting (the sampling interval, the
/// stack unwinder, the symboliser), read process-wide counters (stack
/// captures) or check every scope of the process take the write side;
/// every other test takes the read side.
static PROCESS: RwLock<()> = RwLock::new(());

/// Held for the whole of a test that leaves process-wide settings as they
/// are and reads no process-wide figure.
pub(crate) fn shared() -> RwLockReadGuard<'static, ()> {
    PROCESS.read().unwrap_or_else(|e| e.into_inner())
}

/// Held for the whole of a test that changes a process-wide setting or
/// reads a process-wide figure: no other test of the binary runs meanwhile.
pub(crate) fn alone() -> RwLockWriteGuard<'static, ()> {
    PROCESS.write().unwrap_or_else(|e| e.into_inner())
}
