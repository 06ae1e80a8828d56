// Own test binary: its children dump at exit and on SIGUSR1, process-wide.
//! A 1 ms periodic dump plus SIGUSR1 (and on-demand dumps, and the dump at
//! exit) all write one report file: every version seen at the path must be
//! valid (two dumps sharing one temporary file would splice them) and the
//! exit dump must not fail.
//!
//! A child process (this binary again, selected by `DUMP_STRESS_CHILD`)
//! runs every trigger at once for a while; the parent reads the report
//! file as fast as it can meanwhile. Every version it sees, and the final
//! file, must parse; the final file must be the exit dump (it has the
//! scope registered last); no temporary file may be left behind, and no
//! dump may fail.
#![cfg(feature = "jemalloc")]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scope_alloc_tracker::report::{dump, Dumps, Format};
use scope_alloc_tracker::{Jemalloc, ScopeId, TrackingAlloc};

#[global_allocator]
static GLOBAL: TrackingAlloc<Jemalloc> = TrackingAlloc::new(Jemalloc);

const CHILD: &str = "DUMP_STRESS_CHILD";
const CHILD_PATH: &str = "DUMP_STRESS_PATH";
/// How long the child keeps every trigger busy.
const BUSY: Duration = Duration::from_millis(1200);

/// JSON when it is compiled in (a truncated or spliced file never parses),
/// else the Prometheus text.
const FORMAT: Format = if cfg!(feature = "json") {
    Format::Json
} else {
    Format::Prometheus
};

/// Whether `text` is one complete report.
fn parses(text: &str) -> Result<(), String> {
    #[cfg(feature = "json")]
    {
        scope_alloc_tracker::report::Report::from_json(text)
            .map(drop)
            .map_err(|e| e.to_string())
    }
    #[cfg(not(feature = "json"))]
    {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        prometheus_parse::Scrape::parse(lines).map_err(|e| e.to_string())?;
        // A complete exposition ends with the last family we write.
        if !text.contains("# TYPE alloc_tracker_sampled_sites gauge") {
            return Err("incomplete".into());
        }
        Ok(())
    }
}

#[test]
fn stress_child() {
    if std::env::var_os(CHILD).is_none_or(|m| m != "1") {
        return;
    }
    let path = PathBuf::from(std::env::var_os(CHILD_PATH).unwrap());
    let mut builder = Dumps::builder()
        .path(&path)
        .format(FORMAT)
        .at_exit()
        .every(Duration::from_millis(1));
    if cfg!(all(unix, feature = "signal")) {
        builder = builder.on_sigusr1();
    }
    // Dropped without stop(): the exit hook must stop the threads.
    let _triggers = builder.install().unwrap();
    let work = ScopeId::register("stress-work", None).unwrap();
    let end = Instant::now() + BUSY;
    std::thread::scope(|s| {
        // On-demand dumps from two threads.
        for _ in 0..2 {
            s.spawn(|| {
                while Instant::now() < end {
                    dump(&path, FORMAT).unwrap();
                }
            });
        }
        // SIGUSR1, as often as the dumping thread can take it.
        #[cfg(all(unix, feature = "signal"))]
        s.spawn(|| {
            while Instant::now() < end {
                // SAFETY: sends a signal to this process; SIGUSR1 is
                // handled by the dump trigger installed above.
                unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
                std::thread::sleep(Duration::from_micros(300));
            }
        });
        // Allocation work, so reports differ in size.
        s.spawn(|| {
            let mut kept = Vec::new();
            while Instant::now() < end {
                let v = work.in_scope(|| std::hint::black_box(vec![1u8; 64 + kept.len() % 4096]));
                kept.push(v);
                if kept.len() > 2000 {
                    kept.clear();
                }
            }
        });
    });
    // Registered after every other dump: only the exit dump can see it.
    let last = ScopeId::register("registered-last", None).unwrap();
    last.in_scope(|| std::mem::forget(std::hint::black_box(vec![0u8; 777])));
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("alloc-tracker-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// Files in `dir` other than `keep`.
fn leftovers(dir: &Path, keep: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path() != keep)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_version_of_the_report_file_parses_under_concurrent_dumps() {
    let dir = temp_dir("dump-stress");
    let path = dir.join(format!("report.{}", FORMAT.extension()));
    let mut seen = HashSet::new();
    for round in 0..3 {
        let _ = std::fs::remove_file(&path);
        let mut proc = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "stress_child", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env(CHILD_PATH, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                if seen.insert(hash(&text)) {
                    if let Err(e) = parses(&text) {
                        let _ = proc.kill();
                        panic!(
                            "round {round}: a version of the report does not parse ({e}):\n{}",
                            &text[..text.len().min(2000)]
                        );
                    }
                }
            }
            if let Some(status) = proc.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the child ran for 60 s");
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut proc.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(
            status.success(),
            "round {round}: child failed: {status:?}\n{stderr}"
        );
        assert!(!stderr.contains("dump failed"), "round {round}: {stderr}");
        assert!(!stderr.contains("panicked"), "round {round}: {stderr}");
        let last = std::fs::read_to_string(&path).expect("the exit dump was written");
        parses(&last).unwrap_or_else(|e| panic!("round {round}: final file: {e}"));
        assert!(
            last.contains("registered-last"),
            "round {round}: the final file is not the exit dump"
        );
        assert_eq!(
            leftovers(&dir, &path),
            Vec::<String>::new(),
            "round {round}"
        );
    }
    // Timestamps and figures change between dumps: many versions were seen.
    assert!(
        seen.len() > 3,
        "the parent saw too few versions: {}",
        seen.len()
    );
    eprintln!(
        "{} distinct versions of the report seen, all complete",
        seen.len()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn periodic_child() {
    if std::env::var_os(CHILD).is_none_or(|m| m != "periodic") {
        return;
    }
    let path = PathBuf::from(std::env::var_os(CHILD_PATH).unwrap());
    // No exit dump: the exit hook must still stop the periodic thread.
    let _triggers = Dumps::builder()
        .path(&path)
        .format(FORMAT)
        .every(Duration::from_millis(1))
        .install()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn periodic_dumps_stop_cleanly_at_exit_without_an_exit_dump() {
    let dir = temp_dir("periodic-exit");
    let path = dir.join(format!("report.{}", FORMAT.extension()));
    for round in 0..3 {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "periodic_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "periodic")
            .env(CHILD_PATH, &path)
            .output()
            .unwrap();
        assert!(out.status.success(), "round {round}: {out:?}");
        let text = std::fs::read_to_string(&path).expect("periodic dumps were written");
        parses(&text).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(
            leftovers(&dir, &path),
            Vec::<String>::new(),
            "round {round}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
