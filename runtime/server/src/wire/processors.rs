//! Processors as the API shows them: the processor runtime's status and state
//! entries mapped to JSON here, so their shapes are the server's to keep stable.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use weir_connect::control::Desired;
use weir_processors::{ProcessorStatus, StateEntry};

/// `GET /v1/processors/{name}`.
pub fn processor_status(s: &ProcessorStatus) -> Value {
    let mut v = json!({
        "name": s.name,
        "state": s.state.as_str(),
        "desired": match s.desired {
            Desired::Running => "running",
            Desired::Paused | Desired::Stopped => "paused",
        },
        "version": s.version,
        "generation": s.generation,
        "state_version": s.state_version,
        "inputs": s.inputs,
        "outputs": s.outputs,
        "group": s.group,
        "lag_records": s.lag_records,
        "watermark_ms": s.watermark_ms,
        "windows_open": s.windows_open,
        "timers": s.timers,
        "partitions": s.partitions.iter().map(|p| json!({
            "topic": p.topic,
            "partition": p.partition,
            "next_offset": p.next_offset,
            "watermark_ms": p.watermark_ms,
            "windows_open": p.windows_open,
            "timers": p.timers,
        })).collect::<Vec<_>>(),
        "counters": s.counters,
    });
    if let Some(t) = s.last_success_ms {
        v["last_success_ms"] = json!(t);
    }
    if let Some(e) = &s.last_error {
        v["last_error"] = json!({ "at_ms": e.at_ms, "message": e.message });
    }
    v
}

/// A state entry: key and value as text when they are UTF-8, else base64
/// (`key_base64`, `value_base64`).
pub fn state_entry(e: &StateEntry) -> Value {
    let mut v = json!({ "partition": e.partition });
    for (name, bytes) in [("key", &e.key), ("value", &e.value)] {
        match std::str::from_utf8(bytes) {
            Ok(text) => v[name] = json!(text),
            Err(_) => v[format!("{name}_base64")] = json!(BASE64.encode(bytes)),
        }
    }
    v
}
