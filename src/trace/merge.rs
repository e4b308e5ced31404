//! Merging tracks that share a sequence into one stream of events in time order; the BEGINs
//! and ENDs of a track's nested slices.
//!
//! A few tracks (log levels, metric series) merge event by event, holding nothing: the next
//! event is the earliest of each track's next. Hundreds of tracks (small threads, async lanes)
//! would make each event a long scan and a cache miss: their events' keys are gathered a slab
//! of time at a time and sorted by time buckets instead.

use crate::tracks::{Instant, Slice, Track};

/// Up to this many tracks merge by a scan of their next events.
const SCAN_MERGE_MAX_TRACKS: usize = 32;
/// Below this many events a plain sort is as fast as spreading them over time buckets.
const BUCKETED_SORT_MIN: usize = 1 << 10;
/// Events per time bucket, on average.
const EVENTS_PER_BUCKET: usize = 4;
/// Events of a slab of the sorted merge, on average: its keys and their scratch (512 KiB) stay
/// within a core's cache. Against 2^16, peak memory −2.5 to −4.6 MB (16 to 20,000 threads),
/// the same time.
const SLAB_EVENTS: usize = 1 << 14;
/// How many events ahead of the one returned the sorted merge asks for its slice.
const PREFETCH_AHEAD: usize = 16;

/// Buffers of the sorted merge, reused from one set of tracks to the next.
#[derive(Default)]
pub struct MergeBuffers {
    keys: Vec<EventKey>,
    scratch: Vec<EventKey>,
    counts: Vec<u32>,
}

impl MergeBuffers {
    /// The events of `tracks` in time order; at equal times the lower track goes first and each
    /// track keeps its own order (ENDs before BEGINs).
    pub fn merge<'a>(&'a mut self, tracks: &'a [Track]) -> Merged<'a> {
        match tracks.len() <= SCAN_MERGE_MAX_TRACKS {
            true => Merged::Scan(ScanMerge::of(tracks)),
            false => Merged::Sorted(SlabMerge::of(tracks, self)),
        }
    }

    /// Merges lanes of keys, each in time order: `events` keys in all, between the times
    /// `first` and `last`. Keys at equal times come by lane, then in their lane's order.
    pub fn merge_lanes<'a, L: Iterator<Item = EventKey>, P: Prefetch>(
        &'a mut self,
        lanes: Vec<L>,
        (first, last): (i64, i64),
        events: usize,
        prefetch: P,
    ) -> SlabMerge<'a, L, P> {
        SlabMerge::over(lanes, prefetch, (first, last), events, SLAB_EVENTS, self)
    }

    /// Sorts the keys by (time, track), stably: each track's own order holds at equal times.
    /// The tracks are hundreds of sorted runs over the same time: they are spread over time
    /// buckets (stably, in one pass), then each small bucket is sorted. A bucket is a monotonic
    /// function of time, so the result is that of one stable sort whatever the distribution of
    /// times (skewed times only make some buckets larger).
    fn sort_by_time(&mut self) {
        let by_time = |key: &EventKey| (key.ts, key.lane);
        if self.keys.len() < BUCKETED_SORT_MIN {
            self.keys.sort_by_key(by_time);
            return;
        }
        let (buckets, bucket) = time_buckets(&self.keys);
        // Where each bucket starts in the scratch buffer, then where its next key goes.
        self.counts.clear();
        self.counts.resize(buckets + 1, 0);
        for key in &self.keys {
            self.counts[bucket(key.ts) + 1] += 1;
        }
        for b in 1..=buckets {
            self.counts[b] += self.counts[b - 1];
        }
        self.scratch.clear();
        self.scratch.resize(self.keys.len(), EventKey::default());
        for key in &self.keys {
            let next = &mut self.counts[bucket(key.ts)];
            self.scratch[*next as usize] = *key;
            *next += 1;
        }
        // Each bucket's end is now the next one's start.
        let mut start = 0;
        for &end in &self.counts[..buckets] {
            self.scratch[start..end as usize].sort_by_key(by_time);
            start = end as usize;
        }
        std::mem::swap(&mut self.keys, &mut self.scratch);
    }
}

/// How many time buckets `keys` are spread over, and the bucket of a time: monotonic in time
/// (an integer to float conversion, a positive factor and a truncation all keep order).
fn time_buckets(keys: &[EventKey]) -> (usize, impl Fn(i64) -> usize + use<>) {
    let min = keys.iter().map(|k| k.ts).min().unwrap_or(0) as f64;
    let max = keys.iter().map(|k| k.ts).max().unwrap_or(0) as f64;
    let buckets = (keys.len() / EVENTS_PER_BUCKET).max(1);
    let scale = buckets as f64 / (max - min + 1.0);
    (buckets, move |ts| {
        (((ts as f64 - min) * scale) as usize).min(buckets - 1)
    })
}

