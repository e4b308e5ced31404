//! Tests of the generator: determinism, decodability with the crate's own decoder, consistency
//! of what was generated, and metadata identical to micromegas-tracing's.

use anyhow::Result;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::metadata::{THREAD_DEPENDENCIES, THREAD_OBJECTS, TypeDesc};
use super::{SynthReport, SynthSpec, generate};
use crate::writer::LakeWriter;
use write_perfetto::clock::Clock;
use write_perfetto::decode::{EventPhase, EventScope, SpanEvent, StreamDecoder};
use write_perfetto::lake::rows::{LOG_STREAMS, METRIC_STREAMS};
use write_perfetto::lake::{Lake, LakeLocation, MetadataReads};

fn small_spec(seed: u64) -> SynthSpec {
    SynthSpec {
        seed,
        processes: 2,
        threads: 5,
        spans: 12_000,
        async_spans: 1_500,
        logs: 0,
        measures: 0,
        max_depth: 12,
        events_per_block: 700,
        tsc_frequency: 0,
        duration_ns: 0,
        async_span_ids: 0,
    }
}

async fn generate_into(dir: &Path, spec: &SynthSpec) -> Result<SynthReport> {
    let writer = LakeWriter::create_embedded(dir).await?;
    let report = generate(&writer, spec).await?;
    writer.close().await;
    Ok(report)
}

/// Every row of the three tables, in insertion order, as SQLite quotes them.
async fn dump_tables(dir: &Path) -> Result<Vec<String>> {
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        dir.join("lake.db").display()
    ))
    .await?;
    let mut out = Vec::new();
    for (table, columns) in [
        (
            "processes",
            "process_id, exe, username, realname, computer, distro, cpu_brand, tsc_frequency, start_time, start_ticks, insert_time, parent_process_id, properties",
        ),
        (
            "streams",
            "stream_id, process_id, dependencies_metadata, objects_metadata, tags, properties, insert_time, format",
        ),
        (
            "blocks",
            "block_id, stream_id, process_id, begin_time, end_time, begin_ticks, end_ticks, nb_objects, object_offset, payload_size, insert_time",
        ),
    ] {
        let quoted: Vec<String> = columns.split(", ").map(|c| format!("quote({c})")).collect();
        let sql = format!(
            "SELECT {} FROM {table} ORDER BY rowid",
            quoted.join(" || '|' || ")
        );
        let rows: Vec<(String,)> = sqlx::query_as(&sql).fetch_all(&pool).await?;
        out.extend(rows.into_iter().map(|(r,)| format!("{table}: {r}")));
    }
    pool.close().await;
    Ok(out)
}

fn files_under(root: &Path) -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.insert(
                    path.strip_prefix(root)?.to_path_buf(),
                    std::fs::read(&path)?,
                );
            }
        }
    }
    Ok(files)
}

#[tokio::test]
async fn same_seed_gives_identical_lakes() -> Result<()> {
    let (a, b, c) = (
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    );
    let spec = small_spec(7);
    let report_a = generate_into(a.path(), &spec).await?;
    let report_b = generate_into(b.path(), &spec).await?;
    assert_eq!(report_a, report_b);
    let rows_a = dump_tables(a.path()).await?;
    assert_eq!(rows_a.len(), 2 + report_a.streams + report_a.blocks);
    assert_eq!(rows_a, dump_tables(b.path()).await?);
    let blobs_a = files_under(&a.path().join("blobs"))?;
    assert_eq!(blobs_a.len(), report_a.blocks);
    assert_eq!(blobs_a, files_under(&b.path().join("blobs"))?);

    // Another seed gives another lake.
    let report_c = generate_into(c.path(), &small_spec(8)).await?;
    assert_ne!(report_a.process_ids, report_c.process_ids);
    assert_ne!(blobs_a, files_under(&c.path().join("blobs"))?);
    Ok(())
}

#[derive(Default, Debug, PartialEq)]
struct Counts {
    thread_begins: u64,
    thread_ends: u64,
    async_begins: u64,
    async_ends: u64,
}

