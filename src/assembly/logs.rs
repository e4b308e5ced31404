//! Log entries → instants on a "log" group of the process: one lane per level present, most
//! severe first, so that errors are never lost among debug lines and each level can be
//! collapsed or pinned on its own in the Perfetto UI.

use super::AssemblyStats;
use crate::events::{LogRow, LogTable};
use crate::symbols::{Sym, Symbols};
use crate::tracks::{GroupPart, Instant, InstantArgs, Place, Track, TrackGroup};

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

/// Log entries are handed on in parts of about this many: the trace encoder writes one part
/// while the next is assembled, and no lane of a large log is ever whole in memory.
const PART_ENTRIES: usize = 1 << 16;

/// The log lanes of a process, handed on in parts: the lanes' heading first (names, no
/// entries), then each part, a stretch of time with its entries on each lane. Parts follow
/// each other in time; entries at one time are all in one part.
pub struct LogParts {
    table: LogTable,
    /// The entries shown, in time order (in stream order at one time).
    order: Vec<u32>,
    /// How far `order` was handed on.
    next: usize,
    /// The levels with entries, in lane order (most severe first), and each level's lane.
    levels: Vec<u8>,
    lane_of_level: [usize; 256],
    level_syms: [Sym; 256],
    arg_names: ArgNames,
    names: EntryNames,
}

impl LogParts {
    pub fn new(
        table: LogTable,
        max_level: u8,
        range: Option<(i64, i64)>,
        symbols: &mut Symbols,
        stats: &mut AssemblyStats,
    ) -> Self {
        let in_range = |ns: i64| range.is_none_or(|(from, to)| (from..=to).contains(&ns));
        let mut counts = [0u64; 256];
        let mut order = Vec::with_capacity(table.rows.len());
        for (k, row) in table.rows.iter().enumerate() {
            if row.level <= max_level && in_range(row.ns) {
                counts[row.level as usize] += 1;
                order.push(k as u32);
            }
        }
        // Stream order already; a clock step backwards must not reorder the trace.
        order.sort_by_key(|&k| table.rows[k as usize].ns);
        let levels: Vec<u8> = (0..=u8::MAX).filter(|&l| counts[l as usize] > 0).collect();
        let (mut lane_of_level, mut level_syms) = ([0; 256], [Sym::default(); 256]);
        for (lane, &level) in levels.iter().enumerate() {
            lane_of_level[level as usize] = lane;
            level_syms[level as usize] = symbols.intern(&level_name(level));
            stats.log_levels[(level as usize).min(7)] += counts[level as usize];
        }
        Self {
            table,
            order,
            next: 0,
            levels,
            lane_of_level,
            level_syms,
            arg_names: ArgNames {
                level: symbols.intern("level"),
                message: symbols.intern("message"),
            },
            names: EntryNames::new(symbols),
        }
    }

    /// The group with its lanes named and empty: what the trace describes before the entries.
    pub fn head(&self) -> TrackGroup {
        TrackGroup {
            name: "log".into(),
            lanes: (self.levels.iter())
                .map(|&level| Track {
                    place: Place::Lane,
                    name: level_name(level),
                    ..Default::default()
                })
                .collect(),
        }
    }

    /// The next part's lanes (as many as the head's, in its order), `None` after the last.
    /// The shortened names of its long messages are interned then, part by part: while the
    /// trace encoder writes the part before.
    pub fn next_part(&mut self, symbols: &mut Symbols) -> Option<GroupPart> {
        let rest = &self.order[self.next..];
        let first = rest.first()?;
        let ns = |k: &u32| self.table.rows[*k as usize].ns;
        let mut end = rest.len().min(PART_ENTRIES);
        // Entries at one time stay together: the trace orders them by lane.
        let last_ns = ns(&rest[end - 1]);
        end += rest[end..].iter().take_while(|k| ns(k) == last_ns).count();
        debug_assert!(ns(first) <= last_ns);
        for &k in &rest[..end] {
            self.names.see(self.table.rows[k as usize].msg, symbols);
        }
        self.names.intern_short_names(symbols);
        let mut lanes: Vec<Track> = (self.levels.iter()).map(|_| Track::default()).collect();
        // The entries are in time order already (stream order at one time): the trace's order
        // only differs where several lanes have entries at one time, lower lanes first.
        let mut order: Vec<u32> = Vec::with_capacity(end);
        let (mut run_start, mut run_ns) = (0, None);
        for &k in &rest[..end] {
            let row = &self.table.rows[k as usize];
            if run_ns != Some(row.ns) {
                order[run_start..].sort_unstable();
                (run_start, run_ns) = (order.len(), Some(row.ns));
            }
            let level = row.level as usize;
            let instant = log_instant(row, self.level_syms[level], self.arg_names, &self.names);
            let lane = self.lane_of_level[level];
            lanes[lane].instants.push(instant);
            order.push(lane as u32);
        }
        order[run_start..].sort_unstable();
        self.next += end;
        Some(GroupPart { lanes, order })
    }
}

