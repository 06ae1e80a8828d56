//! The hybrid's fast path (`allocator/fast_path.rs`) runs only while no
//! budget is set and no recording leak check is active; otherwise the
//! general path runs. A block made by either must be freed correctly by the
//! other, on this thread or another, with every figure exact: blocks with
//! slack (a trailer), exact fits (the scope's arena) and unscoped exact fits
//! (the automatic arenas, untagged), plain and zeroed.

use std::alloc::{alloc, alloc_zeroed, dealloc, Layout};

use scope_alloc_tracker::{Budget, Scope};

/// Sizes with slack (24, 100, 1000) and exact fits (32, 64, 4096, 16 KiB).
const SIZES: [usize; 7] = [24, 32, 64, 100, 1000, 4096, 16384];

static WORK: Scope = Scope::new("work");
/// Holds the budget that switches the fast path off while it is set.
static SWITCH: Scope = Scope::new("switch");

fn general_path(on: bool) {
    if on {
        SWITCH.set_budget(Budget::soft(1 << 40));
    } else {
        SWITCH.clear_budget();
    }
}

struct Block(usize, Layout);
// SAFETY: a plain heap block owned by the test; moved to another thread
// only to be freed there.
unsafe impl Send for Block {}

/// Makes one block of each size in the current scope. The vector is made
/// before, outside the scope, so that only the blocks are counted there.
fn make(blocks: &mut Vec<Block>, zeroed: bool) {
    blocks.extend(SIZES.iter().map(|&size| {
        let layout = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: non-zero sizes.
        let p = unsafe {
            if zeroed {
                alloc_zeroed(layout)
            } else {
                alloc(layout)
            }
        };
        assert!(!p.is_null());
        if zeroed {
            // SAFETY: `p` has `size` initialised (zeroed) bytes.
            let bytes = unsafe { std::slice::from_raw_parts(p, size) };
            assert!(bytes.iter().all(|&b| b == 0), "zeroed block of {size} B");
        }
        // Dirty the block so that a later zeroed block reusing it shows.
        // SAFETY: `p` has `size` bytes.
        unsafe { p.write_bytes(0xa5, size) };
        Block(std::hint::black_box(p) as usize, layout)
    }));
}

fn free(blocks: Vec<Block>) {
    for Block(p, layout) in blocks {
        // SAFETY: made by `make` with `layout`, freed once.
        unsafe { dealloc(p as *mut u8, layout) };
    }
}

/// Makes blocks in `scope` with the general path on or off, frees them with
/// it the other way (on another thread if `elsewhere`), and checks the
/// scope's figures while they live and after.
fn round(scope: &Scope, alloc_general: bool, zeroed: bool, elsewhere: bool) {
    let before = scope.stats();
    general_path(alloc_general);
    let mut blocks = Vec::with_capacity(SIZES.len());
    scope.in_scope(|| make(&mut blocks, zeroed));
    general_path(false);
    let live = scope.stats();
    assert_eq!(live.live_allocs - before.live_allocs, SIZES.len() as u64);
    assert_eq!(
        live.live_bytes - before.live_bytes,
        SIZES.iter().sum::<usize>() as u64
    );
    general_path(!alloc_general);
    if elsewhere {
        std::thread::spawn(move || free(blocks)).join().unwrap();
    } else {
        free(blocks);
    }
    general_path(false);
    let after = scope.stats();
    assert_eq!(
        after.live_allocs, before.live_allocs,
        "{alloc_general} {zeroed} {elsewhere}"
    );
    assert_eq!(
        after.live_bytes, before.live_bytes,
        "{alloc_general} {zeroed} {elsewhere}"
    );
    assert_eq!(
        after.total_allocs - before.total_allocs,
        SIZES.len() as u64,
        "every allocation counted once"
    );
}

#[test]
fn blocks_cross_between_the_fast_and_the_general_path() {
    for alloc_general in [false, true] {
        for zeroed in [false, true] {
            for elsewhere in [false, true] {
                round(&WORK, alloc_general, zeroed, elsewhere);
            }
        }
    }
}

#[test]
fn a_budget_still_sees_every_allocation_of_its_scope() {
    // While a budget is set the fast path stands aside: the budget's live
    // counter must follow allocations and frees exactly.
    static BUDGETED: Scope = Scope::new("budgeted");
    BUDGETED.set_budget(Budget::soft(1 << 40));
    let mut blocks = Vec::with_capacity(SIZES.len());
    BUDGETED.in_scope(|| make(&mut blocks, false));
    let status = BUDGETED.budget_status().unwrap();
    assert_eq!(status.live_bytes, SIZES.iter().sum::<usize>() as u64);
    free(blocks);
    assert_eq!(BUDGETED.budget_status().unwrap().live_bytes, 0);
    BUDGETED.clear_budget();
}
