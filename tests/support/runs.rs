//! Runs of the binary that fail or are watched: the one error line a failure prints, and runs
//! in the background that a test stops or waits for, within bounds.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use super::lake::stderr;

/// How long a background run may take before the test gives up on it.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(240);

/// The error line of a failed run: stderr must be exactly one line, naming the fault.
pub fn error_line(output: &Output, expected_code: i32) -> String {
    let text = stderr(output);
    assert_eq!(
        output.status.code(),
        Some(expected_code),
        "expected exit {expected_code}, got {:?}; stderr: {text}",
        output.status
    );
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "stderr is not one line: {text:?}");
    assert!(
        lines[0].starts_with("write-perfetto: error: "),
        "unexpected stderr: {text:?}"
    );
    lines[0].to_string()
}

pub fn assert_mentions(line: &str, what: &[&str]) {
    for w in what {
        assert!(line.contains(w), "{line:?} does not mention {w:?}");
    }
}

/// Starts `command` in `cwd`, its stderr going to `stderr_path`.
pub fn spawn(mut command: Command, cwd: &Path, stderr_path: &Path) -> Child {
    command
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr_path).unwrap())
        .spawn()
        .expect("spawn write-perfetto")
}

/// Polls until `condition` holds or the child exits; false when the child exited first.
pub fn wait_until(child: &mut Child, poll: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        if condition() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met after {RUN_TIMEOUT:?}"
        );
        std::thread::sleep(poll);
    }
}

/// Waits for `child` at most `timeout`; kills it and panics past that.
pub fn wait_bounded(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("write-perfetto still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
