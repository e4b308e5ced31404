//! write-perfetto: one process of a Micromegas lake → one Perfetto trace.
//!
//! The pipeline, one module per stage:
//! [`lake`] (metadata rows and payloads) → [`decode`] (span events of a block) →
//! [`partitions`] (the events of each thread stream) →
//! [`assembly`] (thread and async tracks of spans) → [`trace`] (the `.perfetto-trace` bytes),
//! driven by [`export`] and the command line in [`cli`].

pub mod assembly;
mod cleanup;
pub mod cli;
pub mod clock;
pub mod decode;
pub mod error;
pub mod export;
pub mod lake;
pub mod memory;
pub mod partitions;
pub mod pause;
pub mod progress;
pub mod symbols;
pub mod trace;
