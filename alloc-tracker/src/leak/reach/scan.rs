//! The flood fill: mark every candidate block that a root word points into,
//! then every candidate that a marked candidate's contents point into.
//!
//! All of the scan's working memory that holds block addresses is mapped for
//! it (`raw::MapVec`) and excluded from the roots, and nothing here
//! allocates on the heap while the roots are read.

use super::raw::{self, MapBuf, MapVec, Reader};

/// A retained block of the checked scope, and how the scan reached it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cand {
    pub(crate) addr: usize,
    pub(crate) size: usize,
    /// The record's sequence number: tells the block from a later one at
    /// the same address.
    pub(crate) seq: u64,
    /// Whether a root or a reached candidate points into it.
    pub(crate) reached: bool,
    /// The candidate whose contents point to it (index + 1), or 0 when a
    /// root word does.
    pub(crate) via: u32,
    /// Address of the word that points to it.
    pub(crate) loc: usize,
    /// How telling that word's memory is as a holder (see [`Root::rank`]).
    pub(crate) rank: u8,
}

/// A range of memory to read as roots.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Root {
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// 2 for a loaded object's data or another thread's stack, 1 for other
    /// anonymous memory, 0 for the checking thread's own stack: a block
    /// pointed to from several is said to be held by the highest (stale
    /// copies are likeliest in the frames where the checked work just ran,
    /// then in freed heap memory); one held by the checking thread's stack
    /// and by a retained block is said to be held through that block.
    pub(crate) rank: u8,
}

/// Bytes read per system call.
const CHUNK: usize = 1 << 20;
const PAGE: usize = 4096;
const WORD: usize = std::mem::size_of::<usize>();

/// The candidate whose block contains `w`.
#[inline]
fn find(cands: &[Cand], w: usize) -> Option<usize> {
    let i = cands.partition_point(|c| c.addr <= w);
    let c = cands.get(i.checked_sub(1)?)?;
    (w < c.addr + c.size).then_some(i - 1)
}

/// Whether candidate `target` is on the chain of holders of candidate
/// `from` (itself included).
fn chain_contains(cands: &[Cand], from: u32, target: u32) -> bool {
    let mut cur = from;
    for _ in 0..=cands.len() {
        if cur == target {
            return true;
        }
        match cands.get(cur as usize) {
            Some(c) if c.via != 0 => cur = c.via - 1,
            _ => return false,
        }
    }
    true
}

/// Figures of one scan.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ScanStats {
    /// Root bytes read.
    pub(crate) root_bytes: u64,
    /// Candidate bytes read.
    pub(crate) block_bytes: u64,
    /// Root bytes skipped: pages not resident.
    pub(crate) skipped_bytes: u64,
    /// Bytes the scan mapped for itself (peak).
    pub(crate) own_bytes: u64,
}

/// The scanner: candidates sorted by address, a read buffer, a worklist.
pub(crate) struct Scanner<'a> {
    reader: &'a Reader,
    cands: &'a mut [Cand],
    lo: usize,
    hi: usize,
    buf: MapBuf,
    resident: MapBuf,
    work: MapVec<u32>,
    pub(crate) stats: ScanStats,
}

