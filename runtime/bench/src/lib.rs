//! `weir bench compare`: Weir side by side with established peers — NATS JetStream and
//! Redis Streams — on the same machine, in the same run, with the same workloads, so
//! the figures are ratios that hold on any machine.
//!
//! The layout follows the job: [`system`] is what every system under test offers (the
//! one trait the workloads are written against), [`weir`] and [`peers`] implement it,
//! [`workload`] measures, [`report`] renders the table, [`compare`] runs it all.
//! [`kafka`] drives Weir's Kafka listener with kcat (librdkafka), a client that is
//! not a [`system::System`]: it batches on its own.

pub mod compare;
pub mod kafka;
pub mod peers;
pub mod report;
pub mod system;
pub mod weir;
pub mod workload;

pub use compare::{Options, run};
pub use weir::WeirUnderTest;
