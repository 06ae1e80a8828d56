//! Retained blocks that something still points to are reported reachable,
//! with what holds them: a static (by name), a recorded block of another
//! scope (with its site and scope), a parked tokio task, another thread's
//! stack.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{mpsc, Mutex};

use rusty_fork::rusty_fork_test;
use scope_alloc_tracker::leak::{HolderKind, LeakCheck, LeakReport, LeakSite, SiteReach};
use scope_alloc_tracker::{Scope, ScopeId};

static HELD: Scope = Scope::new("reach-held");

/// The site whose stack names `function`, and its reachability.
fn site<'r>(report: &'r LeakReport, function: &str) -> (&'r LeakSite, &'r SiteReach) {
    let s = report
        .sites
        .iter()
        .find(|s| s.frames.iter().any(|f| f.function.contains(function)))
        .unwrap_or_else(|| panic!("no site from `{function}` in:\n{report}"));
    (s, s.reach.as_ref().expect("a failed check scans"))
}

static CACHE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[inline(never)]
fn push_into_static() {
    CACHE.lock().unwrap().push(black_box(vec![3u8; 1000]));
}

rusty_fork_test! {
    #[test]
    fn vec_pushed_into_a_static_is_held_by_that_static() {
        let instance = HELD.instance().unwrap();
        let check = LeakCheck::begin(&instance);
        instance.in_scope(push_into_static);
        let report = check.finish().unwrap_err();
        let (s, r) = site(&report, "push_into_static");
        assert!(s.bytes >= 1000, "{report}");
        assert_eq!(r.unreachable_bytes, 0, "{report}");
        assert!(r.reachable_bytes >= 1000, "{report}");
        // The vector's buffer (allocated by the first push, in the scope) is
        // held by the static; the pushed vector through it (or, when a stale
        // copy of its pointer is left in a live frame of this thread, by the
        // stack: the documented direction of a conservative scan's error).
        let total = &report.reachability.as_ref().unwrap().total;
        assert_eq!(total.unreachable_bytes, 0, "{report}");
        assert!(
            total
                .holders
                .iter()
                .any(|g| g.holder.kind == HolderKind::Static && g.holder.name.contains("CACHE")),
            "{report}"
        );
        let text = report.to_string();
        assert!(text.contains("held by static `"), "{text}");
        assert!(text.contains("CACHE"), "{text}");
        // Free the static's buffer, not just its elements: a cleared buffer
        // keeps the freed blocks' addresses, and a block later allocated at one
        // of them (in another module's test) would look reachable to a scan.
        *CACHE.lock().unwrap() = Vec::new();
    }
}

static PRESIZED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[inline(never)]
fn push_into_presized_static() {
    PRESIZED.lock().unwrap().push(black_box(vec![6u8; 800]));
}

/// Holders are named from the first pointer the scan finds, and a stale
/// copy of the pointer (freed heap memory, a dead slot of this thread's
/// live frames: the documented error of a conservative scan) can be found
/// before the real holder. Every run must find the block reachable; the
/// real holder must be named in one of three runs.
const RUNS: usize = 3;

rusty_fork_test! {
    #[test]
    fn held_through_an_unrecorded_buffer_names_the_static_that_owns_it() {
        // The vector's buffer is allocated outside any check: not recorded.
        PRESIZED.lock().unwrap().reserve(16 * RUNS);
        let mut last = String::new();
        for _ in 0..RUNS {
            let instance = HELD.instance().unwrap();
            let check = LeakCheck::begin(&instance);
            instance.in_scope(push_into_presized_static);
            let report = check.finish().unwrap_err();
            let (_, r) = site(&report, "push_into_presized_static");
            assert_eq!(r.reachable_bytes, 800, "{report}");
            assert_eq!(r.unreachable_bytes, 0, "{report}");
            let h = &r.holders[0].holder;
            if h.kind == HolderKind::UnrecordedHeap
                && h.via.as_deref().is_some_and(|v| v.contains("PRESIZED"))
            {
                let text = report.to_string();
                assert!(text.contains("itself pointed to by static `"), "{text}");
                // As above: the buffer goes, not just its elements.
                *PRESIZED.lock().unwrap() = Vec::new();
                return;
            }
            last = report.to_string();
        }
        panic!("the static was never named as the owner in {RUNS} runs; last:\n{last}");
    }
}