/// The name of each message's entries: the message itself, or for a long one its beginning,
/// made once however often the message recurs. The shortened names seen since the last are
/// interned together.
struct EntryNames {
    /// By message symbol: its entries' name, [`UNSEEN`] or [`SHORTENED`] (not interned yet).
    of_message: Vec<Sym>,
    /// The shortened names, back to back, and the messages they are of.
    short_texts: String,
    shortened: Vec<(Sym, std::ops::Range<usize>)>,
}

const UNSEEN: Sym = Sym::MAX;
const SHORTENED: Sym = Sym::MAX - 1;

impl EntryNames {
    fn new(symbols: &Symbols) -> Self {
        Self {
            of_message: vec![UNSEEN; symbols.len()],
            short_texts: String::new(),
            shortened: Vec::new(),
        }
    }

    /// Notes an entry's message: a long one gets a shortened name.
    fn see(&mut self, msg: Sym, symbols: &Symbols) {
        let name = &mut self.of_message[msg as usize];
        if *name != UNSEEN {
            return;
        }
        let text = symbols.get(msg);
        // At most NAME_CHARS bytes is at most NAME_CHARS characters: most messages need no scan.
        let cut = match text.len() > NAME_CHARS {
            true => text.char_indices().nth(NAME_CHARS).map(|(cut, _)| cut),
            false => None,
        };
        let Some(cut) = cut else {
            *name = msg;
            return;
        };
        *name = SHORTENED;
        let start = self.short_texts.len();
        self.short_texts.push_str(&text[..cut]);
        self.short_texts.push('…');
        self.shortened.push((msg, start..self.short_texts.len()));
    }

    fn intern_short_names(&mut self, symbols: &mut Symbols) {
        let texts: Vec<&str> = (self.shortened.iter())
            .map(|(_, range)| &self.short_texts[range.clone()])
            .collect();
        let names = symbols.intern_all(&texts);
        for (&(msg, _), name) in self.shortened.iter().zip(names) {
            self.of_message[msg as usize] = name;
        }
        self.shortened.clear();
        self.short_texts.clear();
    }

    /// The name of an entry of message `msg` (seen), `None` if it is the message itself.
    fn of(&self, msg: Sym) -> Option<Sym> {
        match self.of_message[msg as usize] {
            name if name == msg => None,
            name => Some(name),
        }
    }
}

/// The names of a log instant's arguments, as symbols.
#[derive(Clone, Copy)]
struct ArgNames {
    level: Sym,
    message: Sym,
}

