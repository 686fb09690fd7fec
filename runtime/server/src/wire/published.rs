//! The answer to a publish.
//!
//! Without a pipeline: `{"offsets":[{"partition","offset"},...]}`, in request order.
//! Through a pipeline: `{"results":[...]}`, one entry per input record in request
//! order, with `status` (`stored`, `filtered`, `skipped`, `dead_lettered`), `outputs`
//! (`[{"topic","partition","offset"}]`), and when a step failed, `error`
//! (`{"plugin","version","kind","message"}`) and `dead_letter` (where the original
//! went).

use std::io::Write as _;

use serde::Serialize;
use weir_broker::Published;
use weir_broker::pipeline::RecordResult;

#[derive(Serialize)]
struct Entry<'a> {
    status: &'static str,
    #[serde(flatten)]
    result: &'a RecordResult,
}

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
            let entries: Vec<Entry<'_>> = results
                .iter()
                .map(|r| Entry {
                    status: r.status(),
                    result: r,
                })
                .collect();
            let mut out = Vec::with_capacity(16 + results.len() * 64);
            out.extend_from_slice(b"{\"results\":");
            // Serialising plain structs into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, &entries);
            out.push(b'}');
            out
        }
    }
}
