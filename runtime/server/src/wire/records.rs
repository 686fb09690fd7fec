//! Records → JSON, written by hand into one buffer: values published as JSON are
//! embedded verbatim (no parse, no re-serialise), binary values become `value_base64`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use weir_broker::groups::GroupFetch;
use weir_broker::pipeline::Delivery;
use weir_broker::plugins::packed::{self, Event};
use weir_broker::{ReadResult, RecordView};

/// Appends one record object. `position` adds `topic`/`partition` members for
/// responses that mix partitions.
pub fn write_record(out: &mut Vec<u8>, r: &RecordView<'_>, position: Option<(&str, u32)>) {
    write_fields(
        out,
        Fields {
            offset: r.offset,
            timestamp_ms: r.timestamp_ms,
            key: r.key,
            value: r.value,
            value_is_json: r.value_is_json(),
        },
        r.headers(),
        position,
    );
}

/// Appends one event a subscription's transform produced from the record at `offset`.
pub fn write_event(out: &mut Vec<u8>, offset: u64, e: &Event<'_>, position: Option<(&str, u32)>) {
    write_fields(
        out,
        Fields {
            offset,
            timestamp_ms: e.timestamp_ms,
            key: e.key,
            value: e.value,
            value_is_json: e.value_is_json(),
        },
        e.headers(),
        position,
    );
}

/// Appends what a read delivers: every record, or what the subscription's filter
/// kept or its transform produced. Calls `each` before every record written (to add
/// separators or framing), with the record's offset.
pub fn write_delivered(
    out: &mut Vec<u8>,
    read: &ReadResult,
    delivery: Option<&Delivery>,
    position: Option<(&str, u32)>,
    mut each: impl FnMut(&mut Vec<u8>, u64),
) {
    match delivery {
        None => {
            for r in read.records() {
                each(out, r.offset);
                write_record(out, &r, position);
            }
        }
        Some(Delivery::Keep(flags)) => {
            for (r, keep) in read.records().zip(flags) {
                if *keep {
                    each(out, r.offset);
                    write_record(out, &r, position);
                }
            }
        }
        Some(Delivery::Rewritten { packed, offsets }) => {
            // Checked when the plugin answered.
            let events = packed::decode(packed).unwrap_or_default();
            for (e, offset) in events.iter().zip(offsets) {
                each(out, *offset);
                write_event(out, *offset, e, position);
            }
        }
    }
}

struct Fields<'a> {
    offset: u64,
    timestamp_ms: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    value_is_json: bool,
}

fn write_fields<'a>(
    out: &mut Vec<u8>,
    r: Fields<'a>,
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
    position: Option<(&str, u32)>,
) {
    out.push(b'{');
    if let Some((topic, partition)) = position {
        out.extend_from_slice(b"\"topic\":");
        write_str(out, topic);
        out.extend_from_slice(b",\"partition\":");
        write_num(out, partition as i64);
        out.push(b',');
    }
    out.extend_from_slice(b"\"offset\":");
    write_num(out, r.offset as i64);
    out.extend_from_slice(b",\"timestamp_ms\":");
    write_num(out, r.timestamp_ms);
    match r.key {
        None => out.extend_from_slice(b",\"key\":null"),
        Some(k) => match std::str::from_utf8(k) {
            Ok(s) => {
                out.extend_from_slice(b",\"key\":");
                write_str(out, s);
            }
            Err(_) => {
                out.extend_from_slice(b",\"key\":null,\"key_base64\":");
                write_base64(out, k);
            }
        },
    }
    match r.value {
        None => out.extend_from_slice(b",\"value\":null"),
        Some(v) if r.value_is_json => {
            out.extend_from_slice(b",\"value\":");
            out.extend_from_slice(v);
        }
        Some(v) => {
            out.extend_from_slice(b",\"value_base64\":");
            write_base64(out, v);
        }
    }
    out.extend_from_slice(b",\"headers\":{");
    for (i, (name, value)) in headers.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        write_str(out, &String::from_utf8_lossy(value));
    }
    out.extend_from_slice(b"}}");
}

/// The body of a partition fetch.
pub fn fetch_response(result: &ReadResult, delivery: Option<&Delivery>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + result.count * 160);
    out.extend_from_slice(b"{\"records\":[");
    let mut first = true;
    write_delivered(&mut out, result, delivery, None, |out, _| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
    });
    out.extend_from_slice(b"],\"next_offset\":");
    write_num(&mut out, result.next_offset as i64);
    out.extend_from_slice(b",\"high_watermark\":");
    write_num(&mut out, result.high_watermark as i64);
    out.extend_from_slice(b",\"log_start_offset\":");
    write_num(&mut out, result.log_start_offset as i64);
    out.push(b'}');
    out
}

/// The body of a group fetch: member, generation, assignment, records of all its
/// partitions (with `topic` and `partition`), and each partition's next position.
/// `deliveries`, when not empty, holds the subscription filter's verdict per result.
pub fn group_fetch_response(topic: &str, f: &GroupFetch, deliveries: &[Delivery]) -> Vec<u8> {
    let count: usize = f.results.iter().map(|(_, r)| r.count).sum();
    let mut out = Vec::with_capacity(128 + count * 180);
    out.extend_from_slice(b"{\"member\":");
    write_str(&mut out, &f.member);
    out.extend_from_slice(b",\"generation\":");
    write_num(&mut out, f.generation as i64);
    out.extend_from_slice(b",\"assignment\":[");
    for (i, p) in f.partitions.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_num(&mut out, i64::from(*p));
    }
    out.extend_from_slice(b"],\"records\":[");
    let mut first = true;
    for (i, (p, r)) in f.results.iter().enumerate() {
        write_delivered(
            &mut out,
            r,
            deliveries.get(i),
            Some((topic, *p)),
            |out, _| {
                if !std::mem::take(&mut first) {
                    out.push(b',');
                }
            },
        );
    }
    out.extend_from_slice(b"],\"positions\":[");
    for (i, (p, r)) in f.results.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"partition\":");
        write_num(&mut out, i64::from(*p));
        out.extend_from_slice(b",\"next_offset\":");
        write_num(&mut out, r.next_offset as i64);
        out.extend_from_slice(b",\"high_watermark\":");
        write_num(&mut out, r.high_watermark as i64);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

fn write_num(out: &mut Vec<u8>, n: i64) {
    use std::io::Write as _;
    let _ = write!(out, "{n}");
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    let written = BASE64
        .encode_slice(bytes, &mut out[start..])
        .unwrap_or_default();
    out.truncate(start + written);
    out.push(b'"');
}
