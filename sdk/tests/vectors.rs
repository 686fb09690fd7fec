//! The packed-batch conformance vectors shared with the Python and JS SDKs
//! (`sdk/vectors/packed.json`): the Rust codec must produce and accept exactly these
//! bytes, and refuse each malformed batch with the same reason.

use serde_json::Value;
use weir_sdk::packed::{self, Writer};

fn vectors() -> Value {
    serde_json::from_str(include_str!("../vectors/packed.json")).expect("vectors are JSON")
}

fn unhex(v: &Value) -> Option<Vec<u8>> {
    let s = v.as_str()?;
    Some(
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect(),
    )
}

#[test]
fn the_encoder_writes_and_the_decoder_reads_every_valid_vector() {
    let all = vectors();
    for v in all["valid"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let events = v["events"].as_array().unwrap();
        let headers: Vec<Vec<(String, Vec<u8>)>> = events
            .iter()
            .map(|e| {
                e["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| (h[0].as_str().unwrap().to_string(), unhex(&h[1]).unwrap()))
                    .collect()
            })
            .collect();
        let mut w = Writer::default();
        for (e, hs) in events.iter().zip(&headers) {
            w.push(
                e["timestamp_ms"].as_i64().unwrap(),
                e["flags"].as_u64().unwrap() as u8,
                unhex(&e["key"]).as_deref(),
                unhex(&e["value"]).as_deref(),
                hs.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
            );
        }
        let expected = unhex(&v["packed"]).unwrap();
        assert_eq!(w.finish(), expected, "{name}: encoded bytes");
        let decoded = packed::decode(&expected).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded.len(), events.len(), "{name}");
        for ((d, e), hs) in decoded.iter().zip(events).zip(&headers) {
            assert_eq!(
                d.timestamp_ms,
                e["timestamp_ms"].as_i64().unwrap(),
                "{name}"
            );
            assert_eq!(d.key.map(<[u8]>::to_vec), unhex(&e["key"]), "{name}");
            assert_eq!(d.value.map(<[u8]>::to_vec), unhex(&e["value"]), "{name}");
            let got: Vec<(String, Vec<u8>)> = d
                .headers()
                .map(|(n, v)| (n.to_string(), v.to_vec()))
                .collect();
            assert_eq!(&got, hs, "{name}");
        }
    }
}

#[test]
fn every_malformed_vector_is_refused_with_its_reason() {
    let all = vectors();
    for v in all["malformed"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let err = packed::decode(&unhex(&v["packed"]).unwrap()).expect_err(name);
        assert_eq!(err.0, v["error"].as_str().unwrap(), "{name}");
    }
}
