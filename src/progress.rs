//! Progress on stderr: bars on a terminal, nothing otherwise (and nothing with `--quiet`).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
            bar
        });
        Self { bar }
    }

    pub fn hidden() -> Self {
        Self { bar: None }
    }

    pub fn stage(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
            bar.set_message(message.to_string());
            bar.tick();
        }
    }

    pub fn start_blocks(&self, blocks: u64, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} reading blocks {pos}/{len} ({msg}) {wide_bar} {eta}",
                )
                .expect("valid template"),
            );
            bar.set_length(blocks);
            bar.set_position(0);
            bar.set_message(format!("{} MB", bytes / 1_000_000));
        }
    }

    pub fn block_done(&self, _bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    pub fn finish_blocks(&self) {}

    pub fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
