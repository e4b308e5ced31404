//! Log entries → instants on a "log" group of the process: one lane per level present, most
//! severe first, so that errors are never lost among debug lines and each level can be
//! collapsed or pinned on its own in the Perfetto UI.

use super::AssemblyStats;
use crate::events::{LogRow, LogTable};
use crate::symbols::{FastMap, Sym, Symbols};
use crate::tracks::{Instant, InstantArgs, Place, Track, TrackGroup};

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
    let in_range = |ns: i64| range.is_none_or(|(from, to)| (from..=to).contains(&ns));
    let shown = |row: &&LogRow| row.level <= max_level && in_range(row.ns);
    // Each lane is allocated once, at its size: a large log's lanes are tens of megabytes.
    let mut counts = [0usize; 256];
    for row in table.rows.iter().filter(shown) {
        counts[row.level as usize] += 1;
    }
    let mut lanes: std::collections::BTreeMap<u8, Vec<Instant>> = (0..=u8::MAX)
        .filter(|&level| counts[level as usize] > 0)
        .map(|level| (level, Vec::with_capacity(counts[level as usize])))
        .collect();
    // Each level's name is interned once, not per entry.
    let mut level_syms: [Option<Sym>; 256] = [None; 256];
    let mut short = ShortNames::default();
    let names = ArgNames {
        level: symbols.intern("level"),
        message: symbols.intern("message"),
    };
    for row in table.rows.iter().filter(shown) {
        let level = *level_syms[row.level as usize]
            .get_or_insert_with(|| symbols.intern(&level_name(row.level)));
        let instant = log_instant(row, level, names, symbols, &mut short);
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

/// The shortened names of long messages, each made once however often its message recurs.
#[derive(Default)]
struct ShortNames {
    of_message: FastMap<Sym, Sym>,
    /// One buffer for the shortened names, not an allocation per long message.
    text: String,
}

impl ShortNames {
    /// The name of an entry of message `msg`: `None` if it is the message itself.
    fn of(&mut self, msg: Sym, symbols: &mut Symbols) -> Option<Sym> {
        let text = symbols.get(msg);
        // At most NAME_CHARS bytes is at most NAME_CHARS characters: most messages need no scan.
        if text.len() <= NAME_CHARS {
            return None;
        }
        if let Some(&name) = self.of_message.get(&msg) {
            return Some(name);
        }
        let (cut, _) = text.char_indices().nth(NAME_CHARS)?;
        self.text.clear();
        self.text.push_str(&text[..cut]);
        self.text.push('…');
        let name = symbols.intern(&self.text);
        self.of_message.insert(msg, name);
        Some(name)
    }
}

/// The names of a log instant's arguments, as symbols.
#[derive(Clone, Copy)]
struct ArgNames {
    level: Sym,
    message: Sym,
}

fn log_instant(
    row: &LogRow,
    level: Sym,
    names: ArgNames,
    symbols: &mut Symbols,
    short: &mut ShortNames,
) -> Instant {
    let mut args = InstantArgs::default();
    args.push(names.level, level);
    let name = match short.of(row.msg, symbols) {
        Some(name) => {
            args.push(names.message, row.msg);
            name
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventOrder;
    use crate::symbols::PropertySet;

    fn table(symbols: &mut Symbols, entries: &[(i64, u8, &str)]) -> LogTable {
        let mut table = LogTable::default();
        for (k, &(ns, level, msg)) in entries.iter().enumerate() {
            table.rows.push(LogRow {
                ns,
                level,
                target: symbols.intern("app"),
                msg: symbols.intern(msg),
                file: 0,
                line: 0,
                properties: PropertySet::NONE,
            });
            table.orders.push(EventOrder::new(0, k as u32));
        }
        table
    }

    #[test]
    fn entries_go_to_one_lane_per_level_most_severe_first_within_level_and_range() {
        let mut symbols = Symbols::new();
        let entries = [
            (10, 4, "a"),
            (20, 2, "b"),
            (30, 6, "c"),
            (40, 4, "d"),
            (50, 2, "e"),
        ];
        let table = table(&mut symbols, &entries);
        let mut stats = AssemblyStats::default();
        let group = log_tracks(&table, 4, Some((15, 45)), &mut symbols, &mut stats);
        let lanes: Vec<(String, Vec<i64>)> = (group.lanes.iter())
            .map(|t| (t.name.clone(), t.instants.iter().map(|i| i.ns).collect()))
            .collect();
        assert_eq!(
            lanes,
            vec![("error".into(), vec![20]), ("info".into(), vec![40])]
        );
        assert_eq!(stats.log_levels[2] + stats.log_levels[4], 2);
    }

    #[test]
    fn a_long_message_is_shortened_in_the_name_and_kept_whole_in_an_argument() {
        let mut symbols = Symbols::new();
        let long = "é".repeat(150);
        let table = table(&mut symbols, &[(1, 3, &long), (2, 3, "short")]);
        let group = log_tracks(&table, 6, None, &mut symbols, &mut AssemblyStats::default());
        let [long_entry, short_entry] = &group.lanes[0].instants[..] else {
            panic!("two entries on the warn lane")
        };
        let name = symbols.get(long_entry.name);
        assert_eq!(name.chars().count(), NAME_CHARS + 1);
        assert!(name.ends_with('…'));
        let is_message = |&(n, _): &(Sym, Sym)| symbols.get(n) == "message";
        let message = long_entry.args.iter().find(is_message);
        assert_eq!(message.map(|(_, m)| symbols.get(m)), Some(long.as_str()));
        assert_eq!(symbols.get(short_entry.name), "short");
        assert!(!short_entry.args.iter().any(|a| is_message(&a)));
    }

    #[test]
    fn a_message_of_more_bytes_than_the_limit_but_not_more_characters_keeps_its_name() {
        let mut symbols = Symbols::new();
        let (wide, ascii) = ("é".repeat(NAME_CHARS), "a".repeat(NAME_CHARS));
        let table = table(&mut symbols, &[(1, 4, &wide), (2, 4, &ascii)]);
        let group = log_tracks(&table, 6, None, &mut symbols, &mut AssemblyStats::default());
        for (entry, message) in group.lanes[0].instants.iter().zip([&wide, &ascii]) {
            assert_eq!(symbols.get(entry.name), message.as_str());
            assert!(entry.args.iter().all(|(n, _)| symbols.get(n) != "message"));
        }
    }

    #[test]
    fn levels_outside_micromegas_numbering_are_named_by_number() {
        assert_eq!(level_name(1), "fatal");
        assert_eq!(level_name(6), "trace");
        assert_eq!(level_name(0), "level 0");
        assert_eq!(level_name(9), "level 9");
    }
}
