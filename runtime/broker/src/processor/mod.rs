//! Stream processors: plugins that consume topics as their own consumer group and
//! emit records, with keyed state, event-time windows and timers, exactly once.
//!
//! - [`state`]: keyed state per input partition, staged during a batch, cached.
//! - [`keyed`]: the handle a step's logic works on: state, system keys, timers.
//! - [`lease`]: fencing by generation, so a replaced run commits nothing more.
//! - [`reset`]: state cleared and offsets moved, in one append.
//! - [`step`]: one exactly-once step on one input partition.
//! - [`wasm`]: a processor plugin as a step's logic.
//! - [`windows`]: which windows an event belongs to, when they close, what is late.
//!
//! A processor's batch is stored with [`Broker::produce_committing`](crate::Broker::produce_committing):
//! its outputs, state changes and consumed offsets in one atomic append.

pub mod keyed;
pub mod lease;
pub mod reset;
pub mod state;
pub mod step;
pub mod wasm;
pub mod windows;