#[tokio::test]
async fn every_block_decodes_and_matches_the_report() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let spec = small_spec(11);
    let report = generate_into(dir.path(), &spec).await?;
    assert_eq!(report.thread_spans, spec.spans);
    assert_eq!(report.async_spans, spec.async_spans);
    assert!(report.async_unended > 0, "{report:?}");
    assert_eq!(
        report.events,
        2 * report.thread_spans + 2 * report.async_spans - report.async_unended
    );

    let lake = Lake::open(LakeLocation::Embedded {
        dir: dir.path().to_path_buf(),
    })
    .await?;
    let mut counts = Counts::default();
    let (mut blocks, mut thread_streams) = (0usize, 0usize);
    let (mut utf16_names, mut tagged_ends, mut cross_thread_async, mut max_depth) =
        (0, 0, 0, 0usize);
    for process_id in &report.process_ids {
        let streams = lake.metadata.thread_streams(process_id).await?;
        assert_eq!(
            streams.len(),
            spec.threads,
            "only the cpu streams are thread streams"
        );
        thread_streams += streams.len();
        let types = lake.metadata.stream_types(process_id, &|_| true).await?;
        let decoders: HashMap<_, _> = streams
            .iter()
            .map(|s| {
                let t = &types[&s.stream_id];
                Ok((
                    s.stream_id,
                    StreamDecoder::new(&t.dependencies_metadata, &t.objects_metadata)?,
                ))
            })
            .collect::<Result<_>>()?;
        let process = lake
            .metadata
            .process(process_id)
            .await?
            .expect("process row");
        let mut by_stream: HashMap<uuid::Uuid, Vec<SpanEvent>> = HashMap::new();
        let mut previous_block: Option<write_perfetto::lake::rows::BlockRow> = None;
        for block in lake.metadata.thread_blocks(process_id).await? {
            let payload = lake.block_payload(&block).await?;
            assert_eq!(payload.len() as i64, block.payload_size);
            let events = decoders[&block.stream_id].decode_block(&payload)?;
            assert_eq!(events.len(), block.nb_objects as usize);
            assert!(block.begin_ticks < block.end_ticks && block.begin_time <= block.end_time);
            assert!(block.insert_time > block.end_time);
            for e in &events {
                let rel = e.ticks - process.start_ticks;
                assert!(
                    block.begin_ticks < rel && rel < block.end_ticks,
                    "event outside its block"
                );
            }
            let stream_events = by_stream.entry(block.stream_id).or_default();
            match &previous_block {
                Some(p) if p.stream_id == block.stream_id => {
                    assert_eq!(p.end_ticks, block.begin_ticks, "blocks of a stream touch");
                    assert_eq!(
                        p.object_offset + i64::from(p.nb_objects),
                        block.object_offset
                    );
                }
                _ => assert_eq!(block.object_offset, 0),
            }
            stream_events.extend(events);
            blocks += 1;
            previous_block = Some(block);
        }

        // Thread spans nest per stream; async spans pair by id across the process's streams.
        let mut async_begins: HashMap<u64, (SpanEvent, uuid::Uuid)> = HashMap::new();
        let mut async_ends: Vec<(SpanEvent, uuid::Uuid)> = Vec::new();
        for (stream_id, events) in &by_stream {
            let mut stack: Vec<&SpanEvent> = Vec::new();
            for pair in events.windows(2) {
                assert!(
                    pair[0].ticks < pair[1].ticks,
                    "times increase within a stream"
                );
            }
            for e in events {
                utf16_names +=
                    usize::from(e.name.contains("задача") || e.name.contains("描画パス"));
                tagged_ends += usize::from(!e.properties.is_empty());
                assert!(!e.name.is_empty() && !e.target.is_empty() && !e.file.is_empty());
                match (e.scope, e.phase) {
                    (EventScope::Thread, EventPhase::Begin) => {
                        counts.thread_begins += 1;
                        stack.push(e);
                        max_depth = max_depth.max(stack.len());
                    }
                    (EventScope::Thread, EventPhase::End) => {
                        counts.thread_ends += 1;
                        let begin = stack.pop().expect("end without begin");
                        assert_eq!(
                            (&begin.name, &begin.file, begin.line),
                            (&e.name, &e.file, e.line)
                        );
                    }
                    (EventScope::Async, EventPhase::Begin) => {
                        counts.async_begins += 1;
                        assert!(
                            async_begins
                                .insert(e.span_id, (e.clone(), *stream_id))
                                .is_none(),
                            "span ids are unique"
                        );
                    }
                    (EventScope::Async, EventPhase::End) => {
                        counts.async_ends += 1;
                        async_ends.push((e.clone(), *stream_id));
                    }
                }
            }
            assert!(stack.is_empty(), "every thread span ends");
        }
        for (end, stream_id) in &async_ends {
            let (begin, begin_stream) = &async_begins[&end.span_id];
            assert_eq!(
                (&begin.name, begin.parent_span_id, begin.depth),
                (&end.name, end.parent_span_id, end.depth)
            );
            assert!(begin.ticks < end.ticks);
            cross_thread_async += usize::from(begin_stream != stream_id);
        }
        for (begin, _) in async_begins.values() {
            if begin.parent_span_id == 0 {
                assert_eq!(begin.depth, 0);
            } else {
                let (parent, _) = &async_begins[&begin.parent_span_id];
                assert_eq!(begin.depth, parent.depth + 1);
                assert!(parent.ticks < begin.ticks);
                assert!(begin.depth <= 4);
            }
        }
    }
    assert_eq!(thread_streams, report.thread_streams);
    assert_eq!(blocks, report.blocks);
    assert_eq!(
        counts,
        Counts {
            thread_begins: report.thread_spans,
            thread_ends: report.thread_spans,
            async_begins: report.async_spans,
            async_ends: report.async_spans - report.async_unended,
        }
    );
    assert!(
        utf16_names > 0 && tagged_ends > 0 && cross_thread_async > 0,
        "{utf16_names} {tagged_ends} {cross_thread_async}"
    );
    assert!(
        max_depth as u32 == spec.max_depth,
        "deepest stack {max_depth}"
    );
    Ok(())
}

