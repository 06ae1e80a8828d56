//! Naming what holds a reachable block: the static, recorded block, thread
//! stack or unrecorded memory that the word pointing to it lies in.

use std::cell::RefCell;
use std::collections::HashMap;

use super::maps::{Region, ThreadInfo};
use super::raw::{self, Object};
use super::scan::Cand;
use super::{BlockVerdict, Holder, HolderGroup, HolderKind, SiteReach};
use crate::sampling::{self, StackId};
use crate::scope::ScopeId;

/// Follows `c`'s chain of holding candidates to the one a root points to;
/// returns it and the number of candidates between.
pub(crate) fn chain_root(all: &[Cand], c: &Cand) -> (Cand, u32) {
    let mut cur = *c;
    let mut chain = 0u32;
    while cur.via != 0 && (chain as usize) <= all.len() {
        cur = all[(cur.via - 1) as usize];
        chain += 1;
    }
    (cur, chain)
}

/// How far below an unrecorded holding word a static's pointer may point
/// to be named as its probable owner.
const OWNER_REACH: usize = 64 << 10;

/// Frames of a holding block's stack kept, from its origin outwards.
const SHOWN_CALLERS: usize = 3;

/// A data symbol of a loaded object.
#[derive(Debug)]
struct Sym {
    addr: u64,
    size: u64,
    name: String,
}

/// What the namer knows of the process.
pub(crate) struct Context<'a> {
    objects: Vec<Object>,
    regions: &'a [Region],
    threads: &'a [ThreadInfo],
    stack_top: usize,
    me: i32,
    /// Every live record (address, size, scope, stack), sorted; addresses
    /// kept encoded ([`super::hide`]) so that this table, once freed, leaves
    /// no stale copy of a block address for a later scan to find.
    records: Vec<(usize, usize, ScopeId, StackId)>,
    symbols: RefCell<HashMap<String, Vec<Sym>>>,
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        objects: Vec<Object>,
        regions: &'a [Region],
        threads: &'a [ThreadInfo],
        stack_top: usize,
        me: i32,
    ) -> Self {
        let mut records = Vec::new();
        sampling::for_each_record(|addr, r| {
            records.push((super::hide(addr), r.size.max(1), r.scope, r.stack));
        });
        records.sort_unstable_by_key(|r| super::hide(r.0));
        Context {
            objects,
            regions,
            threads,
            stack_top,
            me,
            records,
            symbols: RefCell::new(HashMap::new()),
        }
    }

    /// What the memory at `loc` is.
    pub(crate) fn holder_at(&self, loc: usize) -> Holder {
        let mut h = Holder {
            kind: HolderKind::UnrecordedHeap,
            name: String::new(),
            object: None,
            scope: None,
            site: None,
            frames: Vec::new(),
            via: None,
        };
        if let Some(o) = self
            .objects
            .iter()
            .find(|o| o.writable.iter().any(|&(s, e)| s <= loc && loc < e))
        {
            h.kind = HolderKind::Static;
            h.object = Some(o.path.clone());
            h.name = self.symbol(o, loc);
            return h;
        }
        let i = self.records.partition_point(|r| super::hide(r.0) <= loc);
        if let Some(&(key, size, scope, stack)) = i.checked_sub(1).map(|i| &self.records[i]) {
            if loc < super::hide(key) + size {
                h.kind = HolderKind::Block;
                h.scope = Some(scope.path());
                let frames = sampling::resolve(stack);
                // The program's own frame: not std, nor a dependency's
                // internals (a map's table is allocated deep in hashbrown).
                let start = frames
                    .iter()
                    .position(|f| !f.is_std() && !is_dependency(f))
                    .or_else(|| frames.iter().position(|f| !f.is_std()))
                    .unwrap_or(0);
                let origin = frames.get(start).cloned();
                h.frames = frames
                    .iter()
                    .skip(start)
                    .take(SHOWN_CALLERS)
                    .cloned()
                    .collect();
                h.name = origin
                    .as_ref()
                    .map_or_else(|| "??".into(), |f| f.function.clone());
                h.site = origin;
                return h;
            }
        }
        if let Some(r) = self.regions.iter().find(|r| r.contains(loc)) {
            if r.contains(self.stack_top) {
                h.kind = HolderKind::ThreadStack;
                h.name = thread_name(std::thread::current().name().unwrap_or(""), self.me);
                return h;
            }
            if let Some(t) = self
                .threads
                .iter()
                .find(|t| t.sp.is_some_and(|sp| r.contains(sp)))
            {
                h.kind = HolderKind::ThreadStack;
                h.name = thread_name(&t.name, t.tid);
                return h;
            }
            if r.name == "[stack]" {
                h.kind = HolderKind::ThreadStack;
                h.name = "main".into();
                return h;
            }
            h.name.clone_from(&r.name);
        }
        h
    }

    /// For each holder in unrecorded heap memory (`by_loc`, keyed by the
    /// hidden address of the holding word), looks for a static that points
    /// at or below that word, within [`OWNER_REACH`] bytes: the probable
    /// owner of the unrecorded block (a `static Mutex<Vec<T>>` points at
    /// the start of the vector's buffer, the held element lies further in).
    pub(crate) fn find_owners(&self, reader: &raw::Reader, by_loc: &mut HashMap<usize, Holder>) {
        let mut locs: Vec<usize> = by_loc
            .iter()
            .filter(|(_, h)| h.kind == HolderKind::UnrecordedHeap)
            .map(|(&k, _)| super::hide(k))
            .collect();
        if locs.is_empty() {
            return;
        }
        locs.sort_unstable();
        // Per loc: the nearest pointer at or below it (its address).
        let mut best: Vec<(usize, usize)> = vec![(0, 0); locs.len()];
        let mut buf = vec![0u8; 1 << 16];
        const W: usize = std::mem::size_of::<usize>();
        for o in &self.objects {
            for &(s, e) in &o.writable {
                let mut a = s.next_multiple_of(W);
                while a < e {
                    let len = (e - a).min(buf.len());
                    let n = reader.read(a, &mut buf[..len]);
                    for (k, w) in buf[..n - n % W].chunks_exact(W).enumerate() {
                        let w = usize::from_ne_bytes(w.try_into().unwrap_or([0; W]));
                        let i = locs.partition_point(|&l| l < w);
                        if let Some(&l) = locs.get(i) {
                            if l - w < OWNER_REACH && w > best[i].0 {
                                best[i] = (w, a + k * W);
                            }
                        }
                    }
                    a += len.max(W);
                }
            }
        }
        for (i, &l) in locs.iter().enumerate() {
            let (w, at) = best[i];
            if w == 0 {
                continue;
            }
            if let Some(o) = self
                .objects
                .iter()
                .find(|o| o.writable.iter().any(|&(s, e)| s <= at && at < e))
            {
                if let Some(h) = by_loc.get_mut(&super::hide(l)) {
                    h.via = Some(format!(
                        "static `{}` (+{:#x} into the block)",
                        self.symbol(o, at),
                        l - w
                    ));
                }
            }
        }
    }

    /// `symbol+0xoff` for a static address of `o`, or `object+0xoff`.
    fn symbol(&self, o: &Object, loc: usize) -> String {
        let vaddr = (loc - o.bias) as u64;
        let mut cache = self.symbols.borrow_mut();
        let syms = cache
            .entry(o.path.clone())
            .or_insert_with(|| data_symbols(&o.path));
        let i = syms.partition_point(|s| s.addr <= vaddr);
        if let Some(s) = i.checked_sub(1).map(|i| &syms[i]) {
            if vaddr < s.addr + s.size.max(1) {
                let off = vaddr - s.addr;
                return if off == 0 {
                    s.name.clone()
                } else {
                    format!("{}+{off:#x}", s.name)
                };
            }
        }
        let file = o.path.rsplit('/').next().unwrap_or(&o.path);
        format!("{file}+{vaddr:#x}")
    }
}

