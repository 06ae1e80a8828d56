//! On tokio's multi-thread runtime, tasks spawned with
//! `integrations::tokio::spawn` allocate in the spawner's scope on every
//! poll, whichever worker polls them (migration), pass it on to the tasks
//! they spawn (nested spawns), and free their state in it when cancelled;
//! an async leak check is one expression.

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::Duration;

use scope_alloc_tracker::integrations::tokio::{spawn, spawn_blocking};
use scope_alloc_tracker::leak::{self, LeakCheck};
use scope_alloc_tracker::{assert_scope_drained, AllocScopeExt, Scope, ScopeId};

static NET: Scope = Scope::new("net");
static CONN: Scope = Scope::new("conn");

fn runtime() -> tokio::runtime::Runtime {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap();
    // Warm-up: the runtime allocates some of its state lazily (worker
    // queues, the defer list, blocking threads), charged to whatever scope
    // is current when it happens; do it outside the checked scopes.
    rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                tokio::spawn(async {
                    for _ in 0..4 {
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        tokio::task::spawn_blocking(|| ()).await.unwrap();
    });
    rt
}

fn thread_id() -> u64 {
    // ThreadId has no stable integer; hash its Debug form.
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::thread::current().id().hash(&mut h);
    h.finish()
}

/// Spawns 16 tasks in NET that allocate across 50 yields each; returns
/// the number of buffers made.
fn run_tasks(rt: &tokio::runtime::Runtime, threads: &std::sync::Arc<Mutex<HashSet<u64>>>) -> usize {
    let handles: Vec<_> = NET.in_scope(|| {
        (0..16)
            .map(|_| {
                let threads = threads.clone();
                rt.spawn(scope_alloc_tracker::integrations::tokio::in_current_scope(
                    async move {
                        let mut kept = Vec::new();
                        for _ in 0..50 {
                            assert_eq!(ScopeId::current(), NET.id());
                            threads.lock().unwrap().insert(thread_id());
                            kept.push(black_box(vec![0u8; 1000]));
                            tokio::task::yield_now().await;
                        }
                        kept.len()
                    },
                ))
            })
            .collect()
    });
    rt.block_on(async {
        let mut n = 0;
        for h in handles {
            n += h.await.unwrap();
        }
        n
    })
}

#[test]
fn spawned_tasks_allocate_in_the_spawners_scope_on_every_worker() {
    let rt = runtime();
    let threads = std::sync::Arc::new(Mutex::new(HashSet::new()));
    // Grown outside NET (the set is shared, not the tasks' state).
    threads.lock().unwrap().reserve(64);
    let before = NET.stats();
    assert_eq!(run_tasks(&rt, &threads), 16 * 50);
    let after = NET.stats();
    // Every buffer was charged to NET, whichever worker polled the task.
    assert!(after.total_bytes - before.total_bytes >= 16 * 50 * 1000);
    // What is left is runtime state the tasks made tokio allocate (queues
    // grown while polled in NET): bounded, however often the work runs
    // again; leaking even one buffer per task would add 16 000 B a run.
    let residue = after.live_bytes - before.live_bytes;
    assert!(residue < 8 * 1024, "{residue} B left in NET");
    for _ in 0..5 {
        assert_eq!(run_tasks(&rt, &threads), 16 * 50);
    }
    let left = NET.stats().live_bytes - before.live_bytes;
    assert!(
        left < 8 * 1024,
        "{left} B left in NET after 6 runs: grows with the work, a leak"
    );
    eprintln!(
        "tasks ran on {} threads; runtime state left in NET: {residue} B after one run, {left} B after six",
        threads.lock().unwrap().len()
    );
}

#[test]
fn nested_spawns_inherit_the_scope() {
    let rt = runtime();
    let (outer, inner, blocking) = rt.block_on(
        async {
            let inner = spawn(async {
                let deeper = spawn(async { ScopeId::current() }).await.unwrap();
                (ScopeId::current(), deeper)
            })
            .await
            .unwrap();
            let blocking = spawn_blocking(ScopeId::current).await.unwrap();
            (ScopeId::current(), inner, blocking)
        }
        .in_alloc_scope(&CONN),
    );
    assert_eq!(outer, CONN.id());
    assert_eq!(inner, (CONN.id(), CONN.id()));
    assert_eq!(blocking, CONN.id());
}

#[test]
fn a_cancelled_task_frees_its_state_in_its_scope() {
    static CANCEL: Scope = Scope::new("cancel");
    let rt = runtime();
    let before = CANCEL.stats();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // Spawned from within the runtime, inside CANCEL.
    let handle = {
        let _in_runtime = rt.enter();
        CANCEL.in_scope(|| {
            spawn(async move {
                let state = black_box(vec![7u8; 50_000]);
                let _ = rx.await;
                state.len()
            })
        })
    };
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
    assert!(CANCEL.stats().live_bytes >= before.live_bytes + 50_000);
    handle.abort();
    let err = rt.block_on(handle).unwrap_err();
    assert!(err.is_cancelled());
    drop(tx);
    // The task's state, and the task itself, are credited back to CANCEL.
    let mut live = CANCEL.stats().live_bytes;
    for _ in 0..100 {
        if live == before.live_bytes {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
        live = CANCEL.stats().live_bytes;
    }
    assert_eq!(live, before.live_bytes);
}

#[test]
fn an_async_leak_check_is_one_expression() {
    static HANDLER: Scope = Scope::new("handler");
    let rt = runtime();
    rt.block_on(async {
        let n = leak::check_async(&HANDLER, async {
            tokio::task::yield_now().await;
            black_box(vec![0u8; 100]).len()
        })
        .await
        .unwrap();
        assert_eq!(n, 100);

        let n = assert_scope_drained!(instance of &HANDLER, async {
            tokio::task::yield_now().await;
            black_box(vec![0u8; 10]).len()
        })
        .await;
        assert_eq!(n, 10);

        // A leak across an await is caught.
        let report = leak::check_async(&HANDLER, async {
            let v = black_box(vec![0u8; 4096]);
            tokio::task::yield_now().await;
            std::mem::forget(v);
        })
        .await
        .unwrap_err();
        assert_eq!(report.leaked_bytes, 4096);
    });
    // The check object itself can span awaits too.
    rt.block_on(async {
        let i = HANDLER.instance().unwrap();
        let check = LeakCheck::begin(&i);
        async { drop(black_box(vec![1u8; 1])) }
            .in_alloc_scope(&i)
            .await;
        check.finish().unwrap();
    });
}
