//! What the modules of this test binary share.

use std::sync::{Mutex, MutexGuard};

/// Runs the caller's test alone in the process, whatever its module: held
/// for the whole test. A test that failed while holding it poisons nothing
/// for the next one.
pub(crate) fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