/// Whether a frame's source is a dependency's (cargo registry or git).
fn is_dependency(f: &crate::sampling::Frame) -> bool {
    f.file.as_deref().is_some_and(|p| {
        p.contains("/rust/deps/") || p.contains("/.cargo/registry/") || p.contains("/.cargo/git/")
    })
}

fn thread_name(name: &str, tid: i32) -> String {
    if name.is_empty() {
        format!("(tid {tid})")
    } else {
        format!("`{name}` (tid {tid})")
    }
}

/// The data and bss symbols of an ELF file (`.symtab`, else `.dynsym`),
/// demangled, sorted by address.
fn data_symbols(path: &str) -> Vec<Sym> {
    use object::{Object as _, ObjectSymbol as _};
    let Some(bytes) = crate::sampling::mapped::map_forever(std::path::Path::new(path)) else {
        return Vec::new();
    };
    let Ok(file) = object::File::parse(bytes) else {
        return Vec::new();
    };
    let mut out: Vec<Sym> = file
        .symbols()
        .chain(file.dynamic_symbols())
        .filter(|s| s.kind() == object::SymbolKind::Data || s.kind() == object::SymbolKind::Tls)
        .filter_map(|s| {
            let name = s.name().ok()?;
            Some(Sym {
                addr: s.address(),
                size: s.size(),
                name: format!("{:#}", rustc_demangle::demangle(name)),
            })
        })
        .collect();
    out.sort_by_key(|s| (s.addr, std::cmp::Reverse(s.size)));
    out.dedup_by_key(|s| s.addr);
    out
}

/// Sums blocks (size, verdict) into unreachable and reachable figures with
/// their holders grouped, most bytes first. Blocks without a verdict are
/// left out.
pub(crate) fn group<'v>(
    blocks: impl Iterator<Item = (u64, Option<&'v BlockVerdict>)>,
) -> SiteReach {
    let mut r = SiteReach::default();
    let mut groups: Vec<HolderGroup> = Vec::new();
    for (size, v) in blocks {
        match v {
            None => {}
            Some(BlockVerdict::Unreachable) => {
                r.unreachable_bytes += size;
                r.unreachable_allocs += 1;
            }
            Some(BlockVerdict::Reachable { holder, chain }) => {
                r.reachable_bytes += size;
                r.reachable_allocs += 1;
                match groups.iter_mut().find(|g| g.holder == *holder) {
                    Some(g) => {
                        g.bytes += size;
                        g.allocs += 1;
                        g.max_chain = g.max_chain.max(*chain);
                    }
                    None => groups.push(HolderGroup {
                        holder: holder.clone(),
                        bytes: size,
                        allocs: 1,
                        max_chain: *chain,
                    }),
                }
            }
        }
    }
    groups.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.allocs.cmp(&a.allocs)));
    r.holders = groups;
    r
}
