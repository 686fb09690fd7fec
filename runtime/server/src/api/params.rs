//! Query parameter parsing shared by handlers: every bad value is a clear 400.

use super::problem::Problem;

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
