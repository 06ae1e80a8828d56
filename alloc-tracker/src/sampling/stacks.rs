//! Call stacks: captured as raw instruction pointers into a fixed buffer,
//! interned by hash, symbolised only when a report asks.

use std::hash::{BuildHasherDefault, Hasher};

use dashmap::DashMap;
use once_cell::sync::Lazy;

/// Frames kept per stack.
pub(crate) const MAX_FRAMES: usize = 48;

/// An interned call stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct StackId(u64);

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

/// One symbolised frame of a call stack.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Frame {
    /// Demangled function name without its hash, or `"??"`.
    pub function: String,
    /// Source file, if debug info has it.
    pub file: Option<String>,
    /// Source line, if debug info has it.
    pub line: Option<u32>,
}

impl Frame {
    /// Whether this frame belongs to the standard library (`std`, `core`,
    /// `alloc`) rather than to the program.
    ///
    /// Frames inlined in release builds often carry only a short name
    /// (`with_capacity_in<u8>`), so the source path decides too: std's
    /// sources live under `/rustc/<hash>/library/`.
    pub fn is_std(&self) -> bool {
        const STD: &[&str] = &[
            "std::", "core::", "alloc::", "<std::", "<core::", "<alloc::", "__rust",
        ];
        let by_name = STD.iter().any(|p| self.function.starts_with(p));
        let by_file = self.file.as_deref().is_some_and(|f| {
            f.starts_with("/rustc/")
                || f.contains("/library/std/")
                || f.contains("/library/core/")
                || f.contains("/library/alloc/")
        });
        by_name || by_file
    }
}

/// The tracker's source directory, as debug information names its files.
const TRACKER_SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/");

impl Frame {
    /// Whether this frame is the tracker's own code (`scope_alloc_tracker::…`,
    /// by name, or by a source file of the tracker when the debug
    /// information gives short names). A leak site's
    /// [`origin`](crate::leak::LeakSite::origin) is never such a frame.
    pub fn is_tracker(&self) -> bool {
        let f = self.function.strip_prefix('<').unwrap_or(&self.function);
        f.starts_with("scope_alloc_tracker::")
            || self
                .file
                .as_deref()
                .is_some_and(|file| file.starts_with(TRACKER_SRC))
    }

    /// Whether this frame is the allocator's code or one of std's thin
    /// wrappers around the global allocator (`alloc::alloc::alloc`),
    /// which reports trim from the top of a stack.
    fn is_allocator_wrapper(&self) -> bool {
        let by_file = self.file.as_deref().is_some_and(|file| {
            file.ends_with("library/alloc/src/alloc.rs")
                || (file.starts_with(TRACKER_SRC)
                    && (file[TRACKER_SRC.len()..].starts_with("allocator/")
                        || file[TRACKER_SRC.len()..].starts_with("sampling/")))
        });
        by_file
            || self.function.starts_with("alloc::alloc::")
            || super::symbols::is_allocator_path(&self.function)
            || is_allocator_entry(&self.function)
    }
}

impl Frame {
    /// The source file as `Display` shows it: std's sources as
    /// `<rust>/library/...` instead of `/rustc/<commit hash>/library/...`,
    /// and files below the current directory relative to it.
    pub fn short_file(&self) -> Option<String> {
        let file = self.file.as_deref()?;
        if let Some(rest) = file.strip_prefix("/rustc/") {
            if let Some((_hash, path)) = rest.split_once('/') {
                return Some(format!("<rust>/{path}"));
            }
        }
        if let Ok(cwd) = std::env::current_dir() {
            if let Ok(rel) = std::path::Path::new(file).strip_prefix(&cwd) {
                return Some(rel.display().to_string());
            }
        }
        Some(file.to_string())
    }
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.function)?;
        if let Some(file) = self.short_file() {
            write!(f, " at {file}")?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
        }
        Ok(())
    }
}

/// The frame through which the program entered the allocator: everything
/// above it (inner) is the tracker, the backtrace walk and std's allocation
/// shims.
fn is_allocator_entry(function: &str) -> bool {
    const ENTRIES: &[&str] = &[
        "__rust_alloc",
        "__rust_realloc",
        "__rust_alloc_zeroed",
        "__rustc::__rust_alloc",
        "__rustc::__rust_realloc",
        "__rustc::__rust_alloc_zeroed",
        "__rdl_alloc",
        "__rdl_realloc",
    ];
    ENTRIES.contains(&function)
        || function.contains("as core::alloc::global::GlobalAlloc>::alloc")
        || function.contains("as core::alloc::global::GlobalAlloc>::realloc")
        // The hot path is inlined into the shim, which may itself be
        // inlined into std's `alloc::alloc::alloc`, and reaches the general
        // path with a tail call: then no frame names the shim or
        // `GlobalAlloc`, and the outermost tracker frame is the entry.
        || function.starts_with("scope_alloc_tracker::allocator::")
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

#[cfg(test)]
mod tests {
    use super::{is_allocator_entry, Frame};

    #[test]
    fn the_tracker_allocator_frames_end_the_trimmed_part() {
        // Reached by a tail call from the inlined shim: no shim frame.
        assert!(is_allocator_entry(
            "scope_alloc_tracker::allocator::by_address::alloc"
        ));
        assert!(is_allocator_entry("__rustc::__rust_alloc"));
        // A user's closure run by `in_scope` is the program's, not ours.
        assert!(!is_allocator_entry(
            "scope_alloc_tracker::scope::ScopeId::in_scope"
        ));
        assert!(!is_allocator_entry("alloc::alloc::alloc"));
    }

    #[test]
    fn display_shortens_std_and_local_paths() {
        let std_frame = Frame {
            function: "alloc::raw_vec::finish_grow".into(),
            file: Some("/rustc/0123456789abcdef/library/alloc/src/raw_vec.rs".into()),
            line: Some(7),
        };
        assert_eq!(
            std_frame.to_string(),
            "alloc::raw_vec::finish_grow at <rust>/library/alloc/src/raw_vec.rs:7"
        );
        let here = std::env::current_dir().unwrap().join("src/lib.rs");
        let local = Frame {
            function: "my::f".into(),
            file: Some(here.display().to_string()),
            line: None,
        };
        assert_eq!(local.to_string(), "my::f at src/lib.rs");
    }
}
