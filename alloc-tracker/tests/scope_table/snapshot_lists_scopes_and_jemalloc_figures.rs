//! `Snapshot::take` lists every registered scope (built-in ones first, in
//! id order) with its name, path, parent, own figures and figures summed
//! over its subtree, plus jemalloc's process figures, which cover at least
//! the usable bytes the tracker counts as live.

use std::time::{Duration, SystemTime};

use scope_alloc_tracker::{JemallocStats, Scope, ScopeId, ScopeStats, Snapshot};

static ROOT: Scope = Scope::new("snap-static");
static LEAF: Scope = Scope::child_of(&ROOT, "leaf");

fn live(s: &ScopeStats) -> (u64, u64) {
    (s.live_allocs, s.live_bytes)
}

#[test]
fn snapshot_lists_registered_scopes_with_parents_paths_and_subtree_sums() {
    let _one_at_a_time = crate::common::one_at_a_time();
    let p = ScopeId::register("snap-p", None).unwrap();
    let c1 = ScopeId::register("c1", Some(p)).unwrap();
    let c2 = ScopeId::register("c2", Some(p)).unwrap();
    let g = ScopeId::register("g", Some(c1)).unwrap();
    let leaf = LEAF.id();
    let blocks: Vec<Vec<u8>> = [(p, 100), (c1, 200), (c2, 300), (g, 400), (leaf, 50)]
        .into_iter()
        .map(|(s, n)| s.in_scope(|| Vec::with_capacity(n)))
        .collect();

    let t0 = SystemTime::now();
    let snap = Snapshot::take();
    assert!(snap.taken_at >= t0 && snap.taken_at <= t0 + Duration::from_secs(60));

    let builtin: Vec<_> = snap.scopes[..3]
        .iter()
        .map(|s| (s.id, s.name, s.parent))
        .collect();
    assert_eq!(
        builtin,
        [
            (ScopeId::UNSCOPED, "unscoped", None),
            (ScopeId::INTERNAL, "alloc-tracker", None),
            (ScopeId::OVERFLOW, "overflow", None)
        ]
    );
    assert!(
        snap.scopes.windows(2).all(|w| w[0].id < w[1].id),
        "not in id order"
    );

    let expect = [
        (p, "snap-p", "snap-p", None, (1, 100), (4, 1000)),
        (c1, "c1", "snap-p/c1", Some(p), (1, 200), (2, 600)),
        (c2, "c2", "snap-p/c2", Some(p), (1, 300), (1, 300)),
        (g, "g", "snap-p/c1/g", Some(c1), (1, 400), (1, 400)),
        (
            ROOT.id(),
            "snap-static",
            "snap-static",
            None,
            (0, 0),
            (1, 50),
        ),
        (
            leaf,
            "leaf",
            "snap-static/leaf",
            Some(ROOT.id()),
            (1, 50),
            (1, 50),
        ),
    ];
    for (id, name, path, parent, own, with_children) in expect {
        let s = snap.scope(id).unwrap_or_else(|| panic!("{path} missing"));
        assert_eq!(
            (s.id, s.name, s.path.as_str(), s.parent),
            (id, name, path, parent)
        );
        assert_eq!(live(&s.own), own, "{path} own: {:?}", s.own);
        assert_eq!(
            (s.own.total_allocs, s.own.total_frees),
            (own.0, 0),
            "{path}"
        );
        assert_eq!(
            live(&s.with_children),
            with_children,
            "{path} with children"
        );
        assert_eq!(
            live(&id.stats_with_children()),
            with_children,
            "{path} stats_with_children"
        );
        assert_eq!(id.path(), path);
    }
    let pc = snap.scope(p).unwrap().with_children;
    let sum_usable: u64 = [p, c1, c2, g]
        .iter()
        .map(|&s| snap.scope(s).unwrap().own.live_usable_bytes)
        .sum();
    assert_eq!(pc.live_usable_bytes, sum_usable);

    // `tracked` is the sum of every scope's own figures and of the totals
    // of the recycled instances folded into it (the other tests of this
    // binary make and recycle instances; recycled ones hold nothing live).
    let sum = |f: fn(&ScopeStats) -> u64| {
        snap.scopes
            .iter()
            .map(|s| f(&s.own) + f(&s.recycled))
            .sum::<u64>()
    };
    assert_eq!(snap.tracked.total_allocs, sum(|s| s.total_allocs));
    assert_eq!(snap.tracked.total_bytes, sum(|s| s.total_bytes));
    assert_eq!(snap.tracked.live_bytes, sum(|s| s.live_bytes));
    assert_eq!(snap.tracked.live_usable_bytes, sum(|s| s.live_usable_bytes));

    // Taking the snapshot allocated in the tracker's own scope, not in the
    // scopes it read.
    assert_eq!(p.stats().total_allocs, 1);
    assert_eq!(p.stats_with_children().total_allocs, 4);
    drop(blocks);
    assert_eq!(live(&p.stats_with_children()), (0, 0));
}

#[test]
fn snapshot_carries_jemalloc_figures_covering_the_tracked_live_bytes() {
    let _one_at_a_time = crate::common::one_at_a_time();
    let s = ScopeId::register("snap-jemalloc", None).unwrap();
    let blocks: Vec<Vec<u8>> =
        s.in_scope(|| (1..200).map(|i| Vec::with_capacity(i * 37)).collect());
    let snap = Snapshot::take();
    let j = snap.jemalloc.expect("jemalloc statistics are compiled in");
    assert!(j.allocated > 0 && j.resident > 0 && j.metadata > 0, "{j:?}");
    assert!(j.active >= j.allocated, "{j:?}");
    assert!(j.mapped >= j.active, "{j:?}");
    assert!(
        j.allocated >= snap.tracked.live_usable_bytes,
        "jemalloc holds fewer bytes than the tracker counts live: {j:?} vs {:?}",
        snap.tracked
    );
    assert!(snap.tracked.live_usable_bytes >= snap.tracked.live_bytes);
    assert!(snap.scope(s).unwrap().own.live_bytes > 0);
    // A separate read gives the same kind of figures.
    let again = JemallocStats::read().unwrap();
    assert!(again.allocated > 0);
    drop(blocks);
}

#[test]
fn jemalloc_figures_cover_tracked_live_bytes_with_large_blocks_live() {
    let _one_at_a_time = crate::common::one_at_a_time();
    let s = ScopeId::register("snap-jemalloc-large", None).unwrap();
    // 40 blocks of 1 MiB + 1 byte: jemalloc reserves 1 MiB + 4 KiB each.
    let blocks: Vec<Vec<u8>> =
        s.in_scope(|| (0..40).map(|_| Vec::with_capacity((1 << 20) + 1)).collect());
    let snap = Snapshot::take();
    let j = snap.jemalloc.expect("jemalloc statistics are compiled in");
    assert!(
        j.allocated >= snap.tracked.live_usable_bytes,
        "jemalloc holds fewer bytes than the tracker counts live: allocated {} < tracked live usable {} \
         (this scope: {:?})",
        j.allocated,
        snap.tracked.live_usable_bytes,
        snap.scope(s).unwrap().own
    );
    drop(blocks);
}
