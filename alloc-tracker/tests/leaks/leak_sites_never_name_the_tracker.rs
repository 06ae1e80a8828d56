//! A leak site names the function that leaked, never the tracker's own
//! frames (`capture_registers`, the record path), with any debug
//! information: the allocator's frames are trimmed by address.
//!
//! The test profile builds this with `debug = "limited"` (and the tracker
//! optimised, see .cargo/config.toml; CI's default-features step runs the
//! first test with the tracker unoptimised at `debug = true`); with
//! `ALLOC_TRACKER_DEBUG_MATRIX=1` (CI sets it),
//! `line_tables_only_and_no_debug_info_trim_the_same` runs the example
//! `leak_site_probe` with its DWARF stripped (`false`), then rebuilds it
//! with `"line-tables-only"` for the tracker's package (the tracker and the
//! probe only, into the same target dir, so the dependencies are shared).
//! Optimised code with `"line-tables-only"` is where trimming by name named
//! every site `capture_registers`: its DWARF gives inlined frames short
//! names.

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
    // the dependencies are shared.
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    // `debug = false`: the probe as the test profile built it, with its
    // DWARF stripped (`objcopy --strip-debug` keeps `.symtab` and
    // `.eh_frame`). rustc's code does not depend on the debug setting, and
    // a release build at `debug = false` strips debug info this way too
    // (cargo's `strip = "debuginfo"` default), the dependencies' and std's
    // included. Built with the README's selection (`--workspace
    // --all-features`, whose feature unification the tracker's build
    // depends on), which has built it already; another selection rebuilds
    // the tracker once.
    let built = std::process::Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--workspace", "--all-features"])
        .args(["--example", "leak_site_probe"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(manifest)
        .output()
        .expect("cargo runs");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let probe = target.join("debug/examples/leak_site_probe");
    let stripped = target.join("debug/examples/leak_site_probe-no-debug-info");
    let strip = std::process::Command::new("objcopy")
        .arg("--strip-debug")
        .arg(&probe)
        .arg(&stripped)
        .status()
        .expect("objcopy (binutils) runs");
    assert!(strip.success(), "objcopy --strip-debug failed");
    assert!(has_dwarf(&probe), "the probe as built has DWARF");
    assert!(!has_dwarf(&stripped), "the stripped probe has none");
    let out = std::process::Command::new(&probe).output().unwrap();
    assert_trimmed("limited", &out);
    let out = std::process::Command::new(&stripped).output().unwrap();
    assert_trimmed("false", &out);
    // `"line-tables-only"`: rebuilt (the tracker and the probe only). The
    // dev profile optimises the tracker (opt-level 2) as a release build
    // does; "limited" is what the release and dev profiles build already.
    // With the default features: fewer of the tracker's modules to build.
    let out = std::process::Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", "leak_site_probe", "--config"])
        .arg("profile.dev.package.scope-alloc-tracker.debug=\"line-tables-only\"")
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(manifest)
        .output()
        .expect("cargo runs");
    assert_trimmed("line-tables-only", &out);
}

/// Whether the ELF file at `path` has a `.debug_info` section.
fn has_dwarf(path: &std::path::Path) -> bool {
    use object::{Object, ObjectSection};
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let found = file.sections().any(|s| s.name() == Ok(".debug_info"));
    found
}

/// The probe ran, and its site's origin is the planting function.
fn assert_trimmed(debug: &str, out: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "debug = {debug}: {stdout}\n{stderr}");
    assert!(
        stdout.contains("origin: leak_site_probe::plant") || stdout.contains("origin: plant\n"),
        "debug = {debug}: {stdout}"
    );
}
