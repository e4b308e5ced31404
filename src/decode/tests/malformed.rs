//! Malformed log and metrics data: each damage is an error naming what is wrong (where
//! Micromegas's parser fails too, it is said), and no input makes the decoder panic.

use micromegas_transit::UserDefinedType;

use super::legacy::legacy_block;
use super::rust_producer::capture;
use super::unreal::{plugin_log_block, plugin_metrics_block};
use super::{TestBlock, envelope, metadata_column, reference};
use crate::decode::{StreamDecoder, decode_payload};

/// The block with its objects buffer changed by `damage`.
fn with_objects(block: &TestBlock, damage: impl FnOnce(&mut Vec<u8>)) -> TestBlock {
    let buffers = decode_payload(&block.payload).unwrap();
    let mut objects = buffers.objects;
    damage(&mut objects);
    TestBlock {
        payload: envelope(&buffers.dependencies, &objects),
        ..block.clone()
    }
}

/// The block with its dependencies buffer changed by `damage`.
fn with_dependencies(block: &TestBlock, damage: impl FnOnce(&mut Vec<u8>)) -> TestBlock {
    let buffers = decode_payload(&block.payload).unwrap();
    let mut dependencies = buffers.dependencies;
    damage(&mut dependencies);
    TestBlock {
        payload: envelope(&dependencies, &buffers.objects),
        ..block.clone()
    }
}

fn with_object_types(
    block: &TestBlock,
    change: impl FnOnce(&mut Vec<UserDefinedType>),
) -> TestBlock {
    let mut udts: Vec<UserDefinedType> =
        ciborium::de::from_reader(&block.objects_metadata[..]).unwrap();
    change(&mut udts);
    TestBlock {
        objects_metadata: metadata_column(&udts),
        ..block.clone()
    }
}

fn error_of(block: &TestBlock) -> String {
    format!("{:#}", block.decode().expect_err("the block is refused"))
}

fn assert_error(block: &TestBlock, expected: &str) {
    let error = error_of(block);
    assert!(
        error.contains(expected),
        "{error:?} does not say {expected:?}"
    );
}

/// The first record of the plugin's log block is a `TaggedLogInteropEvent`: type index, `u32`
/// length, then time (8), level (1), target (16), properties (8), message.
const FIRST_RECORD: usize = 5;
const FIRST_LEVEL: usize = FIRST_RECORD + 8;
const FIRST_MESSAGE: usize = FIRST_RECORD + 8 + 1 + 16 + 8;

fn set_first_length(objects: &mut [u8], len: u32) {
    objects[1..5].copy_from_slice(&len.to_le_bytes());
}

#[test]
fn a_truncated_packed_record_is_refused_naming_the_field() {
    let block = with_objects(&plugin_log_block(), |objects| {
        set_first_length(objects, 20);
        objects.truncate(FIRST_RECORD + 20);
    });
    assert_error(
        &block,
        "TaggedLogInteropEvent record truncated: its target needs 16 bytes, 11 left",
    );
    assert!(
        reference::read(&block).is_err(),
        "Micromegas refuses it too"
    );
}

#[test]
fn bytes_after_a_packed_records_last_field_are_refused() {
    // Micromegas's readers ignore them; a producer never writes them.
    let block = with_objects(&plugin_log_block(), |objects| {
        let len = u32::from_le_bytes(objects[1..5].try_into().unwrap());
        set_first_length(objects, len + 3);
        let end = FIRST_RECORD + len as usize;
        objects.splice(end..end, [1, 2, 3]);
    });
    assert_error(
        &block,
        "TaggedLogInteropEvent record has 3 bytes after its last field",
    );
}

#[test]
fn a_message_of_an_unknown_codec_is_refused() {
    let block = with_objects(&plugin_log_block(), |objects| objects[FIRST_MESSAGE] = 7);
    assert_error(&block, "unknown string codec 7");
    assert!(
        reference::read(&block).is_err(),
        "Micromegas refuses it too"
    );
}

#[test]
fn a_level_outside_fatal_to_trace_is_refused() {
    // Micromegas stores any number; producers only write the six levels.
    let block = with_objects(&plugin_log_block(), |objects| objects[FIRST_LEVEL] = 0);
    assert_error(&block, "log level 0 is not one of 1 (fatal) to 6 (trace)");
    assert_error(
        &legacy_block(9, b"msg"),
        "log level 9 is not one of 1 (fatal) to 6 (trace)",
    );
}

#[test]
fn a_level_property_that_is_not_a_level_name_is_refused_as_micromegas_refuses_it() {
    // `Level::parse` knows the lowercase names only.
    let block = with_dependencies(&plugin_log_block(), |dependencies| {
        let at = dependencies
            .windows(5)
            .position(|w| w == b"error")
            .expect("the override set's level value");
        dependencies[at] = b'E';
    });
    assert_error(&block, "level property \"Error\" is not a log level name");
    assert!(
        reference::read(&block).is_err(),
        "Micromegas refuses it too"
    );
}

#[test]
fn a_legacy_message_that_is_not_utf8_is_refused_as_micromegas_refuses_it() {
    let block = legacy_block(4, b"caf\xe9");
    assert_error(&block, "LogStringEvent msg is not UTF-8");
    assert!(
        reference::read(&block).is_err(),
        "Micromegas refuses it too"
    );
}

