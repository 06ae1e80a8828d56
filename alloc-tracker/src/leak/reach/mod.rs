//! WHO HOLDS A RETAINED BLOCK: a LeakSanitizer-style reachability scan of
//! the blocks a failed leak check found still live.
//!
//! When a check that records sites fails, every retained block of the
//! checked scope that was allocated during the check is known exactly
//! (address, size, site). The scan reads the process's memory
//! conservatively, word by word, and splits those blocks into
//!
//! - **unreachable**: no word of the roots, nor of a reachable retained
//!   block, points into it; nothing can free it any more: a leak, whatever
//!   any retention rule says;
//! - **reachable**, with what holds it: a static (symbol and offset), a
//!   recorded block of another scope (its site and scope), a thread's stack,
//!   or heap memory the tracker has no record of.
//!
//! Roots are every readable, writable, private mapping of the process (the
//! data and bss of every loaded object, anonymous memory: the allocator's
//! extents, thread stacks with their TLS), except the checked thread's
//! stack below the point where `finish` was entered, the candidate blocks
//! themselves and the scan's own buffers. See `docs/reachability.md` for the
//! ways a conservative scan errs and how this one limits them.

mod holders;
mod maps;
#[allow(unsafe_code)]
mod raw;
mod scan;
#[allow(unsafe_code)]
mod stop;
mod text;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::hot::thread_state;
use crate::sampling::{self, Frame};
use crate::scope::ScopeId;

pub(crate) use holders::group;
pub(crate) use text::{fmt_site, fmt_summary, merge};

/// Whether a failed check finds out which retained blocks are still
/// reachable, and from what (default [`Reachability::Scan`] when sites are
/// recorded; a passing check never scans).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Reachability {
    /// Scan the process's memory when a check that records sites fails,
    /// with the other threads stopped (a real-time signal whose handler
    /// waits; see `docs/reachability.md`).
    #[default]
    Scan,
    /// Scan without stopping the other threads (they keep running and can
    /// move pointers while memory is read; nothing is signalled).
    ScanWhileRunning,
    /// Never scan; reports carry no reachability.
    Off,
}

/// What kind of memory holds a reachable block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum HolderKind {
    /// A static (data or bss of the executable or a shared library).
    Static,
    /// A recorded heap block of another scope (or of the checked scope,
    /// allocated before the check).
    Block,
    /// A thread's stack (or its thread-local storage).
    ThreadStack,
    /// Heap or other anonymous memory the tracker has no record of: the
    /// tracker does not know every heap block.
    UnrecordedHeap,
}

/// What holds a reachable block: the first memory outside the checked
/// scope's retained blocks on the chain of pointers that reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Holder {
    /// The kind of memory.
    pub kind: HolderKind,
    /// `Static`: the symbol's demangled name (or `object+0xoffset` without
    /// a symbol); `Block`: the origin function of the holder's allocation
    /// site; `ThreadStack`: the thread's name and id; `UnrecordedHeap`:
    /// the mapping's name, if any.
    pub name: String,
    /// `Static`: the file the symbol is in.
    pub object: Option<String>,
    /// `Block`: the scope the holding block was allocated in.
    pub scope: Option<String>,
    /// `Block`: the origin frame of the holding block's allocation site.
    pub site: Option<Frame>,
    /// `Block`: the holding block's call stack from its origin outwards
    /// (a few frames).
    #[cfg_attr(feature = "serde", serde(default))]
    pub frames: Vec<Frame>,
    /// `UnrecordedHeap`: a static or stack that points at or just below
    /// the holding word (the probable owner of the unrecorded block).
    pub via: Option<String>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            HolderKind::Static => {
                write!(f, "static `{}`", self.name)?;
                if let Some(o) = &self.object {
                    write!(f, " in {o}")?;
                }
                Ok(())
            }
            HolderKind::Block => {
                write!(
                    f,
                    "blocks allocated at {}",
                    self.site
                        .as_ref()
                        .map_or_else(|| format!("`{}`", self.name), |s| s.to_string())
                )?;
                let callers: Vec<&str> = self
                    .frames
                    .iter()
                    .skip(1)
                    .map(|f| f.function.as_str())
                    .collect();
                if !callers.is_empty() {
                    write!(f, " (called from `{}`)", callers.join("` < `"))?;
                }
                write!(f, " in scope `{}`", self.scope.as_deref().unwrap_or("?"))
            }
            HolderKind::ThreadStack => write!(f, "the stack of thread {}", self.name),
            HolderKind::UnrecordedHeap => {
                write!(f, "unrecorded heap block in scope-less memory")?;
                if !self.name.is_empty() {
                    write!(f, " ({})", self.name)?;
                }
                if let Some(v) = &self.via {
                    write!(f, ", itself pointed to by {v}")?;
                }
                Ok(())
            }
        }
    }
}

