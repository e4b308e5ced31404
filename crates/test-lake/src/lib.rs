//! Test data for write-perfetto, kept out of the tool itself (`publish = false`, a
//! dev-dependency of write-perfetto only): [`writer`] writes lakes (the embedded SQLite layout
//! or Micromegas's PostgreSQL schema, plus payloads) and [`synth`] generates seeded synthetic
//! lakes in the real wire format through it (also the `gen-lake` binary, for benchmarks).

pub mod synth;
pub mod writer;
