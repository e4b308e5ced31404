//! Which span partitions an export of a time window can leave unread, putting their digests
//! ([`super::digest`]) in place of their events.
//!
//! Thread spans: pairing pins each event's time to the largest before it in its run of blocks, so a partition
//! can stand in for its events only where nothing it holds can show: at the start of the stream,
//! a run of partitions whose events and blocks all begin before the window (every time pairing
//! gives them is before it), or at the end, a run whose events all come after the window. Each
//! must hold one stream's blocks in one piece (no other partition's block between them, no
//! block missing among them), so that its events pair among themselves as its digest says.
//!
//! Async spans pair by id whatever the times between: an async partition wholly before or after
//! the window stands in, unless it pairs an id also seen in what is read.

use std::collections::HashMap;
use uuid::Uuid;

use super::digest::{AsyncDigest, Digest, DigestEvent};
use crate::clock::Clock;
use crate::events::{AsyncIds, Event, EventOrder, EventPhase, EventScope, EventTable};
use crate::lake::rows::BlockRow;
use crate::symbols::Symbols;

/// One part of a thread stream's rows: its blocks (positions in the request) and the digest of
/// them, if kept.
pub struct StreamPart<'a> {
    pub blocks: Vec<usize>,
    pub digest: Option<&'a Digest>,
}

/// Which parts of a stream's rows their digests can stand in for.
pub fn stand_ins(
    parts: &[StreamPart<'_>],
    blocks: &[BlockRow],
    clock: &Clock,
    (from, to): (i64, i64),
) -> Vec<bool> {
    let usable = |k: usize| {
        parts[k]
            .digest
            .filter(|_| in_one_piece(&parts[k].blocks, blocks))
    };
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&k| parts[k].blocks.first().copied());
    let mut stand_in = vec![false; parts.len()];
    let side =
        |k: usize| usable(k).and_then(|d| side_of(d, &parts[k].blocks, blocks, clock, (from, to)));
    for &k in &order {
        if side(k) != Some(Side::Before) {
            break;
        }
        stand_in[k] = true;
    }
    for &k in order.iter().rev() {
        if side(k) != Some(Side::After) {
            break;
        }
        stand_in[k] = true;
    }
    stand_in
}

/// Where a part of a stream's rows lies against a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Before,
    After,
}

/// Whether the events of a part (its `digest`, its blocks at `positions`) all lie before the
/// window `(from, to)`, or all after it; `None`: some may lie within it.
pub fn side_of(
    digest: &Digest,
    positions: &[usize],
    blocks: &[BlockRow],
    clock: &Clock,
    (from, to): (i64, i64),
) -> Option<Side> {
    let begins_before = |&b: &usize| clock.block_bounds(&blocks[b]).0 < from;
    if clock.event_ns(digest.max_ticks) < from && positions.iter().all(begins_before) {
        Some(Side::Before)
    } else if clock.event_ns(digest.min_ticks) > to {
        Some(Side::After)
    } else {
        None
    }
}

/// Whether the blocks at `positions` follow each other in the process's block list and in
/// their stream, none missing between them.
pub fn in_one_piece(positions: &[usize], blocks: &[BlockRow]) -> bool {
    positions.windows(2).all(|pair| {
        let (a, b) = (&blocks[pair[0]], &blocks[pair[1]]);
        let next_offset = a.object_offset.checked_add(i64::from(a.nb_objects));
        pair[1] == pair[0] + 1 && a.stream_id == b.stream_id && next_offset == Some(b.object_offset)
    })
}

/// Which async partitions (or row groups) can stand in for their events: those wholly before
/// or after the window (async spans pair by id, whatever the times between), unless tangled.
pub fn async_stand_ins(
    digests: &[Option<AsyncDigest>],
    clock: &Clock,
    (from, to): (i64, i64),
) -> Vec<bool> {
    (digests.iter())
        .map(|d| {
            d.as_ref().is_some_and(|d| {
                let outside =
                    clock.event_ns(d.max_ticks) < from || clock.event_ns(d.min_ticks) > to;
                outside && !d.tangled
            })
        })
        .collect()
}

/// The span ids of the events read and of the digests standing in, ascending.
pub fn span_ids_seen(read: &EventTable, standing: &[&AsyncDigest]) -> Vec<u64> {
    let kept = (standing.iter()).flat_map(|d| d.events.iter().map(|e| e.span_id));
    let mut seen: Vec<u64> = read.ids.iter().map(|ids| ids.span_id).chain(kept).collect();
    seen.sort_unstable();
    seen.dedup();
    seen
}

/// Whether a digest lists as paired within its partition any of these ids (ascending); an
/// unreadable list counts as a yes.
pub fn pairs_any(digest: Option<&AsyncDigest>, seen: &[u64]) -> bool {
    digest.is_some_and(|digest| digest.paired.any_in(seen))
}

