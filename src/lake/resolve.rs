//! Turns the user's process id argument (full UUID, any case, or a unique prefix) into a process.

use anyhow::Result;
use uuid::Uuid;

use super::metadata::MetadataReads;
use super::rows::ProcessRow;
use crate::error::{FailureKind, failure};

const MIN_PREFIX_DIGITS: usize = 8;
const CANDIDATES_SHOWN: i64 = 10;

/// Finds the process named by `arg`: a UUID with or without hyphens, in any case, or a unique
/// prefix of at least 8 hex digits.
pub async fn resolve_process(db: &impl MetadataReads, arg: &str) -> Result<ProcessRow> {
    let hex: String = arg
        .trim()
        .chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) || hex.len() > 32 {
        return Err(failure(
            FailureKind::Usage,
            format!(
                "malformed process id {arg:?}: expected a UUID or at least {MIN_PREFIX_DIGITS} of its hex digits"
            ),
        ));
    }
    if hex.len() < MIN_PREFIX_DIGITS {
        return Err(failure(
            FailureKind::Usage,
            format!(
                "process id prefix {arg:?} is too short: give at least {MIN_PREFIX_DIGITS} hex digits"
            ),
        ));
    }
    let id = if hex.len() == 32 {
        Uuid::parse_str(&hex).map_err(|_| not_found(arg))?
    } else {
        let candidates = db
            .process_ids_with_prefix(&hex, CANDIDATES_SHOWN + 1)
            .await?;
        match candidates.as_slice() {
            [] => return Err(not_found(arg)),
            [one] => *one,
            many => {
                let shown: Vec<String> = many
                    .iter()
                    .take(CANDIDATES_SHOWN as usize)
                    .map(|u| u.to_string())
                    .collect();
                let more = if many.len() as i64 > CANDIDATES_SHOWN {
                    ", …"
                } else {
                    ""
                };
                return Err(failure(
                    FailureKind::ProcessNotFound,
                    format!(
                        "process id prefix {arg:?} is ambiguous: it matches {}{more}; give more digits",
                        shown.join(", ")
                    ),
                ));
            }
        }
    };
    db.process(&id).await?.ok_or_else(|| not_found(arg))
}

fn not_found(arg: &str) -> anyhow::Error {
    failure(
        FailureKind::ProcessNotFound,
        format!(
            "no process {arg:?} in this lake; `write-perfetto processes` lists the lake's processes"
        ),
    )
}
