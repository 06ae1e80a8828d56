//! Raw memory access for the reachability scan: buffers mapped straight from
//! the kernel, reads of arbitrary (possibly unmapped) addresses of this
//! process, residency queries and the list of loaded objects.
//!
//! This module needs `unsafe` because a conservative scan reads memory that
//! no Rust value owns (other threads' stacks, the allocator's extents, the
//! data segments of every loaded object) and because its own working memory
//! must not come from the heap it scans: a worklist of block addresses on
//! the heap would make every listed block look reachable. Reads go through
//! the kernel (`process_vm_readv` on this process, or `pread` of
//! `/proc/self/mem` where that call is refused), which reports an address
//! that is not mapped (or was unmapped by another thread a moment ago) as an
//! error instead of a fault. Nothing here dereferences a pointer found in
//! scanned memory.

use std::ffi::CStr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU8, Ordering};

/// A growable array of plain values in memory mapped for it alone (not the
/// heap), unmapped on drop.
pub(crate) struct MapVec<T: Copy> {
    ptr: *mut T,
    len: usize,
    cap: usize,
}

impl<T: Copy> std::fmt::Debug for MapVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapVec").field("len", &self.len).finish()
    }
}

const PAGE: usize = 4096;

fn map_bytes(bytes: usize) -> Option<*mut u8> {
    // SAFETY: a fresh private anonymous mapping chosen by the kernel (`addr`
    // null): it overlaps no Rust object; no file descriptor is involved.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p.cast())
}

impl<T: Copy> MapVec<T> {
    /// An empty array (maps nothing until the first push).
    pub(crate) fn new() -> Self {
        MapVec {
            ptr: std::ptr::NonNull::dangling().as_ptr(),
            len: 0,
            cap: 0,
        }
    }

    fn bytes_for(cap: usize) -> usize {
        (cap * std::mem::size_of::<T>()).div_ceil(PAGE).max(1) * PAGE
    }

    /// An empty array with room for `cap` values mapped now (so its range
    /// is known before it is filled); `None` when no memory could be mapped.
    pub(crate) fn with_capacity(cap: usize) -> Option<Self> {
        let mut v = Self::new();
        let cap = cap.max(1);
        let p = map_bytes(Self::bytes_for(cap))?;
        v.ptr = p.cast();
        v.cap = cap;
        Some(v)
    }

    /// Appends `v`; `false` when no memory could be mapped.
    pub(crate) fn push(&mut self, v: T) -> bool {
        if self.len == self.cap {
            let cap = (self.cap * 2).max(PAGE / std::mem::size_of::<T>().max(1));
            let Some(p) = map_bytes(Self::bytes_for(cap)) else {
                return false;
            };
            let p = p.cast::<T>();
            if self.cap > 0 {
                // SAFETY: the old buffer holds `len` initialised values; the
                // new one has room for `cap > len` and does not overlap it.
                unsafe { std::ptr::copy_nonoverlapping(self.ptr, p, self.len) };
                self.unmap();
            }
            self.ptr = p;
            self.cap = cap;
        }
        // SAFETY: `len < cap`, inside the mapping, which is writable.
        unsafe { self.ptr.add(self.len).write(v) };
        self.len += 1;
        true
    }

    fn unmap(&mut self) {
        if self.cap > 0 {
            // SAFETY: `ptr` is the start of a mapping of `bytes_for(cap)`
            // bytes made by `map_bytes`; no reference into it outlives this
            // call (they borrow `self`).
            unsafe { libc::munmap(self.ptr.cast(), Self::bytes_for(self.cap)) };
        }
    }

    /// The values.
    pub(crate) fn as_slice(&self) -> &[T] {
        // SAFETY: `ptr` is valid for `len` initialised values (or dangling
        // and aligned with `len == 0`).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The values, mutably.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as `as_slice`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// Removes and returns the last value.
    pub(crate) fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: index `len` (old `len - 1`) is initialised.
        Some(unsafe { self.ptr.add(self.len).read() })
    }

    /// The address range of the mapping (empty when nothing is mapped): the
    /// scan skips it.
    pub(crate) fn range(&self) -> (usize, usize) {
        if self.cap == 0 {
            (0, 0)
        } else {
            let s = self.ptr as usize;
            (s, s + Self::bytes_for(self.cap))
        }
    }

    /// Bytes mapped.
    pub(crate) fn mapped_bytes(&self) -> usize {
        if self.cap == 0 {
            0
        } else {
            Self::bytes_for(self.cap)
        }
    }
}

impl<T: Copy> Drop for MapVec<T> {
    fn drop(&mut self) {
        self.unmap();
    }
}

/// Reads memory of this process at any address into a buffer, without
/// faulting on unmapped addresses.
pub(crate) struct Reader {
    /// `/proc/self/mem`, opened when `process_vm_readv` is refused.
    mem: Option<std::fs::File>,
    pid: libc::pid_t,
}

/// 0 unknown, 1 `process_vm_readv` works, 2 refused (use `/proc/self/mem`).
static VM_READV: AtomicU8 = AtomicU8::new(0);

impl Reader {
    /// A reader; `None` if neither way of reading works here.
    pub(crate) fn new() -> Option<Reader> {
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        let mut r = Reader { mem: None, pid };
        if VM_READV.load(Ordering::Relaxed) != 2 {
            let probe = [0x5e_u8, 0xed, 1, 2, 3, 4, 5, 6];
            let mut out = [0u8; 8];
            if r.readv(std::ptr::addr_of!(probe) as usize, &mut out) == 8 && out == probe {
                VM_READV.store(1, Ordering::Relaxed);
                return Some(r);
            }
            VM_READV.store(2, Ordering::Relaxed);
        }
        r.mem = std::fs::File::open("/proc/self/mem").ok();
        r.mem.as_ref()?;
        Some(r)
    }