#[tokio::test]
async fn block_times_follow_the_frequency() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let spec = SynthSpec {
        tsc_frequency: 2_345_678_901,
        ..small_spec(3)
    };
    let report = generate_into(dir.path(), &spec).await?;
    let lake = Lake::open(LakeLocation::Embedded {
        dir: dir.path().to_path_buf(),
    })
    .await?;
    for process_id in &report.process_ids {
        let mut process = lake
            .metadata
            .process(process_id)
            .await?
            .expect("process row");
        assert_eq!(process.tsc_frequency, spec.tsc_frequency);
        // What a reader would infer if the frequency were unknown.
        process.tsc_frequency = 0;
        let bounds = lake.metadata.block_end_bounds(process_id).await?;
        let inferred = Clock::for_process(&process, bounds)?.frequency;
        let error = (inferred - spec.tsc_frequency).abs() as f64 / spec.tsc_frequency as f64;
        assert!(error < 1e-4, "inferred {inferred}");
    }
    Ok(())
}

#[tokio::test]
async fn a_duration_spreads_each_thread_over_that_long_with_the_same_spans() -> Result<()> {
    let two_hours_ns = 2 * 3600 * 1_000_000_000;
    let (natural, spread) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let spec = small_spec(5);
    let natural_report = generate_into(natural.path(), &spec).await?;
    let spread_spec = SynthSpec {
        duration_ns: two_hours_ns,
        ..spec
    };
    let report = generate_into(spread.path(), &spread_spec).await?;
    assert_eq!(report.thread_spans, natural_report.thread_spans);
    assert_eq!(report.async_spans, natural_report.async_spans);
    let lake = Lake::open(LakeLocation::Embedded {
        dir: spread.path().to_path_buf(),
    })
    .await?;
    for process_id in &report.process_ids {
        let blocks = lake.metadata.thread_blocks(process_id).await?;
        let mut by_stream: HashMap<uuid::Uuid, (i64, i64)> = HashMap::new();
        for block in &blocks {
            let span = by_stream
                .entry(block.stream_id)
                .or_insert((i64::MAX, i64::MIN));
            let (begin, end) = (block.begin_time, block.end_time);
            span.0 = span.0.min(begin.timestamp_nanos_opt().unwrap_or(0));
            span.1 = span.1.max(end.timestamp_nanos_opt().unwrap_or(0));
        }
        for (stream, (first, last)) in by_stream {
            let covered = (last - first) as f64 / two_hours_ns as f64;
            assert!(
                (0.9..1.1).contains(&covered),
                "thread {stream} covers {covered:.3} of the duration"
            );
        }
        // Idle time between bursts: blocks are many and short, not one per hour.
        assert!(blocks.len() > 20, "{} blocks", blocks.len());
    }
    Ok(())
}

/// Flattened the way micromegas-telemetry-sink's `make_stream_info` does, secondaries by name.
fn real_metadata(
    primary: Vec<micromegas_transit::UserDefinedType>,
) -> Vec<micromegas_transit::UserDefinedType> {
    fn walk(
        map: &mut BTreeMap<String, micromegas_transit::UserDefinedType>,
        udt: &micromegas_transit::UserDefinedType,
    ) {
        for s in &udt.secondary_udts {
            map.insert(s.name.to_string(), s.clone());
            walk(map, s);
        }
    }
    let mut secondaries = BTreeMap::new();
    for udt in &primary {
        walk(&mut secondaries, udt);
    }
    primary
        .into_iter()
        .chain(secondaries.into_values())
        .collect()
}

fn assert_same(table: &[TypeDesc], real: &[micromegas_transit::UserDefinedType]) {
    let ours: Vec<String> = table.iter().map(|t| format!("{:?}", t.to_udt())).collect();
    let theirs: Vec<String> = real
        .iter()
        .map(|u| {
            let mut u = u.clone();
            u.secondary_udts.clear();
            format!("{u:?}")
        })
        .collect();
    assert_eq!(ours, theirs);
}

