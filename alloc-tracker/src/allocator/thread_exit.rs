//! Gives a thread's counter shard back when the thread exits.
//!
//! The allocator's own thread-local has no destructor (see
//! `thread_state`). Instead, the first time a thread claims a shard we store
//! the shard number in a POSIX thread-specific key whose destructor releases
//! it. glibc runs these key destructors after the thread's Rust/C++
//! thread-local destructors (`__call_tls_dtors` comes before
//! `__nptl_deallocate_tsd`), so frees made by other crates' TLS destructors
//! still count on the owned shard; anything allocated or freed after the
//! release counts on the shared overflow shard. Neither `pthread_key_create`
//! nor `pthread_setspecific` calls back into this allocator.
//!
//! On platforms without pthreads the hook is not armed and the thread
//! counts on the shared shard.

#[cfg(unix)]
mod imp {
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// `pthread_key_t + 1`, or 0 before creation, or `usize::MAX` if the
    /// process ran out of keys.
    static KEY: AtomicUsize = AtomicUsize::new(0);
    const NO_KEY: usize = usize::MAX;

    extern "C" fn on_thread_exit(value: *mut libc::c_void) {
        let shard = (value as usize).wrapping_sub(1);
        if let Ok(n) = u16::try_from(shard) {
            super::super::release_shard_of_exiting_thread(n);
        }
    }

    fn key() -> Option<libc::pthread_key_t> {
        match KEY.load(Ordering::Acquire) {
            0 => {}
            NO_KEY => return None,
            k => return Some((k - 1) as libc::pthread_key_t),
        }
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is a valid out-pointer; `on_thread_exit` has the
        // signature pthread expects and never unwinds.
        let created = unsafe { libc::pthread_key_create(&mut key, Some(on_thread_exit)) } == 0;
        let new = if created { key as usize + 1 } else { NO_KEY };
        match KEY.compare_exchange(0, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => created.then_some(key),
            Err(winner) => {
                if created {
                    // SAFETY: `key` was created above and never published.
                    unsafe { libc::pthread_key_delete(key) };
                }
                (winner != NO_KEY).then(|| (winner - 1) as libc::pthread_key_t)
            }
        }
    }

    /// Arranges for shard `n` to be released when this thread exits.
    pub(crate) fn arm(n: u16) -> bool {
        let Some(key) = key() else { return false };
        let value = (n as usize + 1) as *mut libc::c_void;
        // SAFETY: `key` is a live key of this process; the value is an
        // integer smuggled in a pointer, never dereferenced.
        unsafe { libc::pthread_setspecific(key, value) == 0 }
    }
}

#[cfg(not(unix))]
mod imp {
    pub(crate) fn arm(_n: u16) -> bool {
        false
    }
}

pub(crate) use imp::arm;
