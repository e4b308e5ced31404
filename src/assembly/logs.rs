//! Log entries → instants on a "log" group of the process: one lane per level present, most
//! severe first, so that errors are never lost among debug lines and each level can be
//! collapsed or pinned on its own in the Perfetto UI.

use super::AssemblyStats;
use crate::events::{LogRow, LogTable};
use crate::symbols::Symbols;
use crate::tracks::{Instant, Place, Track, TrackGroup};

/// Micromegas's level numbering: 1 fatal … 6 trace.
pub const LEVELS: [&str; 6] = ["fatal", "error", "warn", "info", "debug", "trace"];

/// Messages longer than this are shortened in the instant's name (whole in `message`).
const NAME_CHARS: usize = 120;

/// The name of a level, `level N` for one outside Micromegas's numbering.
pub fn level_name(level: u8) -> String {
    match LEVELS.get((level as usize).wrapping_sub(1)) {
        Some(name) => name.to_string(),
        None => format!("level {level}"),
    }
}

/// The log lanes of the process: entries at `max_level` or more severe, within `range`.
pub fn log_tracks(
    table: &LogTable,
    max_level: u8,
    range: Option<(i64, i64)>,
    symbols: &mut Symbols,
    stats: &mut AssemblyStats,
) -> TrackGroup {
    let mut lanes: std::collections::BTreeMap<u8, Vec<Instant>> = Default::default();
    let in_range = |ns: i64| range.is_none_or(|(from, to)| (from..=to).contains(&ns));
    for row in &table.entries {
        if row.level > max_level || !in_range(row.ns) {
            continue;
        }
        let instant = log_instant(row, symbols);
        lanes.entry(row.level).or_default().push(instant);
    }
    let lanes: Vec<Track> = (lanes.into_iter())
        .map(|(level, mut instants)| {
            // Stream order already; a clock step backwards must not reorder the trace.
            instants.sort_by_key(|i| i.ns);
            stats.log_levels[(level as usize).min(7)] += instants.len() as u64;
            Track {
                place: Place::Lane,
                name: level_name(level),
                instants,
                ..Default::default()
            }
        })
        .collect();
    TrackGroup {
        name: "log".into(),
        lanes,
    }
}

fn log_instant(row: &LogRow, symbols: &mut Symbols) -> Instant {
    let level = symbols.intern(&level_name(row.level));
    let mut args = vec![("level", level)];
    let msg = symbols.get(row.msg);
    let short = (msg.char_indices().nth(NAME_CHARS)).map(|(cut, _)| format!("{}…", &msg[..cut]));
    let name = match short {
        Some(short) => {
            args.push(("message", row.msg));
            symbols.intern(&short)
        }
        None => row.msg,
    };
    Instant {
        ns: row.ns,
        name,
        category: row.target,
        file: row.file,
        line: row.line,
        args,
        properties: row.properties,
    }
}
