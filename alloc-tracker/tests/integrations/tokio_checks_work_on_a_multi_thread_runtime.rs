//! Leak checks and `#[scope_alloc_tracker::test]` on tokio's
//! multi-thread runtime: the `tokio` flavor of the attribute (plain
//! `tokio::spawn` works inside it, leaks in spawned tasks are caught),
//! `async move` blocks in `assert_scope_drained!`, the default quiescence
//! wait for late frees, and a warm-up that works on every run.

use std::hint::black_box;
use std::time::Duration;

use scope_alloc_tracker::integrations::tokio::{spawn, warm_up, warm_up_async};
use scope_alloc_tracker::leak::{LeakCheck, DEFAULT_QUIESCENCE};
use scope_alloc_tracker::{assert_scope_drained, Scope, ScopeId};

static REQUEST: Scope = Scope::new("tokio-request");

/// Spawned and nested tasks with plain `tokio::spawn`, all freed.
async fn clean_work() -> usize {
    let mut handles = Vec::new();
    for i in 0..8usize {
        handles.push(tokio::spawn(async move {
            let inner = tokio::spawn(async move {
                tokio::task::yield_now().await;
                black_box(vec![i as u8; 100 + i]).len()
            });
            tokio::task::yield_now().await;
            inner.await.unwrap() + black_box(vec![0u8; 64]).len()
        }));
    }
    let mut n = 0;
    for h in handles {
        n += h.await.unwrap();
    }
    n
}

#[scope_alloc_tracker::test(tokio)]
async fn tokio_flavor_runs_plain_tokio_spawn_and_passes_when_clean() {
    assert_eq!(clean_work().await, 8 * 164 + 28);
}

#[scope_alloc_tracker::test(tokio, worker_threads = 3)]
async fn tokio_flavor_builds_the_requested_workers() {
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    assert_eq!(workers, 3);
    assert_eq!(
        tokio::runtime::Handle::current().runtime_flavor(),
        tokio::runtime::RuntimeFlavor::MultiThread
    );
    // The time driver is on.
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[scope_alloc_tracker::test(tokio)]
#[should_panic(expected = "leak in scope `test/tokio_flavor_catches_a_leak_in_a_spawned_task")]
async fn tokio_flavor_catches_a_leak_in_a_spawned_task() {
    tokio::spawn(async {
        Box::leak(black_box(Box::new([7u8; 333])));
    })
    .await
    .unwrap();
}

#[test]
fn async_move_blocks_compile_in_both_forms_and_are_checked() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    warm_up(rt.handle()).unwrap();
    let owned = black_box(vec![1u8, 2, 3]);
    let n = rt.block_on(assert_scope_drained!(instance of &REQUEST, async move {
        spawn(async move { owned.len() }).await.unwrap()
    }));
    assert_eq!(n, 3);
    let scope = ScopeId::register("tokio-async-move", None).unwrap();
    let owned = String::from("moved");
    let n = rt.block_on(assert_scope_drained!(scope, async move {
        spawn(async move { owned.len() }).await.unwrap()
    }));
    assert_eq!(n, 5);
    // And a leak inside the moved block is caught, with its site.
    let leaked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(assert_scope_drained!(instance of &REQUEST, async move {
            spawn(async move { plant_in_a_task() }).await.unwrap()
        }))
    }));
    let message = leaked.expect_err("the leak is caught");
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("plant_in_a_task"), "{message}");
}

#[inline(never)]
fn plant_in_a_task() -> usize {
    Box::leak(black_box(vec![9u8; 4321]).into_boxed_slice()).len()
}

#[test]
fn a_block_freed_late_by_another_thread_passes_by_default_and_the_wait_is_reported() {
    let scope = ScopeId::register("late-free-default", None).unwrap();
    let check = LeakCheck::begin(scope);
    let buf = scope.in_scope(|| black_box(vec![5u8; 2048]));
    let h = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        drop(buf);
    });
    let drained = check.finish().expect("freed within the default wait");
    assert!(
        drained.waited >= Duration::from_millis(100),
        "{:?}",
        drained.waited
    );
    assert!(drained.waited < DEFAULT_QUIESCENCE);
    h.join().unwrap();
    // An excess still held (`kept` is alive on this stack across `finish`,
    // so another thread might yet free it) pays the whole (bounded) wait
    // and says so; an excess nothing holds any more may end it early (see
    // `tests/own_process/unreachable_leaks_are_definitely_lost.rs`).
    let check = LeakCheck::begin(scope);
    let kept = scope.in_scope(|| black_box(vec![5u8; 64]));
    let report = check.finish().expect_err("a leak");
    assert_eq!(black_box(&kept).len(), 64);
    assert!(report.waited >= DEFAULT_QUIESCENCE, "{:?}", report.waited);
    assert!(report.to_string().contains("waited"), "{report}");
    if let Some(r) = &report.reachability {
        assert_eq!(r.total.unreachable_bytes, 0, "{report}");
    }
    drop(kept);
}

/// The warm-up of a fresh runtime completes every time: spawning its
/// barrier tasks together left a worker parked in about one warm-up of
/// 30 (0 of 2 workers in 10 s), so 300 of them would all but surely see it.
#[test]
fn warm_up_of_a_fresh_runtime_never_leaves_a_worker_parked() {
    for run in 0..300 {
        let started = std::time::Instant::now();
        warmed_up_fresh_runtime(run);
        assert!(started.elapsed() < Duration::from_secs(5), "run {run}");
    }
}

/// A fresh 2-worker runtime, warmed up; panics (naming `run`) when the
/// warm-up does not complete.
fn warmed_up_fresh_runtime(run: usize) -> tokio::runtime::Runtime {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    if let Err(e) = warm_up(rt.handle()) {
        panic!("run {run}: {e} after {:?}", started.elapsed());
    }
    rt
}

/// A fresh runtime, warmed up, then one checked request (24
/// tasks that yield), 40 times: the runtime's lazily made per-worker state must never be charged
/// to the request. The short wait covers late frees of the tasks' cells
/// only: per-worker state made in the request would stay and fail.
#[test]
fn warm_up_leaves_nothing_for_the_first_check_on_every_fresh_runtime() {
    let mut failures = Vec::new();
    for run in 0..40 {
        // Every warm-up of a fresh runtime completes: a worker left parked
        // (a lost wake-up) would leave its state to the check.
        let rt = warmed_up_fresh_runtime(run);
        let instance = REQUEST.instance().unwrap();
        let check = LeakCheck::options(&instance)
            .quiescence(Duration::from_millis(300))
            .begin();
        let id = instance.id();
        rt.block_on(async move {
            let mut hs = Vec::new();
            // A burst of tasks that yield: more than one worker's defer
            // list holds when only a few tasks have yielded on it.
            for i in 0..24u8 {
                hs.push(scope_alloc_tracker::integrations::tokio::spawn_in(
                    id,
                    async move {
                        for _ in 0..2 {
                            tokio::task::yield_now().await;
                        }
                        black_box(vec![i; 50]).len()
                    },
                ));
            }
            for h in hs {
                h.await.unwrap();
            }
        });
        if let Err(report) = check.finish() {
            failures.push(format!("run {run}: {report}"));
        }
        drop(rt);
    }
    assert!(
        failures.is_empty(),
        "{} of 40 failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn warm_up_async_runs_from_inside_a_task() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::spawn(async { warm_up_async().await })
            .await
            .unwrap()
            .unwrap();
    });
}
