//! Tells the crate's tests whether the crate is compiled with optimisations
//! (a release build, or the workspace's dev profile, which optimises this
//! package: see .cargo/config.toml): a few conservative-scan tests plant a
//! hidden pointer whose stale plain copies the optimiser leaves in live
//! stack frames, so they only run unoptimised (tests/reachability/).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(scope_alloc_tracker_optimized)");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("OPT_LEVEL").is_ok_and(|level| level != "0") {
        println!("cargo::rustc-cfg=scope_alloc_tracker_optimized");
    }
}
