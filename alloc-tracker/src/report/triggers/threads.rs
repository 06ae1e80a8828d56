//! The trigger threads: the periodic one and the SIGUSR1 one, and how each
//! is stopped.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::config::OptionsError;
use super::target::Target;
use crate::hot::thread_state;
use crate::scope::ScopeId;

/// Spawns a tracker thread that runs `work` in the internal scope.
fn spawn_internal(
    name: &str,
    work: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, OptionsError> {
    thread_state::internal(|| {
        thread::Builder::new()
            .name(name.to_string())
            .spawn(move || ScopeId::INTERNAL.in_scope(work))
            .map_err(|_| OptionsError::SpawnFailed)
    })
}

/// A stop flag the periodic thread sleeps on.
#[derive(Debug, Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

/// A running trigger thread and what stops it; stopping is idempotent.
#[derive(Debug)]
pub(super) struct Trigger(Running);

#[derive(Debug)]
enum Running {
    /// The periodic thread: its stop flag and its handle.
    Periodic(Arc<Stop>, Mutex<Option<JoinHandle<()>>>),
    /// The SIGUSR1 thread.
    Signal(Mutex<Option<signal::Stopper>>),
}

impl Trigger {
    /// Stops the thread and waits for it (a dump in progress finishes
    /// first). Does nothing if it was stopped already.
    pub(super) fn stop(&self) {
        match &self.0 {
            Running::Periodic(stop, thread) => {
                *stop.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
                stop.wake.notify_all();
                let thread = thread.lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(t) = thread {
                    let _ = t.join();
                }
            }
            Running::Signal(stopper) => {
                let stopper = stopper
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if let Some(s) = stopper {
                    signal::stop(s);
                }
            }
        }
    }
}

/// Starts a tracker thread that runs `tick` every `every` until stopped.
fn spawn_ticking(
    name: &str,
    every: Duration,
    mut tick: impl FnMut() + Send + 'static,
) -> Result<Trigger, OptionsError> {
    let stop = Arc::new(Stop::default());
    let stop2 = Arc::clone(&stop);
    let thread = spawn_internal(name, move || loop {
        let stopped = stop2.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        let (stopped, _) = stop2
            .wake
            .wait_timeout_while(stopped, every, |s| !*s)
            .unwrap_or_else(PoisonError::into_inner);
        if *stopped {
            return;
        }
        drop(stopped);
        tick();
    })?;
    Ok(Trigger(Running::Periodic(stop, Mutex::new(Some(thread)))))
}

/// Starts the periodic thread: a dump every `every` until stopped.
pub(super) fn spawn_periodic(target: Target, every: Duration) -> Result<Trigger, OptionsError> {
    spawn_ticking("alloc-tracker-dump", every, move || {
        target.dump_logged("periodic")
    })
}

/// How often the peak thread reads the tracked live bytes.
const PEAK_POLL: Duration = Duration::from_millis(100);
/// Below this, a new peak is not worth a dump (start-up).
const PEAK_FLOOR: u64 = 1 << 20;

/// Starts the peak thread: every [`PEAK_POLL`] it reads the tracked live
/// bytes and dumps when they are `growth` above the last peak it dumped
/// (and at least [`PEAK_FLOOR`]).
pub(super) fn spawn_peak(target: Target, growth: f64) -> Result<Trigger, OptionsError> {
    let mut last = 0u64;
    spawn_ticking("alloc-tracker-peak", PEAK_POLL, move || {
        let live = crate::stats::Snapshot::take().tracked.live_bytes;
        if live >= PEAK_FLOOR && live as f64 > last as f64 * (1.0 + growth) {
            last = live;
            target.dump_logged("peak");
        }
    })
}

/// Starts the SIGUSR1 thread.
pub(super) fn spawn_signal(target: Target) -> Result<Trigger, OptionsError> {
    signal::spawn(target).map(|stopper| Trigger(Running::Signal(Mutex::new(Some(stopper)))))
}

#[cfg(all(unix, feature = "signal"))]
mod signal {
    use std::thread::JoinHandle;

    use signal_hook::consts::SIGUSR1;
    use signal_hook::iterator::{Handle, Signals};

    use super::{spawn_internal, OptionsError, Target};

    /// What stops a SIGUSR1 thread.
    pub(super) type Stopper = (Handle, JoinHandle<()>);

    /// Registers SIGUSR1 with signal-hook (its handler only writes to a
    /// self-pipe) and dumps from a thread that reads the pipe.
    pub(super) fn spawn(target: Target) -> Result<Stopper, OptionsError> {
        let mut signals = Signals::new([SIGUSR1]).map_err(|_| OptionsError::SignalUnavailable)?;
        let handle = signals.handle();
        match spawn_internal("alloc-tracker-sigusr1", move || {
            for _ in signals.forever() {
                target.dump_logged("SIGUSR1");
            }
        }) {
            Ok(thread) => Ok((handle, thread)),
            Err(e) => {
                handle.close();
                Err(e)
            }
        }
    }

    pub(super) fn stop((handle, thread): Stopper) {
        handle.close();
        let _ = thread.join();
    }
}

#[cfg(not(all(unix, feature = "signal")))]
mod signal {
    use super::{OptionsError, Target};

    /// Never made: SIGUSR1 dumps are unavailable in this build.
    #[derive(Debug)]
    pub(super) enum Stopper {}

    pub(super) fn spawn(_target: Target) -> Result<Stopper, OptionsError> {
        Err(OptionsError::SignalUnavailable)
    }

    pub(super) fn stop(stopper: Stopper) {
        match stopper {}
    }
}
