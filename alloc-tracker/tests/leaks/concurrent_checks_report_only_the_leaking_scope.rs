//! Several leak checks run at once in one process (as `cargo test` runs
//! tests on parallel threads); only the leaking one fails, with exactly its
//! own bytes. A check on a parent scope covers its children.

use std::hint::black_box;
use std::sync::Barrier;

use scope_alloc_tracker::leak::LeakCheck;
use scope_alloc_tracker::ScopeId;

#[inline(never)]
fn leaky_worker_step() {
    black_box(Box::leak(vec![1u8; 777].into_boxed_slice()));
}

#[test]
fn only_the_leaking_check_fails() {
    let _shared = crate::common::shared();
    const WORKERS: usize = 6;
    let barrier = Barrier::new(WORKERS);
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..WORKERS)
            .map(|i| {
                let barrier = &barrier;
                s.spawn(move || {
                    let scope = ScopeId::register(&format!("worker-{i}"), None).unwrap();
                    let check = LeakCheck::begin(scope);
                    barrier.wait();
                    scope.in_scope(|| {
                        for round in 0..200 {
                            let v: Vec<u64> = (0..round).collect();
                            black_box(v);
                        }
                        if i == 3 {
                            leaky_worker_step();
                        }
                    });
                    (i, check.finish())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, r) in results {
        if i == 3 {
            let report = r.expect_err("worker 3 leaked");
            assert_eq!(report.leaked_bytes, 777);
            assert_eq!(report.leaked_allocs, 1);
            assert_eq!(report.scope, "worker-3");
            assert_eq!(report.sites.len(), 1, "{report}");
            assert!(report.mentions_function("leaky_worker_step"), "{report}");
        } else {
            assert!(r.is_ok(), "worker {i} did not leak: {:?}", r.err());
        }
    }
}

#[test]
fn a_check_on_a_parent_covers_its_children() {
    let _shared = crate::common::shared();
    let parent = ScopeId::register("parent", None).unwrap();
    let child = ScopeId::register("child", Some(parent)).unwrap();
    let check = LeakCheck::begin(parent);
    let grandchild = ScopeId::register("grandchild", Some(child)).unwrap();
    child.in_scope(|| black_box(Box::leak(Box::new([0u8; 40]))));
    grandchild.in_scope(|| black_box(Box::leak(Box::new([0u8; 60]))));
    let report = check.finish().unwrap_err();
    assert_eq!((report.leaked_bytes, report.leaked_allocs), (100, 2));
    let mut scopes: Vec<_> = report.sites.iter().map(|s| s.scope.as_str()).collect();
    scopes.sort();
    assert_eq!(scopes, ["parent/child", "parent/child/grandchild"]);
    assert!(report.sites_exact);
}
