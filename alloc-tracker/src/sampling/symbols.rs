//! Symbolisation of recorded stacks for reports, bounded in memory.
//!
//! ```text
//! report ──> address in the executable? ──no──> backtrace::resolve (shared
//!                    │yes                        libraries; rare: walks stop
//!                    v                           at the runtime's start)
//!   .debug_aranges index (begin, end, unit), built once per report
//!                    │
//!                    v
//!   one addr2line::Context over the units needed so far, at their own
//!   offsets: .debug_info is a private copy-on-write mapping of the file in
//!   which each run of other units is covered by one DWARF 5 type-unit
//!   header (addr2line skips type units unparsed); a reference into a
//!   missing unit (cross-unit inlining) adds it and remakes the context
//!                    │
//!                    v
//!   find_frames: inlined frames innermost first, then the function
//! ```
//!
//! `backtrace` (through `addr2line` 0.27's `Context`) parses every compilation
//! unit's abbreviations and expands every unit's ranges before its first
//! lookup: megabytes for a program of a few hundred units, whatever the report
//! (figures in `docs/attribution.md`, "Symbolisation"). Here only the units a
//! report's frames fall in (and those their inlined frames refer to) are
//! parsed, and the executable is read through mappings rather than the heap.
//! The caches are dropped after each report ([`release`]).
//!
//! Names and locations are the ones `backtrace` gives (it uses `addr2line`
//! the same way): the DWARF name demangled without its hash, the symbol
//! table's name where DWARF has none.

use super::frame::Frame;

/// Which symboliser names the frames of reports, process-wide (see
/// [`set_symboliser`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symboliser {
    /// Per-unit contexts over the mapped executable (the default).
    PerUnit,
    /// `backtrace::resolve` for every address, to compare.
    Backtrace,
}

