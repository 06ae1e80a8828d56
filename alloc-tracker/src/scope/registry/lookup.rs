//! Reading the table: a scope's entry, its figures' baseline, paths and
//! subtrees. All under the read lock.

use super::table::{read, ScopeInfo};
use crate::scope::{ScopeId, MAX_SCOPES};
use crate::stats::counters::Totals;
use crate::thread_state;

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
