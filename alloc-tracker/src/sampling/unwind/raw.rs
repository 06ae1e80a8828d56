//! The raw layer of the fast call-stack capture (`sampling::unwind`): the
//! few operations that need `unsafe`, each small enough to check by eye.
//!
//! - [`capture_registers`]: the instruction, stack and frame pointers at the
//!   capture point (inline assembly, x86_64).
//! - [`opaque`]: a value the compiler cannot relate to any other (an empty
//!   assembly block), so that a predicted return address keeps its own
//!   chain of dependencies once it is found equal to the stack's.
//! - [`StackBounds::current_thread_stack`] / [`StackBounds::read`]: the calling thread's
//!   own stack, and reading one word of it within those bounds.
//! - [`for_each_module`]: the loaded ELF objects (`dl_iterate_phdr`) with
//!   their executable range and their `.eh_frame_hdr` / `.eh_frame` bytes,
//!   borrowed from the mapped image.
//!
//! Everything above it (the unwinder, its caches, the fallback) is safe code
//! in `sampling/unwind/`.

/// Register values at a capture point: enough to start a DWARF unwind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Registers {
    /// Instruction pointer inside [`capture_registers`]' caller.
    pub(crate) ip: u64,
    /// Stack pointer at that instruction.
    pub(crate) sp: u64,
    /// Frame pointer (`rbp`) at that instruction.
    pub(crate) bp: u64,
}

/// The registers at the point where this function was inlined.
///
/// `#[inline(always)]` so that the values describe the caller's own frame,
/// whose unwind information the unwinder then applies.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn capture_registers() -> Registers {
    let (ip, sp, bp): (u64, u64, u64);
    // SAFETY: the assembly only copies three registers into outputs: no
    // memory access, no stack use, flags untouched (`nomem, nostack,
    // preserves_flags` state exactly that).
    unsafe {
        core::arch::asm!(
            "lea {ip}, [rip]",
            "mov {sp}, rsp",
            "mov {bp}, rbp",
            ip = out(reg) ip,
            sp = out(reg) sp,
            bp = out(reg) bp,
            options(nomem, nostack, preserves_flags),
        );
    }
    Registers { ip, sp, bp }
}

/// `value`, through an empty assembly block: the compiler cannot see that
/// the result equals the input, so a value checked equal to another one
/// keeps its own chain of dependencies (the unwinder goes on with a
/// predicted return address, loaded early, once it has been found equal to
/// the one on the stack, so that the next frame does not wait for the
/// stack read).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn opaque(mut value: u64) -> u64 {
    // SAFETY: the assembly is empty: it reads and writes no memory, uses no
    // stack and leaves the flags alone (`nomem, nostack, preserves_flags`);
    // `value` passes through its register unchanged.
    unsafe {
        core::arch::asm!("/* {0} */", inout(reg) value, options(pure, nomem, nostack, preserves_flags));
    }
    value
}

/// The calling thread's stack: reads are allowed in `[low, high)` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StackBounds {
    /// Lowest readable address (a stack pointer of this thread's frame),
    /// 8-byte aligned.
    low: u64,
    /// The index of the last readable word from `low`: the word at
    /// `low + 8 * last_word` ends at or below the top of the thread's
    /// stack mapping.
    last_word: u64,
}

