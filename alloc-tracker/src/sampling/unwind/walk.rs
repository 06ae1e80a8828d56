//! The walk: from the capture point's registers to the return addresses,
//! with the caller each frame had before as a prediction.
//!
//! Without predictions every frame is a chain of two dependent loads: the rule
//! of the frame's address says where its return address is, and that address is
//! the next frame's, so the walk costs two load latencies a frame (figures in
//! `docs/attribution.md`, "Call stacks"). Most frames have the caller they had
//! last time (a leak check records the same loops over and over), so each slot
//! of the rule cache also keeps an *edge*: the return address last found in a
//! frame with that address, with the caller's rule packed beside it. The walk
//! loads the edge while it reads the stack; when the two agree it goes on with
//! the edge's copy, so the chain is one load and one `and` a frame (the CPU
//! runs ahead on the prediction, and the stack read beside it only confirms). A
//! wrong prediction costs a mispredicted branch and a frame walked the long
//! way, which then corrects the edge. Every address the walk records is the one
//! read from the stack: a prediction only decides how soon the next frame
//! starts.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use super::raw::{self as unwind_raw, StackBounds};
use super::rules::{
    build, cached, ra_offset, rule_for, slot_of, Unwinder, CFA_RBP, CFA_RSP, END_OF_STACK,
    SLOTS_LOG2, UNWINDER,
};
use super::MIN_FRAMES;

/// Edges of the call graph seen so far, one per slot of the rule cache
/// (same slot as the rule of the callee's address): the return address
/// last found in a frame with that address, packed in one word with
/// what the walk needs of the caller's own frame. A walk reads the edge
/// of a frame while it reads the frame's return address from the stack,
/// and when the two agree it goes on with the edge's copy: the next
/// frame's rule and address then come from one load, not from the stack
/// read and a rule lookup after it, and the CPU runs ahead on the
/// prediction while the stack read confirms it.
///
/// ```text
/// bits 59..64  the caller's rule: rbp saved at CFA - 8k (0 = unchanged)
/// bits 49..59  the caller's rule: return address at rsp + 8k
/// bit  48      the caller is the allocator's entry
/// bit  47      the caller's rule is rsp-based and fits these bits
/// bits  0..47  the return address (user space)
/// ```
///
/// The address is in the low bits so that the next slot is one `and`
/// of the loaded word. No check is needed: the address is compared with
/// the stack's, and the rest of the word is a function of that address,
/// whichever slot it was found in.
static EDGES: [AtomicU64; 1 << SLOTS_LOG2] = [const { AtomicU64::new(0) }; 1 << SLOTS_LOG2];

const EDGE_RA: u64 = (1 << 47) - 1;
const EDGE_FAST: u64 = 1 << 47;
const EDGE_ENTRY: u64 = 1 << 48;

/// The edge to `ra`, whose rule is `rule`.
fn edge(ra: u64, rule: u32, entry: bool) -> u64 {
    if ra & !EDGE_RA != 0 {
        return 0;
    }
    let ra_by_8 = u64::from((rule >> 3) & 0xffff);
    let bp_by_8 = u64::from(rule >> 19);
    // The saved rbp must lie in the frame (between its rsp and CFA), so
    // that the walk's read of it needs no other test than the bounds.
    let fits =
        rule & 7 == CFA_RSP && ra_by_8 < 1 << 10 && bp_by_8 < 1 << 5 && bp_by_8 <= ra_by_8 + 1;
    let rule_bits = if fits {
        EDGE_FAST | (ra_by_8 << 49) | (bp_by_8 << 59)
    } else {
        0
    };
    ra | rule_bits | if entry { EDGE_ENTRY } else { 0 }
}

/// Where a fast frame's return address is, from the edge that
/// predicted the frame.
#[inline(always)]
fn edge_ra_offset(e: u64) -> u64 {
    ((e >> 49) & 0x3ff) * 8
}

/// Where (in words below the CFA) a fast frame saved rbp, 0 = nowhere.
#[inline(always)]
fn edge_bp_by_8(e: u64) -> u64 {
    e >> 59
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
    let predict = !super::NO_PREDICTION.load(Ordering::Relaxed);
    walk(u, &bounds, regs, ips, predict)
}

