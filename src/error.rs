//! Failure classes and their exit statuses: every error the user sees maps to one of them.

use std::fmt;

/// What went wrong, as the exit status tells it to scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Bad command line (clap also exits with 2).
    Usage,
    /// The process id matches no process, or several.
    ProcessNotFound,
    /// The lake holds data we cannot use: corrupt or missing block, bad metadata.
    LakeData,
    /// Reading or writing files, databases or object stores failed.
    Io,
    /// A bug of ours: a panic, a task that died. Never the lake's or the user's fault.
    Internal,
    /// The user interrupted the run (Ctrl-C).
    Interrupted,
}

impl FailureKind {
    pub fn exit_code(self) -> i32 {
        match self {
            FailureKind::Usage => 2,
            FailureKind::ProcessNotFound => 3,
            FailureKind::LakeData => 4,
            FailureKind::Io => 5,
            FailureKind::Internal => 70,
            FailureKind::Interrupted => 130,
        }
    }
}

/// An error of a known class; context added by `anyhow` on the way up keeps the class.
#[derive(Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

pub fn failure(kind: FailureKind, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        kind,
        message: message.into(),
    })
}

/// The class of an error: the innermost `Failure` in its chain, else an I/O failure.
pub fn kind_of(error: &anyhow::Error) -> FailureKind {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Failure>())
        .map(|failure| failure.kind)
        .unwrap_or(FailureKind::Io)
}

/// The whole chain on one line, outermost context first.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// A task that could not finish (it panicked or was cancelled) is an internal error, whatever
/// it was doing: `what` says what, the panic message says where.
pub fn task_failed(what: &str, error: tokio::task::JoinError) -> anyhow::Error {
    let detail = match error.try_into_panic() {
        Ok(payload) => panic_text(payload.as_ref()),
        Err(error) => error.to_string(),
    };
    failure(
        FailureKind::Internal,
        format!("internal error: {what} failed: {detail}"),
    )
}

/// The message of a panic payload.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}