impl StackBounds {
    /// The calling thread's stack mapping `[low, high)`, from
    /// `pthread_getattr_np`; `None` where the platform does not tell.
    ///
    /// Call it once per thread and keep the result: for the main thread
    /// glibc reads `/proc/self/maps` (through C `malloc`, not this
    /// allocator).
    #[cfg(target_os = "linux")]
    pub(crate) fn current_thread_stack() -> Option<(u64, u64)> {
        let mut attr = core::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
        // SAFETY: `attr` is valid for writes; `pthread_getattr_np`
        // initialises it on success (return value 0), and only then is it
        // read and destroyed.
        unsafe {
            if libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) != 0 {
                return None;
            }
            let mut addr: *mut libc::c_void = core::ptr::null_mut();
            let mut size: libc::size_t = 0;
            let ok = libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size) == 0;
            libc::pthread_attr_destroy(attr.as_mut_ptr());
            (ok && !addr.is_null()).then(|| (addr as u64, addr as u64 + size as u64))
        }
    }

    /// Without `pthread_getattr_np`, no bounds: the fast unwinder is off.
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn current_thread_stack() -> Option<(u64, u64)> {
        None
    }

    /// Bounds from a stack pointer `sp` of a live frame of the calling
    /// thread up to the top of the thread's stack `stack = [low, high)`
    /// (from [`Self::current_thread_stack`]). `None` when `sp` is not in
    /// that stack (a signal handler running on an alternate stack) or not
    /// 8-byte aligned (never, in code that follows the ABI).
    pub(crate) fn new(sp: u64, stack: (u64, u64)) -> Option<StackBounds> {
        (stack.0 <= sp && sp.checked_add(8)? <= stack.1 && sp.is_multiple_of(8)).then_some(
            StackBounds {
                low: sp,
                last_word: (stack.1 - 8 - sp) / 8,
            },
        )
    }

    /// Reads the 8-byte word at `addr` if it lies within the bounds and is
    /// aligned; `Err(())` otherwise (the unwinder's contract).
    ///
    /// The bounds must come from [`StackBounds::new`] with a stack pointer
    /// of a frame that is still live on the *calling* thread (a frame of
    /// the caller or one of its callers): then every address in them is
    /// mapped, readable memory of this thread's stack for as long as that
    /// frame is.
    #[inline]
    pub(crate) fn read(&self, addr: u64) -> Result<u64, ()> {
        // One test for the three conditions (below `low`, past the top,
        // misaligned): with `x = addr - low` (wrapping), the rotation is
        // `x / 8` when `x` is a multiple of 8 and at least 2^61 when it is
        // not, so it is at most `last_word` exactly when `addr = low + 8i`
        // with `i <= last_word` (and then `low + 8i` did not wrap, as
        // `low + 8 * last_word + 8` is at most the top of the stack).
        if addr.wrapping_sub(self.low).rotate_right(3) > self.last_word {
            return Err(());
        }
        let p = addr as usize as *const u64;
        // SAFETY: `addr` is `low + 8i` with `i <= last_word` (tested above):
        // 8-byte aligned, and `[addr, addr + 8)` lies between a live stack
        // pointer of this thread and the top of its stack mapping, all
        // mapped and readable (documented precondition of the bounds). A
        // volatile read because the words belong to frames the compiler
        // knows nothing about; they are only read as integers, never as
        // references.
        Ok(unsafe { core::ptr::read_volatile(p) })
    }
}

/// One loaded ELF object, as the dynamic loader sees it.
#[derive(Debug, Clone)]
pub(crate) struct RawModule {
    /// Load bias: actual address minus the address stated in the file.
    pub(crate) bias: u64,
    /// Executable segments, as stated addresses (add `bias` for actual).
    pub(crate) text_svma: core::ops::Range<u64>,
    /// Stated address of `.eh_frame_hdr`.
    pub(crate) eh_frame_hdr_svma: u64,
    /// `.eh_frame_hdr`, in the mapped image.
    pub(crate) eh_frame_hdr: &'static [u8],
    /// Stated address of `.eh_frame`.
    pub(crate) eh_frame_svma: u64,
    /// `.eh_frame` up to the end of the segment that holds it (the section
    /// size is not in the program headers; the header's table bounds
    /// lookups, so trailing bytes are never read as unwind data).
    pub(crate) eh_frame: &'static [u8],
}

