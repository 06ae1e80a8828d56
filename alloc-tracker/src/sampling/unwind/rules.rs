//! The rule cache: the unwind rule of every address a walk has met, in a
//! lock-free direct-mapped table, and the miss path that reads it from the
//! loaded objects' `.eh_frame` (gimli).
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

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, EndianSlice, LittleEndian, ParsedEhFrameHdr,
    ReaderOffset, Register, RegisterRule, UnwindContext, UnwindContextStorage, UnwindSection,
    UnwindTableRow, X86_64,
};

use super::raw as unwind_raw;

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

pub(super) struct Unwinder {
    /// The executable first: most frames are in it.
    modules: Box<[Module]>,
    /// The allocator's entry points (`__rust_alloc` and co.), actual
    /// addresses; empty ranges where not found.
    pub(super) entries: [Range<u64>; 3],
    /// The smallest range holding all of `entries`: one test for the
    /// frames that are none of them.
    pub(super) entry_span: Range<u64>,
    /// The miss path's CFI evaluation state.
    context: Mutex<Box<UnwindContext<usize, Fixed>>>,
}

pub(super) static UNWINDER: OnceLock<Option<Unwinder>> = OnceLock::new();

// === the cache ===

/// Direct-mapped: 4096 entries, 32 KiB of `.bss`.
pub(super) const SLOTS_LOG2: u32 = 12;
static RULES: [AtomicU64; 1 << SLOTS_LOG2] = [const { AtomicU64::new(0) }; 1 << SLOTS_LOG2];

/// Rule kinds (low 3 bits of a rule; 0 = empty slot).
pub(super) const CFA_RSP: u32 = 1;
pub(super) const CFA_RBP: u32 = 2;
pub(super) const END_OF_STACK: u32 = 3;
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
    (
        slot_of(key),
        ((key >> SLOTS_LOG2) as u32) ^ ((key >> 44) as u32),
    )
}

/// The slot of `key`: its low 12 bits.
#[inline(always)]
pub(super) fn slot_of(key: u64) -> usize {
    (key & ((1 << SLOTS_LOG2) - 1)) as usize
}

#[inline(always)]
pub(super) fn cached(key: u64) -> Option<u32> {
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
pub(super) fn encode(kind: u32, ra_by_8: u32, bp_by_8: u32) -> u32 {
    kind | (ra_by_8 << 3) | (bp_by_8 << 19)
}

/// The offset of the return address from the rule's base register.
#[inline(always)]
pub(super) fn ra_offset(rule: u32) -> u64 {
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
        Some(RegisterRule::Offset(o)) if o < 0 && o % 8 == 0 && -o / 8 < 1 << 13 => (-o / 8) as u32,
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
pub(super) fn rule_for(u: &Unwinder, key: u64, addr: u64) -> Option<u32> {
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

pub(super) fn build() -> Option<Unwinder> {
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