#[test]
fn metadata_matches_micromegas_tracing() {
    use micromegas_tracing::event::{ExtractDeps, TracingBlock};
    use micromegas_transit::HeterogeneousQueue;
    type Thread = <micromegas_tracing::spans::ThreadBlock as TracingBlock>::Queue;
    type Log = <micromegas_tracing::logs::LogBlock as TracingBlock>::Queue;
    type Metrics = <micromegas_tracing::metrics::MetricsBlock as TracingBlock>::Queue;
    assert_same(THREAD_OBJECTS, &real_metadata(Thread::reflect_contained()));
    assert_same(
        THREAD_DEPENDENCIES,
        &real_metadata(<Thread as ExtractDeps>::DepsQueue::reflect_contained()),
    );
    assert_same(
        super::metadata::LOG_OBJECTS,
        &real_metadata(Log::reflect_contained()),
    );
    assert_same(
        super::metadata::LOG_DEPENDENCIES,
        &real_metadata(<Log as ExtractDeps>::DepsQueue::reflect_contained()),
    );
    assert_same(
        super::metadata::METRICS_OBJECTS,
        &real_metadata(Metrics::reflect_contained()),
    );
    assert_same(
        super::metadata::METRICS_DEPENDENCIES,
        &real_metadata(<Metrics as ExtractDeps>::DepsQueue::reflect_contained()),
    );
    // The type indices the generator writes.
    assert_eq!(
        THREAD_OBJECTS[usize::from(super::metadata::obj::TAGGED_END_ASYNC_NAMED)].name,
        "TaggedEndAsyncNamedSpanEvent"
    );
    assert_eq!(
        THREAD_DEPENDENCIES[usize::from(super::metadata::dep::PROPERTY_SET_DEPENDENCY)].name,
        "PropertySetDependency"
    );
}

/// The name and tick time of an object as Micromegas's own parser (micromegas-transit) reads it.
fn reference_view(value: &micromegas_transit::value::Value<'_>) -> Result<(String, i64, usize)> {
    use micromegas_transit::value::Value;
    let Value::Object(obj) = value else {
        anyhow::bail!("not an object: {value:?}")
    };
    let name = match obj.get_ref("name") {
        Ok(Value::String(s)) => s.to_string(),
        _ => {
            let desc = ["thread_span_desc", "span_desc"]
                .iter()
                .find_map(|m| obj.get_ref(m).ok())
                .ok_or_else(|| anyhow::anyhow!("no name in {obj:?}"))?;
            let Value::Object(desc) = desc else {
                anyhow::bail!("bad desc {desc:?}")
            };
            let Value::String(s) = desc.get_ref("name")? else {
                anyhow::bail!("bad name")
            };
            s.to_string()
        }
    };
    let properties = match obj.get_ref("properties") {
        Ok(Value::Object(set)) => set.members.len(),
        _ => 0,
    };
    Ok((name, obj.get::<i64>("time")?, properties))
}

/// Micromegas's analytics reads `PropertySetDependency` with a custom reader; this one returns
/// the set as an object of name → value.
fn property_set_reader() -> micromegas_transit::CustomReaderMap {
    use micromegas_transit::value::{Object, Value};
    let reader: micromegas_transit::CustomReader =
        std::sync::Arc::new(|bump, _udt, udts, deps, window| {
            let property = udts
                .iter()
                .find(|t| t.name.as_str() == "Property")
                .expect("Property type");
            let u64_at =
                |at: usize| u64::from_le_bytes(window[at..at + 8].try_into().expect("8 bytes"));
            let id = u64_at(0);
            let count = u32::from_le_bytes(window[8..12].try_into().expect("4 bytes")) as usize;
            let (name_at, value_at) = (property.members[0].offset, property.members[1].offset);
            let mut members = Vec::new();
            for i in 0..count {
                let base = 12 + i * property.size;
                let string = |at: usize| -> Result<&str> {
                    match deps.get(&u64_at(base + at)) {
                        Some(Value::String(s)) => Ok(*s),
                        other => {
                            anyhow::bail!("property string {:#x}: {other:?}", u64_at(base + at))
                        }
                    }
                };
                members.push((string(name_at)?, Value::String(string(value_at)?)));
            }
            let set = bump.alloc(Object {
                type_name: "PropertySet",
                members: bump.alloc_slice_copy(&members),
            });
            let entry = bump.alloc(Object {
                type_name: "PropertySetDependency",
                members: bump
                    .alloc_slice_copy(&[("id", Value::U64(id)), ("value", Value::Object(set))]),
            });
            Ok(Value::Object(entry))
        });
    let mut map = micromegas_transit::CustomReaderMap::new();
    map.insert("PropertySetDependency".to_string(), reader);
    map
}

