//! Wire formats: the only place that knows JSON shapes of records.

pub mod produce;
pub mod published;
pub mod records;
