//! W3C trace context on the HTTP edge: a publish request's `traceparent` header is
//! stamped on its records (those without one of their own), so the trace follows
//! the records through plugin chains into storage and out to readers; the spans
//! name it as `trace_id`.

use axum::http::HeaderMap;

/// The request's `traceparent`, if it is a valid version-00 one
/// (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, ids not all zero).
pub fn traceparent(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("traceparent")?.to_str().ok()?.trim();
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    let valid = parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0');
    valid.then_some(value)
}

/// The trace id of a valid `traceparent`.
pub fn trace_id(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_trace_contexts_are_taken() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("traceparent", v.parse().unwrap());
            traceparent(&h).map(str::to_string)
        };
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(with(good).as_deref(), Some(good));
        assert_eq!(trace_id(good), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert_eq!(with(bad), None, "{bad}");
        }
    }
}