fn track_event_count(track: &Track) -> usize {
    2 * track.slices.len() + track.instants.len() + track.counters.len()
}

/// Merged events, by either strategy, or in an order given with the tracks.
pub enum Merged<'a> {
    Scan(ScanMerge<'a>),
    Sorted(SlabMerge<'a, LaneKeys<'a>, &'a [Track]>),
    Given(GivenMerge<'a>),
}

impl Iterator for Merged<'_> {
    type Item = EventKey;

    fn next(&mut self) -> Option<EventKey> {
        match self {
            Merged::Scan(scan) => scan.next(),
            Merged::Sorted(sorted) => sorted.next(),
            Merged::Given(given) => given.next(),
        }
    }
}

/// Brings what a key stands for into the cache, ahead of its use.
pub trait Prefetch {
    fn prefetch(&self, key: EventKey);
}

/// Keys of tracks stand for their slices.
impl Prefetch for &[Track] {
    fn prefetch(&self, key: EventKey) {
        if let Some(slice) = (self[key.lane as usize].slices).get(key.item as usize) {
            prefetch(slice);
        }
    }
}

/// A merge of many runs of events (tracks), a slab of time at a time: the keys of the events
/// in the slab are gathered from every run and sorted (so memory is bounded by a slab's
/// events, not all the runs'). While they are returned, what a key a little ahead stands for
/// is fetched into the cache (the runs are read out of order: each would be a cache miss).
pub struct SlabMerge<'a, L: Iterator<Item = EventKey>, P> {
    lanes: Vec<std::iter::Peekable<L>>,
    prefetch: P,
    buffers: &'a mut MergeBuffers,
    /// The next key to return, in `buffers.keys`.
    next: usize,
    /// Where the next slab ends (excluded), and how wide slabs are.
    slab_end: i64,
    slab_width: i64,
}

impl<'a> SlabMerge<'a, LaneKeys<'a>, &'a [Track]> {
    fn of(tracks: &'a [Track], buffers: &'a mut MergeBuffers) -> Self {
        Self::with_slabs_of(SLAB_EVENTS, tracks, buffers)
    }

    /// Slabs of about `slab_events` events when times are spread evenly.
    fn with_slabs_of(
        slab_events: usize,
        tracks: &'a [Track],
        buffers: &'a mut MergeBuffers,
    ) -> Self {
        let events = tracks.iter().map(track_event_count).sum::<usize>();
        let lanes = (tracks.iter().enumerate())
            .map(|(lane, track)| lane_keys(track, lane as u32))
            .collect();
        Self::over(
            lanes,
            tracks,
            time_range(tracks),
            events,
            slab_events,
            buffers,
        )
    }
}

impl<'a, L: Iterator<Item = EventKey>, P: Prefetch> SlabMerge<'a, L, P> {
    /// `events` between the times `first` and `last`, in slabs of about `slab_events` events
    /// when times are spread evenly.
    fn over(
        lanes: Vec<L>,
        prefetch: P,
        (first, last): (i64, i64),
        events: usize,
        slab_events: usize,
        buffers: &'a mut MergeBuffers,
    ) -> Self {
        let width = (i128::from(last) - i128::from(first) + 1) * slab_events as i128;
        let slab_width = (width / events.max(1) as i128).clamp(1, i64::MAX as i128) as i64;
        buffers.keys.clear();
        Self {
            lanes: lanes.into_iter().map(Iterator::peekable).collect(),
            prefetch,
            buffers,
            next: 0,
            slab_end: first,
            slab_width,
        }
    }

    /// Gathers and sorts the keys of the next slab holding any; `false` when none is left.
    fn next_slab(&mut self) -> bool {
        let keys = &mut self.buffers.keys;
        keys.clear();
        self.next = 0;
        while keys.is_empty() {
            let Some(earliest) = self
                .lanes
                .iter_mut()
                .filter_map(|l| l.peek())
                .map(|k| k.ts)
                .min()
            else {
                return false;
            };
            // Past a gap, the slab starts at the earliest event left. The last slab of times up
            // to `i64::MAX` takes them all.
            let end = self.slab_end.max(earliest).saturating_add(self.slab_width);
            self.slab_end = end;
            let in_slab = |k: &EventKey| k.ts < end || end == i64::MAX;
            for lane in &mut self.lanes {
                keys.extend(std::iter::from_fn(|| lane.next_if(in_slab)));
            }
        }
        self.buffers.sort_by_time();
        true
    }
}

