//! A failing leak assertion saves its report as JSON when
//! `ALLOC_TRACKER_LEAK_DIR` is set, then panics naming the file.
#![cfg(all(feature = "jemalloc", feature = "json"))]

use rusty_fork::rusty_fork_test;
use scope_alloc_tracker::leak::{LeakCheck, LeakReport};
use scope_alloc_tracker::ScopeId;

#[inline(never)]
fn keep_forever() {
    std::hint::black_box(Box::leak(vec![3u8; 321].into_boxed_slice()));
}

rusty_fork_test! {
    #[test]
    fn failing_assertion_writes_the_report_first() {
        let dir = std::env::temp_dir().join(format!("leak-dir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // The only test in its process, so setting the variable races nothing.
        std::env::set_var("ALLOC_TRACKER_LEAK_DIR", &dir);
        let scope = ScopeId::register("saved", None).unwrap();
        let check = LeakCheck::begin(scope);
        scope.in_scope(keep_forever);
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check.assert_drained()))
            .expect_err("the assertion fails");
        let msg = panic.downcast_ref::<String>().unwrap();
        assert!(msg.contains("report saved to"), "{msg}");
        let file = std::fs::read_dir(&dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let report: LeakReport = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(report.leaked_bytes, 321);
        assert!(report.mentions_function("keep_forever"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
