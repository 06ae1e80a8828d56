//! The per-block verdict: each retained block of a checked scope is a
//! leak or allowed retention.
//!
//! ```text
//! retained blocks (recorded during the check, in the scope or below),
//! in allocation order
//!   |
//!   +-- unreachable (a reachability scan said so) ------------> leak
//!   +-- no rule matches --------------------------------------> leak
//!   +-- the first matching rule (code, env, file, defaults)
//!         +-- fits in the rule's bound, no earlier block
//!         |   of the rule overflowed it ----------------------> allowed
//!         +-- otherwise ---------------------------------------> leak
//!                                            (beyond the rule's bound)
//! ```
//!
//! Bytes the check saw kept but no record explains (blocks that predate
//! the check, sites off) cannot be matched by any rule and stay leaks.

use std::collections::HashMap;

use super::reach::Classified;
use super::report::{group_sites, AllowedRetention, Retention, UnusedRule};
use super::retain::{Matcher, Retain, RuleSource};
use crate::hot::thread_state;
use crate::sampling::{self, Frame, StackId};
use crate::scope::{registry, ScopeId};

/// What the reachability scan (`leak::reach`) found for a block; `None` on
/// a block means "not scanned".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Nothing outside the unreachable blocks points to it: always a leak.
    Unreachable,
    /// Something still points to it.
    Reachable,
}

/// One retained block.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    /// The block's address as `reach::hide` keeps it: the gathered
    /// blocks live on the heap, and a plain address there would look like
    /// a pointer to the block to a later reachability scan.
    pub(crate) hidden_addr: usize,
    pub(crate) scope: ScopeId,
    pub(crate) size: usize,
    pub(crate) seq: u64,
    pub(crate) stack: StackId,
    pub(crate) reach: Option<Reach>,
}

/// The recorded blocks still live that a check began at `first_seq` made
/// in `members`, oldest first.
pub(crate) fn gather(first_seq: u64, members: &[ScopeId]) -> Vec<Block> {
    thread_state::internal(|| {
        let mut blocks = Vec::new();
        sampling::for_each_record(|addr, r| {
            if r.exact && r.seq >= first_seq && members.contains(&r.scope) {
                blocks.push(Block {
                    hidden_addr: super::reach::hide(addr),
                    scope: r.scope,
                    size: r.size,
                    seq: r.seq,
                    stack: r.stack,
                    reach: None,
                });
            }
        });
        blocks.sort_by_key(|b| b.seq);
        blocks
    })
}

/// Frames of the allocation machinery itself, skipped to find the code
/// that asked for a block (a `Vec`'s growth is asked for by its caller).
const ALLOCATION_MACHINERY: &[&str] = &[
    "alloc::alloc::",
    "<alloc::alloc::",
    "alloc::raw_vec::",
    "<alloc::raw_vec::",
    "<alloc::vec::Vec<u8>>::",
    "<alloc::vec::Vec<u8> as alloc::vec::spec_extend",
    "core::",
    "<core::",
    "__rust",
];

/// Symbolised stacks and scope paths, kept across the polls of one check.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    frames: HashMap<StackId, Vec<Frame>>,
    paths: HashMap<ScopeId, String>,
    subtrees: HashMap<ScopeId, Vec<ScopeId>>,
}

impl Resolved {
    fn frames(&mut self, stack: StackId) -> &[Frame] {
        self.frames
            .entry(stack)
            .or_insert_with(|| sampling::resolve(stack))
    }

    /// Whether `m` matches `b`: read from the block's stack and scope
    /// only ([`judge`] remembers the first matching rule per pair).
    fn matches(&mut self, m: &Matcher, b: &Block) -> bool {
        match m {
            Matcher::Site(s) => self.frames(b.stack).iter().any(|f| f.function.contains(s)),
            Matcher::Frames { innermost, all } => {
                let frames = self.frames(b.stack);
                let inner_ok = innermost.is_none_or(|inner| {
                    frames
                        .iter()
                        .find(|f| {
                            !ALLOCATION_MACHINERY
                                .iter()
                                .any(|p| f.function.starts_with(p))
                        })
                        .is_some_and(|f| inner.iter().any(|s| frame_matches(&f.function, s)))
                });
                inner_ok
                    && all.iter().all(|group| {
                        frames
                            .iter()
                            .any(|f| group.iter().any(|s| frame_matches(&f.function, s)))
                    })
            }
            Matcher::Scope(id) => self
                .subtrees
                .entry(*id)
                .or_insert_with(|| registry::subtree(*id))
                .contains(&b.scope),
            Matcher::ScopePath(p) => {
                let path = self.paths.entry(b.scope).or_insert_with(|| b.scope.path());
                path == p
                    || path
                        .strip_prefix(p.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            }
        }
    }

    /// Frees the symboliser's caches (call once the check is over).
    pub(crate) fn release(self) {
        thread_state::internal(|| {
            drop(self);
            sampling::release_symbol_cache();
        });
    }
}

/// The split of a check's retained blocks.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    /// Bytes and blocks allowed by the rules.
    pub(crate) allowed_bytes: u64,
    pub(crate) allowed_allocs: u64,
    /// Bytes and blocks that are leaks.
    pub(crate) leak_bytes: u64,
    pub(crate) leak_allocs: u64,
    pub(crate) retention: Retention,
}