impl<L: Iterator<Item = EventKey>, P: Prefetch> Iterator for SlabMerge<'_, L, P> {
    type Item = EventKey;

    fn next(&mut self) -> Option<EventKey> {
        if self.next == self.buffers.keys.len() && !self.next_slab() {
            return None;
        }
        let keys = &self.buffers.keys;
        if let Some(&ahead) = keys.get(self.next + PREFETCH_AHEAD) {
            self.prefetch.prefetch(ahead);
        }
        self.next += 1;
        Some(keys[self.next - 1])
    }
}

/// The times of the first and last events of `tracks`.
fn time_range(tracks: &[Track]) -> (i64, i64) {
    let times = tracks.iter().flat_map(|track| {
        let slices = track.slices.iter().flat_map(|s| [s.begin_ns, s.end_ns]);
        let instants = track.instants.iter().map(|i| i.ns);
        slices
            .chain(instants)
            .chain(track.counters.iter().map(|c| c.0))
    });
    times.fold((i64::MAX, i64::MIN), |(first, last), t| {
        (first.min(t), last.max(t))
    })
}

/// A merge of a few tracks' events: the earliest of each track's next event, found by a scan
/// (a heap's sift took a mispredicted branch per level for every event).
pub struct ScanMerge<'a> {
    lanes: Vec<LaneKeys<'a>>,
    /// The next event of each track with events left, in no particular order.
    heads: Vec<EventKey>,
}

impl<'a> ScanMerge<'a> {
    fn of(tracks: &'a [Track]) -> Self {
        let mut lanes: Vec<LaneKeys> = (tracks.iter().enumerate())
            .map(|(lane, track)| lane_keys(track, lane as u32))
            .collect();
        let heads = lanes.iter_mut().filter_map(Iterator::next).collect();
        Self { lanes, heads }
    }
}

impl Iterator for ScanMerge<'_> {
    type Item = EventKey;

    fn next(&mut self) -> Option<EventKey> {
        // (time, track) is unique among the heads: the earliest is the one to take.
        let (at, &key) = (self.heads.iter().enumerate()).min_by_key(|(_, k)| (k.ts, k.lane))?;
        match self.lanes[key.lane as usize].next() {
            Some(following) => self.heads[at] = following,
            None => {
                self.heads.swap_remove(at);
            }
        }
        Some(key)
    }
}

/// The events of tracks whose merged order their maker gave (the track of each event, in
/// order): no comparison at all. Checked in debug builds.
pub struct GivenMerge<'a> {
    lanes: Vec<LaneKeys<'a>>,
    order: std::slice::Iter<'a, u32>,
    #[cfg(debug_assertions)]
    last: Option<(i64, u32)>,
}

impl<'a> GivenMerge<'a> {
    pub fn of(tracks: &'a [Track], order: &'a [u32]) -> Self {
        Self {
            lanes: (tracks.iter().enumerate())
                .map(|(lane, track)| lane_keys(track, lane as u32))
                .collect(),
            order: order.iter(),
            #[cfg(debug_assertions)]
            last: None,
        }
    }
}

impl Iterator for GivenMerge<'_> {
    type Item = EventKey;

    fn next(&mut self) -> Option<EventKey> {
        let lane = *self.order.next()? as usize;
        let key = self.lanes.get_mut(lane)?.next();
        #[cfg(debug_assertions)]
        {
            let key = key.expect("the given order names no more events than a lane has");
            let now = (key.ts, key.lane);
            assert!(
                self.last.is_none_or(|last| last <= now),
                "given order out of order"
            );
            self.last = Some(now);
        }
        key
    }
}

/// An event of one of the tracks merged on a sequence: its time, its track, and its item
/// (a slice, instant or counter value by index) or [`END`].
#[derive(Clone, Copy, Default)]
pub struct EventKey {
    pub ts: i64,
    pub lane: u32,
    pub item: u32,
}

/// Asks the processor to bring `value` into its cache: a hint, with no effect on results.
#[inline]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program sees and never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(value as *const T as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// The item of a slice's END event.
pub const END: u32 = u32::MAX;

