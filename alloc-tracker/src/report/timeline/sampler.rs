//! Filling a timeline from a background thread.

use std::io;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{MarkerStyle, Timeline};
use crate::hot::thread_state;
use crate::scope::ScopeId;

/// State shared with the sampling thread.
#[derive(Debug)]
struct Shared {
    timeline: Mutex<Timeline>,
    stop: Mutex<bool>,
    wake: Condvar,
    scopes: Vec<ScopeId>,
}

impl Shared {
    fn sample(&self) {
        // Readings of one round share one instant.
        let mut t = self.timeline.lock().unwrap_or_else(PoisonError::into_inner);
        t.sample(&self.scopes);
    }
}

/// A background thread that adds a reading of some scopes to a
/// [`Timeline`] at a fixed interval, and takes markers and extra readings
/// from other threads meanwhile. [`stop`](Self::stop) returns the timeline;
/// dropping the sampler stops the thread too.
#[derive(Debug)]
pub struct TimelineSampler {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl TimelineSampler {
    /// Starts sampling `scopes` (live bytes with children) into
    /// `timeline` every `every` (at least 1 ms), beginning now.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn start(
        timeline: Timeline,
        scopes: &[ScopeId],
        every: Duration,
    ) -> io::Result<TimelineSampler> {
        let every = every.max(Duration::from_millis(1));
        let shared = thread_state::internal(|| {
            Arc::new(Shared {
                timeline: Mutex::new(timeline),
                stop: Mutex::new(false),
                wake: Condvar::new(),
                scopes: scopes.to_vec(),
            })
        });
        shared.sample();
        let s = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("alloc-tracker-timeline".to_string())
            .spawn(move || {
                // Everything this thread allocates goes through
                // `Timeline`'s methods, which charge the tracker's scope.
                let mut next = Instant::now() + every;
                loop {
                    let stop = s.stop.lock().unwrap_or_else(PoisonError::into_inner);
                    let wait = next.saturating_duration_since(Instant::now());
                    let (stop, _) = s
                        .wake
                        .wait_timeout_while(stop, wait, |stop| !*stop)
                        .unwrap_or_else(PoisonError::into_inner);
                    if *stop {
                        return;
                    }
                    drop(stop);
                    s.sample();
                    next += every;
                    let now = Instant::now();
                    if next < now {
                        // Fell behind (a stalled machine): skip, do not
                        // burst.
                        next = now + every;
                    }
                }
            })?;
        Ok(TimelineSampler {
            shared,
            thread: Some(thread),
        })
    }

    /// Adds a reading of the sampled scopes now (e.g. right after a
    /// checkpoint run).
    pub fn sample_now(&self) {
        self.shared.sample();
    }

    /// Adds a marker now.
    pub fn mark(&self, label: impl Into<String>, style: MarkerStyle) {
        self.with(|t| t.mark(label, style));
    }

    /// Runs `f` on the timeline (the sampling thread waits meanwhile).
    pub fn with<R>(&self, f: impl FnOnce(&mut Timeline) -> R) -> R {
        let mut t = self
            .shared
            .timeline
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut t)
    }

    /// Stops the thread (it finishes the reading it is taking, if any)
    /// and returns the timeline.
    pub fn stop(mut self) -> Timeline {
        self.halt();
        let mut t = self
            .shared
            .timeline
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        thread_state::internal(|| std::mem::take(&mut *t))
    }

    fn halt(&mut self) {
        *self
            .shared
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TimelineSampler {
    fn drop(&mut self) {
        self.halt();
    }
}
