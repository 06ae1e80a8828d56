//! Taking, rendering and writing reports from inside a user scope leaves
//! that scope's figures unchanged (the work is charged to the tracker's own
//! scope); bad paths and bad options are typed errors, never panics;
//! periodic dumps write the file and stop when asked.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use scope_alloc_tracker::report::{dump, DumpError, Dumps, Format, OptionsError, Report};
use scope_alloc_tracker::{Scope, ScopeId};

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("alloc-tracker-{}-{name}", std::process::id()))
}

#[test]
fn reports_and_dumps_are_charged_to_the_tracker_not_the_current_scope() {
    let _shared = crate::common::shared();
    static USER: Scope = Scope::new("user-work");
    let kept = USER.in_scope(|| vec![7u8; 12_345]);
    let before = USER.stats();
    let internal_before = ScopeId::INTERNAL.stats();
    let dir = temp_path("unperturbed");
    std::fs::create_dir_all(&dir).unwrap();
    // The test's own allocations happen outside the scope.
    let targets: Vec<(Format, PathBuf)> = Format::ALL
        .into_iter()
        .filter(|f| f.is_available())
        .map(|f| (f, dir.join(format!("r.{}", f.extension()))))
        .collect();
    let missing = dir.join("missing/r.txt");
    USER.in_scope(|| {
        let report = Report::take();
        let _ = (
            report.to_string(),
            report.to_folded(),
            report.to_prometheus(),
        );
        let _ = report.diff(&Report::take()).to_string();
        for (format, path) in &targets {
            dump(path, *format).unwrap();
            report.write_to_file(path, *format).unwrap();
        }
        let _ = dump(&missing, Format::Text).unwrap_err();
    });
    let after = USER.stats();
    assert_eq!(after, before, "report work was charged to the user scope");
    assert_eq!(after.live_bytes, 12_345);
    assert!(ScopeId::INTERNAL.stats().total_allocs > internal_before.total_allocs);
    std::fs::remove_dir_all(&dir).unwrap();
    drop(kept);
}

#[test]
fn unwritable_paths_are_errors_naming_the_path() {
    let _shared = crate::common::shared();
    let missing = temp_path("no-such-dir").join("report.txt");
    let err = dump(&missing, Format::Text).unwrap_err();
    assert!(matches!(err, DumpError::Io { .. }), "{err:?}");
    assert_eq!(err.path(), missing);
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());

    // A directory where the file should go; nothing is left behind.
    let dir = temp_path("a-directory");
    std::fs::create_dir_all(&dir).unwrap();
    let err = dump(&dir, Format::Prometheus).unwrap_err();
    assert_eq!(err.path(), dir);
    let leftovers = std::fs::read_dir(dir.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name().to_string_lossy().starts_with(&format!(
                "alloc-tracker-{}-a-directory.tmp",
                std::process::id()
            ))
        })
        .count();
    assert_eq!(leftovers, 0, "the temporary file was not removed");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_options_are_typed_errors() {
    let _shared = crate::common::shared();
    let b = || Dumps::builder().path(temp_path("opts.txt"));
    assert_eq!(b().build().unwrap_err(), OptionsError::NoTrigger);
    assert_eq!(
        b().every(Duration::ZERO).build().unwrap_err(),
        OptionsError::ZeroInterval
    );
    assert_eq!(
        Dumps::builder()
            .every(Duration::from_secs(1))
            .build()
            .unwrap_err(),
        OptionsError::NoPath
    );
    assert_eq!(
        Dumps::builder()
            .path("report.xyz")
            .at_exit()
            .build()
            .unwrap_err(),
        OptionsError::NoFormat
    );
    assert_eq!("yaml".parse::<Format>(), Err(OptionsError::UnknownFormat));
    assert_eq!("Prometheus".parse::<Format>(), Ok(Format::Prometheus));
    let d = Dumps::builder()
        .path("report.svg")
        .every(Duration::from_secs(1))
        .build();
    if cfg!(feature = "flamegraph") {
        assert_eq!(d.unwrap().format(), Format::Svg);
    } else {
        assert_eq!(d.unwrap_err(), OptionsError::FormatDisabled(Format::Svg));
    }
    if !cfg!(all(unix, feature = "signal")) {
        assert_eq!(
            b().on_sigusr1().build().unwrap_err(),
            OptionsError::SignalUnavailable
        );
    }
}

#[test]
fn periodic_dumps_write_the_file_until_stopped() {
    let _shared = crate::common::shared();
    let path = temp_path("periodic.prom");
    let _ = std::fs::remove_file(&path);
    let handle = Dumps::builder()
        .path(&path)
        .every(Duration::from_millis(20))
        .install()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no periodic dump within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    handle.stop();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("# TYPE alloc_tracker_live_bytes gauge"),
        "{text}"
    );
    // Stopped: the file is not written again.
    std::fs::remove_file(&path).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(!path.exists(), "a dump after stop()");
}
