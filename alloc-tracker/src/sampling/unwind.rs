//! Fast call stacks: DWARF unwinding of the capturing thread's own stack
//! with the unwind rule of every return address cached in a lock-free
//! table, so that a capture is one table load and one or two stack reads
//! per frame.
//!
//! ```text
//! capture point: rip, rsp, rbp (inline asm)       modules: dl_iterate_phdr, once:
//!        |                                          the executable, libc, ... with
//!        v                                          their .eh_frame_hdr + .eh_frame
//!  per frame:  word = RULES[hash(ip)]  --miss-->  binary search in .eh_frame_hdr,
//!              (hit: one load)                    run the FDE's CFI to the row of ip
//!              CFA = rsp|rbp + off                (gimli), encode it, store it
//!              ip  = *(CFA - 8)
//!              rbp = *(CFA - 8k) or unchanged
//!              rsp = CFA
//! ```
//!
//! A rule is what the x86_64 System V ABI's CFI says in all ordinary code:
//! the canonical frame address is `rsp` or `rbp` plus a constant, the
//! return address sits just below it, and `rbp` is either unchanged or
//! saved at a constant offset from it. That is 32 bits; with a 32-bit
//! check of the address it fills one `AtomicU64`, so readers never see a
//! torn entry and need no lock. Rows that say anything else (a CFA
//! expression, a return address elsewhere) are cached as "unsupported".
//! The miss path parses with `gimli` into one unwind context made at
//! start-up, under a mutex: nothing in a capture allocates.
//!
//! The unwinder is built on first use, from the objects loaded then. A
//! stack that passes through code outside them (an object `dlopen`ed
//! later, JIT code) or that stops on an unsupported rule before getting
//! past the allocator is captured again by the old unwinder
//! (`backtrace::trace`, libgcc's DWARF unwinder without a cache) and
//! counted in [`StackCaptureStats`].
//!
//! The walk stops [`DEFAULT_DEPTH`] physical frames past the allocator's
//! entry (`__rust_alloc` and co., whose address ranges are read from the
//! executable's symbol table when the unwinder is built): a frame from a new
//! call site costs a chain of two dependent loads, so the depth is the cost.
//!
//! Each thread also remembers the shape of its last stack (`Memo`): when
//! the next capture starts from the same point and its return addresses
//! match the remembered ones at the remembered offsets, they are checked
//! with independent loads instead of a chain of dependent ones.
//!
//! Alternatives measured (see `docs/attribution.md`, "Call stacks"):
//! `framehop` (the same idea as a library: a per-thread cache of 509 rules,
//! here behind a lock, and a generic rule interpreter) took 1.5-3.4 us per
//! recorded pair on this loaded 2-core machine, wall time; frame pointers
//! alone stop in std, built without them.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// How the call stacks recorded so far were captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StackCaptureStats {
    /// Stacks captured by the cached unwinder.
    pub fast: u64,
    /// Stacks captured by the fallback (`backtrace::trace`) because the
    /// cached unwinder was unavailable or failed on them.
    pub fallback: u64,
}

static FAST: AtomicU64 = AtomicU64::new(0);
static FALLBACK: AtomicU64 = AtomicU64::new(0);

/// How the call stacks recorded so far were captured (fast vs fallback).
pub fn stack_capture_stats() -> StackCaptureStats {
    StackCaptureStats {
        fast: FAST.load(Ordering::Relaxed),
        fallback: FALLBACK.load(Ordering::Relaxed),
    }
}

/// Which unwinder captures call stacks (a test and benchmark knob).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackUnwinder {
    /// The cached unwinder, with the fallback when it fails (the default).
    Cached,
    /// The rule cache without the remembered stack shape: what a capture
    /// from a new call site costs.
    RulesOnly,
    /// Always the old unwinder (`backtrace::trace`), to compare.
    Fallback,
}

static USE_FALLBACK: AtomicBool = AtomicBool::new(false);
static NO_MEMO: AtomicBool = AtomicBool::new(false);