static USE_BACKTRACE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Chooses the symboliser for the following reports, process-wide.
///
/// [`Symboliser::PerUnit`] (the default) is the fast one; choose
/// [`Symboliser::Backtrace`] to compare its names with the `backtrace`
/// crate's, or if a frame comes out unnamed.
///
/// ```
/// use scope_alloc_tracker::sampling::{set_symboliser, Symboliser};
///
/// set_symboliser(Symboliser::Backtrace);
/// set_symboliser(Symboliser::PerUnit);
/// ```
pub fn set_symboliser(s: Symboliser) {
    USE_BACKTRACE.store(
        s == Symboliser::Backtrace,
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// The demangled name as `backtrace` shows it with `{:#}`: Rust names
/// without their hash, anything else as it is.
pub(crate) fn demangled(raw: &str) -> String {
    match rustc_demangle::try_demangle(raw) {
        Ok(d) => format!("{d:#}"),
        Err(_) => raw.to_string(),
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod imp {
    use std::ops::Range;
    use std::sync::{Mutex, OnceLock, PoisonError};

    use std::sync::Arc;

    use gimli::{LittleEndian, SectionId};

    use super::{demangled, Frame};
    use crate::sampling::mapped::{self, SharedBytes};
    use crate::sampling::unwind::raw as unwind_raw;

    type Reader = gimli::EndianReader<LittleEndian, SharedBytes>;

    /// The executable as mapped from `/proc/self/exe`: its code's actual
    /// addresses, its load bias and its sections (in place).
    struct Image {
        /// The whole file, mapped for the rest of the process.
        file: &'static [u8],
        code: Range<u64>,
        bias: u64,
        /// `(name, bytes)` of every uncompressed section with file bytes.
        sections: Vec<(&'static str, &'static [u8])>,
    }

    impl Image {
        fn section(&self, name: &str) -> &'static [u8] {
            self.sections
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(&[][..], |(_, b)| b)
        }

        /// The function symbol of `.symtab` that holds `svma`, by a linear
        /// scan of the mapped table (no index on the heap).
        fn symtab_name(&self, svma: u64) -> Option<&'static str> {
            let (symtab, strtab) = (self.section(".symtab"), self.section(".strtab"));
            const STT_FUNC: u8 = 2;
            for sym in symtab.chunks_exact(24) {
                let info = sym[4];
                let value = u64::from_le_bytes(sym[8..16].try_into().ok()?);
                let size = u64::from_le_bytes(sym[16..24].try_into().ok()?);
                if info & 0xf == STT_FUNC && value <= svma && svma < value.saturating_add(size) {
                    let name = u32::from_le_bytes(sym[0..4].try_into().ok()?) as usize;
                    return c_str(strtab, name);
                }
            }
            None
        }
    }

    fn c_str(table: &'static [u8], at: usize) -> Option<&'static str> {
        let rest = table.get(at..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&rest[..end]).ok()
    }

    /// Reads an ELF64 little-endian file's section table.
    fn sections(elf: &'static [u8]) -> Option<Vec<(&'static str, &'static [u8])>> {
        let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
        let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
        let u64_at = |at: usize| Some(u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?));
        // Magic, 64-bit, little-endian.
        if elf.get(..6)? != b"\x7fELF\x02\x01" {
            return None;
        }
        let shoff = usize::try_from(u64_at(0x28)?).ok()?;
        let (shentsize, shnum, shstrndx) = (
            usize::from(u16_at(0x3a)?),
            usize::from(u16_at(0x3c)?),
            usize::from(u16_at(0x3e)?),
        );
        if shentsize < 64 {
            return None;
        }
        const SHT_NOBITS: u32 = 8;
        const SHF_COMPRESSED: u64 = 0x800;
        let header = |i: usize| -> Option<(u32, u32, u64, &'static [u8])> {
            let h = shoff.checked_add(i.checked_mul(shentsize)?)?;
            let (name, ty, flags) = (u32_at(h)?, u32_at(h + 4)?, u64_at(h + 8)?);
            let (off, size) = (
                usize::try_from(u64_at(h + 24)?).ok()?,
                usize::try_from(u64_at(h + 32)?).ok()?,
            );
            let bytes = if ty == SHT_NOBITS {
                &[][..]
            } else {
                elf.get(off..off.checked_add(size)?)?
            };
            Some((name, ty, flags, bytes))
        };
        let names = header(shstrndx)?.3;
        let mut out = Vec::new();
        for i in 0..shnum {
            let Some((name, ty, flags, bytes)) = header(i) else {
                continue;
            };
            // Compressed debug sections would have to be inflated on the
            // heap: leave them to `backtrace`.
            if ty == SHT_NOBITS || flags & SHF_COMPRESSED != 0 {
                continue;
            }
            if let Some(name) = c_str(names, name as usize) {
                out.push((name, bytes));
            }
        }
        Some(out)
    }

    /// The executable's image, mapped once per process (`None` where it
    /// cannot be: then `backtrace` symbolises everything).
    fn image() -> Option<&'static Image> {
        static IMAGE: OnceLock<Option<Image>> = OnceLock::new();
        IMAGE
            .get_or_init(|| {
                let here = image as *const () as usize as u64;
                let mut exe = None;
                unwind_raw::for_each_module(|m| {
                    let code = m.text_svma.start.wrapping_add(m.bias)
                        ..m.text_svma.end.wrapping_add(m.bias);
                    if code.contains(&here) {
                        exe = Some((code, m.bias));
                    }
                });
                let (code, bias) = exe?;
                let file = mapped::map_forever("/proc/self/exe".as_ref())?;
                let sections = sections(file)?;
                let image = Image {
                    file,
                    code,
                    bias,
                    sections,
                };
                Some(image)
            })
            .as_ref()
    }

    /// One report's state: the unit index and the context of the units
    /// its frames needed so far.
    struct Cache {
        /// `.debug_aranges`: `(begin, end, unit offset)`, sorted by begin.
        aranges: Vec<(u64, u64, usize)>,
        /// Offset of every unit of `.debug_info`, ascending.
        starts: Vec<usize>,
        /// Offsets of the units in `context`, ascending.
        needed: Vec<usize>,
        /// `addr2line` over the needed units only (`None`: none yet, or it
        /// could not be made).
        context: Option<addr2line::Context<Reader>>,
    }

    static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

    fn aranges(image: &Image) -> Vec<(u64, u64, usize)> {
        let mut out = Vec::new();
        let aranges = gimli::DebugAranges::new(image.section(".debug_aranges"), LittleEndian);
        let mut headers = aranges.headers();
        while let Ok(Some(h)) = headers.next() {
            let unit = h.debug_info_offset().0;
            let mut entries = h.entries();
            while let Ok(Some(e)) = entries.next() {
                let r = e.range();
                if r.begin < r.end {
                    out.push((r.begin, r.end, unit));
                }
            }
        }
        out.sort_unstable();
        out
    }

    fn unit_starts(image: &Image) -> Vec<usize> {
        let mut out = Vec::new();
        let mut units = gimli::DebugInfo::new(image.section(".debug_info"), LittleEndian).units();
        while let Ok(Some(h)) = units.next() {
            if let Some(o) = h.debug_info_offset() {
                out.push(o.0);
            }
        }
        out
    }

    /// A DWARF 5 type unit header (32-bit format) spanning `len` bytes:
    /// `addr2line` skips type units without parsing them, so a gap of
    /// units a report does not need costs it one header.
    fn skip_header(len: usize) -> Option<[u8; 24]> {
        let unit_length = u32::try_from(len.checked_sub(4)?)
            .ok()
            .filter(|l| *l < 0xffff_fff0 && len >= 24)?;
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&unit_length.to_le_bytes());
        h[4..6].copy_from_slice(&5u16.to_le_bytes()); // version
        h[6] = gimli::constants::DW_UT_type.0;
        h[7] = 8; // address size
                  // abbrev offset 0, type signature 0
        h[20..24].copy_from_slice(&24u32.to_le_bytes()); // type offset
        Some(h)
    }

    /// A context over the units `needed` (ascending offsets) of
    /// `.debug_info`, at their own offsets (references between units stay
    /// valid): `.debug_info` is a private mapping of the file in which each
    /// run of other units is covered by one type unit header.
    fn context(
        image: &Image,
        starts: &[usize],
        needed: &[usize],
    ) -> Option<addr2line::Context<Reader>> {
        let info = image.section(".debug_info");
        let end_of = |unit: usize| {
            let i = starts.partition_point(|&s| s <= unit);
            starts.get(i).copied().unwrap_or(info.len())
        };
        let end = end_of(*needed.last()?);
        let file_offset = (info.as_ptr() as usize).checked_sub(image.file.as_ptr() as usize)?;
        let mut map = mapped::PatchedMapping::new("/proc/self/exe".as_ref(), file_offset, end)?;
        // `/proc/self/exe` opens the running executable's own inode, even
        // if the path it ran from was replaced since: the same bytes as the
        // permanent mapping.
        let mut at = 0;
        for &unit in needed {
            if unit > at && !map.patch(at, &skip_header(unit - at)?) {
                return None;
            }
            at = end_of(unit);
        }
        let reader = |b: SharedBytes| gimli::EndianReader::new(b, LittleEndian);
        let mut dwarf = gimli::Dwarf::load(|id: SectionId| {
            Ok::<_, ()>(reader(SharedBytes::Static(image.section(id.name()))))
        })
        .ok()?;
        dwarf.debug_info = gimli::DebugInfo::from(reader(SharedBytes::Patched(Arc::new(map))));
        addr2line::Context::from_dwarf(dwarf).ok()
    }

    /// Symbolises `svma` with the units of `cache.needed`, adding units
    /// (and remaking the context) when the lookup refers to one it lacks.
    fn frames(image: &Image, cache: &mut Cache, svma: u64) -> Vec<Frame> {
        for _ in 0..16 {
            let Some(ctx) = cache.context.as_ref() else {
                return Vec::new();
            };
            let mut out = Vec::new();
            let missing = match ctx.find_frames(svma).skip_all_loads() {
                Ok(mut frames) => loop {
                    match frames.next() {
                        Ok(Some(f)) => {
                            let name = f.function.as_ref().and_then(|n| n.raw_name().ok());
                            let function = match name {
                                Some(n) => demangled(&n),
                                None => image
                                    .symtab_name(svma)
                                    .map_or_else(|| "??".to_string(), demangled),
                            };
                            let (file, line) = f
                                .location
                                .map_or((None, None), |l| (l.file.map(str::to_string), l.line));
                            out.push(Frame {
                                function,
                                file,
                                line,
                            });
                        }
                        Ok(None) => break None,
                        Err(e) => break Some(e),
                    }
                },
                Err(e) => Some(e),
            };
            let Some(gimli::Error::NoEntryAtGivenOffset(offset)) = missing else {
                return out;
            };
            // A reference into a unit not in the context: add it.
            let offset = offset as usize;
            let i = cache.starts.partition_point(|&s| s <= offset);
            let Some(&unit) = i.checked_sub(1).and_then(|i| cache.starts.get(i)) else {
                return out;
            };
            if let Err(at) = cache.needed.binary_search(&unit) {
                cache.needed.insert(at, unit);
                cache.context = context(image, &cache.starts, &cache.needed);
            } else {
                return out;
            }
        }
        Vec::new()
    }

    /// Symbolises `ip` (a return address, or the first frame's address)
    /// into `out`, innermost inlined frame first. `false` if `ip` is not in
    /// the executable (or it has no usable debug information): the caller
    /// asks `backtrace`.
    pub(crate) fn resolve(ip: usize, out: &mut Vec<Frame>) -> bool {
        let Some(image) = image() else {
            return false;
        };
        let ip = ip as u64;
        if !image.code.contains(&ip) || image.section(".debug_info").is_empty() {
            return false;
        }
        // As `backtrace`: the byte before a return address is inside the
        // call instruction.
        let svma = ip.wrapping_sub(1).wrapping_sub(image.bias);
        let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
        let cache = cache.get_or_insert_with(|| Cache {
            aranges: aranges(image),
            starts: unit_starts(image),
            needed: Vec::new(),
            context: None,
        });
        let at = cache.aranges.partition_point(|e| e.0 <= svma);
        let unit = cache.aranges[..at]
            .iter()
            .rev()
            .take(4)
            .find(|e| svma < e.1)
            .map(|e| e.2);
        let before = out.len();
        if let Some(unit) = unit {
            if let Err(at) = cache.needed.binary_search(&unit) {
                cache.needed.insert(at, unit);
                cache.context = context(image, &cache.starts, &cache.needed);
            }
            out.extend(frames(image, cache, svma));
        }
        if out.len() == before {
            if let Some(name) = image.symtab_name(svma) {
                out.push(Frame {
                    function: demangled(name),
                    file: None,
                    line: None,
                });
            }
        }
        true
    }

    /// The actual address ranges of the allocator's entry points
    /// (`__rust_alloc`, `__rust_realloc`, `__rust_alloc_zeroed`; since Rust
    /// 1.9x mangled as `__rustc::__rust_alloc`), from the executable's
    /// symbol table; empty ranges for those not found (a stripped binary).
    pub(crate) fn allocator_entries() -> [Range<u64>; 3] {
        let mut out = [0..0, 0..0, 0..0];
        let Some(image) = image() else {
            return out;
        };
        const NAMES: [(&str, &str); 3] = [
            ("__rust_alloc", "12___rust_alloc"),
            ("__rust_realloc", "14___rust_realloc"),
            ("__rust_alloc_zeroed", "19___rust_alloc_zeroed"),
        ];
        for (name, range) in function_symbols(image) {
            if let Some(i) = NAMES
                .iter()
                .position(|(plain, v0)| name == *plain || name.ends_with(v0))
            {
                out[i] = range;
            }
        }
        out
    }

    /// The function symbols of the executable's `.symtab`: linkage name
    /// and address range (loaded addresses).
    fn function_symbols(image: &Image) -> impl Iterator<Item = (&str, Range<u64>)> + '_ {
        const STT_FUNC: u8 = 2;
        let (symtab, strtab) = (image.section(".symtab"), image.section(".strtab"));
        symtab.chunks_exact(24).filter_map(move |sym| {
            if sym[4] & 0xf != STT_FUNC {
                return None;
            }
            let word = |r: Range<usize>| {
                sym[r]
                    .iter()
                    .rev()
                    .fold(0u64, |a, &b| (a << 8) | u64::from(b))
            };
            let name = c_str(strtab, word(0..4) as usize)?;
            let start = word(8..16).wrapping_add(image.bias);
            Some((name, start..start.wrapping_add(word(16..24))))
        })
    }

    /// The actual address ranges of the allocator's own code: the entry
    /// points ([`allocator_entries`]) and every function symbol of the
    /// executable's `.symtab` in the tracker's `allocator` and `sampling`
    /// modules (the record path and the stack capture), sorted. Linkage
    /// names are full paths whatever the debug information (`debug =
    /// false` or `"line-tables-only"` included); only a stripped binary has
    /// none, and then this is empty. Read once per process (one scan of the
    /// table, when the first report trims a stack).
    pub(crate) fn allocator_code() -> &'static [Range<u64>] {
        static CODE: OnceLock<Vec<Range<u64>>> = OnceLock::new();
        CODE.get_or_init(|| {
            let Some(image) = image() else {
                return Vec::new();
            };
            let mut out: Vec<Range<u64>> = allocator_entries()
                .into_iter()
                .filter(|r| !r.is_empty())
                .collect();
            for (name, range) in function_symbols(image) {
                // Cheap test on the raw name first (legacy and v0 manglings
                // both spell the crate name out), then the demangled path.
                if name.contains("alloc_tracker")
                    && super::super::frame::is_allocator_path(&demangled(name))
                {
                    out.push(range.start..range.end.max(range.start + 1));
                }
            }
            out.sort_by_key(|r| r.start);
            out
        })
    }

    /// Drops the per-report state (the index and the parsed units).
    pub(crate) fn release() {
        CACHE.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod imp {
    use super::Frame;

    /// No symbol table read here: the unwinder assumes the allocator's
    /// frames.
    pub(crate) fn allocator_entries() -> [std::ops::Range<u64>; 3] {
        [0..0, 0..0, 0..0]
    }

    /// No symbol table read here: reports trim by name.
    pub(crate) fn allocator_code() -> &'static [std::ops::Range<u64>] {
        &[]
    }

    /// Not here: `backtrace` symbolises everything.
    pub(crate) fn resolve(_ip: usize, _out: &mut Vec<Frame>) -> bool {
        false
    }

    pub(crate) fn release() {}
}

