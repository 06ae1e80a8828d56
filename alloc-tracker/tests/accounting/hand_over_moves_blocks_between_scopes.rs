//! `hand_over` / `adopt` move a block's bytes and allocation from the scope
//! that made it to another, exactly, on every placement of the default
//! hybrid allocator (trailer in the slack, scope arenas for exact fits,
//! tagged arena for transient scopes and recorded blocks), with jemalloc's
//! own per-thread counters as the oracle for the usable bytes; the later
//! free credits the new scope on any thread; recorded blocks and leak
//! checks follow; budgets and peaks see the move.

use crate::hand_over_cases as cases;

use std::collections::HashMap;
use std::sync::Mutex;

use scope_alloc_tracker::leak::LeakCheck;
use scope_alloc_tracker::{hand_over, Budget, Scope, ScopeId, ScopeInstance};
use tikv_jemalloc_ctl::thread::{allocatedp, deallocatedp};

/// jemalloc's own byte counters of the calling thread (independent of the
/// tracker's size-class arithmetic).
fn jemalloc_thread_counters() -> (u64, u64) {
    (
        allocatedp::read().unwrap().get(),
        deallocatedp::read().unwrap().get(),
    )
}

fn scopes(name: &str) -> (ScopeId, ScopeId) {
    // The first hand-over of the process asks whether the tracker is
    // installed (one 8-byte internal allocation): not inside a measurement.
    let _ = hand_over(Box::new(0u64), ScopeId::UNSCOPED);
    (
        ScopeId::register(&format!("{name}-src"), None).unwrap(),
        ScopeId::register(&format!("{name}-dst"), None).unwrap(),
    )
}

#[test]
fn boxes_of_every_placement_move_exactly() {
    let (src, dst) = scopes("boxes");
    cases::boxes(src, dst, Some(jemalloc_thread_counters));
}

#[test]
fn vecs_and_strings_of_every_placement_move_exactly() {
    let (src, dst) = scopes("vecs");
    cases::vecs(src, dst, Some(jemalloc_thread_counters));
}

#[test]
fn blocks_move_between_instances_and_permanent_scopes() {
    let (kind, perm) = scopes("inst");
    cases::instances(kind, perm, Some(jemalloc_thread_counters));
}

#[test]
fn unique_arcs_move_and_shared_arcs_are_refused_unchanged() {
    let (src, dst) = scopes("arcs");
    cases::arcs(src, dst);
}

#[test]
fn values_without_a_block_come_back_uncounted() {
    let (src, dst) = scopes("zst");
    cases::zero_sized(src, dst);
}

#[test]
fn a_block_handed_over_by_another_thread_is_freed_to_the_target_here() {
    let (src, dst) = scopes("threads");
    let page = std::thread::spawn(move || src.in_scope(|| vec![1u8; 4096]))
        .join()
        .unwrap();
    let page = std::thread::spawn(move || dst.adopt(page)).join().unwrap();
    assert_eq!((src.stats().live_bytes, dst.stats().live_bytes), (0, 4096));
    drop(page);
    assert_eq!((src.stats().live_allocs, dst.stats().live_allocs), (0, 0));
}

#[test]
fn recorded_blocks_move_their_record_to_the_target_scope() {
    let (src, dst) = scopes("records");
    let src_check = LeakCheck::begin(src);
    let dst_check = LeakCheck::begin(dst);
    // Allocated under a recording check of `src`: its record says `src`.
    let page = src.in_scope(|| vec![2u8; 4096]);
    let small = src.in_scope(|| Box::new([2u8; 24])); // a trailer block
    let page = hand_over(page, dst);
    let small = hand_over(small, dst);
    src_check.finish().expect("src gave its blocks away");
    let report = dst_check.finish().unwrap_err();
    assert_eq!((report.leaked_bytes, report.leaked_allocs), (4096 + 24, 2));
    assert!(report.sites_exact, "{report}");
    let bytes: u64 = report
        .sites
        .iter()
        .filter(|s| s.scope == dst.path())
        .map(|s| s.bytes)
        .sum();
    assert_eq!(bytes, 4096 + 24, "{report}");
    assert!(
        report.sites.iter().all(|s| s
            .frames
            .iter()
            .any(|f| f.function.contains("recorded_blocks_move_their_record"))),
        "{report}"
    );
    drop((page, small));
}

/// A page cache a query fills: the query's scope keeps nothing once the
/// cache adopts the page, and the cache's scope holds it.
struct PageCache {
    pages: Mutex<HashMap<u64, Vec<u8>>>,
}

static CACHE: Scope = Scope::new("hand-over-cache");
static QUERY: Scope = Scope::new("hand-over-query");

fn read_page(cache: &PageCache, id: u64, adopt: bool) -> u8 {
    let page = vec![id as u8; 4096]; // "read from disk"
    let first = page[0];
    let page = if adopt { CACHE.adopt(page) } else { page };
    cache.pages.lock().unwrap().insert(id, page);
    first
}

#[test]
fn a_failing_check_passes_once_the_cache_adopts_the_page() {
    let cache = PageCache {
        pages: Mutex::new(HashMap::with_capacity(16)),
    };
    let q = ScopeInstance::of(&QUERY).unwrap();
    let check = LeakCheck::begin(&q);
    q.in_scope(|| read_page(&cache, 1, false));
    let report = check.finish().unwrap_err();
    assert_eq!(report.leaked_bytes, 4096, "{report}");
    assert!(report.sites[0]
        .frames
        .iter()
        .any(|f| f.function.ends_with("read_page")));

    let q = ScopeInstance::of(&QUERY).unwrap();
    let check = LeakCheck::begin(&q);
    let cached_before = CACHE.stats().live_bytes;
    q.in_scope(|| read_page(&cache, 2, true));
    check.finish().expect("the cache adopted the page");
    assert_eq!(CACHE.stats().live_bytes - cached_before, 4096);
    cache.pages.lock().unwrap().remove(&2);
    assert_eq!(CACHE.stats().live_bytes, cached_before);
}

#[test]
fn budgets_and_peaks_see_the_handed_over_bytes() {
    let (src, dst) = scopes("budget");
    dst.set_budget(Budget::soft(100_000));
    let big = src.in_scope(|| vec![0u8; 200_000]);
    assert!(!dst.over_budget());
    let big = dst.adopt(big);
    assert!(dst.over_budget(), "the target's budget counts the block");
    assert!(dst.stats().peak_bytes >= 200_000, "{:?}", dst.stats());
    drop(big);
    assert!(!dst.over_budget());
    dst.clear_budget();
}