/// What a track shows: slices, instants or counter values (the first of them it has).
enum Shows<'a> {
    Slices(&'a [Slice]),
    Instants(&'a [Instant]),
    Counters(&'a [(i64, f64)]),
}

fn shows(track: &Track) -> Shows<'_> {
    if !track.instants.is_empty() {
        Shows::Instants(&track.instants)
    } else if !track.counters.is_empty() {
        Shows::Counters(&track.counters)
    } else {
        Shows::Slices(&track.slices)
    }
}

/// The event a key of `track` stands for.
pub enum Item<'a> {
    Begin(&'a Slice),
    End,
    Instant(&'a Instant),
    Counter(f64),
}

pub fn item(track: &Track, key: EventKey) -> Item<'_> {
    let i = key.item as usize;
    match (key.item, shows(track)) {
        (END, _) => Item::End,
        (_, Shows::Slices(slices)) => Item::Begin(&slices[i]),
        (_, Shows::Instants(instants)) => Item::Instant(&instants[i]),
        (_, Shows::Counters(values)) => Item::Counter(values[i].1),
    }
}

/// The keys of a track's events, in its own order: its nested slices' BEGINs and ENDs, or its
/// instants, or its counter values.
fn lane_keys(track: &Track, lane: u32) -> LaneKeys<'_> {
    match shows(track) {
        Shows::Instants(instants) => LaneKeys::Instants(lane, instants.iter().enumerate()),
        Shows::Counters(values) => LaneKeys::Counters(lane, values.iter().enumerate()),
        Shows::Slices(slices) => LaneKeys::Slices(lane, nested_events(slices)),
    }
}

type Indexed<'a, T> = std::iter::Enumerate<std::slice::Iter<'a, T>>;

pub enum LaneKeys<'a> {
    Slices(u32, NestedEvents<'a>),
    Instants(u32, Indexed<'a, Instant>),
    Counters(u32, Indexed<'a, (i64, f64)>),
}

impl Iterator for LaneKeys<'_> {
    type Item = EventKey;

    fn next(&mut self) -> Option<EventKey> {
        let key = |lane, ts, item: usize| EventKey {
            ts,
            lane,
            item: item as u32,
        };
        match self {
            LaneKeys::Slices(lane, events) => events.next().map(|(ts, slice)| EventKey {
                ts,
                lane: *lane,
                item: slice.map_or(END, |i| i as u32),
            }),
            LaneKeys::Instants(lane, instants) => instants.next().map(|(i, e)| key(*lane, e.ns, i)),
            LaneKeys::Counters(lane, values) => values.next().map(|(i, c)| key(*lane, c.0, i)),
        }
    }
}

/// BEGIN (`Some(index of the slice)`) and END (`None`) events of strictly nested slices, in timestamp
/// order, ENDs first at equal times.
pub fn nested_events(slices: &[Slice]) -> NestedEvents<'_> {
    nested_events_continued(slices, Vec::new(), true)
}

/// The same for a piece of a track's slices, all after those of the pieces before it
/// ([`NestedEvents::into_open`] of the last gives `open`): the ENDs of the slices still open
/// after its last BEGIN wait for the next piece, unless it is the `last`.
pub fn nested_events_continued(slices: &[Slice], open: Vec<i64>, last: bool) -> NestedEvents<'_> {
    let outer_first =
        |x: &Slice, y: &Slice| x.begin_ns.cmp(&y.begin_ns).then(y.end_ns.cmp(&x.end_ns));
    // Tracks arrive in this order already: the sort is skipped then.
    let order = (!slices.is_sorted_by(|x, y| outer_first(x, y).is_le())).then(|| {
        let mut order: Vec<u32> = (0..slices.len() as u32).collect();
        order.sort_by(|&a, &b| {
            outer_first(&slices[a as usize], &slices[b as usize]).then(a.cmp(&b))
        });
        order
    });
    NestedEvents {
        slices,
        order,
        next: 0,
        open,
        last,
    }
}

/// Generated as they are written: a track's events are never all held at once.
pub struct NestedEvents<'a> {
    slices: &'a [Slice],
    /// The slices' order when they are not in it already.
    order: Option<Vec<u32>>,
    next: usize,
    /// Ends of the open slices, innermost last.
    open: Vec<i64>,
    /// Whether the slices end the track: the open ones are closed after the last.
    last: bool,
}

impl NestedEvents<'_> {
    /// The ends of the slices still open, for the next piece.
    pub fn into_open(self) -> Vec<i64> {
        self.open
    }
}

