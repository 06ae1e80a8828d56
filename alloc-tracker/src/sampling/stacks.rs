//! Call stacks: captured as raw instruction pointers into a fixed buffer,
//! interned by hash, symbolised only when a report asks.

use std::hash::{BuildHasherDefault, Hasher};

use dashmap::DashMap;
use once_cell::sync::Lazy;

use super::frame::{is_allocator_entry, Frame};

/// Frames kept per stack.
pub(crate) const MAX_FRAMES: usize = 48;

/// An interned call stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct StackId(u64);

impl StackId {
    /// An id no stack was interned under (it resolves to no frames), for
    /// tests of the code that groups blocks by stack.
    #[cfg(test)]
    pub(crate) const fn unknown_for_test(n: u64) -> StackId {
        StackId(n)
    }
}

/// Stack ids are already well-mixed 64-bit hashes: the table uses them as
/// they are instead of hashing them again.
#[derive(Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type Stacks = DashMap<StackId, Box<[usize]>, BuildHasherDefault<IdHasher>>;

static STACKS: Lazy<Stacks> = Lazy::new(Stacks::default);

thread_local! {
    /// The id of the last stack this thread interned (0 = none). No
    /// destructor: read under the allocator.
    static LAST_STACK: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Captures the current call stack. Runs under the re-entrancy guard; the
/// walk itself writes into a stack buffer and allocates nothing.
///
/// The cached unwinder ([`super::unwind`]) takes it; when it cannot vouch
/// for the stack, `backtrace::trace` walks it again (counted as a
/// fallback). `thread` picks the unwinder's rule cache.
pub(crate) fn capture(thread: u32) -> StackId {
    let mut ips = [0usize; MAX_FRAMES];
    let fast = if super::unwind::forced_fallback() {
        None
    } else {
        super::unwind::capture(&mut ips, thread)
    };
    let n = match fast {
        Some(n) => {
            super::unwind::count(true);
            n
        }
        None => {
            super::unwind::count(false);
            capture_slow(&mut ips)
        }
    };
    intern(&ips[..n])
}

/// The fallback unwinder: libgcc's DWARF unwinder through
/// `backtrace::trace`, without a rule cache (microseconds per stack, many
/// times the cached walk; figures in `docs/attribution.md`).
pub(crate) fn capture_slow(ips: &mut [usize; MAX_FRAMES]) -> usize {
    let mut n = 0;
    backtrace::trace(|frame| {
        ips[n] = frame.ip() as usize;
        n += 1;
        n < MAX_FRAMES
    });
    n
}

/// Interns a stack by a hash of its addresses: xor-multiply in four independent
/// lanes, folded at the end (a single chained hash over 48 words is a
/// dependency chain of 48 multiplications; SipHash cost as much as the walk,
/// `docs/attribution.md`). A 64-bit collision between two stacks would merge
/// their sites.
fn intern(ips: &[usize]) -> StackId {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut lanes = [ips.len() as u64, 1, 2, 3];
    for chunk in ips.chunks(4) {
        for (lane, &ip) in lanes.iter_mut().zip(chunk) {
            *lane = (*lane ^ ip as u64).wrapping_mul(K);
        }
    }
    let h = lanes
        .iter()
        .fold(0u64, |h, &l| (h.rotate_left(23) ^ l).wrapping_mul(K));
    let id = StackId(h);
    // Stacks are never removed: a thread that records the same stack again
    // (a loop allocating at one site) skips the table's read lock.
    let seen = LAST_STACK.try_with(|l| l.replace(h) == h).unwrap_or(false);
    if !seen && !STACKS.contains_key(&id) {
        STACKS.entry(id).or_insert_with(|| ips.into());
    }
    id
}

/// The runtime's frame that calls `main` or a spawned thread's closure:
/// everything from it outwards is the runtime's.
fn is_runtime_start(function: &str) -> bool {
    const STARTS: &[&str] = &[
        "std::rt::lang_start",
        "__rust_begin_short_backtrace",
        "std::sys::backtrace::__rust_begin_short_backtrace",
        "std::sys::pal::unix::thread::Thread::new::thread_start",
        "std::sys::thread::unix::Thread::new::thread_start",
    ];
    STARTS.iter().any(|s| function.starts_with(s))
}

/// Drops the debug information parsed to symbolise stacks (the per-unit
/// contexts of `symbols`, and `backtrace`'s caches for shared libraries),
/// charged to the tracker's internal scope. Called after each batch of
/// symbolisation, so a long-running process does not keep it between
/// reports; the next report parses again.
pub(crate) fn release_symbol_cache() {
    super::symbols::release();
}

/// Symbolises a stack, innermost frame first, with the allocator's own
/// frames removed from the top.
///
/// The allocator's frames are found by address: every physical frame up to
/// the outermost one whose address lies in the allocator's code
/// ([`super::symbols::allocator_code`]: the entry points and the tracker's
/// `allocator`/`sampling` functions, from the symbol table) is the
/// tracker's, whatever names the debug information gives its frames (with
/// `debug = "line-tables-only"` they are short: `capture_registers`,
/// `alloc`). Only without a symbol table (a stripped binary, another
/// platform) are frames trimmed by name.
pub(crate) fn resolve(id: StackId) -> Vec<Frame> {
    let Some(ips) = STACKS.get(&id).map(|s| s.clone()) else {
        return Vec::new();
    };
    let code = super::symbols::allocator_code();
    // The byte before a return address is in its caller's call; the first
    // address is the capture point itself.
    let in_code = |i: usize, ip: usize| {
        let a = if i == 0 { ip } else { ip.wrapping_sub(1) } as u64;
        let at = code.partition_point(|r| r.start <= a);
        at > 0 && a < code[at - 1].end
    };
    let by_address = ips
        .iter()
        .enumerate()
        .rposition(|(i, &ip)| in_code(i, ip))
        .map(|last| last + 1);
    let mut frames = Vec::new();
    for &ip in ips.iter().skip(by_address.unwrap_or(0)) {
        let before = frames.len();
        if !super::symbols::resolve(ip, &mut frames) {
            backtrace::resolve(ip as *mut std::ffi::c_void, |sym| {
                let function = sym
                    .name()
                    .map(|n| format!("{n:#}"))
                    .unwrap_or_else(|| "??".to_string());
                frames.push(Frame {
                    function,
                    file: sym.filename().map(|p| p.display().to_string()),
                    line: sym.lineno(),
                });
            });
        }
        if frames.len() == before {
            frames.push(Frame {
                function: format!("?? ({ip:#x})"),
                file: None,
                line: None,
            });
        }
        // Frames below `main` / the thread start are dropped: do not
        // symbolise them. They are libc's (`__libc_start_main`,
        // `start_thread`), and symbolising one parses libc's debug
        // information when it is installed: tens of MiB, decompressed.
        if frames[before..]
            .iter()
            .any(|f| is_runtime_start(&f.function))
        {
            break;
        }
    }
    if by_address.is_none() {
        // No symbol table: the names are all there is.
        if let Some(entry) = frames.iter().rposition(|f| is_allocator_entry(&f.function)) {
            frames.drain(..=entry);
        }
    }
    // The allocator's code and std's thin wrappers around the global
    // allocator, inlined into the first kept physical frame (the entry
    // shim inlined by LTO).
    let wrappers = frames
        .iter()
        .take_while(|f| f.is_allocator_wrapper())
        .count();
    frames.drain(..wrappers);
    // Drop the runtime's frames below `main` / the thread start.
    if let Some(end) = frames.iter().position(|f| is_runtime_start(&f.function)) {
        frames.truncate(end);
    }
    frames
}

/// The frame a report names as a site's origin: the innermost frame that
/// is the program's own code (neither std nor the tracker); else the
/// innermost that is not the tracker's; never a tracker frame.
pub(crate) fn origin(frames: &[Frame]) -> Option<&Frame> {
    frames
        .iter()
        .find(|f| !f.is_std() && !f.is_tracker())
        .or_else(|| frames.iter().find(|f| !f.is_tracker()))
}