#[inline(always)]
fn walk(
    u: &Unwinder,
    bounds: &StackBounds,
    regs: unwind_raw::Registers,
    ips: &mut [usize],
    predict: bool,
) -> Option<usize> {
    let past = super::depth();
    // Until the allocator's entry is seen, assume it is frame 3.
    let mut limit = ips.len().min(super::ASSUMED_ALLOCATOR_FRAMES + past);
    // Whether the frame with this return address is the allocator's
    // entry (the byte before a return address is in its caller).
    let is_entry = |ra: u64| {
        let a = ra.wrapping_sub(1);
        u.entry_span.contains(&a) && u.entries.iter().any(|r| r.contains(&a))
    };
    // What a carried edge must say for the fast loop to take its frame:
    // a rule that fits, and not the entry until the entry is seen (the
    // general step sets the limit then).
    let mut fast_mask = EDGE_FAST | EDGE_ENTRY;
    let (mut ip, mut sp, mut bp) = (regs.ip, regs.sp, regs.bp);
    // The edge that predicted `ip` (0: none), and the slot whose edge
    // should have (`usize::MAX`: none).
    let mut carried = 0u64;
    let mut pending = usize::MAX;
    // The slot of `ip`.
    let mut slot = slot_of(ip);
    // A stop that leaves the stack short of the allocator's caller
    // makes the fallback take it.
    let stop = |n: usize| (n >= MIN_FRAMES).then_some(n);
    let mut n = 0;
    loop {
        // Frames whose address and rule an edge predicted: one edge
        // load per frame on the chain, the stack read beside it.
        while carried & fast_mask == EDGE_FAST && n < limit {
            ips[n] = ip as usize;
            n += 1;
            let at = sp + edge_ra_offset(carried);
            let Ok(ra) = bounds.read(at) else {
                return stop(n);
            };
            let bp_by_8 = edge_bp_by_8(carried);
            if bp_by_8 != 0 {
                let Ok(saved) = bounds.read(at + 8 - bp_by_8 * 8) else {
                    return stop(n);
                };
                bp = saved;
            }
            sp = at + 8;
            let e = EDGES[slot].load(Ordering::Relaxed);
            if e & EDGE_RA == ra {
                // Go on with the edge's copy, loaded independently of the
                // stack read, so that the next frame does not wait for it.
                // (`opaque` on the word, not on the compared value: the
                // compiler would use the stack's value, known to be equal.
                // The slot straight from the word: one `and` on the chain.)
                let word = unwind_raw::opaque(e);
                ip = word & EDGE_RA;
                slot = slot_of(word);
                carried = e;
            } else {
                pending = slot;
                ip = ra;
                slot = slot_of(ra);
                carried = 0;
            }
        }
        if n >= limit {
            return Some(n);
        }
        // One frame without a usable prediction: the rule cache.
        if ip == 0 {
            return Some(n);
        }
        ips[n] = ip as usize;
        let frame = n;
        n += 1;
        let entry = frame > 0 && is_entry(ip);
        if entry && fast_mask & EDGE_ENTRY != 0 {
            fast_mask = EDGE_FAST;
            limit = ips.len().min(frame + 1 + past);
        }
        // Rules are cached under the address itself; the CFI row of a
        // return address is the one of its call instruction, one byte
        // back (the capture point is an instruction itself).
        let rule = match cached(ip) {
            Some(r) => r,
            None => rule_for(u, ip, if frame == 0 { ip } else { ip - 1 })?,
        };
        if pending != usize::MAX {
            EDGES[pending].store(edge(ip, rule, entry), Ordering::Relaxed);
            pending = usize::MAX;
        }
        let base = match rule & 7 {
            CFA_RSP => sp,
            CFA_RBP => bp,
            END_OF_STACK => return Some(n),
            _ => return stop(n),
        };
        let at = base.wrapping_add(ra_offset(rule));
        if at < sp {
            return stop(n);
        }
        let Ok(ra) = bounds.read(at) else {
            return stop(n);
        };
        let cfa = at + 8;
        let bp_by_8 = u64::from(rule >> 19);
        if bp_by_8 != 0 {
            let Ok(saved) = bounds.read(cfa.wrapping_sub(bp_by_8 * 8)) else {
                return stop(n);
            };
            bp = saved;
        }
        sp = cfa;
        let e = if predict {
            EDGES[slot].load(Ordering::Relaxed)
        } else {
            0
        };
        if ra != 0 && e & EDGE_RA == ra {
            carried = e;
        } else {
            carried = 0;
            if predict && ra != 0 {
                pending = slot;
            }
        }
        ip = ra;
        slot = slot_of(ip);
    }
}

#[cfg(test)]
mod tests {
    use super::super::rules::encode;
    use super::*;

    const RA: u64 = 0x5555_1234_5678;

    #[test]
    fn an_edge_carries_its_callers_rule_when_it_fits() {
        let e = edge(RA, encode(CFA_RSP, 5, 2), true);
        assert_eq!(e & EDGE_RA, RA);
        assert_ne!(e & EDGE_FAST, 0);
        assert_ne!(e & EDGE_ENTRY, 0);
        assert_eq!(edge_ra_offset(e), 40);
        assert_eq!(edge_bp_by_8(e), 2);
        let e = edge(RA, encode(CFA_RSP, (1 << 10) - 1, 0), false);
        assert_eq!(
            (edge_ra_offset(e), edge_bp_by_8(e)),
            (((1 << 10) - 1) * 8, 0)
        );
        assert_eq!(e & EDGE_ENTRY, 0);
    }

    #[test]
    fn an_edge_whose_callers_rule_does_not_fit_names_the_caller_only() {
        for rule in [
            encode(CFA_RBP, 1, 2),
            encode(CFA_RSP, 1 << 10, 0),
            encode(CFA_RSP, 40, 1 << 5),
            // rbp saved above the frame's CFA - (return address offset + 8)
            encode(CFA_RSP, 1, 3),
            END_OF_STACK,
        ] {
            let e = edge(RA, rule, false);
            assert_eq!(e, RA, "{rule:#x}");
        }
        // An address no user-space return address has is never predicted.
        assert_eq!(edge(1 << 47, encode(CFA_RSP, 1, 0), false), 0);
    }
}