/// Calls `f` for every loaded object that has executable code and an
/// `.eh_frame_hdr` whose `.eh_frame` pointer can be decoded.
///
/// The byte slices borrow the mapped images: they stay valid as long as the
/// object stays loaded. Objects loaded at start-up (the executable, its
/// shared libraries) are never unloaded; an object `dlclose`d later would
/// leave dangling slices, which is why the caller registers only what is
/// loaded when it first runs and never `dlopen`s on its own.
#[cfg(target_os = "linux")]
pub(crate) fn for_each_module(mut f: impl FnMut(RawModule)) {
    extern "C" fn callback(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `&mut &mut dyn FnMut(RawModule)` passed to
        // `dl_iterate_phdr` below, live for the whole call; `info` points to
        // a valid `dl_phdr_info` for the duration of this callback
        // (dl_iterate_phdr(3)).
        let (f, info) = unsafe { (&mut *(data as *mut &mut dyn FnMut(RawModule)), &*info) };
        // SAFETY: the `dl_phdr_info` contract: `dlpi_phdr` points to
        // `dlpi_phnum` program headers of a loaded object.
        if let Some(m) = unsafe { module_of(info) } {
            f(m);
        }
        0
    }
    let mut f: &mut dyn FnMut(RawModule) = &mut f;
    // SAFETY: `callback` matches the signature `dl_iterate_phdr` expects,
    // never unwinds (it does not panic: slices are bounds-checked through
    // `get`), and uses `data` only as the pointer passed here, which
    // outlives the call.
    unsafe {
        libc::dl_iterate_phdr(Some(callback), &mut f as *mut _ as *mut libc::c_void);
    }
}

/// No loader to ask: no modules, every capture takes the fallback.
#[cfg(not(target_os = "linux"))]
pub(crate) fn for_each_module(_f: impl FnMut(RawModule)) {}

/// Reads one object's headers.
///
/// # Safety
/// `info.dlpi_phdr` must point to `info.dlpi_phnum` program headers of an
/// object loaded at bias `info.dlpi_addr`, whose segments are mapped as the
/// headers say (what `dl_iterate_phdr` hands its callback).
#[cfg(target_os = "linux")]
unsafe fn module_of(info: &libc::dl_phdr_info) -> Option<RawModule> {
    if info.dlpi_phdr.is_null() || info.dlpi_phnum == 0 {
        return None;
    }
    // SAFETY: the function's precondition.
    let phdrs = unsafe { core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let bias = info.dlpi_addr;
    let mut text: Option<core::ops::Range<u64>> = None;
    let mut hdr: Option<(u64, u64)> = None;
    for p in phdrs {
        match p.p_type {
            libc::PT_LOAD if p.p_flags & libc::PF_X != 0 => {
                let r = p.p_vaddr..p.p_vaddr + p.p_memsz;
                text = Some(match text {
                    Some(t) => t.start.min(r.start)..t.end.max(r.end),
                    None => r,
                });
            }
            libc::PT_GNU_EH_FRAME => hdr = Some((p.p_vaddr, p.p_memsz)),
            _ => {}
        }
    }
    let (text, (hdr_svma, hdr_len)) = (text?, hdr?);
    // SAFETY: PT_GNU_EH_FRAME describes `hdr_len` bytes inside a loaded,
    // readable segment at `bias + hdr_svma`, mapped while the object is.
    let eh_frame_hdr: &'static [u8] = unsafe {
        core::slice::from_raw_parts(
            bias.wrapping_add(hdr_svma) as usize as *const u8,
            hdr_len as usize,
        )
    };
    let eh_frame_svma = decode_eh_frame_ptr(eh_frame_hdr, hdr_svma)?;
    // `.eh_frame` lies in a loaded segment: take it up to that segment's end.
    let segment = phdrs.iter().find(|p| {
        p.p_type == libc::PT_LOAD
            && p.p_vaddr <= eh_frame_svma
            && eh_frame_svma < p.p_vaddr + p.p_memsz
    })?;
    let len =
        (segment.p_vaddr + segment.p_filesz.min(segment.p_memsz)).checked_sub(eh_frame_svma)?;
    // SAFETY: `[eh_frame_svma, +len)` lies inside the file-backed part of a
    // loaded segment (checked just above), mapped at `bias` while the
    // object is loaded.
    let eh_frame: &'static [u8] = unsafe {
        core::slice::from_raw_parts(
            bias.wrapping_add(eh_frame_svma) as usize as *const u8,
            len as usize,
        )
    };
    Some(RawModule {
        bias,
        text_svma: text,
        eh_frame_hdr_svma: hdr_svma,
        eh_frame_hdr,
        eh_frame_svma,
        eh_frame,
    })
}