#[tokio::test]
async fn micromegas_parser_reads_what_our_decoder_reads() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let report = generate_into(dir.path(), &small_spec(5)).await?;
    let lake = Lake::open(LakeLocation::Embedded {
        dir: dir.path().to_path_buf(),
    })
    .await?;
    let readers = property_set_reader();
    let mut compared = 0u64;
    for process_id in &report.process_ids {
        let types = lake.metadata.stream_types(process_id, &|_| true).await?;
        for block in lake.metadata.thread_blocks(process_id).await? {
            let stream = &types[&block.stream_id];
            let dep_udts: Vec<micromegas_transit::UserDefinedType> =
                ciborium::from_reader(&stream.dependencies_metadata[..])?;
            let obj_udts: Vec<micromegas_transit::UserDefinedType> =
                ciborium::from_reader(&stream.objects_metadata[..])?;
            let payload = lake.block_payload(&block).await?;
            let envelope: micromegas_telemetry::block_wire_format::BlockPayload =
                ciborium::from_reader(&payload[..])?;
            let deps_buffer =
                micromegas_telemetry::compression::decompress(&envelope.dependencies)?;
            let objs_buffer = micromegas_telemetry::compression::decompress(&envelope.objects)?;
            let bump = bumpalo::Bump::new();
            let deps =
                micromegas_transit::read_dependencies(&bump, &readers, &dep_udts, &deps_buffer)?;
            let mut theirs = Vec::new();
            micromegas_transit::parse_object_buffer(
                &bump,
                &readers,
                &deps,
                &obj_udts,
                &objs_buffer,
                |v| {
                    theirs.push(reference_view(&v)?);
                    Ok(true)
                },
            )?;
            let ours: Vec<(String, i64, usize)> =
                StreamDecoder::new(&stream.dependencies_metadata, &stream.objects_metadata)?
                    .decode_block(&payload)?
                    .into_iter()
                    .map(|e| (e.name.to_string(), e.ticks, e.properties.len()))
                    .collect();
            assert_eq!(theirs, ours);
            compared += ours.len() as u64;
        }
    }
    assert_eq!(compared, report.events);
    Ok(())
}

// ---- Log and metrics streams ----

fn records_spec(seed: u64) -> SynthSpec {
    SynthSpec {
        seed,
        processes: 2,
        threads: 3,
        spans: 4_000,
        async_spans: 400,
        logs: 12_000,
        measures: 6_000,
        events_per_block: 500,
        ..SynthSpec::default()
    }
}

