//! Read-only file mappings for the symboliser (`sampling/symbols.rs`): the
//! executable's debug sections are read in place, from the page cache,
//! rather than copied to the heap (they are tens of MiB; the heap is what a
//! report's memory bound is about).

/// Maps the whole file at `path` read-only, for the rest of the process.
///
/// The mapping is never unmapped, which is what makes the `'static`
/// lifetime sound; it costs address space and clean, reclaimable page cache
/// for the pages a report touched, no heap. `None` if the file cannot be
/// opened or mapped, or is empty.
///
/// Meant for the running executable (`/proc/self/exe`): Linux refuses to
/// open a running executable for writing (`ETXTBSY`), and replacing it on
/// disk (a rebuild) makes a new inode while the mapping keeps the old one.
/// A file truncated in place while mapped would make reads of the lost
/// pages fault (`SIGBUS`), the same caveat as any mapped file (and as
/// `backtrace`'s own mapping of the same file).
#[cfg(unix)]
pub(crate) fn map_forever(path: &std::path::Path) -> Option<&'static [u8]> {
    use std::os::fd::AsRawFd;

    let file = std::fs::File::open(path).ok()?;
    let len = usize::try_from(file.metadata().ok()?.len()).ok()?;
    if len == 0 {
        return None;
    }
    // SAFETY: a fresh private read-only mapping chosen by the kernel
    // (`addr` null): it cannot overlap any Rust object. `fd` is open for
    // reading for the duration of the call; the mapping stays valid after
    // the file is closed (mmap(2)).
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED || p.is_null() {
        return None;
    }
    // SAFETY: `p` is the start of a readable mapping of `len` bytes that is
    // never unmapped nor written (read-only, private), so the slice is
    // valid and unchanging for `'static` (modulo the truncation caveat in
    // the doc comment, which `backtrace` shares).
    Some(unsafe { core::slice::from_raw_parts(p as *const u8, len) })
}

/// A private, copy-on-write mapping of `len` bytes of a file from `offset`:
/// it reads as the file until [`PatchedMapping::patch`] overwrites a few
/// bytes, which then live in private pages of this mapping only (4 KiB of
/// anonymous memory per patched page, no heap; the file is untouched).
/// Unmapped on drop.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub(crate) struct PatchedMapping {
    /// Start of the whole mapping (page-aligned).
    base: *mut libc::c_void,
    /// Length of the whole mapping.
    map_len: usize,
    /// `offset` of the file, inside the mapping.
    skip: usize,
    /// Bytes exposed.
    len: usize,
}

