//! The produce body parsers (JSON, NDJSON, CloudEvents structured, batch and binary
//! mode): any body and headers give records or a 4xx problem, never a panic or a 5xx.
//!
//! Input layout, so seeds are plain text: the first byte picks the format; for binary
//! mode, `name: value` lines up to an empty line become `ce-` headers; the rest is the
//! body.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use weir_server::wire::produce::{BodyFormat, parse};

fuzz_target!(|input: &[u8]| {
    let Some((&selector, mut body)) = input.split_first() else {
        return;
    };
    let format = match selector % 5 {
        0 => BodyFormat::Json,
        1 => BodyFormat::Ndjson,
        2 => BodyFormat::CloudEventBinary,
        3 => BodyFormat::CloudEventStructured,
        _ => BodyFormat::CloudEventBatch,
    };
    let mut headers = HeaderMap::new();
    if matches!(format, BodyFormat::CloudEventBinary) {
        while let Some(end) = body.iter().position(|&b| b == b'\n') {
            let line = &body[..end];
            body = &body[end + 1..];
            if line.is_empty() {
                break;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let name = [b"ce-".as_slice(), &line[..colon]].concat();
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(&name),
                HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
            ) {
                headers.append(n, v);
            }
        }
    }
    match parse(format, &headers, body) {
        Ok(records) => {
            std::hint::black_box(records.len());
        }
        Err(problem) => {
            let status = problem.status().as_u16();
            assert!((400..500).contains(&status), "{status}: {}", problem.detail());
        }
    }
});
