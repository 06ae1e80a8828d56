//! `#[scope_alloc_tracker::test]` runs a sync or async test in
//! a fresh instance of `test/<name>` and asserts it drained; a leaking test
//! fails with the readable report.

use std::hint::black_box;

use scope_alloc_tracker::ScopeId;

#[scope_alloc_tracker::test]
fn a_drained_sync_test_passes() {
    let _shared = crate::common::shared();
    let here = ScopeId::current();
    assert!(here.is_transient());
    assert!(
        here.path().starts_with("test/a_drained_sync_test_passes#"),
        "{}",
        here.path()
    );
    drop(black_box(vec![0u8; 1000]));
}

#[scope_alloc_tracker::test]
// The process lock is held across a ready future, polled by the
// attribute's `block_on` on this thread alone: no task waits for it.
#[allow(clippy::await_holding_lock)]
async fn a_drained_async_test_passes() {
    let _shared = crate::common::shared();
    let v = black_box(vec![0u8; 100]);
    std::future::ready(()).await;
    assert!(ScopeId::current()
        .path()
        .starts_with("test/a_drained_async_test_passes#"));
    drop(v);
}

#[scope_alloc_tracker::test]
fn a_test_may_return_a_result() -> Result<(), String> {
    let _shared = crate::common::shared();
    let n: u32 = "42".parse().map_err(|e| format!("{e}"))?;
    assert_eq!(n, 42);
    Ok(())
}

#[scope_alloc_tracker::test]
#[should_panic(expected = "leak in scope `test/a_leaking_test_fails#")]
fn a_leaking_test_fails() {
    let _shared = crate::common::shared();
    // black_box: a leaked block nothing reads could be optimised away.
    std::hint::black_box(Box::leak(Box::new([0u8; 128])));
}

#[scope_alloc_tracker::test]
#[should_panic(expected = "128 B in 1 allocations still live")]
// The process lock is held across a ready future, polled by the
// attribute's `block_on` on this thread alone: no task waits for it.
#[allow(clippy::await_holding_lock)]
async fn a_leaking_async_test_fails() {
    let _shared = crate::common::shared();
    std::future::ready(()).await;
    // black_box: a leaked block nothing reads could be optimised away.
    std::hint::black_box(Box::leak(Box::new([0u8; 128])));
}

#[test]
fn the_failure_message_names_the_leaking_site() {
    let _shared = crate::common::shared();
    // Run the leaking test in a child process and read its report.
    if std::env::var_os("ALLOC_TRACKER_ATTR_CHILD").is_some() {
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg(crate::common::test_name(
            module_path!(),
            "a_leaking_test_fails",
        ))
        .args(["--exact", "--nocapture"])
        .env("ALLOC_TRACKER_ATTR_CHILD", "1")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // should_panic makes the child pass; the panic message is the report.
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("128 B in 1 allocations still live")
            && stderr.contains("allocated from")
            && stderr.contains("a_leaking_test_fails"),
        "{stderr}"
    );
}