/// Symbolises `ip` into `out` with the per-unit symboliser; `false` when
/// `backtrace` must do it (not in the executable, no debug information,
/// or the knob says so).
pub(crate) fn resolve(ip: usize, out: &mut Vec<Frame>) -> bool {
    !USE_BACKTRACE.load(std::sync::atomic::Ordering::Relaxed) && imp::resolve(ip, out)
}

pub(crate) use imp::{allocator_code, allocator_entries};

/// Drops the symbolisers' caches after a report.
pub(crate) fn release() {
    imp::release();
    backtrace::clear_symbol_cache();
}

#[cfg(all(test, target_arch = "x86_64", target_os = "linux"))]
mod tests {
    use super::*;

    #[inline(never)]
    fn marker() -> usize {
        std::hint::black_box(marker as *const () as usize)
    }

    #[test]
    fn names_a_function_of_the_executable_like_backtrace() {
        let ip = marker() + 4;
        let mut ours = Vec::new();
        assert!(imp::resolve(ip, &mut ours));
        let mut theirs = Vec::new();
        backtrace::resolve(ip as *mut std::ffi::c_void, |sym| {
            theirs.push(Frame {
                function: sym.name().map_or("??".into(), |n| format!("{n:#}")),
                file: sym.filename().map(|p| p.display().to_string()),
                line: sym.lineno(),
            });
        });
        release();
        assert_eq!(ours, theirs);
        // Innermost first: in a release build `black_box` is inlined into it.
        assert!(
            ours.last().unwrap().function.ends_with("marker"),
            "{ours:?}"
        );
    }
}
