//! Progress on stderr: bars on a terminal, nothing otherwise (and nothing with `--quiet`).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
            bar
        });
        Self { bar, quiet }
    }

    /// A warning for the user (silent under `--quiet`).
    pub fn warn(&self, line: &str) {
        if !self.quiet {
            self.note(&format!("write-perfetto: warning: {line}"));
        }
    }

    pub fn stage(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_string());
            bar.tick();
        }
    }

    /// A line for the user (explanations), printed without garbling the bar.
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| stderr_line(line)),
            None => stderr_line(line),
        }
    }

    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Writes a line to stderr; a closed stderr (`2>&1 | head -1`) is not a reason to fail the run,
/// whereas `eprintln!` would panic.
pub fn stderr_line(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
