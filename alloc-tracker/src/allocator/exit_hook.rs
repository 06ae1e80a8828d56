//! Runs one function when the process exits normally, through
//! `libc::atexit`.
//!
//! The hook runs when `main` returns or `std::process::exit` is called, on
//! the exiting thread, after that thread's thread-local destructors (glibc
//! runs `__call_tls_dtors` before the `atexit` list); the tracker's own
//! thread-local has no destructor, so the hook can still allocate and be
//! counted. It does not run on `abort`, on a fatal signal or after
//! `_exit`.

use std::io::Write as _;
use std::sync::OnceLock;

/// The function to run at exit; set once.
static HOOK: OnceLock<fn()> = OnceLock::new();

/// The `atexit` handler. It must never unwind into C: a panic of the hook
/// is caught and reported on stderr (and with `panic = "abort"` the process
/// aborts, as any panic would).
extern "C" fn run_hook() {
    let Some(&hook) = HOOK.get() else { return };
    if let Err(payload) = std::panic::catch_unwind(hook) {
        let _ = writeln!(
            std::io::stderr(),
            "alloc-tracker: the exit-time report dump panicked"
        );
        // Dropping the payload could panic again; it is reclaimed by the
        // exit anyway.
        std::mem::forget(payload);
    }
}

/// Arranges for `hook` to run once at normal process exit. Returns `false`
/// if a hook was already registered (it stays the one that runs) or
/// `atexit` refused.
pub(crate) fn at_exit(hook: fn()) -> bool {
    if HOOK.set(hook).is_err() {
        return false;
    }
    // SAFETY: `atexit` only stores the pointer; `run_hook` is an
    // `extern "C" fn()` with no arguments, as `atexit` requires, valid for
    // the life of the process, and it never unwinds (it catches panics).
    unsafe { libc::atexit(run_hook) == 0 }
}
