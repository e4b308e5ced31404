//! Hostile input: the block decoder, fed mutated genuine blocks and mutated type metadata (of
//! both producers: the Rust fixture and the Unreal fixture), returns errors but never panics.
//!
//! Iterations: `WRITE_PERFETTO_FUZZ_ITERATIONS` (default 20 000, a few seconds);
//! `benches/fuzz.sh` runs it for millions. Seed: `WRITE_PERFETTO_FUZZ_SEED`.

mod support;

use micromegas_telemetry::block_wire_format::BlockPayload;
use micromegas_transit::UserDefinedType;
use std::io::Write;
use support::lake::{fixture_dir, open_embedded, runtime, thread_blocks_with_payloads};
use support::unreal::{all_blocks, unreal_fixture_dir};
use write_perfetto::decode::{StreamDecoder, decode_payload};

struct Sample {
    deps_meta: Vec<u8>,
    objs_meta: Vec<u8>,
    payload: Vec<u8>,
    dependencies: Vec<u8>,
    objects: Vec<u8>,
}

fn samples() -> Vec<Sample> {
    runtime().block_on(async {
        let lake = open_embedded(&fixture_dir()).await;
        let mut out = Vec::new();
        for (stream, _, payload) in thread_blocks_with_payloads(&lake).await {
            let buffers = decode_payload(&payload).unwrap();
            out.push(Sample {
                deps_meta: stream.dependencies_metadata.to_vec(),
                objs_meta: stream.objects_metadata.to_vec(),
                payload,
                dependencies: buffers.dependencies,
                objects: buffers.objects,
            });
        }
        out
    })
}

/// The thread blocks of the Unreal fixture (other type names and layouts).
fn unreal_samples() -> Vec<Sample> {
    all_blocks(&unreal_fixture_dir())
        .into_iter()
        .filter(|b| b.tags.iter().any(|t| t == "cpu"))
        .map(|b| {
            let buffers = decode_payload(&b.payload).unwrap();
            Sample {
                deps_meta: b.dependencies_metadata,
                objs_meta: b.objects_metadata,
                payload: b.payload,
                dependencies: buffers.dependencies,
                objects: buffers.objects,
            }
        })
        .collect()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn mutate(bytes: &mut Vec<u8>, rng: &mut Rng) {
    for _ in 0..=rng.below(4) {
        let len = bytes.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                bytes[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                bytes[i] = rng.next() as u8;
            }
            2 => bytes.truncate(rng.below(len + 1)),
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + rng.below(64)).min(len);
                let chunk = bytes[a..b].to_vec();
                let at = rng.below(len + 1);
                bytes.splice(at..at, chunk);
            }
            4 => {
                let at = rng.below(len + 1);
                let n = rng.below(16);
                let noise: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, noise);
            }
            5 if len >= 4 => {
                // A huge length or index where a u32 may be.
                let i = rng.below(len - 3);
                bytes[i..i + 4].copy_from_slice(&[0xff, 0xff, 0xff, rng.next() as u8]);
            }
            _ if len > 0 => {
                // Type index out of range at a record start-like position.
                let i = rng.below(len);
                bytes[i] = 200 + rng.below(56) as u8;
            }
            _ => {}
        }
    }
}

fn envelope(dependencies: &[u8], objects: &[u8]) -> Vec<u8> {
    let compress = |data: &[u8]| {
        let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    };
    let payload = BlockPayload {
        dependencies: compress(dependencies),
        objects: compress(objects),
    };
    micromegas_telemetry::wire_format::encode_cbor(&payload).unwrap()
}

