//! Tick → nanosecond conversion, exactly as Micromegas computes it (so traces line up).

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::error::{FailureKind, failure};
use crate::lake::rows::{BlockRow, ProcessRow};

/// Converts a process's raw tick counter to Unix nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    start_time_ns: i64,
    start_ticks: i64,
    ns_per_tick: f64,
    pub frequency: i64,
}

fn unix_ns(t: &DateTime<Utc>) -> Result<i64> {
    t.timestamp_nanos_opt().ok_or_else(|| {
        failure(
            FailureKind::LakeData,
            format!("time {t} is out of the nanosecond range"),
        )
    })
}

impl Clock {
    /// The frequency is `tsc_frequency` when positive, else inferred over all the process's
    /// blocks: `round(max end_ticks / seconds from start_time to max end_time)`.
    /// `last_block_end` is the largest `end_ticks` and `end_time` over all the process's blocks.
    /// Trace timestamps are unsigned nanoseconds since 1970 held in an `i64`: a start before
    /// 1970, or blocks ending after 2262, cannot be drawn and are refused, naming the process.
    pub fn for_process(
        process: &ProcessRow,
        last_block_end: (Option<i64>, Option<DateTime<Utc>>),
    ) -> Result<Self> {
        let start_time_ns = match process.start_time.timestamp_nanos_opt() {
            Some(ns) if ns >= 0 => ns,
            _ => {
                return Err(failure(
                    FailureKind::LakeData,
                    format!(
                        "process {} has start_time {}, outside the range of trace timestamps (1970 to 2262)",
                        process.process_id, process.start_time
                    ),
                ));
            }
        };
        let frequency = if process.tsc_frequency > 0 {
            process.tsc_frequency
        } else {
            infer_frequency(process, start_time_ns, last_block_end)?
        };
        let clock = Self {
            start_time_ns,
            start_ticks: process.start_ticks,
            ns_per_tick: 1e9 / frequency as f64,
            frequency,
        };
        if let (Some(max_end_ticks), _) = last_block_end {
            let end_ns = start_time_ns as f64 + max_end_ticks as f64 * clock.ns_per_tick;
            if !(0.0..i64::MAX as f64).contains(&end_ns) {
                return Err(failure(
                    FailureKind::LakeData,
                    format!(
                        "process {}: a block ends at tick {max_end_ticks}, which at {frequency} ticks/s \
                         is outside the range of trace timestamps (1970 to 2262)",
                        process.process_id
                    ),
                ));
            }
        }
        Ok(clock)
    }

    /// An event's absolute tick counter → Unix ns.
    pub fn event_ns(&self, ticks: i64) -> i64 {
        // A difference past the i64 range can only be absurd ticks: pinned to the range's end.
        let relative = ticks.checked_sub(self.start_ticks).unwrap_or(if ticks < 0 {
            i64::MIN
        } else {
            i64::MAX
        });
        self.relative_ns(relative)
    }

    /// A block's `[begin, end]` in Unix ns; a block that ends before it begins is taken as
    /// ending where it begins (its events still say when things happened).
    pub fn block_bounds(&self, block: &BlockRow) -> (i64, i64) {
        (
            self.relative_ns(block.begin_ticks),
            self.relative_ns(block.end_ticks.max(block.begin_ticks)),
        )
    }

    /// Ticks relative to the process start (block bounds) → Unix ns.
    pub fn relative_ns(&self, relative_ticks: i64) -> i64 {
        let offset = round_half_away(relative_ticks as f64 * self.ns_per_tick);
        self.start_time_ns.saturating_add(offset)
    }
}

/// `x.round() as i64` without a call to libm's `round` (one per event: 2% of an export).
/// `as` saturates: absurd tick values pin to the ends of the range instead of wrapping.
fn round_half_away(x: f64) -> i64 {
    let truncated = x as i64;
    // Exact: a float minus its integer part.
    let fraction = x - truncated as f64;
    if fraction >= 0.5 {
        truncated.saturating_add(1)
    } else if fraction <= -0.5 {
        truncated.saturating_sub(1)
    } else {
        truncated
    }
}

fn infer_frequency(
    process: &ProcessRow,
    start_time_ns: i64,
    last_block_end: (Option<i64>, Option<DateTime<Utc>>),
) -> Result<i64> {
    let no_frequency = |why: &str| {
        failure(
            FailureKind::LakeData,
            format!(
                "process {} has tsc_frequency 0 and its frequency cannot be inferred: {why}",
                process.process_id
            ),
        )
    };
    let (Some(max_end_ticks), Some(max_end_time)) = last_block_end else {
        return Err(no_frequency("it has no blocks"));
    };
    let max_end_ns = unix_ns(&max_end_time)
        .map_err(|_| no_frequency("its last block's end_time is out of range"))?;
    let elapsed_ns = max_end_ns
        .checked_sub(start_time_ns)
        .ok_or_else(|| no_frequency("its last block's end_time is out of range"))?;
    let seconds = elapsed_ns as f64 / 1e9;
    if seconds <= 0.0 || max_end_ticks <= 0 {
        return Err(no_frequency("its last block does not end after its start"));
    }
    let frequency = (max_end_ticks as f64 / seconds).round();
    if !(frequency >= 1.0 && frequency < i64::MAX as f64) {
        return Err(no_frequency("the inferred frequency is out of range"));
    }
    Ok(frequency as i64)
}

#[cfg(test)]
mod tests {
    use super::round_half_away;

    #[test]
    fn rounding_matches_the_standard_library_everywhere() {
        let mut samples = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            2.5,
            -2.5,
            0.49999999999999994,
            -0.49999999999999994,
            4503599627370495.5,
            4503599627370497.0,
            9.2e18,
            9.3e18,
            -9.3e18,
            1e300,
            -1e300,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..100_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let ticks = (state >> 1) as i64 - (1 << 62);
            samples.push(ticks as f64 * 0.3);
            samples.push(f64::from_bits(state));
        }
        for x in samples {
            assert_eq!(round_half_away(x), x.round() as i64, "{x:e}");
        }
    }
}