/// Bytes of retained blocks held by one holder.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct HolderGroup {
    /// The holder.
    pub holder: Holder,
    /// Retained bytes it holds (directly or through other retained blocks).
    pub bytes: u64,
    /// Retained allocations it holds.
    pub allocs: u64,
    /// The longest chain of the checked scope's own retained blocks
    /// between the holder and a held block (0: it points at them directly).
    pub max_chain: u32,
}

/// The reachability of a group of retained blocks (a site, or a whole
/// report).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct SiteReach {
    /// Bytes nothing points to (definitely lost).
    pub unreachable_bytes: u64,
    /// Allocations nothing points to.
    pub unreachable_allocs: u64,
    /// Bytes still pointed to (still reachable).
    pub reachable_bytes: u64,
    /// Allocations still pointed to.
    pub reachable_allocs: u64,
    /// What holds the reachable ones, most bytes first.
    pub holders: Vec<HolderGroup>,
}

/// How the scan of a failed check went, with its verdict for the whole
/// report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ReachSummary {
    /// The verdict over every classified block.
    pub total: SiteReach,
    /// Root bytes read (resident pages of the writable mappings).
    pub scanned_bytes: u64,
    /// How long the scan and the naming of holders took.
    pub scan_time: Duration,
    /// Memory the scan mapped for itself (peak, excluding the symbol
    /// tables read to name statics).
    pub scan_memory: u64,
    /// Other threads stopped for the scan (their registers were read from
    /// the signal frame on their stacks).
    #[cfg_attr(feature = "serde", serde(default))]
    pub threads_stopped: u32,
    /// Other threads that were running during the scan (not stopped, not
    /// blocked: their stack pointer unknown, their whole stacks were read,
    /// and they could move pointers while memory was read).
    pub threads_running: u32,
    /// Other threads blocked in the kernel (read from their stack pointer).
    pub threads_blocked: u32,
    /// How memory was read (`process_vm_readv` or `/proc/self/mem`).
    pub read_with: String,
    /// Why the scan could not run, when it could not.
    pub error: Option<String>,
}

/// The verdict on one retained block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BlockVerdict {
    /// Nothing outside the unreachable retained blocks points into it.
    Unreachable,
    /// Reachable; `chain` retained blocks of the scope lie between it and
    /// `holder`.
    Reachable { holder: Holder, chain: u32 },
}

/// The verdicts of one scan, by block address.
#[derive(Debug, Default)]
pub(crate) struct Classified {
    /// Keyed by [`hide`]`(address)`, with the record's sequence number.
    verdicts: HashMap<usize, (u64, BlockVerdict)>,
    pub(crate) summary: ReachSummary,
    /// The scan saw the whole process at one moment: every thread other
    /// than the checking one was stopped for it and its registers read
    /// (none was running or blocked, none appeared after the threads were
    /// listed; vacuously so in a process of one thread), and no memory was
    /// mapped (or made writable) after the mappings were read. Only then
    /// can no thread have held a pointer the scan did not read, hidden
    /// pointers and the memory it never reads aside.
    pub(crate) complete: bool,
}

/// How tracker tables on the heap keep a block address: bit-inverted, so
/// that the word is never a pointer into the heap (a user-space address
/// inverted has its top bits set) and the scan does not take the table, or
/// its freed copies, for a holder. Its own inverse.
#[inline]
pub(crate) const fn hide(addr: usize) -> usize {
    !addr
}

impl Classified {
    /// The verdict on the block at `addr` recorded with sequence number
    /// `seq`, if it was classified: a block allocated at the same address
    /// after the scan (its record has a later number) was not.
    pub(crate) fn verdict(&self, addr: usize, seq: u64) -> Option<&BlockVerdict> {
        self.verdicts
            .get(&hide(addr))
            .filter(|(s, _)| *s == seq)
            .map(|(_, v)| v)
    }