/// Appends a digest's events (of `scope`) to `table`, as reading its partition would have
/// appended them.
pub fn append_digest(
    table: &mut EventTable,
    (events, scope): (&[DigestEvent], EventScope),
    symbols: &mut Symbols,
    block_position: &HashMap<Uuid, u32>,
    clock: &Clock,
) {
    for kept in events {
        let Some(&position) = block_position.get(&kept.block) else {
            continue;
        };
        let pairs: Vec<_> = (kept.properties.iter())
            .map(|(k, v)| (symbols.intern(k), symbols.intern(v)))
            .collect();
        table.orders.push(EventOrder::new(position, kept.index));
        if scope == EventScope::Async {
            table.ids.push(AsyncIds {
                span_id: kept.span_id,
                parent_span_id: kept.parent_span_id,
                depth: kept.depth,
            });
        }
        table.events.push(Event {
            ns: clock.event_ns(kept.ticks),
            name: symbols.intern(&kept.name),
            target: symbols.intern(&kept.target),
            file: symbols.intern(&kept.file),
            line: kept.line,
            properties: symbols.intern_properties(&pairs),
            scope,
            phase: match kept.end {
                true => EventPhase::End,
                false => EventPhase::Begin,
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::rows::ProcessRow;
    use EventPhase::{Begin, End};

    /// Blocks of one stream, each 10 objects at `[begin, end]` ns; `None`: a missing block.
    fn blocks(bounds: &[Option<(i64, i64)>]) -> Vec<BlockRow> {
        let epoch = chrono::DateTime::from_timestamp(0, 0).unwrap();
        let mut offset = 0;
        let mut rows = Vec::new();
        for bound in bounds {
            if let Some((begin, end)) = *bound {
                rows.push(BlockRow {
                    block_id: Uuid::from_u128(rows.len() as u128),
                    stream_id: Uuid::from_u128(7),
                    process_id: Uuid::from_u128(9),
                    begin_time: epoch,
                    end_time: epoch,
                    begin_ticks: begin,
                    end_ticks: end,
                    nb_objects: 10,
                    object_offset: offset,
                    payload_size: 0,
                    insert_time: epoch,
                });
            }
            offset += 10;
        }
        rows
    }

    fn digest(min_ticks: i64, max_ticks: i64) -> Digest {
        Digest {
            min_ticks,
            max_ticks,
            events: Vec::new(),
            row_groups: Default::default(),
        }
    }

    fn part(block: usize, digest: Option<&Digest>) -> StreamPart<'_> {
        StreamPart {
            blocks: vec![block],
            digest,
        }
    }

    fn standing(parts: &[StreamPart], blocks: &[BlockRow], window: (i64, i64)) -> Vec<bool> {
        let process = ProcessRow::ticking_in_unix_nanos(Uuid::from_u128(9));
        let clock = Clock::for_process(&process, (None, None)).unwrap();
        stand_ins(parts, blocks, &clock, window)
    }

    #[test]
    fn only_runs_of_partitions_wholly_before_or_after_the_window_stand_in() {
        let rows = blocks(&[
            Some((0, 10)),
            Some((10, 20)),
            Some((20, 30)),
            Some((30, 40)),
        ]);
        let d = [digest(0, 9), digest(10, 19), digest(20, 29), digest(30, 39)];
        let all = [
            part(0, Some(&d[0])),
            part(1, Some(&d[1])),
            part(2, Some(&d[2])),
            part(3, Some(&d[3])),
        ];
        assert_eq!(standing(&all, &rows, (22, 25)), [true, true, false, true]);
        assert_eq!(standing(&all, &rows, (0, 100)), [false; 4]);
        // A partition without a digest breaks the run: what comes before it may pair with it.
        let broken = [
            part(0, None),
            part(1, Some(&d[1])),
            part(2, Some(&d[2])),
            part(3, Some(&d[3])),
        ];
        assert_eq!(
            standing(&broken, &rows, (35, 36)),
            [false, false, false, false]
        );
        // A block that begins in the window keeps its partition read, whatever its events.
        let late_block = blocks(&[
            Some((0, 10)),
            Some((32, 40)),
            Some((20, 30)),
            Some((30, 40)),
        ]);
        assert_eq!(
            standing(&all, &late_block, (32, 33)),
            [true, false, false, false]
        );
    }

    #[test]
    fn an_async_partition_pairing_an_id_seen_elsewhere_must_be_read() {
        use crate::partitions::digest::{AsyncDigestBuilder, tests::Names};
        let (mut builder, mut names) = (AsyncDigestBuilder::default(), Names::default());
        for (id, phase, ticks) in [(4, Begin, 1), (4, End, 2), (900, Begin, 3), (900, End, 4)] {
            let mut event = names.event(EventScope::Async, phase, "f", ticks);
            event.span_id = id;
            builder.push(event);
        }
        let digest = builder.finish(&names);
        assert!(!pairs_any(digest.as_ref(), &[1, 5, 899, 901]));
        assert!(pairs_any(digest.as_ref(), &[1, 900]));
        assert!(pairs_any(digest.as_ref(), &[4]));
        assert!(!pairs_any(None, &[4]));
        let unreadable = digest.map(|d| AsyncDigest {
            paired: crate::partitions::digest::PairedIds::of_steps([u64::MAX, 1]),
            ..d
        });
        assert!(pairs_any(unreadable.as_ref(), &[]), "read when in doubt");
    }

    #[test]
    fn a_partition_not_in_one_piece_is_always_read() {
        // Blocks 0 and 2 in one partition, block 1 in another: they interleave.
        let rows = blocks(&[Some((0, 10)), Some((10, 20)), Some((20, 30))]);
        let d = &digest(0, 29);
        let interleaved = [
            StreamPart {
                blocks: vec![0, 2],
                digest: Some(d),
            },
            StreamPart {
                blocks: vec![1],
                digest: Some(d),
            },
        ];
        assert_eq!(standing(&interleaved, &rows, (50, 60)), [false, false]);
        // A block missing between two of a partition's blocks.
        let gap = blocks(&[Some((0, 10)), None, Some((20, 30))]);
        let one = [StreamPart {
            blocks: vec![0, 1],
            digest: Some(d),
        }];
        assert_eq!(standing(&one, &gap, (50, 60)), [false]);
        let whole = blocks(&[Some((0, 10)), Some((10, 20))]);
        assert_eq!(standing(&one, &whole, (50, 60)), [true]);
    }
}
