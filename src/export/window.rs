//! The time window of an export as a person types it — RFC 3339 times, offsets from the
//! process start (`+90s`), or the last part of the process's data (`--last 5m`) — resolved
//! to Unix nanoseconds once the process is known.

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::error::{FailureKind, failure};

/// A bound of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePoint {
    At(DateTime<Utc>),
    /// Nanoseconds after the process start.
    AfterStart(i64),
}

/// What `--begin`, `--end` and `--last` asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub begin: Option<TimePoint>,
    pub end: Option<TimePoint>,
    /// Nanoseconds before the end of the data.
    pub last: Option<i64>,
}

const FORMS: &str = "expected an RFC 3339 time (2026-11-27T10:00:00Z, \
    2026-11-27T11:00:00.5+01:00) or an offset from the process start (+90s, +2m30s, +1.5h, +250ms)";

/// Parses a `--begin`/`--end` value; the error lists the accepted forms.
pub fn parse_time_point(text: &str) -> std::result::Result<TimePoint, String> {
    let text = text.trim();
    if let Some(offset) = text.strip_prefix('+') {
        return parse_duration(offset)
            .map(TimePoint::AfterStart)
            .map_err(|why| format!("{why}; {FORMS}"));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| TimePoint::At(t.to_utc()))
        .map_err(|e| format!("{e}; {FORMS}"))
}

/// Parses a duration such as `90s`, `2m30s`, `1.5h`, `250ms` into nanoseconds.
pub fn parse_duration(text: &str) -> std::result::Result<i64, String> {
    let bad = || format!("bad duration {text:?}: numbers with units h, m, s, ms, us, ns (2m30s)");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit_ns = match &rest[..unit_len] {
            "h" => 3.6e12,
            "m" => 6e10,
            "s" => 1e9,
            "ms" => 1e6,
            "us" => 1e3,
            "ns" => 1.0,
            _ => return Err(bad()),
        };
        total += number * unit_ns;
        rest = &rest[unit_len..];
    }
    if !(total.is_finite() && total < i64::MAX as f64) {
        return Err(format!("duration {text:?} is too long"));
    }
    Ok(total.round() as i64)
}

impl Window {
    /// `[begin, end]` in Unix nanoseconds, `None` when nothing bounds it. `start_ns`: the
    /// process start; `data_end_ns`: the end of its data (its last block).
    pub fn resolve(&self, start_ns: i64, data_end_ns: i64) -> Result<Option<(i64, i64)>> {
        let ns = |point: TimePoint| match point {
            TimePoint::At(t) => t
                .timestamp_nanos_opt()
                .ok_or_else(|| failure(FailureKind::Usage, format!("time {t} is out of range"))),
            TimePoint::AfterStart(offset) => Ok(start_ns.saturating_add(offset)),
        };
        let (begin, end) = match self.last {
            Some(last) => (Some(data_end_ns.saturating_sub(last)), Some(data_end_ns)),
            None => (
                self.begin.map(ns).transpose()?,
                self.end.map(ns).transpose()?,
            ),
        };
        if begin.is_none() && end.is_none() {
            return Ok(None);
        }
        let (begin, end) = (begin.unwrap_or(i64::MIN), end.unwrap_or(i64::MAX));
        if begin > end {
            return Err(failure(FailureKind::Usage, "--begin is after --end"));
        }
        Ok(Some((begin, end)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_several_units_and_decimals() {
        assert_eq!(parse_duration("90s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("2m30s"), Ok(150_000_000_000));
        assert_eq!(parse_duration("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("250ms"), Ok(250_000_000));
        assert_eq!(parse_duration("1m1us1ns"), Ok(60_000_001_001));
        for bad in ["", "90", "s", "5 minutes", "1x", "-3s", "1..5s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("9999999999h").is_err());
    }

    #[test]
    fn a_bound_is_a_time_or_an_offset_and_a_bad_one_names_the_accepted_forms() {
        let at = "2026-11-27T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            parse_time_point("2026-11-27T10:00:00Z"),
            Ok(TimePoint::At(at))
        );
        let offset = parse_time_point("2026-11-27T11:00:00+01:00");
        assert_eq!(offset, Ok(TimePoint::At(at)));
        assert_eq!(
            parse_time_point("+2m"),
            Ok(TimePoint::AfterStart(120_000_000_000))
        );
        for bad in ["yesterday", "+", "+2 minutes", "10:00"] {
            let error = parse_time_point(bad).unwrap_err();
            assert!(
                error.contains("RFC 3339") && error.contains("+90s"),
                "{error}"
            );
        }
    }

    #[test]
    fn offsets_count_from_the_start_and_last_from_the_data_end() {
        let window = Window {
            begin: Some(TimePoint::AfterStart(10)),
            end: Some(TimePoint::AfterStart(30)),
            last: None,
        };
        assert_eq!(window.resolve(1000, 5000).unwrap(), Some((1010, 1030)));
        let last = Window {
            last: Some(200),
            ..Window::default()
        };
        assert_eq!(last.resolve(1000, 5000).unwrap(), Some((4800, 5000)));
        let open_end = Window {
            begin: Some(TimePoint::AfterStart(10)),
            ..Window::default()
        };
        assert_eq!(
            open_end.resolve(1000, 5000).unwrap(),
            Some((1010, i64::MAX))
        );
        assert_eq!(Window::default().resolve(1000, 5000).unwrap(), None);
        let reversed = Window {
            begin: Some(TimePoint::AfterStart(30)),
            end: Some(TimePoint::AfterStart(10)),
            last: None,
        };
        assert!(reversed.resolve(1000, 5000).is_err());
    }
}
