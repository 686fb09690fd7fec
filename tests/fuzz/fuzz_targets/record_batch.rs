//! The record batch codec: stored bytes of any shape decode or fail with an error
//! (never a panic, never a record outside the batch), and records that encode come
//! back exactly as they went in.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use weir_storage::{BatchBuilder, batch};

#[derive(Arbitrary, Debug)]
struct Record {
    timestamp_ms: i64,
    attributes: u8,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
}

#[derive(Arbitrary, Debug)]
enum Input {
    /// Bytes read back as a stored chunk (damage, or a format bug).
    Stored(Vec<u8>),
    /// Records encoded, sealed at `base` and decoded again.
    RoundTrip { base: u32, records: Vec<Record> },
}

fuzz_target!(|input: Input| match input {
    Input::Stored(bytes) => {
        for b in batch::batches(&bytes) {
            let Ok(b) = b else { break };
            let (start, end) = (b.header.base_offset, b.header.end_offset());
            for r in b.records() {
                let Ok(r) = r else { break };
                assert!(r.offset >= start && r.offset < end, "record outside its batch");
                for (name, value) in r.headers() {
                    std::hint::black_box((name, value));
                }
            }
        }
    }
    Input::RoundTrip { base, records } => {
        let mut builder = BatchBuilder::default();
        let mut kept = Vec::new();
        for r in &records {
            let headers = r.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()));
            if builder
                .push(r.timestamp_ms, r.attributes, r.key.as_deref(), r.value.as_deref(), headers)
                .is_ok()
            {
                kept.push(r);
            }
        }
        if kept.is_empty() {
            return;
        }
        let base = u64::from(base);
        let sealed = builder.finish().seal(base);
        let batches: Vec<_> = batch::batches(&sealed).collect::<Result<_, _>>().unwrap();
        assert_eq!(batches.len(), 1);
        let decoded: Vec<_> = batches[0].records().collect::<Result<_, _>>().unwrap();
        assert_eq!(decoded.len(), kept.len());
        for (i, (got, want)) in decoded.iter().zip(&kept).enumerate() {
            assert_eq!(got.offset, base + i as u64);
            assert_eq!(got.timestamp_ms, want.timestamp_ms);
            assert_eq!(got.attributes, want.attributes);
            assert_eq!(got.key, want.key.as_deref());
            assert_eq!(got.value, want.value.as_deref());
            let headers: Vec<_> = got.headers().collect();
            let expected: Vec<_> =
                want.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
            assert_eq!(headers, expected);
        }
        // Any single flipped bit is caught by the CRC.
        let mut damaged = sealed.clone();
        let at = (base as usize) % damaged.len();
        damaged[at] ^= 1;
        assert!(batch::batches(&damaged).any(|b| b.is_err()), "a flipped bit at {at} went unseen");
    }
});
