//! A tokio multi-thread service with spawned and nested tasks, tracing
//! spans (through the crate's tracing layer) and cancellation. Every clean
//! request's check passes, run after run (200 runs; run it in release too),
//! and a leak planted in a task is caught with its site.
//!
//! The runtime is warmed up once ([`warm_up`]); the tracing subscriber's
//! per-thread state is made by unchecked requests first, on the workers
//! and on each thread that calls `block_on` (see `warm_tracing`): a
//! thread's first span makes the registry's per-thread state, kept for
//! the thread's life (a slab shard and its first page, a `thread_local`
//! bucket, the span stack: a few KiB in a handful of blocks).

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use scope_alloc_tracker::integrations::tokio::{spawn, warm_up};
use scope_alloc_tracker::integrations::tracing::AllocScopeLayer;
use scope_alloc_tracker::leak::{self, LeakReport};
use scope_alloc_tracker::{Scope, ScopeInstance};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

static SVC_REQUEST: Scope = Scope::new("svc-request");

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(AllocScopeLayer::new());
        tracing::subscriber::set_global_default(subscriber).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        warm_up(rt.handle()).unwrap();
        warm_tracing(&rt);
        rt
    })
}

/// Requests outside any check, so that the tracing registry's per-thread
/// state (span stack, slab shard and page) exists before the first checked
/// request: on the workers, and on this thread (which polls the request
/// in `block_on`).
fn warm_tracing(rt: &tokio::runtime::Runtime) {
    for i in 0..4 {
        rt.block_on(handle(i, Plant::Nothing));
    }
}

thread_local! {
    static TRACING_WARM: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Plant {
    Nothing,
    LeakInANestedTask,
}

/// The service's request handler.
async fn handle(id: u64, plant: Plant) -> usize {
    let span = tracing::info_span!("request", id);
    async move {
        // Parts run as tasks that keep the request's scope.
        let mut parts = Vec::new();
        for part in 0..3u64 {
            parts.push(spawn(
                async move {
                    let body = black_box(vec![part as u8; 256]);
                    tokio::task::yield_now().await;
                    // A nested task.
                    let nested = spawn(
                        async move {
                            tokio::task::yield_now().await;
                            if plant == Plant::LeakInANestedTask && part == 1 {
                                plant_a_leak_in_a_task();
                            }
                            black_box(format!("part {part} of {id}")).len()
                        }
                        .instrument(tracing::info_span!("nested", part)),
                    );
                    body.len() + nested.await.unwrap()
                }
                .instrument(tracing::info_span!("part", part)),
            ));
        }
        // Cancellation: a task holding a buffer, aborted while it sleeps,
        // and a future dropped by a timeout.
        let slow = spawn(async {
            let held = black_box(vec![1u8; 4096]);
            tokio::time::sleep(Duration::from_secs(30)).await;
            held.len()
        });
        let timed_out = tokio::time::timeout(Duration::from_millis(1), async {
            let held = black_box(vec![2u8; 1024]);
            tokio::time::sleep(Duration::from_secs(30)).await;
            held.len()
        })
        .await;
        assert!(timed_out.is_err());
        slow.abort();
        assert!(slow.await.unwrap_err().is_cancelled());
        let mut n = 0;
        for p in parts {
            n += p.await.unwrap();
        }
        n
    }
    .instrument(span)
    .await
}

#[inline(never)]
fn plant_a_leak_in_a_task() {
    Box::leak(black_box(vec![0xAB_u8; 1500]).into_boxed_slice());
}

/// One request under a check of a fresh instance.
#[allow(clippy::result_large_err)] // as LeakCheck::finish
fn checked_request(id: u64, plant: Plant) -> Result<usize, LeakReport> {
    let rt = runtime();
    if !TRACING_WARM.replace(true) {
        warm_tracing(rt);
    }
    let instance = ScopeInstance::of(&SVC_REQUEST).unwrap();
    let r = rt.block_on(leak::check_async(&instance, handle(id, plant)));
    drop(instance);
    r
}

#[test]
fn every_clean_request_drains_over_200_runs() {
    let mut failures = Vec::new();
    for id in 0..200 {
        match checked_request(id, Plant::Nothing) {
            Ok(n) => assert!(n > 3 * 256),
            Err(report) => failures.push(format!("request {id}: {report}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 200 clean requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn a_leak_planted_in_a_nested_task_is_caught_with_its_site() {
    for id in 0..3 {
        let report = checked_request(1000 + id, Plant::LeakInANestedTask)
            .expect_err("the planted leak is caught");
        assert_eq!(report.leaked_bytes, 1500, "{report}");
        assert!(
            report.mentions_function("plant_a_leak_in_a_task"),
            "{report}"
        );
        let origin = report.sites[0].origin().expect("an origin");
        assert!(
            origin.function.contains("plant_a_leak_in_a_task"),
            "{report}"
        );
    }
}
