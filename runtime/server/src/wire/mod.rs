//! Wire formats: the only place that knows the JSON shapes of requests and answers.
//! Domain crates hand over plain types; these map them.

pub mod cluster;
pub mod pipeline;
pub mod plugins;
pub mod processors;
pub mod produce;
pub mod published;
pub mod records;
