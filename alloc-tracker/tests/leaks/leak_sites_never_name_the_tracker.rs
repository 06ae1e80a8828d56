//! A leak site names the function that leaked, never the tracker's own
//! frames (`capture_registers`, the record path), with any debug
//! information: the allocator's frames are trimmed by address.
//!
//! The test profile builds this with `debug = "limited"` (and the tracker
//! optimised, see .cargo/config.toml; CI's default-features step runs the
//! first test with the tracker unoptimised at `debug = true`); with
//! `ALLOC_TRACKER_DEBUG_MATRIX=1` (CI sets it),
//! `line_tables_only_and_no_debug_info_trim_the_same` rebuilds the example
//! `leak_site_probe` with `"line-tables-only"` and then `false` for the
//! tracker's package (the tracker and the probe only, into the same target
//! dir, so the dependencies are shared). Optimised code with
//! `"line-tables-only"` is where trimming by name named every site
//! `capture_registers`: its DWARF gives inlined frames short names.

use scope_alloc_tracker::leak::LeakCheck;
use scope_alloc_tracker::ScopeId;

#[inline(never)]
fn plant_leak_in_a_named_function() -> usize {
    let kept: &'static mut [u8] =
        Box::leak(std::hint::black_box(vec![3u8; 777]).into_boxed_slice());
    kept.len()
}

#[test]
fn the_origin_is_the_leaking_function_and_no_frame_is_the_allocators() {
    let _shared = crate::common::shared();
    let scope = ScopeId::register("never-the-tracker", None).unwrap();
    let check = LeakCheck::begin(scope);
    scope.in_scope(plant_leak_in_a_named_function);
    let report = check.finish().expect_err("777 B leaked");
    assert_eq!(report.leaked_bytes, 777, "{report}");
    let site = &report.sites[0];
    let origin = site.origin().expect("an origin");
    assert!(!origin.is_tracker(), "{report}");
    assert!(
        origin.function.contains("plant_leak_in_a_named_function"),
        "{report}"
    );
    for f in &site.frames {
        let in_allocator = f.function.contains("capture_registers")
            || f.function.contains("scope_alloc_tracker::allocator")
            || f.function.contains("scope_alloc_tracker::sampling")
            || f.file
                .as_deref()
                .is_some_and(|p| p.contains("src/allocator/") || p.contains("src/sampling/"));
        assert!(!in_allocator, "an allocator frame was kept: {f}\n{report}");
    }
}

#[test]
fn line_tables_only_and_no_debug_info_trim_the_same() {
    let _shared = crate::common::shared();
    if std::env::var_os("ALLOC_TRACKER_DEBUG_MATRIX").is_none() {
        eprintln!("set ALLOC_TRACKER_DEBUG_MATRIX=1 to rebuild with other debug settings");
        return;
    }
    let manifest = env!("CARGO_MANIFEST_DIR");
    // The target dir this test was built in (`<target>/debug/deps/<exe>`):
    // only the tracker and the probe are rebuilt, the dependencies are
    // shared.
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    // The dev profile optimises the tracker (opt-level 2) as a release
    // build does; "limited" is what the release and dev profiles build
    // already.
    for debug in ["line-tables-only", "false"] {
        let value = match debug {
            "false" => debug.to_string(),
            _ => format!("\"{debug}\""),
        };
        let out = std::process::Command::new(env!("CARGO"))
            .args(["run", "--quiet", "--example", "leak_site_probe", "--config"])
            .arg(format!(
                "profile.dev.package.scope-alloc-tracker.debug={value}"
            ))
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(manifest)
            .output()
            .expect("cargo runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "debug = {debug}: {stdout}\n{stderr}");
        assert!(
            stdout.contains("origin: leak_site_probe::plant") || stdout.contains("origin: plant\n"),
            "debug = {debug}: {stdout}"
        );
    }
}