impl Iterator for NestedEvents<'_> {
    type Item = (i64, Option<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        let index = match &self.order {
            Some(order) => order.get(self.next).map(|&i| i as usize),
            None => (self.next < self.slices.len()).then_some(self.next),
        };
        let slice = index.map(|i| &self.slices[i]);
        if let Some(&end) = self.open.last()
            && slice.map_or(self.last, |s| end <= s.begin_ns)
        {
            self.open.pop();
            return Some((end, None));
        }
        let (index, slice) = (index?, slice?);
        self.next += 1;
        self.open.push(slice.end_ns);
        Some((slice.begin_ns, Some(index)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::PropertySet;
    use crate::tracks::{Instant, Place};

    /// A small deterministic generator (no dependency for a test).
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    fn slice(begin_ns: i64, end_ns: i64) -> Slice {
        Slice {
            begin_ns,
            end_ns,
            name: 0,
            target: 0,
            file: 0,
            line: 0,
            properties: PropertySet::NONE,
            notes: 0,
            detail: None,
        }
    }

    /// A time drawn from a skewed distribution: most in a short burst, many on the same
    /// nanosecond, a few far away (buckets of very different sizes).
    fn skewed_time(random: &mut Lcg) -> i64 {
        match random.below(10) {
            0 => 1_000_000_000 + random.below(1_000_000_000) as i64,
            1..=3 => 5_000,
            _ => random.below(2_000) as i64,
        }
    }

    /// Tracks of nested slices (siblings at the same times too), instants and counter values.
    fn tracks(random: &mut Lcg, count: usize) -> Vec<Track> {
        (0..count)
            .map(|lane| {
                let mut times: Vec<i64> = (0..40).map(|_| skewed_time(random)).collect();
                times.sort();
                let track = Track {
                    place: Place::Lane,
                    ..Default::default()
                };
                match lane % 3 {
                    0 => Track {
                        slices: (times.chunks(2))
                            .map(|pair| slice(pair[0], pair[1]))
                            .chain([slice(times[0], times[39])])
                            .collect(),
                        ..track
                    },
                    1 => Track {
                        instants: (times.iter())
                            .map(|&ns| Instant {
                                ns,
                                ..Default::default()
                            })
                            .collect(),
                        ..track
                    },
                    _ => Track {
                        counters: times.iter().map(|&ns| (ns, 1.0)).collect(),
                        ..track
                    },
                }
            })
            .collect()
    }

    fn key_tuples(keys: impl IntoIterator<Item = EventKey>) -> Vec<(i64, u32, u32)> {
        keys.into_iter().map(|k| (k.ts, k.lane, k.item)).collect()
    }

    #[test]
    fn times_at_the_ends_of_the_range_merge_too() {
        let extreme = |times: [i64; 2]| Track {
            counters: times.iter().map(|&ns| (ns, 0.0)).collect(),
            ..Default::default()
        };
        let tracks = [extreme([i64::MIN, i64::MAX]), extreme([0, i64::MAX])];
        let mut buffers = MergeBuffers::default();
        let merged = key_tuples(SlabMerge::with_slabs_of(1, &tracks, &mut buffers));
        let times: Vec<i64> = merged.iter().map(|k| k.0).collect();
        assert_eq!(times, [i64::MIN, 0, i64::MAX, i64::MAX]);
    }

    #[test]
    fn every_merge_gives_the_order_of_one_stable_sort_whatever_the_times() {
        let mut random = Lcg(7);
        let mut buffers = MergeBuffers::default();
        for count in [3, 40, 300] {
            let tracks = tracks(&mut random, count);
            let mut expected: Vec<EventKey> = (tracks.iter().enumerate())
                .flat_map(|(lane, track)| lane_keys(track, lane as u32))
                .collect();
            expected.sort_by_key(|k| (k.ts, k.lane));
            // One slab of them is large enough for the bucketed sort.
            assert!(count < 40 || expected.len() >= BUCKETED_SORT_MIN);
            let expected = key_tuples(expected);
            assert_eq!(
                key_tuples(ScanMerge::of(&tracks)),
                expected,
                "scan, {count} tracks"
            );
            let one_slab = SlabMerge::of(&tracks, &mut buffers);
            assert_eq!(key_tuples(one_slab), expected, "one slab, {count} tracks");
            let slabs = SlabMerge::with_slabs_of(100, &tracks, &mut buffers);
            assert_eq!(key_tuples(slabs), expected, "slabs, {count} tracks");
            let chosen = buffers.merge(&tracks);
            assert_eq!(key_tuples(chosen), expected, "{count} tracks");
        }
    }
}