/// SHA-256 of every row and every payload of a lake.
async fn lake_digest(dir: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for row in dump_tables(dir).await? {
        hasher.update(row.as_bytes());
        hasher.update(b"\n");
    }
    for (path, bytes) in files_under(&dir.join("blobs"))? {
        hasher.update(path.to_string_lossy().as_bytes());
        hasher.update(&bytes);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Rows of the `blocks` table only.
fn block_rows(rows: &[String]) -> Vec<&String> {
    rows.iter().filter(|r| r.starts_with("blocks: ")).collect()
}

#[tokio::test]
async fn a_lake_without_logs_or_measures_is_the_one_generated_before_they_existed() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let spec = SynthSpec {
        processes: 2,
        threads: 3,
        spans: 3_000,
        async_spans: 300,
        events_per_block: 400,
        ..SynthSpec::default()
    };
    let report = generate_into(dir.path(), &spec).await?;
    // The digest of what gen-lake wrote for this spec before log and metrics blocks existed
    // (checked then against that version's output). A deliberate change of the generator
    // changes it; anything else is a regression of the lakes tests and benchmarks rely on.
    assert_eq!(
        lake_digest(dir.path()).await?,
        "139c4bff809aea38d460f4559b64e6c578799a635fbeed5d27c0aee1a3adbb1f"
    );
    let lake = Lake::open(LakeLocation::Embedded {
        dir: dir.path().to_path_buf(),
    })
    .await?;
    for process_id in &report.process_ids {
        for kind in [LOG_STREAMS, METRIC_STREAMS] {
            assert_eq!(lake.metadata.streams(process_id, kind).await?.len(), 1);
            assert!(lake.metadata.blocks(process_id, kind).await?.is_empty());
        }
    }
    assert_eq!((report.log_entries, report.measures), (0, 0));
    Ok(())
}

#[tokio::test]
async fn logs_and_measures_are_deterministic_and_leave_the_spans_as_they_were() -> Result<()> {
    let (a, b, without) = (
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    );
    let spec = records_spec(21);
    let report = generate_into(a.path(), &spec).await?;
    assert_eq!(report, generate_into(b.path(), &spec).await?);
    assert_eq!(lake_digest(a.path()).await?, lake_digest(b.path()).await?);

    // The same spec without them: the same processes, streams and thread blocks, byte for byte.
    let spans_only = SynthSpec {
        logs: 0,
        measures: 0,
        ..spec
    };
    let report_without = generate_into(without.path(), &spans_only).await?;
    assert_eq!(report.process_ids, report_without.process_ids);
    assert_eq!(report.events, report_without.events);
    let (rows, rows_without) = (
        dump_tables(a.path()).await?,
        dump_tables(without.path()).await?,
    );
    let others = |rows: &[String]| -> Vec<String> {
        rows.iter()
            .filter(|r| !r.starts_with("blocks: "))
            .cloned()
            .collect()
    };
    assert_eq!(others(&rows), others(&rows_without));
    let thread_blocks = block_rows(&rows_without);
    let all_blocks = block_rows(&rows);
    let kept: Vec<&String> = (all_blocks.iter().copied())
        .filter(|r| thread_blocks.contains(r))
        .collect();
    assert_eq!(kept, thread_blocks, "the thread blocks, in the same order");
    let blobs = files_under(&a.path().join("blobs"))?;
    for (path, bytes) in files_under(&without.path().join("blobs"))? {
        assert_eq!(blobs.get(&path), Some(&bytes), "{}", path.display());
    }
    assert_eq!(
        blobs.len(),
        report.blocks,
        "one payload per block, the log and metrics ones too"
    );
    assert!(report.blocks > report_without.blocks);
    Ok(())
}

/// A log or metrics object as Micromegas's own parser reads it (micromegas-transit, with
/// micromegas-tracing's readers of the variable-size records).
#[derive(Debug, Clone, PartialEq)]
struct Parsed {
    type_name: String,
    ticks: i64,
    /// Every member of the description (`LogMetadataRecord`, `MetricMetadataDependency`) but
    /// its id, as text.
    desc: BTreeMap<String, String>,
    /// Logs: the message (the `fmt_str` of a static one). Measures: the value, as text.
    msg: String,
    properties: Vec<(String, String)>,
}

fn text_of(value: &micromegas_transit::value::Value<'_>) -> String {
    use micromegas_transit::value::Value;
    match value {
        Value::String(s) => s.to_string(),
        Value::U8(v) => v.to_string(),
        Value::U32(v) => v.to_string(),
        Value::U64(v) => v.to_string(),
        Value::I64(v) => v.to_string(),
        Value::F64(v) => v.to_string(),
        other => format!("{other:?}"),
    }
}

fn parsed(value: micromegas_transit::value::Value<'_>) -> Result<Parsed> {
    use micromegas_transit::value::{Object, Value};
    let Value::Object(object) = value else {
        anyhow::bail!("not an object: {value:?}")
    };
    let desc = object.get::<&Object>("desc")?;
    let desc: BTreeMap<String, String> = (desc.members.iter())
        .filter(|(name, _)| *name != "id")
        .map(|(name, v)| (name.to_string(), text_of(v)))
        .collect();
    let msg = match (object.get_ref("msg"), object.get_ref("value")) {
        (Ok(msg), _) => text_of(msg),
        (_, Ok(value)) => text_of(value),
        _ => desc["fmt_str"].clone(),
    };
    let properties = match object.get::<&Object>("properties") {
        Ok(set) => (set.members.iter())
            .map(|(k, v)| (k.to_string(), text_of(v)))
            .collect(),
        Err(_) => Vec::new(),
    };
    Ok(Parsed {
        type_name: object.type_name.to_string(),
        ticks: object.get::<i64>("time")?,
        desc,
        msg,
        properties,
    })
}

/// The blocks of one stream kind of a process, chained, each parsed by Micromegas's parser
/// and by the crate's decoder.
async fn parse_stream(
    lake: &Lake,
    process_id: &uuid::Uuid,
    kind: write_perfetto::lake::rows::StreamKind,
) -> Result<(Vec<Parsed>, write_perfetto::decode::DecodedBlock)> {
    let streams = lake.metadata.streams(process_id, kind).await?;
    assert_eq!(streams.len(), 1, "one {} stream", kind.tag);
    let types = lake
        .metadata
        .stream_types(process_id, &|id| id == streams[0].stream_id)
        .await?;
    let stream = &types[&streams[0].stream_id];
    let dep_udts: Vec<micromegas_transit::UserDefinedType> =
        ciborium::from_reader(&stream.dependencies_metadata[..])?;
    let obj_udts: Vec<micromegas_transit::UserDefinedType> =
        ciborium::from_reader(&stream.objects_metadata[..])?;
    let decoder = StreamDecoder::new(&stream.dependencies_metadata, &stream.objects_metadata)?;
    let readers = micromegas_tracing::parsing::make_custom_readers();
    let (mut theirs, mut ours) = (Vec::new(), write_perfetto::decode::DecodedBlock::default());
    let start_ticks = lake
        .metadata
        .process(process_id)
        .await?
        .expect("process")
        .start_ticks;
    let mut next_offset = 0i64;
    for block in lake.metadata.blocks(process_id, kind).await? {
        assert_eq!(
            block.object_offset, next_offset,
            "blocks of a stream follow each other"
        );
        next_offset += i64::from(block.nb_objects);
        let payload = lake.block_payload(&block).await?;
        let buffers = write_perfetto::decode::decode_payload(&payload)?;
        let bump = bumpalo::Bump::new();
        let deps = micromegas_transit::read_dependencies(
            &bump,
            &readers,
            &dep_udts,
            &buffers.dependencies,
        )?;
        let before = theirs.len();
        micromegas_transit::parse_object_buffer(
            &bump,
            &readers,
            &deps,
            &obj_udts,
            &buffers.objects,
            |v| {
                theirs.push(parsed(v)?);
                Ok(true)
            },
        )?;
        assert_eq!(theirs.len() - before, block.nb_objects as usize);
        let bounds = block.begin_ticks..block.end_ticks;
        assert!(
            (theirs[before..].iter()).all(|p| bounds.contains(&(p.ticks - start_ticks))),
            "records lie within their block"
        );
        let decoded = decoder.decode(&payload)?;
        ours.logs.extend(decoded.logs);
        ours.measures.extend(decoded.measures);
    }
    Ok((theirs, ours))
}

fn count_by<T: Ord>(items: impl Iterator<Item = T>) -> BTreeMap<T, u64> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_default() += 1;
    }
    counts
}

