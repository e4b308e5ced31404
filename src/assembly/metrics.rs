//! Measures → counter tracks on a "metrics" group of the process: one track per series (a
//! metric's name, unit and target, and the properties of a tagged measure), its values at
//! their times, nothing interpolated.

use std::collections::BTreeMap;

use super::AssemblyStats;
use crate::decode::{SECONDS_UNIT, ticks_to_seconds};
use crate::events::{MeasureRow, MeasureTable};
use crate::symbols::Symbols;
use crate::tracks::{Place, Track, TrackGroup};

/// What tells series apart, as the texts a person reads (so the order is the same whatever
/// the interning order).
type SeriesKey = (String, String, String, Vec<(String, String)>);

/// The counter tracks of the process's measures within `range`; `frequency`: the process's
/// ticks per second (integer measures in `ticks` are shown in seconds, as Micromegas does).
pub fn metric_tracks(
    table: &MeasureTable,
    frequency: i64,
    range: Option<(i64, i64)>,
    symbols: &Symbols,
    stats: &mut AssemblyStats,
) -> TrackGroup {
    let in_range = |ns: i64| range.is_none_or(|(from, to)| (from..=to).contains(&ns));
    let mut series: BTreeMap<SeriesKey, Vec<(i64, f64)>> = BTreeMap::new();
    for row in table.measures.iter().filter(|m| in_range(m.ns)) {
        let (key, value) = series_of(row, frequency, symbols);
        series.entry(key).or_default().push((row.ns, value));
    }
    let lanes: Vec<Track> = (series.into_iter())
        .map(|((name, unit, _target, properties), mut counters)| {
            // Stream order already; a clock step backwards must not reorder the values.
            counters.sort_by_key(|&(ns, _)| ns);
            stats.metric_series += 1;
            stats.metric_samples += counters.len() as u64;
            Track {
                place: Place::Lane,
                name: series_name(&name, &properties),
                counters,
                unit,
                ..Default::default()
            }
        })
        .collect();
    TrackGroup {
        name: "metrics".into(),
        lanes,
    }
}

fn series_of(row: &MeasureRow, frequency: i64, symbols: &Symbols) -> (SeriesKey, f64) {
    let text = |sym| symbols.get(sym).to_string();
    let properties = (symbols.properties(row.properties).iter())
        .map(|&(k, v)| (text(k), text(v)))
        .collect();
    let tick_count = row.integer && symbols.get(row.unit) == "ticks";
    let (unit, value) = match tick_count {
        true => (
            SECONDS_UNIT.to_string(),
            ticks_to_seconds(row.value, frequency),
        ),
        false => (text(row.unit), row.value),
    };
    ((text(row.name), unit, text(row.target), properties), value)
}

/// `name`, or `name {key=value, ...}` for a tagged series.
fn series_name(name: &str, properties: &[(String, String)]) -> String {
    if properties.is_empty() {
        return name.to_string();
    }
    let tags: Vec<String> = properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{name} {{{}}}", tags.join(", "))
}