    /// A scan that could not run.
    fn failed(why: String, started: Instant) -> Classified {
        Classified {
            verdicts: HashMap::new(),
            summary: ReachSummary {
                error: Some(why),
                scan_time: started.elapsed(),
                ..ReachSummary::default()
            },
            complete: false,
        }
    }
}

/// The stack pointer of the calling function, approximately (the address of
/// a local). Call it first thing in the function whose callers' frames are
/// roots: the frames below it (the scanner's own) are not read.
#[inline(always)]
pub(crate) fn stack_mark() -> usize {
    // A `&mut` local: a shared borrow of a constant local may be promoted
    // to a global by the optimiser, and its address is then no stack
    // address at all.
    let mut x = 0usize;
    std::hint::black_box(&mut x) as *mut usize as usize
}

/// Zeroes the stretch of stack just below the caller's frame, where the
/// frames of calls that have returned left their words (addresses of blocks
/// they freed or forgot among them). Call it right before calling the
/// function that takes the [`stack_mark`]: that function's frame then lies
/// over zeroes, and its slots that it never writes are no stale roots.
#[inline(never)]
pub(crate) fn scrub_dead_frames() {
    // 4 KiB is many times the frames that will lie over it; the `&mut`
    // borrow through `black_box` makes the zeroing a real store.
    let mut dead = [0usize; 512];
    std::hint::black_box(&mut dead);
}

/// Whether the 2 MiB chunk at `addr` belongs to the arena of the tracker's
/// own scope ([`ScopeId::INTERNAL`]).
fn is_internal_chunk(addr: usize) -> bool {
    #[cfg(feature = "jemalloc")]
    {
        crate::allocator::chunk_scope(addr) == Some(ScopeId::INTERNAL)
    }
    #[cfg(not(feature = "jemalloc"))]
    {
        let _ = addr;
        false
    }
}

/// jemalloc's base blocks (its metadata: extent records, arena and bin
/// structures), found by their header: jemalloc 5.3 maps each one aligned to
/// 2 MiB and begins it with a `base_block_t` (its size, a multiple of 2 MiB;
/// the next block, null or 2 MiB-aligned; then the block's own extent
/// record, whose address field points inside the block). Calls `f` with
/// each one's range.
fn base_blocks(reader: &raw::Reader, regions: &[maps::Region], mut f: impl FnMut((usize, usize))) {
    const ALIGN: usize = 2 << 20;
    const W: usize = std::mem::size_of::<usize>();
    for r in regions.iter().filter(|r| r.name.is_empty()) {
        let mut a = r.start.next_multiple_of(ALIGN);
        while a + ALIGN <= r.end {
            let mut h = [0u8; 5 * W];
            let mut step = ALIGN;
            if reader.read(a, &mut h) == h.len() {
                let w = |i: usize| {
                    usize::from_ne_bytes(h[i * W..(i + 1) * W].try_into().unwrap_or([0; W]))
                };
                let (size, next, e_addr) = (w(0), w(1), w(3));
                if size >= ALIGN
                    && size % ALIGN == 0
                    && size <= r.end - a
                    && next % ALIGN == 0
                    && e_addr > a
                    && e_addr <= a + size
                {
                    f((a, a + size));
                    step = size;
                }
            }
            a += step;
        }
    }
}

/// Classifies every exact record of `members` made at or after `first_seq`
/// (the retained blocks of a check): unreachable, or reachable and held by
/// what. `stack_top` is a [`stack_mark`] taken on entry to the check's
/// `finish`: this thread's stack is read from there upwards. `how` says
/// whether the other threads are stopped for the scan.
pub(crate) fn classify(
    members: &[ScopeId],
    first_seq: u64,
    stack_top: usize,
    how: Reachability,
) -> Classified {
    let started = Instant::now();
    // One scan at a time: a scan stops the others' threads.
    static ONE_SCAN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_SCAN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    thread_state::internal(|| classify_inner(members, first_seq, stack_top, how, started))
}

/// Releases the stopped threads when dropped (also on unwinding).
struct Release;

impl Drop for Release {
    fn drop(&mut self) {
        stop::release();
    }
}

/// How long a scan waits for the other threads to stop.
const STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(250);