    fn readv(&self, addr: usize, dst: &mut [u8]) -> usize {
        let local = libc::iovec {
            iov_base: dst.as_mut_ptr().cast(),
            iov_len: dst.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: dst.len(),
        };
        // SAFETY: the local iovec is `dst`, writable for its length; the
        // remote one is only read by the kernel, which checks that it is
        // mapped and returns the bytes copied up to the first hole.
        let n = unsafe { libc::process_vm_readv(self.pid, &local, 1, &remote, 1, 0) };
        usize::try_from(n).unwrap_or(0)
    }

    /// Copies the bytes at `addr..addr + dst.len()` into `dst`; returns how
    /// many leading bytes were read (fewer at the first unmapped page).
    pub(crate) fn read(&self, addr: usize, dst: &mut [u8]) -> usize {
        match &self.mem {
            None => self.readv(addr, dst),
            Some(f) => {
                let Ok(off) = libc::off_t::try_from(addr) else {
                    return 0;
                };
                // SAFETY: `dst` is writable for its length; the kernel
                // reads the other process memory (ours) with its own checks.
                let n =
                    unsafe { libc::pread(f.as_raw_fd(), dst.as_mut_ptr().cast(), dst.len(), off) };
                usize::try_from(n).unwrap_or(0)
            }
        }
    }

    /// The method in use, for the report.
    pub(crate) fn method(&self) -> &'static str {
        if self.mem.is_some() {
            "/proc/self/mem"
        } else {
            "process_vm_readv"
        }
    }
}

/// Which pages of `start..end` (page-aligned) are resident, one byte per
/// page in `out` (bit 0); `false` if the kernel refused (then treat all as
/// resident).
pub(crate) fn resident(start: usize, end: usize, out: &mut [u8]) -> bool {
    let pages = (end - start) / PAGE;
    if out.len() < pages {
        return false;
    }
    // SAFETY: `out` has room for one byte per page of the range; mincore
    // only writes there, and reports an unmapped range as ENOMEM.
    unsafe { libc::mincore(start as *mut libc::c_void, end - start, out.as_mut_ptr()) == 0 }
}

/// A scratch byte buffer mapped for the scan.
pub(crate) struct MapBuf {
    ptr: *mut u8,
    len: usize,
}

impl MapBuf {
    pub(crate) fn new(len: usize) -> Option<MapBuf> {
        let len = len.div_ceil(PAGE) * PAGE;
        map_bytes(len).map(|ptr| MapBuf { ptr, len })
    }
    pub(crate) fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: a private mapping of `len` bytes, zero-filled by the
        // kernel, uniquely borrowed through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
    pub(crate) fn range(&self) -> (usize, usize) {
        (self.ptr as usize, self.ptr as usize + self.len)
    }
    /// The first `bytes / size_of::<usize>()` words of the buffer.
    pub(crate) fn words(&self, bytes: usize) -> &[usize] {
        let n = bytes.min(self.len) / std::mem::size_of::<usize>();
        // SAFETY: the mapping is page-aligned (so aligned for `usize`),
        // `n` words fit in it, and every bit pattern is a valid `usize`;
        // the shared borrow of `self` keeps it from being written.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<usize>(), n) }
    }
}

impl Drop for MapBuf {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, not borrowed any more.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// One loaded object (the executable or a shared library).
#[derive(Debug, Clone)]
pub(crate) struct Object {
    /// Its path (`/proc/self/exe` for the executable).
    pub(crate) path: String,
    /// Load bias: run-time address minus link-time address.
    pub(crate) bias: usize,
    /// Its writable `PT_LOAD` segments, as run-time address ranges.
    pub(crate) writable: Vec<(usize, usize)>,
}

/// Every loaded object with its writable segments (`dl_iterate_phdr`).
pub(crate) fn loaded_objects() -> Vec<Object> {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `&mut Vec<Object>` passed below, used only
        // during the iteration; `info` is valid for this call (the loader's
        // contract), its `dlpi_phdr` points at `dlpi_phnum` headers and its
        // name is a NUL-terminated string (empty for the executable).
        unsafe {
            let out = &mut *data.cast::<Vec<Object>>();
            let info = &*info;
            let name = if info.dlpi_name.is_null() {
                String::new()
            } else {
                CStr::from_ptr(info.dlpi_name)
                    .to_string_lossy()
                    .into_owned()
            };
            let path = if name.is_empty() {
                "/proc/self/exe".to_string()
            } else {
                name
            };
            let bias = info.dlpi_addr as usize;
            let phdrs = std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum));
            let writable = phdrs
                .iter()
                .filter(|p| p.p_type == libc::PT_LOAD && p.p_flags & libc::PF_W != 0)
                .map(|p| {
                    let s = bias + p.p_vaddr as usize;
                    (s, s + p.p_memsz as usize)
                })
                .collect();
            out.push(Object {
                path,
                bias,
                writable,
            });
        }
        0
    }
    let mut out: Vec<Object> = Vec::new();
    // SAFETY: `each` matches the callback type and only touches `out`
    // through the pointer given here, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(each), std::ptr::addr_of_mut!(out).cast()) };
    out
}

/// This thread's kernel id.
pub(crate) fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}