/// Chooses the unwinder for the following captures, process-wide.
#[doc(hidden)]
pub fn set_stack_unwinder(u: StackUnwinder) {
    USE_FALLBACK.store(u == StackUnwinder::Fallback, Ordering::Relaxed);
    NO_MEMO.store(u == StackUnwinder::RulesOnly, Ordering::Relaxed);
}

/// Whether captures must use the fallback (the knob above).
pub(crate) fn forced_fallback() -> bool {
    USE_FALLBACK.load(Ordering::Relaxed)
}

/// Counts a capture.
pub(crate) fn count(fast: bool) {
    if fast {
        FAST.fetch_add(1, Ordering::Relaxed);
    } else {
        FALLBACK.fetch_add(1, Ordering::Relaxed);
    }
}

/// Physical frames a capture keeps past the allocator's entry
/// (`__rust_alloc`, `__rust_realloc`, `__rust_alloc_zeroed`, found by name
/// in the executable's symbol table when the unwinder is built): the issue
/// asks for at least 24 in reports; 28 leaves room for std's wrappers that
/// reports trim in debug builds. Each frame of a walk from a new call site
/// is a chain of two dependent loads (its rule, then its return address),
/// so a capture costs in proportion to this.
pub(crate) const DEFAULT_DEPTH: usize = 28;

/// The allocator's own frames assumed while its entry is not (yet) seen:
/// the capture, the record path and `__rust_alloc` in a release build.
const ASSUMED_ALLOCATOR_FRAMES: usize = 4;

static DEPTH: AtomicUsize = AtomicUsize::new(DEFAULT_DEPTH);

/// Sets how many physical frames the cached unwinder keeps past the
/// allocator's entry (a test and benchmark knob; a record keeps at most 48
/// frames in all).
#[doc(hidden)]
pub fn set_stack_depth(frames: usize) {
    DEPTH.store(frames.clamp(MIN_FRAMES, 48), Ordering::Relaxed);
}

/// Frames kept past the allocator's entry.
#[inline(always)]
pub(crate) fn depth() -> usize {
    DEPTH.load(Ordering::Relaxed)
}

