//! The answer to a publish.
//!
//! Without a pipeline: `{"offsets":[{"partition","offset"},...]}`, in request order.
//! Through a pipeline: `{"results":[...]}`, one entry per input record in request
//! order, with `status` (`stored`, `filtered`, `skipped`, `dead_lettered`), `outputs`
//! (`[{"topic","partition","offset"}]`), and when a step failed, `error`
//! (`{"plugin","version","kind","message"}`) and `dead_letter` (where the original
//! went).

use std::io::Write as _;

use weir_broker::Published;
use weir_broker::pipeline::{Placed, StepFailure};

/// The response body for `published`.
pub fn response(published: &Published) -> Vec<u8> {
    match published {
        Published::Plain(positions) => {
            let mut out = Vec::with_capacity(16 + positions.len() * 32);
            out.extend_from_slice(b"{\"offsets\":[");
            for (i, p) in positions.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let _ = write!(
                    out,
                    "{{\"partition\":{},\"offset\":{}}}",
                    p.partition, p.offset
                );
            }
            out.extend_from_slice(b"]}");
            out
        }
        Published::Pipeline(results) => {
            // Written by hand like the plain answer: this runs once per record.
            let mut out = Vec::with_capacity(16 + results.len() * 96);
            out.extend_from_slice(b"{\"results\":[");
            for (i, r) in results.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"status\":\"");
                out.extend_from_slice(r.status().as_bytes());
                out.extend_from_slice(b"\",\"outputs\":[");
                for (j, o) in r.outputs.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    write_placed(&mut out, o);
                }
                out.push(b']');
                if let Some(d) = &r.dead_letter {
                    out.extend_from_slice(b",\"dead_letter\":");
                    write_placed(&mut out, d);
                }
                if let Some(e) = &r.error {
                    out.extend_from_slice(b",\"error\":");
                    write_failure(&mut out, e);
                }
                out.push(b'}');
            }
            out.extend_from_slice(b"]}");
            out
        }
    }
}

/// `{"plugin","version"?,"kind","message"}`, strings escaped by serde_json.
fn write_failure(out: &mut Vec<u8>, f: &StepFailure) {
    let string = |out: &mut Vec<u8>, s: &str| {
        let _ = serde_json::to_writer(&mut *out, s);
    };
    out.extend_from_slice(b"{\"plugin\":");
    string(out, &f.plugin);
    if let Some(v) = &f.version {
        out.extend_from_slice(b",\"version\":");
        string(out, v);
    }
    out.extend_from_slice(b",\"kind\":");
    string(out, &f.kind);
    out.extend_from_slice(b",\"message\":");
    string(out, &f.message);
    out.push(b'}');
}

fn write_placed(out: &mut Vec<u8>, p: &Placed) {
    out.extend_from_slice(b"{\"topic\":");
    // Topic names are plain ASCII (validated), but escape anyway.
    let _ = serde_json::to_writer(&mut *out, &*p.topic);
    let _ = write!(
        out,
        ",\"partition\":{},\"offset\":{}}}",
        p.partition, p.offset
    );
}