static MAPS: Scope = Scope::new("reach-map-owner");

#[inline(never)]
fn make_the_map() -> HashMap<u64, Box<[u8; 512]>> {
    HashMap::with_capacity(64)
}

#[inline(never)]
fn insert_into_the_map(map: &mut HashMap<u64, Box<[u8; 512]>>, key: u64) {
    map.insert(key, black_box(Box::new([9u8; 512])));
}

rusty_fork_test! {
    #[test]
    fn value_moved_into_a_map_of_another_scope_is_held_by_that_maps_block() {
        // The map's table is recorded by a check on its own scope, still open.
        let owner = MAPS.instance().unwrap();
        let owner_check = LeakCheck::begin(&owner);
        let mut map = owner.in_scope(make_the_map);
        let mut last = String::new();
        // Each run's value stays in the map, so that the next run's value has
        // another address: a stale copy of one address (a dead thread's stack
        // that glibc keeps for the next thread, say) spoils one run, not all.
        for run in 0..RUNS {
            let instance = HELD.instance().unwrap();
            let check = LeakCheck::begin(&instance);
            instance.in_scope(|| insert_into_the_map(&mut map, run as u64));
            let report = check.finish().unwrap_err();
            let (_, r) = site(&report, "insert_into_the_map");
            assert_eq!(r.reachable_bytes, 512, "{report}");
            assert_eq!(r.unreachable_bytes, 0, "{report}");
            let h = &r.holders[0].holder;
            if h.kind == HolderKind::Block {
                assert_eq!(
                    h.scope.as_deref(),
                    Some(ScopeId::from(&owner).path().as_str()),
                    "{report}"
                );
                assert!(
                    h.site
                        .as_ref()
                        .is_some_and(|f| f.function.contains("make_the_map")),
                    "{report}"
                );
                assert!(report.to_string().contains("make_the_map"), "{report}");
                drop(map);
                drop(owner_check);
                return;
            }
            last = report.to_string();
        }
        panic!("the map's block was never named as the holder in {RUNS} runs; last:\n{last}");
    }
}

#[inline(never)]
fn block_for_the_task() -> Box<[u8; 700]> {
    black_box(Box::new([5u8; 700]))
}

rusty_fork_test! {
    #[test]
    fn block_whose_only_pointer_is_in_a_parked_tokio_task_is_reachable() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let instance = HELD.instance().unwrap();
        let check = LeakCheck::begin(&instance);
        let task = instance.in_scope(|| {
            let b = block_for_the_task();
            rt.spawn(async move {
                let _ = rx.await;
                black_box(&b);
            })
        });
        // Let a worker poll it once, so that it is parked on the channel.
        std::thread::sleep(std::time::Duration::from_millis(50));
        let report = check.finish().unwrap_err();
        let (_, r) = site(&report, "block_for_the_task");
        assert_eq!(r.reachable_bytes, 700, "{report}");
        assert_eq!(r.unreachable_bytes, 0, "{report}");
        tx.send(()).unwrap();
        rt.block_on(task).unwrap();
    }
}

#[inline(never)]
fn allocate_on_this_thread() -> Box<[u8; 300]> {
    black_box(Box::new([4u8; 300]))
}

rusty_fork_test! {
    #[test]
    fn block_referenced_only_from_a_blocked_threads_stack_is_held_by_that_stack() {
        let instance = HELD.instance().unwrap();
        let scope = ScopeId::from(&instance);
        let check = LeakCheck::begin(&instance);
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let t = std::thread::Builder::new()
            .name("stack-holder".into())
            .spawn(move || {
                let b = scope.in_scope(allocate_on_this_thread);
                ready_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                black_box(&b);
            })
            .unwrap();
        ready_rx.recv().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let report = check.finish().unwrap_err();
        let (_, r) = site(&report, "allocate_on_this_thread");
        assert_eq!(r.reachable_bytes, 300, "{report}");
        let h = &r.holders[0].holder;
        assert_eq!(h.kind, HolderKind::ThreadStack, "{report}");
        assert!(h.name.contains("stack-holder"), "{report}");
        go_tx.send(()).unwrap();
        t.join().unwrap();
    }
}