fn log_instant(row: &LogRow, level: Sym, arg_names: ArgNames, names: &EntryNames) -> Instant {
    let mut args = InstantArgs::default();
    args.push(arg_names.level, level);
    let name = match names.of(row.msg) {
        Some(name) => {
            args.push(arg_names.message, row.msg);
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

    /// The log lanes of the process, all parts put together.
    fn log_tracks(
        table: LogTable,
        max_level: u8,
        range: Option<(i64, i64)>,
        symbols: &mut Symbols,
        stats: &mut AssemblyStats,
    ) -> TrackGroup {
        let mut parts = LogParts::new(table, max_level, range, symbols, stats);
        let mut group = parts.head();
        while let Some(part) = parts.next_part(symbols) {
            for (lane, items) in group.lanes.iter_mut().zip(part.lanes) {
                lane.instants.extend(items.instants);
            }
        }
        group
    }

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
        let group = log_tracks(table, 4, Some((15, 45)), &mut symbols, &mut stats);
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
        let group = log_tracks(table, 6, None, &mut symbols, &mut AssemblyStats::default());
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
        let group = log_tracks(table, 6, None, &mut symbols, &mut AssemblyStats::default());
        for (entry, message) in group.lanes[0].instants.iter().zip([&wide, &ascii]) {
            assert_eq!(symbols.get(entry.name), message.as_str());
            assert!(entry.args.iter().all(|(n, _)| symbols.get(n) != "message"));
        }
    }

    #[test]
    fn parts_follow_each_other_in_time_keep_a_time_whole_and_hold_each_level_in_time_order() {
        let mut symbols = Symbols::new();
        // More entries than two parts, four to a time, one clock step backwards.
        let entries: Vec<(i64, u8, String)> = (0..3 * PART_ENTRIES as i64)
            .map(|k| {
                let ns = if k == 1000 { 5 } else { k / 4 };
                (ns, (k % 3 * 2 + 1) as u8, format!("m{}", k % 7))
            })
            .collect();
        let borrowed: Vec<(i64, u8, &str)> = (entries.iter())
            .map(|(ns, l, m)| (*ns, *l, m.as_str()))
            .collect();
        let table = table(&mut symbols, &borrowed);
        let mut stats = AssemblyStats::default();
        let mut parts = LogParts::new(table, 6, None, &mut symbols, &mut stats);
        let head = parts.head();
        let names: Vec<&str> = head.lanes.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["fatal", "warn", "debug"]);
        let mut lanes: Vec<Vec<(i64, String)>> = vec![Vec::new(); 3];
        let mut last_ns = i64::MIN;
        let mut count = 0;
        while let Some(part) = parts.next_part(&mut symbols) {
            count += 1;
            let part = part.lanes;
            let times = || part.iter().flat_map(|l| l.instants.iter().map(|i| i.ns));
            let (first, last) = (times().min().unwrap(), times().max().unwrap());
            assert!(
                first > last_ns,
                "part {count} starts after the previous one ends"
            );
            last_ns = last;
            for (lane, track) in lanes.iter_mut().zip(&part) {
                let entry = |i: &Instant| (i.ns, symbols.get(i.name).to_string());
                lane.extend(track.instants.iter().map(entry));
            }
        }
        assert!(count >= 3);
        for (lane, level) in lanes.iter().zip([1u8, 3, 5]) {
            // Stream order at one time: a stable sort.
            let mut expected: Vec<(i64, String)> = (borrowed.iter())
                .filter(|e| e.1 == level)
                .map(|e| (e.0, e.2.to_string()))
                .collect();
            expected.sort_by_key(|e| e.0);
            assert_eq!(lane, &expected, "level {level}");
        }
        assert_eq!(
            stats.log_levels[1..6].iter().sum::<u64>(),
            entries.len() as u64
        );
    }

    #[test]
    fn a_parts_order_takes_every_entry_once_by_time_then_lane_each_lane_in_its_own_order() {
        let mut symbols = Symbols::new();
        // Several levels at each time, in stream order trace, info, error: the part's order
        // must put them error, info, trace (lanes most severe first).
        let entries: Vec<(i64, u8, String)> = (0..3000i64)
            .map(|k| (k / 6, [6u8, 4, 2][(k % 3) as usize], format!("m{k}")))
            .collect();
        let borrowed: Vec<(i64, u8, &str)> = (entries.iter())
            .map(|(ns, l, m)| (*ns, *l, m.as_str()))
            .collect();
        let table = table(&mut symbols, &borrowed);
        let mut parts = LogParts::new(table, 6, None, &mut symbols, &mut AssemblyStats::default());
        let mut merged = Vec::new();
        while let Some(part) = parts.next_part(&mut symbols) {
            let mut next = vec![0; part.lanes.len()];
            for lane in part.order {
                let lane = lane as usize;
                let entry = &part.lanes[lane].instants[next[lane]];
                next[lane] += 1;
                merged.push((entry.ns, lane, symbols.get(entry.name).to_string()));
            }
            let lengths: Vec<usize> = part.lanes.iter().map(|l| l.instants.len()).collect();
            assert_eq!(next, lengths, "every entry of the part, once");
        }
        let mut expected: Vec<(i64, usize, String)> = (entries.iter())
            .map(|(ns, level, msg)| (*ns, (*level as usize) / 2 - 1, msg.clone()))
            .collect();
        expected.sort_by_key(|&(ns, lane, _)| (ns, lane));
        assert_eq!(merged, expected);
    }

    #[test]
    fn levels_outside_micromegas_numbering_are_named_by_number() {
        assert_eq!(level_name(1), "fatal");
        assert_eq!(level_name(6), "trace");
        assert_eq!(level_name(0), "level 0");
        assert_eq!(level_name(9), "level 9");
    }
}
