//! write-perfetto: one process of a Micromegas lake → one Perfetto trace.
//!
//! The pipeline, one module per stage, each importing only earlier ones:
//! [`lake`] (metadata rows and payloads) → [`decode`] (span events of a block) →
//! [`partitions`] (the events of each view instance, as [`events`]) →
//! [`assembly`] (tracks of spans, as [`tracks`]) → [`trace`] (the `.perfetto-trace` bytes),
//! driven by [`export`] and the command line in [`cli`]. See ARCHITECTURE.md.

pub mod assembly;
mod cleanup;
pub mod cli;
pub mod clock;
pub mod decode;
pub mod error;
pub mod events;
pub mod export;
pub mod lake;
pub mod memory;
pub mod partitions;
pub mod pause;
pub mod progress;
pub mod symbols;
pub mod test_sizes;
pub mod trace;
pub mod tracks;
