//! Query parameter parsing shared by handlers: every bad value is a clear 400.

use std::time::Duration;

use weir_broker::ReadLimits;

use super::problem::Problem;
use crate::config::Limits;

/// Parses a numeric query parameter.
pub fn parse_num<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, Problem> {
    value.parse().map_err(|_| {
        Problem::invalid_request(format!(
            "query parameter '{name}' must be a non-negative integer, got '{value}'"
        ))
    })
}

/// The error for a parameter the route does not know.
pub fn unknown_param(name: &str, known: &str) -> Problem {
    Problem::invalid_request(format!("unknown query parameter '{name}' (known: {known})"))
}

/// The read limits and long-poll wait every fetch route shares.
#[derive(Debug, Clone, Copy)]
pub struct FetchParams {
    /// Records and bytes per response.
    pub limits: ReadLimits,
    /// How long to wait at the end of the log.
    pub wait: Duration,
}

impl Default for FetchParams {
    fn default() -> Self {
        Self::new()
    }
}

impl FetchParams {
    /// Defaults: 1000 records, 4 MiB, no waiting.
    pub fn new() -> Self {
        Self {
            limits: ReadLimits::default(),
            wait: Duration::ZERO,
        }
    }

    /// Takes `max_records`, `max_bytes` and `timeout_ms` (clamped to the server's
    /// limits); returns false for any other parameter.
    pub fn take(&mut self, name: &str, value: &str, server: &Limits) -> Result<bool, Problem> {
        match name {
            "max_records" => {
                self.limits.max_records =
                    parse_num::<usize>(name, value)?.clamp(1, server.max_fetch_records)
            }
            "max_bytes" => self.limits.max_bytes = parse_num::<usize>(name, value)?.max(1),
            "timeout_ms" => {
                self.wait =
                    Duration::from_millis(parse_num::<u64>(name, value)?.min(server.max_wait_ms))
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}
