//! Progress on stderr: an `indicatif` bar on a terminal, a plain line about
//! every second otherwise (indicatif hides its bar when stderr is not a
//! terminal, so pipes and CI logs get the plain lines).
//!
//! Lines meant for stdout go through [`Progress::println`] so that they do
//! not tear the bar.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::args::ProgressMode;

/// How often the plain display prints a line.
const PLAIN_EVERY: Duration = Duration::from_secs(1);

/// The progress display of one run.
#[derive(Debug)]
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    total: u64,
    started: Instant,
    last_line: Instant,
    /// Writes shown by the last plain line.
    last_done: Option<u64>,
}

impl Progress {
    /// A display for `total` writes.
    pub(crate) fn new(mode: ProgressMode, total: u64) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let (bar, plain) = match mode {
            ProgressMode::Auto if tty => (true, false),
            ProgressMode::Auto => (false, true),
            ProgressMode::Bar => (true, false),
            ProgressMode::Plain => (false, true),
            ProgressMode::Off => (false, false),
        };
        let bar = bar.then(|| {
            let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} writes, {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            pb.set_style(style);
            pb.set_message("0 writes/s, 0 checkpoints");
            pb.enable_steady_tick(Duration::from_millis(100));
            pb
        });
        let now = Instant::now();
        Progress {
            bar,
            plain,
            total,
            started: now,
            last_line: now,
            last_done: None,
        }
    }

    /// Reports `done` writes and `checkpoints` runs.
    pub(crate) fn update(&mut self, done: u64, checkpoints: u64) {
        if let Some(pb) = &self.bar {
            pb.set_position(done);
            let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            pb.set_message(format!("{rate:.0} writes/s, {checkpoints} checkpoints"));
        }
        if self.plain && self.last_line.elapsed() >= PLAIN_EVERY {
            self.last_line = Instant::now();
            self.plain_line(done, checkpoints);
        }
    }

    fn plain_line(&mut self, done: u64, checkpoints: u64) {
        self.last_done = Some(done);
        let secs = self.started.elapsed().as_secs_f64();
        let rate = done as f64 / secs.max(1e-9);
        eprintln!(
            "progress: {done}/{} writes ({rate:.0} writes/s), {checkpoints} checkpoints, {secs:.1} s",
            self.total
        );
    }

    /// Prints `line` on stdout without tearing the bar.
    pub(crate) fn println(&self, line: &str) {
        match &self.bar {
            Some(pb) => pb.suspend(|| println!("{line}")),
            None => println!("{line}"),
        }
    }

    /// Removes the bar; the plain display prints its last line.
    pub(crate) fn finish(&mut self, done: u64, checkpoints: u64) {
        if let Some(pb) = self.bar.take() {
            pb.finish_and_clear();
        }
        if self.plain && self.last_done != Some(done) {
            self.plain_line(done, checkpoints);
        }
    }
}