/// Splits `blocks` (oldest first) by `rules` (in order of precedence).
pub(crate) fn judge(
    blocks: &[Block],
    rules: &[Retain],
    resolved: &mut Resolved,
    reach: Option<&Classified>,
) -> Verdict {
    thread_state::internal(|| {
        #[derive(Default)]
        struct PerRule {
            allowed: Vec<usize>,
            bytes: u64,
            beyond_bytes: u64,
            beyond_allocs: u64,
            overflowed: bool,
        }
        let mut per_rule: Vec<PerRule> = rules.iter().map(|_| PerRule::default()).collect();
        // (block index, the rule it overflowed)
        let mut leaks: Vec<(usize, Option<usize>)> = Vec::new();
        // A rule matches a block by its stack or its scope, so the first
        // matching rule is found once per (stack, scope): thousands of
        // blocks from one site (a parser's nodes) test the patterns once.
        let mut first_rule: HashMap<(StackId, ScopeId), Option<usize>> = HashMap::new();
        for (i, b) in blocks.iter().enumerate() {
            if b.reach == Some(Reach::Unreachable) {
                leaks.push((i, None));
                continue;
            }
            let first = *first_rule
                .entry((b.stack, b.scope))
                .or_insert_with(|| rules.iter().position(|r| resolved.matches(&r.matcher, b)));
            let Some(r) = first else {
                leaks.push((i, None));
                continue;
            };
            let pr = &mut per_rule[r];
            let size = b.size as u64;
            if !pr.overflowed && pr.bytes.saturating_add(size) <= rules[r].bound {
                pr.bytes += size;
                pr.allowed.push(i);
            } else {
                pr.overflowed = true;
                pr.beyond_bytes += size;
                pr.beyond_allocs += 1;
                leaks.push((i, Some(r)));
            }
        }
        let mut v = Verdict::default();
        for (r, pr) in per_rule.into_iter().enumerate() {
            let rule = &rules[r];
            if pr.allowed.is_empty() && pr.beyond_allocs == 0 {
                if rule.source != RuleSource::Default {
                    v.retention.unused.push(UnusedRule {
                        rule: rule.label(),
                        pattern: rule.pattern(),
                        source: rule.source,
                        bound_bytes: rule.bound,
                    });
                }
                continue;
            }
            v.allowed_bytes += pr.bytes;
            v.allowed_allocs += pr.allowed.len() as u64;
            let sites = group_sites(
                pr.allowed.iter().map(|&i| {
                    let b = &blocks[i];
                    (b.scope, b.stack, b.size, None, (b.hidden_addr, b.seq))
                }),
                |s| resolved.frames(s).to_vec(),
                reach,
            );
            v.retention.allowed.push(AllowedRetention {
                rule: rule.label(),
                pattern: rule.pattern(),
                source: rule.source,
                bound_bytes: rule.bound,
                bytes: pr.bytes,
                allocs: pr.allowed.len() as u64,
                beyond_bound_bytes: pr.beyond_bytes,
                beyond_bound_allocs: pr.beyond_allocs,
                sites,
            });
        }
        v.leak_bytes = leaks.iter().map(|&(i, _)| blocks[i].size as u64).sum();
        v.leak_allocs = leaks.len() as u64;
        v.retention.leak_sites = group_sites(
            leaks.iter().map(|&(i, r)| {
                let b = &blocks[i];
                (
                    b.scope,
                    b.stack,
                    b.size,
                    r.map(|r| rules[r].label()),
                    (b.hidden_addr, b.seq),
                )
            }),
            |s| resolved.frames(s).to_vec(),
            reach,
        );
        v
    })
}

/// Every rule unused (a check that kept nothing): the non-default ones.
pub(crate) fn all_unused(rules: &[Retain]) -> Vec<UnusedRule> {
    thread_state::internal(|| {
        rules
            .iter()
            .filter(|r| r.source != RuleSource::Default)
            .map(|r| UnusedRule {
                rule: r.label(),
                pattern: r.pattern(),
                source: r.source,
                bound_bytes: r.bound,
            })
            .collect()
    })
}

/// Whether a default rule's pattern matches a frame's function path: a
/// substring, or with a trailing `$` the end of the path. The anchor keeps
/// a rule on a runtime function from matching the closures it runs user
/// code in (`Spawner::spawn_thread` is where tokio makes a pool thread;
/// `Spawner::spawn_thread::{{closure}}` is the bottom frame of every task
/// that thread runs).
fn frame_matches(function: &str, pattern: &str) -> bool {
    match pattern.strip_suffix('$') {
        Some(end) => function.ends_with(end),
        None => function.contains(pattern),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(scope: ScopeId, stack: StackId, seq: u64) -> Block {
        Block {
            hidden_addr: 0,
            scope,
            size: 10,
            seq,
            stack,
            reach: None,
        }
    }

    #[test]
    fn blocks_of_one_stack_in_two_scopes_meet_each_scopes_rules() {
        let a = ScopeId::register("verdict-memo-a", None).unwrap();
        let b = ScopeId::register("verdict-memo-b", None).unwrap();
        let stack = StackId::unknown_for_test(0x5eed);
        // The same stack in both scopes, each scope twice: the second block
        // of each pair is judged from what the first one found.
        let blocks = [
            block(a, stack, 1),
            block(b, stack, 2),
            block(a, stack, 3),
            block(b, stack, 4),
        ];
        let rules = [Retain::scope(a).up_to(100)];
        let v = judge(&blocks, &rules, &mut Resolved::default(), None);
        assert_eq!((v.allowed_bytes, v.allowed_allocs), (20, 2), "{v:?}");
        assert_eq!((v.leak_bytes, v.leak_allocs), (20, 2), "{v:?}");
    }
}
