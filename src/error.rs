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