/// `msg` is `fmt` with each `{}` replaced by some (non-empty) text.
fn fills(fmt: &str, msg: &str) -> bool {
    let pieces: Vec<&str> = fmt.split("{}").collect();
    let Some(mut rest) = msg.strip_prefix(pieces[0]) else {
        return false;
    };
    for (k, piece) in pieces.iter().enumerate().skip(1) {
        if k == pieces.len() - 1 {
            return rest.len() > piece.len() && rest.ends_with(piece);
        }
        match rest.get(1..).and_then(|r| r.find(piece)) {
            Some(at) => rest = &rest[1 + at + piece.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Absolute tick range of the process's thread blocks.
async fn span_range(lake: &Lake, process_id: &uuid::Uuid) -> Result<(i64, i64)> {
    let blocks = lake.metadata.thread_blocks(process_id).await?;
    let begin = blocks.iter().map(|b| b.begin_ticks).min().expect("blocks");
    let end = blocks.iter().map(|b| b.end_ticks).max().expect("blocks");
    let start = lake
        .metadata
        .process(process_id)
        .await?
        .expect("process")
        .start_ticks;
    Ok((start + begin, start + end))
}

fn check_logs(logs: &[Parsed], (from, to): (i64, i64)) {
    for pair in logs.windows(2) {
        assert!(pair[0].ticks < pair[1].ticks, "times increase");
    }
    // Spread over the spans' range: the first and last tenths both have entries.
    let tenth = (to - from) / 10;
    assert!(logs[0].ticks >= from && logs[0].ticks < from + tenth);
    assert!(logs[logs.len() - 1].ticks <= to && logs[logs.len() - 1].ticks > to - tenth);
    for log in logs {
        let d = &log.desc;
        assert!(d["target"].starts_with("synth_app::"), "{log:?}");
        assert!(
            d["module_path"] == d["target"] && d["file"].ends_with(".rs"),
            "{log:?}"
        );
        assert!(d["line"].parse::<u32>().unwrap() >= 10, "{log:?}");
        let fmt = &d["fmt_str"];
        match log.type_name.as_str() {
            "LogStaticStrEvent" => assert!(!fmt.contains("{}") && log.msg == *fmt),
            "LogStringEventV2" => assert!(fills(fmt, &log.msg), "{log:?}"),
            "TaggedLogString" => {
                assert!(
                    fills(fmt, &log.msg) && !log.properties.is_empty(),
                    "{log:?}"
                )
            }
            other => panic!("unexpected log record {other}"),
        }
    }
}

fn check_measures(measures: &[Parsed]) {
    for pair in measures.windows(2) {
        assert!(pair[0].ticks < pair[1].ticks, "times increase");
    }
    let mut totals: HashMap<(String, Vec<(String, String)>), f64> = HashMap::new();
    for m in measures {
        let (name, unit) = (&m.desc["name"], &m.desc["unit"]);
        let value: f64 = m.msg.parse().unwrap();
        let integer = m.type_name.contains("Integer");
        let tagged = m.type_name.starts_with("Tagged");
        assert_eq!(tagged, !m.properties.is_empty(), "{m:?}");
        if tagged {
            let [(key, region)] = &m.properties[..] else {
                panic!("one property: {m:?}")
            };
            assert!(key == "region" && ["eu", "us", "ap"].contains(&region.as_str()));
        }
        assert!(
            m.desc["lod"]
                .parse::<u32>()
                .is_ok_and(|l| (1..=3).contains(&l))
        );
        assert!(value.is_finite() && value >= 0.0, "{m:?}");
        match (name.as_str(), unit.as_str()) {
            ("cpu_usage", "percent") => assert!(!integer && value <= 100.0),
            ("cache_hit_ratio", "ratio") => assert!(!integer && value <= 1.0),
            // About 1/60 s at a frequency of 1 to 4 GHz.
            ("frame_time", "ticks") => assert!(integer && (1.3e7..8.1e7).contains(&value)),
            ("requests" | "bytes_sent", _) => {
                // Totals only grow.
                let last = totals
                    .entry((name.clone(), m.properties.clone()))
                    .or_default();
                assert!(integer && value >= *last, "{m:?}");
                *last = value;
            }
            ("request_latency", "ms") => assert!(!integer && tagged),
            ("memory_used", "bytes") | ("queue_depth" | "open_connections", "count") => {
                assert!(integer)
            }
            ("gc_pause", "ms") => assert!(!integer),
            other => panic!("unexpected metric {other:?}"),
        }
    }
}

#[tokio::test]
async fn log_and_metrics_blocks_parse_with_micromegas_parser_as_generated() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let spec = records_spec(4);
    let report = generate_into(dir.path(), &spec).await?;
    assert_eq!(
        (report.log_entries, report.measures),
        (spec.logs, spec.measures)
    );
    assert_eq!(report.log_levels.iter().sum::<u64>(), spec.logs);
    let lake = Lake::open(LakeLocation::Embedded {
        dir: dir.path().to_path_buf(),
    })
    .await?;
    let (mut levels, mut types, mut series) = (BTreeMap::new(), BTreeMap::new(), 0u64);
    let (mut long, mut dynamic_sets) = (0, 0);
    for process_id in &report.process_ids {
        let range = span_range(&lake, process_id).await?;
        let (logs, decoded) = parse_stream(&lake, process_id, LOG_STREAMS).await?;
        check_logs(&logs, range);
        // The crate's decoder reads the same entries.
        let ours: Vec<(i64, u8, &str)> = (decoded.logs.iter())
            .map(|l| (l.ticks, l.level, &*l.msg))
            .collect();
        let theirs: Vec<(i64, u8, &str)> = (logs.iter())
            .map(|l| (l.ticks, l.desc["level"].parse().unwrap(), l.msg.as_str()))
            .collect();
        assert_eq!(ours, theirs);
        for (level, n) in count_by(theirs.iter().map(|l| l.1)) {
            *levels.entry(level).or_insert(0u64) += n;
        }
        long += logs.iter().filter(|l| l.msg.chars().count() > 120).count();
        dynamic_sets += (logs.iter())
            .filter(|l| {
                l.properties
                    .iter()
                    .any(|(k, _)| ["rows", "bytes", "user", "attempt"].contains(&k.as_str()))
            })
            .count();

        let (measures, decoded) = parse_stream(&lake, process_id, METRIC_STREAMS).await?;
        check_measures(&measures);
        assert_eq!(decoded.measures.len(), measures.len());
        for (m, d) in measures.iter().zip(&decoded.measures) {
            assert_eq!((m.ticks, &*m.desc["name"]), (d.ticks, &*d.name));
        }
        series += count_by(measures.iter().map(|m| (&m.desc["name"], &m.properties))).len() as u64;
        for p in logs.iter().chain(&measures) {
            *types.entry(p.type_name.clone()).or_insert(0u64) += 1;
        }
    }
    // Every level, mostly info and debug, more errors than fatal ones.
    let levels: Vec<u64> = (1..=6)
        .map(|l| levels.get(&l).copied().unwrap_or(0))
        .collect();
    assert_eq!(levels, report.log_levels);
    assert!(levels.iter().all(|&n| n > 0), "{levels:?}");
    assert!(levels[3] + levels[4] > spec.logs * 7 / 10, "{levels:?}");
    assert!(levels[0] < levels[1] && levels[1] < levels[2] && levels[2] < levels[5]);
    // Mostly static messages; the other kinds of records all present.
    assert!(types["LogStaticStrEvent"] > spec.logs * 6 / 10, "{types:?}");
    assert!(
        types["LogStringEventV2"] > types["TaggedLogString"],
        "{types:?}"
    );
    assert!(
        types["TaggedLogString"] > 0 && long > 0 && dynamic_sets > 0,
        "{types:?}"
    );
    assert_eq!(types.len(), 3 + 4, "{types:?}");
    let measures: u64 = (types.iter())
        .filter(|(t, _)| t.ends_with("MetricEvent"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(measures, spec.measures);
    assert_eq!(series, report.metric_series);
    assert_eq!(series, 2 * 14, "14 series per process");
    Ok(())
}

#[tokio::test]
async fn a_process_without_spans_spreads_its_records_over_a_nominal_range() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let spec = SynthSpec {
        processes: 1,
        threads: 2,
        spans: 0,
        async_spans: 0,
        logs: 3_000,
        measures: 2_000,
        events_per_block: 700,
        tsc_frequency: 1_000_000_000,
        ..SynthSpec::default()
    };
    let report = generate_into(dir.path(), &spec).await?;
    let lake = Lake::open(LakeLocation::Embedded {
        dir: dir.path().to_path_buf(),
    })
    .await?;
    let process_id = &report.process_ids[0];
    assert!(lake.metadata.thread_blocks(process_id).await?.is_empty());
    let (logs, _) = parse_stream(&lake, process_id, LOG_STREAMS).await?;
    let (measures, _) = parse_stream(&lake, process_id, METRIC_STREAMS).await?;
    assert_eq!((logs.len(), measures.len()), (3_000, 2_000));
    // 100 µs a record, at least a second, from 1 ms after the start.
    let start = lake
        .metadata
        .process(process_id)
        .await?
        .expect("process")
        .start_ticks;
    let last = logs
        .last()
        .unwrap()
        .ticks
        .max(measures.last().unwrap().ticks);
    assert!(logs[0].ticks - start >= 1_000_000);
    assert!(
        (900_000_000..=1_001_000_000).contains(&(last - start)),
        "{}",
        last - start
    );
    Ok(())
}
