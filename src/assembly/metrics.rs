//! Measures → counter tracks on a "metrics" group of the process: one track per series (a
//! metric's name, unit and target, and the properties of a tagged measure), its values at
//! their times, nothing interpolated.

use super::AssemblyStats;
use crate::decode::{SECONDS_UNIT, ticks_to_seconds};
use crate::events::MeasureTable;
use crate::symbols::{FastMap, PropertySet, Sym, Symbols};
use crate::tracks::{Place, Track, TrackGroup};

/// What tells series apart: name, unit (after the `ticks` conversion), target, properties.
/// Symbols while grouping (no string work per measure); texts only to order the series, so
/// the order is the same whatever the interning order.
type SeriesKey = (Sym, Sym, Sym, PropertySet);
/// A series' (time, value) pairs.
type Values = Vec<(i64, f64)>;

/// The counter tracks of the process's measures within `range`; `frequency`: the process's
/// ticks per second (integer measures in `ticks` are shown in seconds, as Micromegas does).
pub fn metric_tracks(
    table: &MeasureTable,
    frequency: i64,
    range: Option<(i64, i64)>,
    symbols: &mut Symbols,
    stats: &mut AssemblyStats,
) -> TrackGroup {
    let in_range = |ns: i64| range.is_none_or(|(from, to)| (from..=to).contains(&ns));
    let (ticks, seconds) = (symbols.intern("ticks"), symbols.intern(SECONDS_UNIT));
    let mut series: FastMap<SeriesKey, Values> = FastMap::default();
    for row in table.rows.iter().filter(|m| in_range(m.ns)) {
        let (unit, value) = match row.integer && row.unit == ticks {
            true => (seconds, ticks_to_seconds(row.value, frequency)),
            false => (row.unit, row.value),
        };
        let key = (row.name, unit, row.target, row.properties);
        series.entry(key).or_default().push((row.ns, value));
    }
    let mut series: Vec<(SeriesKey, Values)> = series.into_iter().collect();
    series.sort_by_cached_key(|&(key, _)| series_texts(key, symbols));
    let lanes: Vec<Track> = (series.into_iter())
        .map(|((name, unit, _, properties), mut counters)| {
            // Stream order already; a clock step backwards must not reorder the values.
            counters.sort_by_key(|&(ns, _)| ns);
            stats.metric_series += 1;
            stats.metric_samples += counters.len() as u64;
            Track {
                place: Place::Lane,
                name: series_name(symbols, name, properties),
                counters,
                unit: symbols.get(unit).to_string(),
                ..Default::default()
            }
        })
        .collect();
    TrackGroup {
        name: "metrics".into(),
        lanes,
    }
}

/// The texts a series is ordered by: name, unit, target, then its properties' keys and values.
fn series_texts(key: SeriesKey, symbols: &Symbols) -> Vec<&str> {
    let (name, unit, target, properties) = key;
    let mut texts = vec![symbols.get(name), symbols.get(unit), symbols.get(target)];
    for &(k, v) in symbols.properties(properties) {
        texts.extend([symbols.get(k), symbols.get(v)]);
    }
    texts
}

/// `name`, or `name {key=value, ...}` for a tagged series.
fn series_name(symbols: &Symbols, name: Sym, properties: PropertySet) -> String {
    let name = symbols.get(name);
    let pairs = symbols.properties(properties);
    if pairs.is_empty() {
        return name.to_string();
    }
    let tags: Vec<String> = (pairs.iter())
        .map(|&(k, v)| format!("{}={}", symbols.get(k), symbols.get(v)))
        .collect();
    format!("{name} {{{}}}", tags.join(", "))
}
