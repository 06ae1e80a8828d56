//! Stopping the other threads while the scan reads memory, Boehm-style: a
//! real-time signal to each thread; its handler notes where its stack is,
//! which puts the thread's registers (the kernel's signal frame) on the
//! stack the scan reads, and spins until the scan releases it.
//!
//! This module needs `unsafe` for the signal handler (installing it with
//! `sigaction`, sending with `tgkill`, and `errno` kept intact across the
//! handler). The handler only touches atomics and calls `gettid` and
//! `sched_yield` (async-signal-safe); the scanning thread allocates nothing
//! between [`stop`] and [`release`], since a stopped thread may hold an
//! allocator lock.

use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

/// Threads noted per stop at most.
const MAX: usize = 1024;

/// The current stop's number; a handler whose number is released returns.
static EPOCH: AtomicU64 = AtomicU64::new(0);
static RELEASED: AtomicU64 = AtomicU64::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);
static TIDS: [AtomicI32; MAX] = [const { AtomicI32::new(0) }; MAX];
static SPS: [AtomicUsize; MAX] = [const { AtomicUsize::new(0) }; MAX];
static INSTALL: Once = Once::new();
/// The scanning thread: a signal left pending from an earlier stop must not
/// stop it during its own.
static SCANNER: AtomicI32 = AtomicI32::new(0);
static INSTALLED_OK: AtomicI32 = AtomicI32::new(0);

/// The signal used: the eighth real-time signal glibc leaves to programs.
pub(crate) fn signal() -> libc::c_int {
    libc::SIGRTMIN() + 7
}

extern "C" fn handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: `__errno_location` returns this thread's errno slot, valid
    // for the thread's life; it is restored before returning.
    let errno = unsafe { *libc::__errno_location() };
    let e = EPOCH.load(Ordering::Acquire);
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() };
    if RELEASED.load(Ordering::Acquire) < e && SCANNER.load(Ordering::Acquire) != me {
        let sp = super::stack_mark();
        let i = COUNT.fetch_add(1, Ordering::AcqRel);
        if i < MAX {
            SPS[i].store(sp, Ordering::Relaxed);
            TIDS[i].store(me, Ordering::Release);
        }
        while RELEASED.load(Ordering::Acquire) < e {
            std::hint::spin_loop();
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        }
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

fn install() -> bool {
    INSTALL.call_once(|| {
        // SAFETY: a zeroed `sigaction` is a valid starting value; the
        // handler has the three-argument form `SA_SIGINFO` asks for, and
        // only the signal chosen above is changed.
        let ok = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(signal(), &sa, std::ptr::null_mut()) == 0
        };
        INSTALLED_OK.store(i32::from(ok), Ordering::Release);
    });
    INSTALLED_OK.load(Ordering::Acquire) == 1
}

/// Which threads a stop reached: `(tid, stack pointer)` in `out` (its
/// first `n`), and how many were signalled.
#[derive(Debug)]
pub(crate) struct Stopped {
    pub(crate) signalled: usize,
    pub(crate) n: usize,
    pub(crate) out: [(i32, usize); 256],
}

/// Stops the threads `tids` (not the caller), waiting at most `timeout`
/// for them to enter the handler. Allocates nothing. Every stop must be
/// followed by [`release`], also when it reached no thread.
pub(crate) fn stop(tids: &[i32], timeout: Duration) -> Option<Stopped> {
    if !install() {
        return None;
    }
    // SAFETY: gettid has no preconditions.
    SCANNER.store(unsafe { libc::gettid() }, Ordering::Release);
    COUNT.store(0, Ordering::Release);
    for t in &TIDS {
        t.store(0, Ordering::Relaxed);
    }
    EPOCH.fetch_add(1, Ordering::AcqRel);
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let mut signalled = 0;
    for &tid in tids {
        // SAFETY: tgkill sends a signal whose handler is installed; a
        // thread that exited meanwhile gives ESRCH.
        if unsafe { libc::tgkill(pid, tid, signal()) } == 0 {
            signalled += 1;
        }
    }
    let deadline = Instant::now() + timeout;
    while COUNT.load(Ordering::Acquire) < signalled && Instant::now() < deadline {
        std::hint::spin_loop();
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
    let mut s = Stopped {
        signalled,
        n: 0,
        out: [(0, 0); 256],
    };
    let n = COUNT.load(Ordering::Acquire).min(MAX);
    for i in 0..n {
        let tid = TIDS[i].load(Ordering::Acquire);
        if tid != 0 && s.n < s.out.len() {
            s.out[s.n] = (tid, SPS[i].load(Ordering::Relaxed));
            s.n += 1;
        }
    }
    Some(s)
}

/// Lets the threads of the last [`stop`] run again.
pub(crate) fn release() {
    RELEASED.store(EPOCH.load(Ordering::Acquire), Ordering::Release);
}
