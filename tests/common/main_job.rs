//! Running the main binary, `ckptdb`, as a subprocess.

use std::path::Path;

use assert_cmd::Command;

/// The main binary, ready for its arguments.
pub fn ckptdb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ckptdb"))
}

/// Runs `cmd` and returns its stdout, asserting that it exited with `code`
/// and did not panic (both streams are shown when it did not).
pub fn stdout_of(cmd: &mut Command, code: i32) -> String {
    let out = cmd.output().expect("the binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stdout
}

/// `ckptdb inspect --data-dir <data>`: its stdout (exit code 0, no panic).
pub fn inspect(data: &Path) -> String {
    stdout_of(ckptdb().arg("inspect").arg("--data-dir").arg(data), 0)
}