// SAFETY: the mapping is owned by this value alone (its pointers are never
// handed out except as borrows of `self`); reads through `&self` and the
// write through `&mut self` follow Rust's usual aliasing, so moving it to
// or sharing it with another thread is as safe as for a `Vec<u8>`.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
unsafe impl Send for PatchedMapping {}
// SAFETY: as above: `&PatchedMapping` only reads.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
unsafe impl Sync for PatchedMapping {}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
impl PatchedMapping {
    /// Maps `len` bytes of `path` from `offset`; `None` if the file cannot
    /// be opened or mapped or is shorter.
    pub(crate) fn new(path: &std::path::Path, offset: usize, len: usize) -> Option<Self> {
        use std::os::fd::AsRawFd;

        let file = std::fs::File::open(path).ok()?;
        let size = usize::try_from(file.metadata().ok()?.len()).ok()?;
        if len == 0 || offset.checked_add(len)? > size {
            return None;
        }
        // SAFETY: `sysconf` has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok()?;
        let skip = offset % page.max(1);
        let map_len = skip.checked_add(len)?;
        let file_offset = libc::off_t::try_from(offset - skip).ok()?;
        // SAFETY: a fresh private mapping chosen by the kernel (`addr`
        // null), so it overlaps no Rust object; `fd` is open for reading
        // for the duration of the call, and the mapping outlives it
        // (mmap(2)). `MAP_PRIVATE` makes writes copy-on-write: the file is
        // never written.
        let base = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                file_offset,
            )
        };
        if base == libc::MAP_FAILED || base.is_null() {
            return None;
        }
        Some(PatchedMapping {
            base,
            map_len,
            skip,
            len,
        })
    }

    /// Overwrites `bytes` at `at` (an offset into the exposed bytes);
    /// `false` if they do not fit.
    pub(crate) fn patch(&mut self, at: usize, bytes: &[u8]) -> bool {
        if at.checked_add(bytes.len()).is_none_or(|end| end > self.len) {
            return false;
        }
        // SAFETY: `[skip + at, skip + at + bytes.len())` lies inside the
        // writable mapping (checked just above); `&mut self` guarantees no
        // borrow of the bytes is alive; `bytes` cannot overlap the mapping
        // (a borrow of it would be a borrow of `self`).
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                (self.base as *mut u8).add(self.skip + at),
                bytes.len(),
            );
        }
        true
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
impl core::ops::Deref for PatchedMapping {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `[skip, skip + len)` lies inside the readable mapping,
        // which stays mapped until `self` is dropped and is written only
        // through `&mut self` (so never while this borrow lives).
        unsafe { core::slice::from_raw_parts((self.base as *const u8).add(self.skip), self.len) }
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
impl Drop for PatchedMapping {
    fn drop(&mut self) {
        // SAFETY: `base`/`map_len` are exactly the mapping made in `new`,
        // unmapped once, here; no borrow of it outlives `self`.
        unsafe {
            libc::munmap(self.base, self.map_len);
        }
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
impl core::fmt::Debug for PatchedMapping {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PatchedMapping")
            .field("len", &self.len)
            .finish()
    }
}

/// Section bytes for gimli's `EndianReader`: a slice of the executable's
/// permanent mapping, or a shared patched mapping.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[derive(Debug, Clone)]
pub(crate) enum SharedBytes {
    /// From [`map_forever`].
    Static(&'static [u8]),
    /// A patched mapping, unmapped with its last reader.
    Patched(std::sync::Arc<PatchedMapping>),
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
impl core::ops::Deref for SharedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            SharedBytes::Static(b) => b,
            SharedBytes::Patched(m) => m,
        }
    }
}

// SAFETY: `deref` returns the same bytes at the same address for as long as
// the value (or any clone) lives, wherever it moves: a `'static` slice, or
// the mapping an `Arc` keeps alive, which is never written once shared
// (`patch` needs `&mut`, unreachable through the `Arc`).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
unsafe impl gimli::StableDeref for SharedBytes {}
// SAFETY: a clone derefs to the same address: it copies the slice or the
// `Arc` (same mapping).
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
unsafe impl gimli::CloneStableDeref for SharedBytes {}

/// No mappings here: the symboliser falls back to `backtrace`.
#[cfg(not(unix))]
pub(crate) fn map_forever(_path: &std::path::Path) -> Option<&'static [u8]> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn maps_the_running_executable() {
        let exe = super::map_forever("/proc/self/exe".as_ref()).unwrap();
        assert_eq!(&exe[..4], b"\x7fELF");
        assert!(super::map_forever("/nonexistent/file".as_ref()).is_none());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_patched_mapping_reads_as_the_file_until_patched() {
        let exe = super::map_forever("/proc/self/exe".as_ref()).unwrap();
        let mut m = super::PatchedMapping::new("/proc/self/exe".as_ref(), 4097, 100).unwrap();
        assert_eq!(&m[..], &exe[4097..4197]);
        assert!(m.patch(10, b"xyz"));
        assert!(!m.patch(98, b"xyz"));
        assert_eq!(&m[10..13], b"xyz");
        assert_eq!(&m[13..], &exe[4110..4197]);
        assert_ne!(&exe[4107..4110], b"xyz");
    }
}
