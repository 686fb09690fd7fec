//! Query parameter parsing shared by handlers: every bad value is a clear 400.

use std::time::Duration;

use weir_broker::pipeline::{Delivery, SubscriptionFilter};
use weir_broker::{Broker, ReadLimits, ReadResult, Topic};

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

/// Refuses a request whose path names a topic, group or plugin that could not exist
/// (400 rather than a 404 that hides the typo), before any handler or lookup.
pub async fn check_path_names(
    params: axum::extract::RawPathParams,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    for (key, value) in &params {
        let (valid, what) = match key {
            "topic" | "group" => (
                weir_broker::is_valid_name(value),
                "1-249 characters of A-Z, a-z, 0-9, '.', '_', '-' (not '.' or '..')",
            ),
            "name" => (
                weir_broker::plugins::is_valid_plugin_name(value),
                "letters, digits, '.', '_', '-', not starting with '.'",
            ),
            _ => continue,
        };
        if !valid {
            return Problem::invalid_request(format!(
                "'{value}' is not a valid {key} name: use {what}"
            ))
            .into_response();
        }
    }
    next.run(req).await
}

/// Refuses joining, committing for, resetting or deleting a processor's consumer
/// group (`processor.<name>`): its offsets are stored with the processor's state, so
/// moving them alone would skip records or count them twice. Reading is allowed.
pub fn writable_group(group: &str) -> Result<(), Problem> {
    match group.strip_prefix(weir_broker::plugins::PROCESSOR_GROUP_PREFIX) {
        Some(processor) => Err(Problem::new(
            axum::http::StatusCode::CONFLICT,
            "group_reserved",
            format!(
                "group '{group}' is processor '{processor}''s: its offsets move with its state (POST /v1/processors/{processor}/reset)"
            ),
        )),
        None => Ok(()),
    }
}

/// A query parameter that names something (a member, a plugin) must not be empty.
pub fn non_empty<'a>(name: &str, value: &'a str) -> Result<&'a str, Problem> {
    if value.is_empty() {
        Err(Problem::invalid_request(format!(
            "query parameter '{name}' must not be empty"
        )))
    } else {
        Ok(value)
    }
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
            // 0 is a join or a position probe: no records, nothing moves.
            "max_records" => {
                self.limits.max_records =
                    parse_num::<usize>(name, value)?.min(server.max_fetch_records)
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

/// A subscription's own plugin: `filter=<plugin>`, with `filter_config=<JSON object>`
/// and/or `filter_config.<key>=<value>` (the value is read as JSON when it parses,
/// else as a string) replacing the plugin's manifest config.
#[derive(Debug, Default)]
pub struct FilterParams {
    plugin: Option<String>,
    config: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The names [`FilterParams::take`] knows, for error messages.
pub const FILTER_PARAMS: &str = "filter, filter_config, filter_config.<key>";

impl FilterParams {
    /// Takes a filter parameter; returns false for any other.
    pub fn take(&mut self, name: &str, value: &str) -> Result<bool, Problem> {
        if name == "filter" {
            self.plugin = Some(non_empty(name, value)?.to_string());
        } else if name == "filter_config" {
            let v: serde_json::Value = serde_json::from_str(value)
                .map_err(|e| Problem::invalid_request(format!("filter_config is not JSON: {e}")))?;
            let serde_json::Value::Object(map) = v else {
                return Err(Problem::invalid_request(
                    "filter_config must be a JSON object",
                ));
            };
            self.config.get_or_insert_with(Default::default).extend(map);
        } else if let Some(key) = name.strip_prefix("filter_config.") {
            let v = serde_json::from_str(value)
                .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
            self.config
                .get_or_insert_with(Default::default)
                .insert(key.to_string(), v);
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// The subscription filter asked for, if any.
    pub fn build(&self, broker: &Broker) -> Result<Option<SubscriptionFilter>, Problem> {
        let Some(plugin) = &self.plugin else {
            if self.config.is_some() {
                return Err(Problem::invalid_request(
                    "filter_config needs filter=<plugin>",
                ));
            }
            return Ok(None);
        };
        let pipelines = broker
            .pipelines()
            .ok_or_else(|| Problem::invalid_request("plugins are not enabled on this broker"))?;
        let config = self
            .config
            .as_ref()
            .map(|c| serde_json::Value::Object(c.clone()).to_string());
        Ok(Some(SubscriptionFilter::new(
            pipelines.registry(),
            plugin,
            config.as_deref(),
        )?))
    }
}

/// Runs `filter` (if any) over each read; the deliveries are empty without one.
pub async fn filter_reads(
    filter: Option<&SubscriptionFilter>,
    topic: &Topic,
    reads: Vec<(u32, ReadResult)>,
) -> Result<(Vec<(u32, ReadResult)>, Vec<Delivery>), Problem> {
    let Some(f) = filter else {
        return Ok((reads, Vec::new()));
    };
    let mut kept = Vec::with_capacity(reads.len());
    let mut deliveries = Vec::with_capacity(reads.len());
    for (p, r) in reads {
        let (r, d) = f.apply(topic, r).await?;
        kept.push((p, r));
        deliveries.push(d);
    }
    Ok((kept, deliveries))
}