/// The stated address of `.eh_frame`, from the `eh_frame_ptr` field of an
/// `.eh_frame_hdr` at stated address `hdr_svma`. Handles the encodings
/// linkers emit (`pcrel|sdata4`, `udata4`/`sdata4`, `absptr`/`udata8`).
fn decode_eh_frame_ptr(hdr: &[u8], hdr_svma: u64) -> Option<u64> {
    const DW_EH_PE_ABSPTR: u8 = 0x00;
    const DW_EH_PE_UDATA4: u8 = 0x03;
    const DW_EH_PE_UDATA8: u8 = 0x04;
    const DW_EH_PE_SDATA4: u8 = 0x0b;
    const DW_EH_PE_PCREL: u8 = 0x10;
    if hdr.first() != Some(&1) {
        return None;
    }
    let enc = *hdr.get(1)?;
    let field = 4u64;
    let word4 = |signed: bool| -> Option<i64> {
        let b: [u8; 4] = hdr.get(4..8)?.try_into().ok()?;
        Some(if signed {
            i32::from_le_bytes(b) as i64
        } else {
            u32::from_le_bytes(b) as i64
        })
    };
    let word8 = || -> Option<u64> { Some(u64::from_le_bytes(hdr.get(4..12)?.try_into().ok()?)) };
    let (value, pcrel) = match (enc & 0x0f, enc & 0x70) {
        (DW_EH_PE_SDATA4, p) => (word4(true)? as u64, p),
        (DW_EH_PE_UDATA4, p) => (word4(false)? as u64, p),
        (DW_EH_PE_ABSPTR | DW_EH_PE_UDATA8, p) => (word8()?, p),
        _ => return None,
    };
    match pcrel {
        0 => Some(value),
        DW_EH_PE_PCREL => Some((hdr_svma + field).wrapping_add(value)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_usual_pcrel_sdata4_pointer() {
        // version 1, eh_frame_ptr pcrel|sdata4, fde_count udata4, table datarel|sdata4
        let mut hdr = vec![1u8, 0x1b, 0x03, 0x3b];
        hdr.extend_from_slice(&(-0x100i32).to_le_bytes());
        assert_eq!(decode_eh_frame_ptr(&hdr, 0x2000), Some(0x2004 - 0x100));
        hdr[1] = 0x03;
        hdr[4..8].copy_from_slice(&0x1234u32.to_le_bytes());
        assert_eq!(decode_eh_frame_ptr(&hdr, 0x2000), Some(0x1234));
        hdr[0] = 2;
        assert_eq!(decode_eh_frame_ptr(&hdr, 0x2000), None);
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn the_executable_is_among_the_modules_and_its_stack_is_readable() {
        let here = the_executable_is_among_the_modules_and_its_stack_is_readable as *const ()
            as usize as u64;
        let mut found = false;
        for_each_module(|m| {
            let r = m.text_svma.start + m.bias..m.text_svma.end + m.bias;
            if r.contains(&here) {
                found = true;
                assert!(!m.eh_frame.is_empty() && m.eh_frame_hdr.len() >= 12);
            }
        });
        assert!(found);
        let regs = capture_registers();
        let stack = StackBounds::current_thread_stack().unwrap();
        let top = stack.1;
        let b = StackBounds::new(regs.sp, stack).unwrap();
        let local = 0x5eed_u64;
        let addr = core::hint::black_box(&local) as *const u64 as u64;
        assert_eq!(b.read(addr), Ok(0x5eed));
        assert_eq!(b.read(top), Err(()));
        assert_eq!(b.read(regs.sp - 8), Err(()));
        assert_eq!(b.read(top - 8).map(|_| ()), Ok(()));
        assert_eq!(b.read(addr + 1), Err(()));
        assert_eq!(b.read(addr + 4), Err(()));
        assert_eq!(b.read(0), Err(()));
        assert_eq!(b.read(u64::MAX - 7), Err(()));
        assert_eq!(StackBounds::new(regs.sp + 4, stack), None);
    }
}