/// Structured damage: offsets and sizes of members beyond their type, offsets at the type's
/// edge and near the top of the integer range (where a sum with an inner offset overflows),
/// wrong sizes, renamed types.
fn mutate_metadata(cbor: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut udts: Vec<UserDefinedType> = ciborium::de::from_reader(cbor).unwrap();
    for _ in 0..=rng.below(3) {
        let t = rng.below(udts.len());
        let other = rng.below(udts.len());
        if rng.below(5) == 4 {
            udts.swap(t, other);
            continue;
        }
        let udt = &mut udts[t];
        match rng.below(6) {
            0 if !udt.members.is_empty() => {
                let m = rng.below(udt.members.len());
                udt.members[m].offset = rng.below(udt.size + 16);
            }
            4 if !udt.members.is_empty() => {
                let m = rng.below(udt.members.len());
                udt.members[m].offset = udt.size.saturating_sub(rng.below(9));
            }
            5 if !udt.members.is_empty() => {
                let m = rng.below(udt.members.len());
                udt.members[m].offset = usize::MAX - rng.below(16);
            }
            1 if !udt.members.is_empty() => {
                let m = rng.below(udt.members.len());
                udt.members[m].size = rng.below(16);
            }
            2 => udt.size = rng.below(udt.size + 8),
            3 if !udt.members.is_empty() => {
                let m = rng.below(udt.members.len());
                udt.members[m].is_reference = !udt.members[m].is_reference;
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    ciborium::ser::into_writer(&udts, &mut out).unwrap();
    out
}

#[test]
fn mutated_blocks_and_metadata_never_panic_the_decoder() {
    let iterations: u64 = std::env::var("WRITE_PERFETTO_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed: u64 = std::env::var("WRITE_PERFETTO_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let rust_samples = samples();
    let unreal = unreal_samples();
    assert!(!rust_samples.is_empty() && !unreal.is_empty());
    // Half of the runs mutate the Rust crate's blocks, half the Unreal plugin's.
    let unreal_from = rust_samples.len();
    let samples: Vec<Sample> = rust_samples.into_iter().chain(unreal).collect();
    let decoders: Vec<StreamDecoder> = samples
        .iter()
        .map(|s| StreamDecoder::new(&s.deps_meta, &s.objs_meta).unwrap())
        .collect();
    let mut rng = Rng(seed);
    let (mut errors, mut successes) = (0u64, 0u64);
    for i in 0..iterations {
        let k = if rng.below(2) == 0 {
            rng.below(unreal_from)
        } else {
            unreal_from + rng.below(samples.len() - unreal_from)
        };
        let sample = &samples[k];
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match rng.below(4) {
                0 => {
                    let mut payload = sample.payload.clone();
                    mutate(&mut payload, &mut rng);
                    decoders[k].decode_block(&payload).is_ok()
                }
                1 => {
                    let mut deps = sample.dependencies.clone();
                    mutate(&mut deps, &mut rng);
                    decoders[k]
                        .decode_block(&envelope(&deps, &sample.objects))
                        .is_ok()
                }
                2 => {
                    let mut objects = sample.objects.clone();
                    mutate(&mut objects, &mut rng);
                    decoders[k]
                        .decode_block(&envelope(&sample.dependencies, &objects))
                        .is_ok()
                }
                _ => {
                    let (deps_meta, objs_meta) = if rng.below(2) == 0 {
                        (
                            mutate_metadata(&sample.deps_meta, &mut rng),
                            sample.objs_meta.clone(),
                        )
                    } else {
                        (
                            sample.deps_meta.clone(),
                            mutate_metadata(&sample.objs_meta, &mut rng),
                        )
                    };
                    match StreamDecoder::new(&deps_meta, &objs_meta) {
                        Ok(decoder) => decoder.decode_block(&sample.payload).is_ok(),
                        Err(_) => false,
                    }
                }
            }));
        match outcome {
            Ok(true) => successes += 1,
            Ok(false) => errors += 1,
            Err(_) => panic!(
                "decoder panicked at iteration {i} (seed {seed}): rerun with WRITE_PERFETTO_FUZZ_SEED={seed}"
            ),
        }
    }
    eprintln!(
        "fuzz: {iterations} executions without a panic ({errors} rejected, {successes} accepted), seed {seed}"
    );
    assert!(errors > 0, "mutations must produce rejected inputs");
}