impl<'a> Scanner<'a> {
    /// A scanner over `cands` (sorted by address, not overlapping).
    pub(crate) fn new(reader: &'a Reader, cands: &'a mut [Cand]) -> Option<Scanner<'a>> {
        let lo = cands.first().map_or(0, |c| c.addr);
        let hi = cands.last().map_or(0, |c| c.addr + c.size);
        let n = cands.len();
        Some(Scanner {
            reader,
            cands,
            lo,
            hi,
            buf: MapBuf::new(CHUNK)?,
            resident: MapBuf::new(CHUNK / PAGE)?,
            // A candidate is queued once, when first reached: room for all
            // of them up front, so that the scan never maps memory (the
            // mappings it reads were listed before it began) and never
            // leaves a reached block unread for want of room.
            work: MapVec::with_capacity(n)?,
            stats: ScanStats::default(),
        })
    }

    /// The ranges of the scanner's own buffers (to exclude from roots).
    pub(crate) fn own_ranges(&self) -> [(usize, usize); 3] {
        [self.buf.range(), self.resident.range(), self.work.range()]
    }

    /// Reads `start..end` and marks the candidates its words point into;
    /// `via` is 0 for a root, else the reading candidate's index + 1.
    /// Non-resident pages are skipped for roots (`check_resident`).
    fn read_range(&mut self, start: usize, end: usize, via: u32, rank: u8) {
        let check_resident = via == 0;
        let mut a = start.next_multiple_of(WORD);
        while a + WORD <= end {
            let chunk_end = end.min((a / CHUNK + 1) * CHUNK).min(a + CHUNK);
            let mut sub_start = a;
            if check_resident {
                // Skip runs of pages that are not resident (never touched,
                // or reserved and not committed): they hold no pointer.
                let ps = a & !(PAGE - 1);
                let pe = chunk_end.next_multiple_of(PAGE);
                let n = (pe - ps) / PAGE;
                if raw::resident(ps, pe, &mut self.resident.bytes()[..n]) {
                    let res = &self.resident.bytes()[..n];
                    if res.iter().all(|b| b & 1 == 0) {
                        self.stats.skipped_bytes += (chunk_end - a) as u64;
                        a = chunk_end;
                        continue;
                    }
                    // Start at the first resident page.
                    if let Some(first) = res.iter().position(|b| b & 1 != 0) {
                        let s = ps + first * PAGE;
                        if s > sub_start {
                            self.stats.skipped_bytes += (s - sub_start) as u64;
                            sub_start = s;
                        }
                    }
                }
            }
            let len = chunk_end - sub_start;
            let n = self.reader.read(sub_start, &mut self.buf.bytes()[..len]);
            if via == 0 {
                self.stats.root_bytes += n as u64;
            } else {
                self.stats.block_bytes += n as u64;
            }
            let (lo, span) = (self.lo, self.hi - self.lo);
            let words = self.buf.words(n);
            let cands = &mut *self.cands;
            for (k, &w) in words.iter().enumerate() {
                // One comparison for the common case: not a candidate.
                if w.wrapping_sub(lo) >= span {
                    continue;
                }
                if let Some(i) = find(cands, w) {
                    let loc = sub_start + k * WORD;
                    if via != 0
                        && cands[i].reached
                        && cands[i].via == 0
                        && cands[i].rank == 0
                        && !chain_contains(cands, via - 1, i as u32)
                    {
                        // Held by the checking thread's own stack, where
                        // stale copies are most likely, and by a block:
                        // name the block.
                        cands[i].via = via;
                        cands[i].loc = loc;
                        continue;
                    }
                    let c = &mut cands[i];
                    if c.reached && c.via == 0 && via == 0 && rank > c.rank {
                        c.loc = loc;
                        c.rank = rank;
                    } else if !c.reached {
                        c.reached = true;
                        c.via = via;
                        c.loc = loc;
                        c.rank = rank;
                        // Never full: it has room for every candidate.
                        let _ = self.work.push(i as u32);
                    }
                }
            }
            if n < len {
                // A hole (unmapped since the list was read): skip its page.
                a = ((sub_start + n) / PAGE + 1) * PAGE;
            } else {
                a = chunk_end;
            }
        }
    }

    /// Reads a root range, leaving out the candidate blocks inside it and
    /// the `holes` (sorted, not overlapping).
    pub(crate) fn scan_root(&mut self, root: Root, holes: &[(usize, usize)]) {
        let mut s = root.start;
        // Holes: the candidate blocks themselves and the given ranges, in
        // address order.
        let mut ci = self.cands.partition_point(|c| c.addr + c.size <= s);
        let mut hi_ = holes.partition_point(|h| h.1 <= s);
        while s < root.end {
            let next_c = self.cands.get(ci).map(|c| (c.addr, c.addr + c.size));
            let next_h = holes.get(hi_).copied();
            let next = match (next_c, next_h) {
                (Some(c), Some(h)) => Some(if c.0 <= h.0 { c } else { h }),
                (c, h) => c.or(h),
            };
            match next {
                Some((hs, he)) if hs < root.end => {
                    if hs > s {
                        self.read_range(s, hs, 0, root.rank);
                    }
                    s = s.max(he);
                    if next_c == Some((hs, he)) {
                        ci += 1;
                    } else {
                        hi_ += 1;
                    }
                }
                _ => {
                    self.read_range(s, root.end, 0, root.rank);
                    s = root.end;
                }
            }
        }
    }

    /// Reads every reached candidate's contents until no new one is reached.
    pub(crate) fn flood(&mut self) {
        while let Some(i) = self.work.pop() {
            let c = self.cands[i as usize];
            self.read_range(c.addr, c.addr + c.size, i + 1, 0);
        }
        self.stats.own_bytes = self.stats.own_bytes.max(
            (self.buf.range().1 - self.buf.range().0) as u64 + self.work.mapped_bytes() as u64,
        );
    }
}