#[test]
fn a_packed_record_without_its_string_reference_layout_is_refused_when_read() {
    let block = with_object_types(&plugin_log_block(), |udts| {
        udts.retain(|t| t.name.as_str() != "StaticStringRef")
    });
    assert_error(&block, "the stream declares no StaticStringRef layout");
    assert!(
        reference::read(&block).is_err(),
        "Micromegas refuses it too"
    );
}

#[test]
fn a_known_record_type_of_the_wrong_shape_is_refused_by_the_decoder() {
    let fixed_string = with_object_types(&plugin_log_block(), |udts| udts[1].size = 40);
    let error = StreamDecoder::new(
        &fixed_string.dependencies_metadata,
        &fixed_string.objects_metadata,
    )
    .err()
    .map(|e| format!("{e:#}"));
    assert_eq!(
        error.as_deref(),
        Some(
            "objects_metadata: TaggedLogString is declared fixed-size, but its records are \
             variable-size"
        )
    );
    let integer_float = with_object_types(&plugin_metrics_block(), |udts| {
        udts[1].members[2].type_name = "uint64".into()
    });
    let error = StreamDecoder::new(
        &integer_float.dependencies_metadata,
        &integer_float.objects_metadata,
    )
    .err()
    .map(|e| format!("{e:#}"));
    assert_eq!(
        error.as_deref(),
        Some("objects_metadata: TaggedFloatMetricEvent.value is of type uint64, expected f64")
    );
}

#[test]
fn a_measure_whose_description_is_missing_is_refused() {
    let block = with_objects(&plugin_metrics_block(), |objects| objects[1] ^= 0xff);
    assert_error(
        &block,
        "TaggedIntegerMetricEvent (object 0): reference to unknown event description",
    );
}

/// splitmix64: the same mutations on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A few bytes flipped, overwritten, cut, or made the largest `u32` (a length).
fn mutate(bytes: &mut Vec<u8>, rng: &mut Rng) {
    for _ in 0..=rng.below(3) {
        let len = bytes.len();
        match rng.below(4) {
            0 if len > 0 => {
                let i = rng.below(len);
                bytes[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                bytes[i] = rng.next() as u8;
            }
            2 => bytes.truncate(rng.below(len + 1)),
            _ if len >= 4 => {
                let i = rng.below(len - 3);
                bytes[i..i + 4].copy_from_slice(&[0xff, 0xff, 0xff, rng.next() as u8]);
            }
            _ => {}
        }
    }
}

/// One member's offset, size or reference flag, or a type's size, changed: offsets past the
/// type, near the top of the integer range, sizes that fit no field.
fn mutate_types(cbor: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut udts: Vec<UserDefinedType> = ciborium::de::from_reader(cbor).unwrap();
    let t = rng.below(udts.len());
    let udt = &mut udts[t];
    let members = udt.members.len();
    match rng.below(5) {
        0 if members > 0 => udt.members[rng.below(members)].offset = rng.below(udt.size + 16),
        1 if members > 0 => udt.members[rng.below(members)].offset = usize::MAX - rng.below(16),
        2 if members > 0 => udt.members[rng.below(members)].size = rng.below(16),
        3 if members > 0 => {
            let m = &mut udt.members[rng.below(members)];
            m.is_reference = !m.is_reference;
        }
        _ => udt.size = rng.below(udt.size + 8),
    }
    metadata_column(&udts)
}

/// The sample's decoder, or one built from its metadata changed by `mutate_types`.
fn decoder_for(sample: &TestBlock, rng: &mut Rng) -> Option<StreamDecoder> {
    let (mut deps, mut objects) = (
        sample.dependencies_metadata.clone(),
        sample.objects_metadata.clone(),
    );
    match rng.below(4) {
        0 => deps = mutate_types(&deps, rng),
        1 => objects = mutate_types(&objects, rng),
        _ => {}
    }
    StreamDecoder::new(&deps, &objects).ok()
}

#[test]
fn mutated_log_and_metrics_blocks_never_panic_the_decoder() {
    let capture = capture();
    let samples: Vec<TestBlock> = capture
        .log_blocks
        .iter()
        .chain(&capture.metrics_blocks)
        .cloned()
        .chain([
            plugin_log_block(),
            plugin_metrics_block(),
            legacy_block(4, b"m"),
        ])
        .collect();
    let mut rng = Rng(0x10_95);
    let mut refused = 0;
    for i in 0..3000 {
        let k = rng.below(samples.len());
        let buffers = decode_payload(&samples[k].payload).unwrap();
        let Some(decoder) = decoder_for(&samples[k], &mut rng) else {
            refused += 1;
            continue;
        };
        let (mut dependencies, mut objects) = (buffers.dependencies, buffers.objects);
        if rng.below(2) == 0 {
            mutate(&mut objects, &mut rng);
        } else {
            mutate(&mut dependencies, &mut rng);
        }
        let payload = envelope(&dependencies, &objects);
        let outcome = std::panic::catch_unwind(|| decoder.decode(&payload).is_ok());
        match outcome {
            Ok(ok) => refused += usize::from(!ok),
            Err(_) => panic!("the decoder panicked at mutation {i}"),
        }
    }
    assert!(refused > 0, "mutations must produce refused blocks");
}
