//! The reachability scan is conservative; these planted cases show the two
//! ways it errs, as `docs/reachability.md` describes them:
//! - a word that only looks like a pointer (an integer, a stale copy) keeps
//!   a leaked block "reachable";
//! - a pointer kept hidden (XOR-ed, or past the block's end) leaves a held
//!   block "unreachable".
//!
//! And an interior pointer (into the middle of a block) does count.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use alloc_tracker::leak::{HolderKind, LeakCheck, LeakReport};
use alloc_tracker::{Jemalloc, Scope, TrackingAlloc};

/// One check at a time: a scan reads the whole process, and another test's
/// report being built meanwhile holds copies of block addresses.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

static ERRS: Scope = Scope::new("reach-errs");

fn check(plant: fn()) -> LeakReport {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let instance = ERRS.instance().unwrap();
    let check = LeakCheck::begin(&instance);
    instance.in_scope(plant);
    check.finish().expect_err("the planted block must fail the check")
}

static LOOK_ALIKE: AtomicUsize = AtomicUsize::new(0);

#[inline(never)]
fn forget_but_keep_the_address_as_an_integer() {
    let v: Vec<u8> = black_box(vec![1u8; 640]);
    LOOK_ALIKE.store(v.as_ptr() as usize, Ordering::Relaxed);
    std::mem::forget(v);
}

#[test]
fn integer_equal_to_a_leaked_address_makes_it_look_reachable() {
    let report = check(forget_but_keep_the_address_as_an_integer);
    let r = &report.reachability.as_ref().unwrap().total;
    // A leak (nothing will ever free it), wrongly reported reachable.
    assert_eq!(r.reachable_bytes, 640, "{report}");
    assert_eq!(r.unreachable_bytes, 0, "{report}");
    let h = &r.holders[0].holder;
    assert_eq!(h.kind, HolderKind::Static, "{report}");
    assert!(h.name.contains("LOOK_ALIKE"), "{report}");
}

static HIDDEN: AtomicUsize = AtomicUsize::new(0);
const KEY: usize = 0x5a5a_5a5a_5a5a_5a5a;

#[inline(never)]
fn hide_the_only_pointer() {
    let b: Box<[u8; 900]> = black_box(Box::new([2u8; 900]));
    HIDDEN.store(Box::into_raw(b) as usize ^ KEY, Ordering::Relaxed);
}

#[test]
fn xored_pointer_makes_a_held_block_look_unreachable() {
    let report = check(hide_the_only_pointer);
    let r = &report.reachability.as_ref().unwrap().total;
    // Still held (freed below), wrongly reported unreachable.
    assert_eq!(r.unreachable_bytes, 900, "{report}");
    assert_eq!(r.reachable_bytes, 0, "{report}");
    let p = (HIDDEN.load(Ordering::Relaxed) ^ KEY) as *mut [u8; 900];
    // SAFETY: the pointer `hide_the_only_pointer` made with Box::into_raw.
    drop(unsafe { Box::from_raw(p) });
}

static PAST_THE_END: AtomicUsize = AtomicUsize::new(0);

#[inline(never)]
fn keep_only_an_end_pointer() {
    let b: Box<[u64; 50]> = black_box(Box::new([3u64; 50]));
    // One past the end: as `slice::Iter` keeps it, without the start.
    PAST_THE_END.store(Box::into_raw(b) as usize + 400, Ordering::Relaxed);
}

#[test]
fn pointer_past_the_end_makes_a_held_block_look_unreachable() {
    let report = check(keep_only_an_end_pointer);
    let r = &report.reachability.as_ref().unwrap().total;
    assert_eq!(r.unreachable_bytes, 400, "{report}");
    let p = (PAST_THE_END.load(Ordering::Relaxed) - 400) as *mut [u64; 50];
    // SAFETY: the pointer `keep_only_an_end_pointer` made with Box::into_raw.
    drop(unsafe { Box::from_raw(p) });
}

static INTERIOR: AtomicUsize = AtomicUsize::new(0);

#[inline(never)]
fn keep_only_an_interior_pointer() {
    let v: Vec<u8> = black_box(vec![4u8; 1000]);
    let s: &'static [u8] = v.leak();
    INTERIOR.store(s[500..].as_ptr() as usize, Ordering::Relaxed);
}

#[test]
fn interior_pointer_keeps_a_block_reachable() {
    let report = check(keep_only_an_interior_pointer);
    let r = &report.reachability.as_ref().unwrap().total;
    assert_eq!(r.reachable_bytes, 1000, "{report}");
    assert!(r.holders[0].holder.name.contains("INTERIOR"), "{report}");
}