/// Frames a fast capture must reach before it may stop on an unwind error
/// (the allocator's own frames are about 4 in a release build, about 12 in
/// a debug build): fewer means the stack did not
/// get past the allocator, and the fallback takes over.
const MIN_FRAMES: usize = 12;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod imp {
    use std::cell::Cell;
    use std::ops::Range;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Mutex, OnceLock, PoisonError};

    use gimli::{
        BaseAddresses, CfaRule, EhFrame, EhFrameHdr, EndianSlice, LittleEndian, ParsedEhFrameHdr,
        ReaderOffset, Register, RegisterRule, UnwindContext, UnwindContextStorage, UnwindSection,
        UnwindTableRow, X86_64,
    };

    use super::MIN_FRAMES;
    use crate::allocator::unwind_raw::{self, StackBounds};

    type Bytes = EndianSlice<'static, LittleEndian>;

    /// Fixed-size storage for gimli's unwind rows: evaluating CFI never
    /// allocates (x86_64 code saves at most the 16 general registers).
    #[derive(Debug)]
    struct Fixed;

    impl<T: ReaderOffset> UnwindContextStorage<T> for Fixed {
        type Rules = [(Register, RegisterRule<T>); 32];
        type Stack = [UnwindTableRow<T, Self>; 4];
    }

    /// One loaded object's code and unwind sections (actual addresses).
    struct Module {
        code: Range<u64>,
        bases: BaseAddresses,
        hdr: ParsedEhFrameHdr<Bytes>,
        eh_frame: EhFrame<Bytes>,
    }

    struct Unwinder {
        /// The executable first: most frames are in it.
        modules: Box<[Module]>,
        /// The allocator's entry points (`__rust_alloc` and co.), actual
        /// addresses; empty ranges where not found.
        entries: [Range<u64>; 3],
        /// The smallest range holding all of `entries`: one test for the
        /// frames that are none of them.
        entry_span: Range<u64>,
        /// The miss path's CFI evaluation state.
        context: Mutex<Box<UnwindContext<usize, Fixed>>>,
    }

    static UNWINDER: OnceLock<Option<Unwinder>> = OnceLock::new();

    // === the rule cache ===

    /// Direct-mapped: 4096 entries, 32 KiB of `.bss`.
    const SLOTS_LOG2: u32 = 12;
    static RULES: [AtomicU64; 1 << SLOTS_LOG2] = [const { AtomicU64::new(0) }; 1 << SLOTS_LOG2];

    /// Rule kinds (low 3 bits of a rule; 0 = empty slot).
    const CFA_RSP: u32 = 1;
    const CFA_RBP: u32 = 2;
    const END_OF_STACK: u32 = 3;
    const UNSUPPORTED: u32 = 4;

    /// The slot of `key` (an instruction or return address) and the 32-bit
    /// check kept with its rule: the slot from the low 12 bits as they are
    /// (one `and`: the slot is on the walk's chain of dependent loads, and
    /// the low bits of code addresses are as good as hashed), the check from
    /// the bits above them, with the top bits of a 47-bit user address
    /// folded in (off the chain: it is compared while the walk goes on). Two
    /// addresses with the same slot and check would share a rule; the
    /// walk's reads stay inside the thread's stack whatever the rule says,
    /// so such a stack could be wrong, never unsafe.
    #[inline(always)]
    fn slot_and_check(key: u64) -> (usize, u32) {
        let slot = (key & ((1 << SLOTS_LOG2) - 1)) as usize;
        (slot, ((key >> SLOTS_LOG2) as u32) ^ ((key >> 44) as u32))
    }

    #[inline(always)]
    fn cached(key: u64) -> Option<u32> {
        let (slot, check) = slot_and_check(key);
        let word = RULES[slot].load(Ordering::Relaxed);
        ((word >> 32) as u32 == check && word as u32 != 0).then_some(word as u32)
    }

    fn store(addr: u64, rule: u32) {
        let (slot, check) = slot_and_check(addr);
        RULES[slot].store(
            (u64::from(check) << 32) | u64::from(rule),
            Ordering::Relaxed,
        );
    }

    /// The return address is at `base + 8 * ra_by_8` (so `CFA = base +
    /// 8 * ra_by_8 + 8`: the rule keeps the return address's offset, so that
    /// the walk's next load needs one `and` and one `add`); `rbp` saved at
    /// `CFA - 8 * bp_by_8` (0 = unchanged).
    fn encode(kind: u32, ra_by_8: u32, bp_by_8: u32) -> u32 {
        kind | (ra_by_8 << 3) | (bp_by_8 << 19)
    }

    /// The offset of the return address from the rule's base register.
    #[inline(always)]
    fn ra_offset(rule: u32) -> u64 {
        u64::from(rule & (0xffff << 3))
    }

    /// The rule of one CFI row, or `UNSUPPORTED`.
    fn rule_of(row: &UnwindTableRow<usize, Fixed>) -> u32 {
        match row.register(X86_64::RA) {
            Some(RegisterRule::Offset(-8)) => {}
            Some(RegisterRule::Undefined) => return END_OF_STACK,
            _ => return UNSUPPORTED,
        }
        let (kind, offset) = match row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } if *register == X86_64::RSP => {
                (CFA_RSP, *offset)
            }
            CfaRule::RegisterAndOffset { register, offset } if *register == X86_64::RBP => {
                (CFA_RBP, *offset)
            }
            _ => return UNSUPPORTED,
        };
        if offset < 8 || offset % 8 != 0 || offset / 8 >= 1 << 16 {
            return UNSUPPORTED;
        }
        let bp = match row.register(X86_64::RBP) {
            None | Some(RegisterRule::SameValue) => 0,
            Some(RegisterRule::Offset(o)) if o < 0 && o % 8 == 0 && -o / 8 < 1 << 13 => {
                (-o / 8) as u32
            }
            _ => return UNSUPPORTED,
        };
        encode(kind, (offset / 8 - 1) as u32, bp)
    }

    /// The miss path: finds `addr`'s module, evaluates its CFI row and
    /// caches the rule under `key` (`addr` itself for the capture point,
    /// the return address `addr + 1` for the others). `None` when no known
    /// module holds `addr`.
    #[cold]
    #[inline(never)]
    fn rule_for(u: &Unwinder, key: u64, addr: u64) -> Option<u32> {
        let m = u.modules.iter().find(|m| m.code.contains(&addr))?;
        let mut context = u.context.lock().unwrap_or_else(PoisonError::into_inner);
        let rule = m
            .hdr
            .table()
            .and_then(|t| {
                t.unwind_info_for_address(
                    &m.eh_frame,
                    &m.bases,
                    &mut context,
                    addr,
                    EhFrame::cie_from_offset,
                )
                .ok()
                .map(rule_of)
            })
            .unwrap_or(UNSUPPORTED);
        drop(context);
        store(key, rule);
        Some(rule)
    }

    // === building ===

    fn build() -> Option<Unwinder> {
        let exe = build as *const () as usize as u64;
        let mut modules: Vec<Module> = Vec::new();
        unwind_raw::for_each_module(|m| {
            let avma = |svma: u64| svma.wrapping_add(m.bias);
            let bases = BaseAddresses::default()
                .set_eh_frame_hdr(avma(m.eh_frame_hdr_svma))
                .set_eh_frame(avma(m.eh_frame_svma))
                .set_text(avma(m.text_svma.start));
            let Ok(hdr) = EhFrameHdr::new(m.eh_frame_hdr, LittleEndian).parse(&bases, 8) else {
                return;
            };
            let module = Module {
                code: avma(m.text_svma.start)..avma(m.text_svma.end),
                bases,
                hdr,
                eh_frame: EhFrame::new(m.eh_frame, LittleEndian),
            };
            if module.code.contains(&exe) {
                modules.insert(0, module);
            } else {
                modules.push(module);
            }
        });
        if modules.is_empty() {
            return None;
        }
        let entries = crate::sampling::symbols::allocator_entries();
        Some(Unwinder {
            modules: modules.into_boxed_slice(),
            entry_span: {
                let found = entries.iter().filter(|r| !r.is_empty());
                let start = found.clone().map(|r| r.start).min().unwrap_or(0);
                start..found.map(|r| r.end).max().unwrap_or(0)
            },
            entries,
            context: Mutex::new(Box::new(UnwindContext::new_in())),
        })
    }

    /// Builds the unwinder now rather than at the first recorded
    /// allocation. Runs under the re-entrancy guard (callers' duty).
    pub(crate) fn prepare() {
        UNWINDER.get_or_init(build);
    }

    thread_local! {
        /// This thread's stack `[low, high)`; `(0, 0)` = not asked yet,
        /// `(1, 1)` = unknown. No destructor (read from the allocator).
        static STACK: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }

    fn thread_stack() -> Option<(u64, u64)> {
        let s = STACK.try_with(|s| {
            if s.get() == (0, 0) {
                s.set(StackBounds::current_thread_stack().unwrap_or((1, 1)));
            }
            s.get()
        });
        s.ok().filter(|s| *s != (1, 1))
    }

    // === the walk ===

    /// Frames a thread remembers of its last capture.
    const MEMO_FRAMES: usize = 48;
    /// `bp_slot` value: `rbp` still holds its value at the capture point.
    const NO_SLOT: u32 = u32::MAX;

    /// The shape of this thread's last stack, for as many innermost frames
    /// as have `rsp`-based rules: where (relative to the capture point's
    /// `rsp`) each frame's return address was, and what it was.
    ///
    /// Frame `k`'s rule depends only on its address, so if the capture
    /// point is the same and the return addresses of frames `0..k` match
    /// the remembered ones, frame `k`'s return address is at the remembered
    /// offset: the next capture checks the remembered slots with loads that
    /// do not depend on each other (the CPU runs them in parallel), instead
    /// of a chain of dependent loads, and walks on normally from the first
    /// mismatch. Repeated captures from one call site, the common case
    /// while a leak check records a loop, cost a few cycles per frame.
    struct Memo {
        /// The capture point's instruction pointer; 0 = empty.
        ip0: Cell<u64>,
        /// Frames remembered.
        len: Cell<usize>,
        /// Frame `k`'s CFA minus the capture point's `rsp`.
        cfa_off: [Cell<u32>; MEMO_FRAMES],
        /// Frame `k`'s return address (frame `k + 1`'s address).
        ra: [Cell<u64>; MEMO_FRAMES],
        /// Where `rbp` was last restored from at or before frame `k`
        /// (relative to the capture point's `rsp`), or `NO_SLOT`.
        bp_slot: [Cell<u32>; MEMO_FRAMES],
        /// Index in `ips` of the allocator's entry frame, if remembered.
        entry: Cell<usize>,
    }

    impl Memo {
        const fn new() -> Self {
            Memo {
                ip0: Cell::new(0),
                len: Cell::new(0),
                cfa_off: [const { Cell::new(0) }; MEMO_FRAMES],
                ra: [const { Cell::new(0) }; MEMO_FRAMES],
                bp_slot: [const { Cell::new(NO_SLOT) }; MEMO_FRAMES],
                entry: Cell::new(usize::MAX),
            }
        }
    }

    thread_local! {
        /// This thread's last stack shape. No destructor.
        static MEMO: Memo = const { Memo::new() };
    }

    /// Captures the caller's stack into `ips`, innermost first (the first
    /// address is inside this function, the others are return addresses);
    /// the number of frames, or `None` if this unwinder cannot vouch for
    /// the stack. `#[inline(never)]`: the register snapshot describes this
    /// function's own frame, which stays live during the walk.
    #[inline(never)]
    pub(crate) fn capture(ips: &mut [usize], _thread: u32) -> Option<usize> {
        let regs = unwind_raw::capture_registers();
        let u = UNWINDER.get_or_init(build).as_ref()?;
        let bounds = StackBounds::new(regs.sp, thread_stack()?)?;
        if super::NO_MEMO.load(std::sync::atomic::Ordering::Relaxed) {
            return walk(u, &bounds, regs, ips, None);
        }
        MEMO.try_with(|m| walk(u, &bounds, regs, ips, Some(m)))
            .unwrap_or_else(|_| walk(u, &bounds, regs, ips, None))
    }

    #[inline(always)]
    fn walk(
        u: &Unwinder,
        bounds: &StackBounds,
        regs: unwind_raw::Registers,
        ips: &mut [usize],
        memo: Option<&Memo>,
    ) -> Option<usize> {
        let sp0 = regs.sp;
        let past = super::depth();
        // Until the allocator's entry is seen, assume it is frame 3.
        let mut limit = ips.len().min(super::ASSUMED_ALLOCATOR_FRAMES + past);
        // Whether the frame with this return address is the allocator's
        // entry (the byte before a return address is in its caller).
        let is_entry = |ra: u64| {
            let a = ra.wrapping_sub(1);
            u.entry_span.contains(&a) && u.entries.iter().any(|r| r.contains(&a))
        };
        let mut entry_seen = false;
        let (mut ip, mut sp, mut bp) = (regs.ip, sp0, regs.bp);
        let mut bp_slot = NO_SLOT;
        // Frames already applied (their return address known).
        let mut n = 0;
        if let Some(m) = memo {
            if m.ip0.get() == regs.ip && limit > 0 {
                // The remembered entry, if the prefix reaches it.
                let e = m.entry.get();
                if e <= m.len.get() {
                    limit = ips.len().min(e + 1 + past);
                }
                // Check the remembered slots: independent loads.
                let len = m.len.get().min(limit - 1);
                ips[0] = ip as usize;
                while n < len {
                    let slot = sp0 + u64::from(m.cfa_off[n].get()) - 8;
                    match bounds.read(slot) {
                        Ok(ra) if ra == m.ra[n].get() => {
                            ips[n + 1] = ra as usize;
                            n += 1;
                        }
                        _ => break,
                    }
                }
                // The matched frames are the remembered ones, each checked
                // when it was walked: the entry is among them or not at all.
                if e <= n {
                    entry_seen = true;
                } else {
                    limit = ips.len().min(super::ASSUMED_ALLOCATOR_FRAMES + past);
                    m.entry.set(usize::MAX);
                }
                if n > 0 {
                    let last = n - 1;
                    sp = sp0 + u64::from(m.cfa_off[last].get());
                    ip = m.ra[last].get();
                    bp_slot = m.bp_slot[last].get();
                    if bp_slot != NO_SLOT {
                        bp = bounds.read(sp0 + u64::from(bp_slot)).ok()?;
                    }
                    if ip == 0 {
                        return Some(n);
                    }
                }
            } else {
                m.ip0.set(regs.ip);
                m.entry.set(usize::MAX);
            }
            // Frames from `n` on are walked (and remembered) anew.
            m.len.set(n);
        }
        let mut remember = memo;
        // A stop that leaves the stack short of the allocator's caller
        // makes the fallback take it.
        let stop = |n: usize| (n >= MIN_FRAMES).then_some(n);
        while n < limit {
            ips[n] = ip as usize;
            let frame = n;
            n += 1;
            if !entry_seen && frame > 0 && is_entry(ip) {
                entry_seen = true;
                limit = ips.len().min(frame + 1 + past);
                if let Some(m) = memo {
                    m.entry.set(frame);
                }
            }
            // Rules are cached under the address itself; the CFI row of a
            // return address is the one of its call instruction, one byte
            // back (the capture point is an instruction itself).
            let rule = match cached(ip) {
                Some(r) => r,
                None => rule_for(u, ip, if frame == 0 { ip } else { ip - 1 })?,
            };
            let kind = rule & 7;
            let at = match kind {
                CFA_RSP => sp,
                CFA_RBP => bp,
                END_OF_STACK => return Some(n),
                _ => return stop(n),
            }
            .wrapping_add(ra_offset(rule));
            if at < sp {
                return stop(n);
            }
            let Ok(ra) = bounds.read(at) else {
                return stop(n);
            };
            let cfa = at + 8;
            let bp_by_8 = u64::from(rule >> 19);
            if bp_by_8 != 0 {
                let at = cfa.wrapping_sub(bp_by_8 * 8);
                let Ok(saved) = bounds.read(at) else {
                    return stop(n);
                };
                bp = saved;
                match u32::try_from(at.wrapping_sub(sp0)) {
                    Ok(slot) if slot != NO_SLOT => bp_slot = slot,
                    // Not expressible: stop remembering from here.
                    _ => remember = None,
                }
            }
            if let Some(m) = remember {
                // Only while every frame so far is `rsp`-based: then this
                // frame's CFA is a fixed offset from the capture point.
                match u32::try_from(cfa - sp0) {
                    Ok(off) if kind == CFA_RSP && frame < MEMO_FRAMES => {
                        m.cfa_off[frame].set(off);
                        m.ra[frame].set(ra);
                        m.bp_slot[frame].set(bp_slot);
                        m.len.set(frame + 1);
                    }
                    _ => remember = None,
                }
            }
            sp = cfa;
            ip = ra;
            if ip == 0 {
                return Some(n);
            }
        }
        Some(n)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn rules_round_trip_through_the_cache() {
            let r = encode(CFA_RBP, 2, 2);
            assert_eq!((r & 7, (r >> 3) & 0xffff, r >> 19), (CFA_RBP, 2, 2));
            store(0x5555_0000_1234, r);
            assert_eq!(cached(0x5555_0000_1234), Some(r));
            assert_eq!(cached(0x5555_0000_1235), None);
            assert_eq!(cached(0x5555_0001_1234), None);
            assert_eq!(cached(0x7555_0000_1234), None);
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod imp {
    /// No fast unwinder on this platform.
    pub(crate) fn prepare() {}

    /// No fast unwinder on this platform: always the fallback.
    pub(crate) fn capture(_ips: &mut [usize], _thread: u32) -> Option<usize> {
        None
    }
}

pub(crate) use imp::{capture, prepare};