fn classify_inner(
    members: &[ScopeId],
    first_seq: u64,
    stack_top: usize,
    how: Reachability,
    started: Instant,
) -> Classified {
    let Some(reader) = raw::Reader::new() else {
        return Classified::failed(
            "neither process_vm_readv nor /proc/self/mem can read this process".into(),
            started,
        );
    };
    let me = raw::gettid();
    let objects = raw::loaded_objects();
    // The candidates, copied into memory of their own (never the heap).
    let mut n = 0usize;
    sampling::for_each_record(|_, r| {
        if r.exact && r.seq >= first_seq && members.contains(&r.scope) {
            n += 1;
        }
    });
    let Some(mut cands) = raw::MapVec::<scan::Cand>::with_capacity(n + 64) else {
        return Classified::failed("cannot map memory for the scan".into(), started);
    };
    sampling::for_each_record(|addr, r| {
        if r.exact && r.seq >= first_seq && members.contains(&r.scope) {
            let _ = cands.push(scan::Cand {
                addr,
                size: r.size.max(1),
                seq: r.seq,
                reached: false,
                via: 0,
                loc: 0,
                rank: 0,
            });
        }
    });
    cands.as_mut_slice().sort_unstable_by_key(|c| c.addr);
    // The current thread's tagged tcache keeps the address of each block
    // it handed out (the recorded blocks among them) in stale slots.
    #[cfg(feature = "jemalloc")]
    crate::allocator::scrub_tcaches();
    let Some(mut holes) = raw::MapVec::<(usize, usize)>::with_capacity(8 + 512) else {
        return Classified::failed("cannot map memory for the scan".into(), started);
    };
    let mut stats;
    let mut blocked = 0u32;
    let mut running = 0u32;
    let mut stopped_n = 0u32;
    let mut threads;
    let tids: Vec<i32>;
    let regions;
    let unseen;
    {
        let cand_range = cands.range();
        let holes_range = holes.range();
        let Some(mut scanner) = scan::Scanner::new(&reader, cands.as_mut_slice()) else {
            return Classified::failed("cannot map memory for the scan".into(), started);
        };
        for r in scanner
            .own_ranges()
            .into_iter()
            .chain([cand_range, holes_range])
        {
            let _ = holes.push(r);
        }
        // The threads, then the mappings (their stacks among them), read as
        // late as allocating allows: a thread made after the listing is not
        // stopped, memory mapped after the reading is not read. To tell
        // (`Classified::complete`), the mappings are read again while the
        // others are stopped, the threads after the release. The mappings
        // are read into room made here: reading must not make the allocator
        // map memory meanwhile (nor allocate at all, the second time).
        threads = maps::other_threads(me);
        tids = threads.iter().map(|t| t.tid).collect();
        let mut maps_text = vec![0u8; 256 << 10];
        let len = loop {
            match maps::read_maps_into(&mut maps_text) {
                Ok(Some(n)) => break n,
                Ok(None) if maps_text.len() < 256 << 20 => {
                    maps_text = vec![0u8; maps_text.len() * 4];
                }
                Ok(None) => {
                    return Classified::failed("/proc/self/maps is over 256 MiB".into(), started)
                }
                Err(e) => {
                    return Classified::failed(format!("cannot read /proc/self/maps: {e}"), started)
                }
            }
        };
        regions = maps::parse_writable(&String::from_utf8_lossy(&maps_text[..len]));
        // jemalloc's metadata: its extent records hold the address of each
        // extent's first block.
        base_blocks(&reader, &regions, |r| {
            let _ = holes.push(r);
        });
        holes.as_mut_slice().sort_unstable();
        // From here to the release, nothing may allocate: a stopped thread
        // may hold an allocator lock.
        let stopped = match how {
            Reachability::Scan => stop::stop(&tids, STOP_TIMEOUT),
            _ => None,
        };
        let release = stopped.as_ref().map(|_| Release);
        let stopped_sps = stopped.as_ref().map_or(&[][..], |s| &s.out[..s.n]);
        for region in &regions {
            let mut start = region.start;
            let is_data = objects.iter().any(|o| {
                o.writable
                    .iter()
                    .any(|&(s, e)| s < region.end && region.start < e)
            });
            let mut rank = if is_data || region.name == "[stack]" {
                2
            } else {
                1
            };
            if region.contains(stack_top) {
                rank = 0;
                // This thread: only the frames of `finish` and its callers.
                start = stack_top & !(std::mem::size_of::<usize>() - 1);
            } else if let Some(&(_, sp)) = stopped_sps.iter().find(|&&(_, sp)| region.contains(sp))
            {
                // A stopped thread: from its signal handler's frame up,
                // which holds its registers.
                start = sp & !(std::mem::size_of::<usize>() - 1);
                rank = 2;
            } else if let Some(t) = threads
                .iter()
                .find(|t| t.sp.is_some_and(|sp| region.contains(sp)))
            {
                // A thread blocked in the kernel: from its stack pointer,
                // less the red zone below it that leaf code may use.
                start = t.sp.unwrap_or(start).saturating_sub(128).max(region.start);
                rank = 2;
            }
            // The tracker's own memory (its scope arena's chunks) holds no
            // user pointer, only copies of addresses (report tables, the
            // symboliser's caches): not a root.
            let mut span = start;
            let mut a = start;
            while a < region.end {
                let next = ((a >> 21) + 1) << 21;
                if is_internal_chunk(a) {
                    if span < a {
                        scanner.scan_root(
                            scan::Root {
                                start: span,
                                end: a,
                                rank,
                            },
                            holes.as_slice(),
                        );
                    }
                    span = next.min(region.end);
                }
                a = next;
            }
            if span < region.end {
                scanner.scan_root(
                    scan::Root {
                        start: span,
                        end: region.end,
                        rank,
                    },
                    holes.as_slice(),
                );
            }
        }
        scanner.flood();
        // The mappings again, before the release (into the room made
        // beforehand: opening and reading a file does not allocate), so
        // that what the others map once released is not taken for memory
        // mapped before the stop.
        let again = if stopped.is_some() {
            maps::read_maps_into(&mut maps_text)
        } else {
            Ok(None)
        };
        drop(release);
        // Memory mapped after the mappings were read and before the stop,
        // other than chunks of the tracker's own arena (never read), may
        // hold what the scan did not see.
        unseen = match again {
            Ok(Some(n)) => maps::grown(
                &regions,
                &maps::parse_writable(&String::from_utf8_lossy(&maps_text[..n])),
                |a| is_internal_chunk(a).then_some(((a >> 21) + 1) << 21),
            ),
            _ => true,
        } || stopped_sps
            .iter()
            .any(|&(_, sp)| !regions.iter().any(|r| r.contains(sp)));
        stats = scanner.stats;
        stats.own_bytes += (cands.mapped_bytes() + holes.mapped_bytes()) as u64;
        for t in &mut threads {
            if let Some(&(_, sp)) = stopped_sps.iter().find(|&&(tid, _)| tid == t.tid) {
                t.sp = Some(sp);
                stopped_n += 1;
            } else if t.sp.is_some() {
                blocked += 1;
            } else {
                running += 1;
            }
        }
    }
    // A thread that is not in the list was not signalled: it ran during the
    // scan (or began after it; the two cannot be told apart). A list that
    // cannot be read proves nothing.
    let appeared =
        maps::other_thread_ids(me).is_none_or(|now| now.iter().any(|t| !tids.contains(t)));
    let complete = running == 0 && blocked == 0 && !appeared && !unseen;
    let ctx = holders::Context::new(objects, &regions, &threads, stack_top, me);
    let mut verdicts = HashMap::with_capacity(cands.as_slice().len());
    let all = cands.as_slice();
    let mut by_loc: HashMap<usize, Holder> = HashMap::new();
    for c in all.iter().filter(|c| c.reached) {
        let (root, _) = holders::chain_root(all, c);
        by_loc
            .entry(hide(root.loc))
            .or_insert_with(|| ctx.holder_at(root.loc));
    }
    ctx.find_owners(&reader, &mut by_loc);
    for c in all {
        let v = if c.reached {
            let (root, chain) = holders::chain_root(all, c);
            BlockVerdict::Reachable {
                holder: by_loc[&hide(root.loc)].clone(),
                chain,
            }
        } else {
            BlockVerdict::Unreachable
        };
        verdicts.insert(hide(c.addr), (c.seq, v));
    }
    let total = group(
        all.iter()
            .map(|c| (c.size as u64, verdicts.get(&hide(c.addr)).map(|(_, v)| v))),
    );
    Classified {
        verdicts,
        summary: ReachSummary {
            total,
            scanned_bytes: stats.root_bytes,
            scan_time: started.elapsed(),
            scan_memory: stats.own_bytes,
            threads_stopped: stopped_n,
            threads_running: running,
            threads_blocked: blocked,
            read_with: reader.method().to_string(),
            error: None,
        },
        complete,
    }
}
