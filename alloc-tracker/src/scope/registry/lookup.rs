//! Reading the table: a scope's entry, its figures' baseline, paths and
//! subtrees. All under the read lock.

use super::table::{read, ScopeInfo};
use crate::hot::counters::Totals;
use crate::hot::thread_state;
use crate::scope::{ScopeId, MAX_SCOPES};

/// The entry of `id`, or `None` if it is not registered.
pub(crate) fn info(id: ScopeId) -> Option<ScopeInfo> {
    read().info(id)
}

/// The counter totals of `id` since it was (re)assigned, and the totals of
/// the recycled scopes that were below it.
pub(crate) fn baseline_and_retired(id: ScopeId) -> (Totals, Totals) {
    let t = read();
    let e = &t.entries[id.index()];
    (e.baseline, e.retired)
}

/// All registered scopes (released ones included), built-in ones first.
pub(crate) fn all() -> Vec<ScopeId> {
    thread_state::internal(|| read().ids().collect())
}

/// `id` and every scope below it.
pub(crate) fn subtree(id: ScopeId) -> Vec<ScopeId> {
    thread_state::internal(|| {
        let t = read();
        t.ids().filter(|s| t.is_within(*s, id)).collect()
    })
}

/// The path of `id`: names from the root joined with `/`; a numbered
/// instance shows as `kind#n` in place of its kind's name.
pub(crate) fn path(id: ScopeId) -> String {
    thread_state::internal(|| {
        let t = read();
        let mut parts: Vec<String> = Vec::new();
        let mut next = Some(id);
        while let Some(s) = next {
            if parts.len() > MAX_SCOPES {
                break;
            }
            let Some(i) = t.info(s) else {
                parts.push("<unregistered>".into());
                break;
            };
            match i.kind {
                Some(kind) if i.serial != 0 && i.parent == Some(kind) => {
                    parts.push(format!("{}#{}", i.name, i.serial));
                    next = t.info(kind).and_then(|k| k.parent);
                }
                _ => {
                    parts.push(i.name.to_string());
                    next = i.parent;
                }
            }
        }
        parts.reverse();
        parts.join("/")
    })
}

/// Static scopes first used when the table was full (counted in
/// `overflow`).
pub(crate) fn overflowed() -> u32 {
    read().overflowed
}

/// What a scope's recycled transient scopes left behind: how many there
/// were, their totals (see `Entry::retired`) and the highest own peak one
/// of them reached.
pub(crate) fn recycled(id: ScopeId) -> (u64, Totals, u64) {
    let t = read();
    let e = &t.entries[id.index()];
    (e.recycled, e.retired, e.recycled_peak)
}

/// An upper bound of the peak live bytes of every registered scope with
/// the scopes below it, indexed by id (0 for ids not registered).
///
/// For a scope `S`: its own peak, plus the bound of each child that is not
/// a transient scope of kind `S`, plus, for the transient scopes of kind
/// `S` (its instances, or the scopes made for it below instances of its
/// parent), the most of them that were ever not yet recycled at once times
/// the highest own peak any of them reached. At any moment at most that
/// many of them hold blocks, each at most its peak; the scopes below an
/// instance are transient scopes of kinds below `S` and counted by their
/// own kind. Recycled instances keep counting through the two figures
/// their kind keeps, so the bound does not fall when they go. An
/// instance's peak is taken as its sampled peak plus one sampling step,
/// capped by what it ever allocated (a true bound for instances used by
/// one thread at a time); a static scope's own peak is its sampled one,
/// a lower bound within the peak precision per thread.
pub(crate) fn peak_bounds() -> Vec<u64> {
    thread_state::internal(|| {
        let t = read();
        let n = t.fresh;
        let mut children: Vec<Vec<u16>> = vec![Vec::new(); n];
        let mut live_transient_peak = vec![0u64; n];
        for id in t.ids() {
            let Some(info) = t.info(id) else { continue };
            if let Some(k) = info.kind.filter(|k| k.index() < n) {
                let sampled =
                    crate::hot::per_scope::peak(id).load(std::sync::atomic::Ordering::Relaxed);
                let peak = super::table::transient_peak_bound(sampled, &t.live(id));
                live_transient_peak[k.index()] = live_transient_peak[k.index()].max(peak);
            }
            if let Some(p) = info.parent.filter(|p| p.index() < n) {
                if info.kind != Some(p) {
                    children[p.index()].push(id.0);
                }
            }
        }
        let mut bound = vec![0u64; n];
        // Children have no fixed order relative to parents in the id space
        // (ids are recycled), so resolve by an explicit post-order walk.
        let mut done = vec![false; n];
        for root in t.ids() {
            let mut stack = vec![(root.0, false)];
            while let Some((s, expanded)) = stack.pop() {
                let i = s as usize;
                if done[i] {
                    continue;
                }
                if !expanded {
                    stack.push((s, true));
                    stack.extend(children[i].iter().map(|&c| (c, false)));
                    continue;
                }
                let e = &t.entries[i];
                let own = crate::hot::per_scope::peak(ScopeId(s))
                    .load(std::sync::atomic::Ordering::Relaxed);
                let kids: u64 = children[i].iter().map(|&c| bound[c as usize]).sum();
                let per_transient = e.recycled_peak.max(live_transient_peak[i]);
                bound[i] = own + kids + u64::from(e.max_transients) * per_transient;
                done[i] = true;
            }
        }
        bound
    })
}
