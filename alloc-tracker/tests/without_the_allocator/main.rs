//! The tracker in a process whose global allocator it is not: this binary
//! deliberately has no `#[global_allocator]` line. Checks fail naming the
//! missing line, and what needs the tracker degrades without a panic.

mod hand_over_without_the_tracker_returns_the_value;
mod leak_check_fails_loudly_without_the_allocator;
