use super::*;
use crate::error::Result;

fn sample(n: usize) -> EncodedBatch {
    let mut b = BatchBuilder::default();
    for i in 0..n {
        let key = format!("k{i}");
        let value = format!("v{i}");
        b.push(
            1000 + i as i64,
            ATTR_VALUE_JSON,
            Some(key.as_bytes()),
            if i == 1 { None } else { Some(value.as_bytes()) },
            [("h", b"x".as_slice()), ("trace", b"abc".as_slice())],
        )
        .unwrap();
    }
    b.finish()
}

#[test]
fn shared_headers_follow_each_records_own() {
    let mut b =
        BatchBuilder::with_shared_headers(0, [("weir-lineage", b"f@1,t@2".as_slice())]).unwrap();
    b.push(1, 0, None, Some(b"a"), [("own", b"1".as_slice())])
        .unwrap();
    b.push(2, 0, None, Some(b"b"), []).unwrap();
    let sealed = b.finish().seal(0);
    let batch = batches(&sealed).next().unwrap().unwrap();
    let recs: Vec<_> = batch.records().collect::<Result<_>>().unwrap();
    let h0: Vec<_> = recs[0].headers().collect();
    assert_eq!(h0, [("own", &b"1"[..]), ("weir-lineage", &b"f@1,t@2"[..])]);
    assert_eq!(recs[0].header_count(), 2);
    let h1: Vec<_> = recs[1].headers().collect();
    assert_eq!(h1, [("weir-lineage", &b"f@1,t@2"[..])]);
    // No shared headers given: the plain format.
    let plain = BatchBuilder::with_shared_headers(0, []).unwrap().finish();
    assert_eq!(plain.len(), BATCH_HEADER_LEN);
    // Unknown flag bits are corruption, not silently ignored.
    let mut bad = sealed.clone();
    bad[9] = 0x80;
    let crc = crc32c::crc32c(&bad[8..]);
    bad[4..8].copy_from_slice(&crc.to_le_bytes());
    assert!(batches(&bad).next().unwrap().is_err());
}

#[test]
fn round_trip() {
    let sealed = sample(3).seal(42);
    let batches: Vec<_> = batches(&sealed).collect::<Result<_>>().unwrap();
    assert_eq!(batches.len(), 1);
    let h = batches[0].header;
    assert_eq!((h.base_offset, h.record_count, h.end_offset()), (42, 3, 45));
    assert_eq!(h.max_timestamp_ms, 1002);
    let recs: Vec<_> = batches[0].records().collect::<Result<_>>().unwrap();
    assert_eq!(recs[0].offset, 42);
    assert_eq!(recs[2].offset, 44);
    assert_eq!(recs[1].value, None);
    assert_eq!(recs[2].key, Some(&b"k2"[..]));
    assert!(recs[0].value_is_json());
    let headers: Vec<_> = recs[0].headers().collect();
    assert_eq!(headers, vec![("h", &b"x"[..]), ("trace", &b"abc"[..])]);
}

#[test]
fn concatenated_batches_form_a_chunk() {
    let mut chunk = Vec::new();
    sample(2).seal_into(0, &mut chunk);
    sample(5).seal_into(2, &mut chunk);
    let headers: Vec<_> = batches(&chunk).map(|b| b.unwrap().header).collect();
    assert_eq!(headers[1].base_offset, 2);
    assert_eq!(headers[1].end_offset(), 7);
}

#[test]
fn every_flipped_bit_is_detected() {
    let sealed = sample(2).seal(7);
    for byte in 0..sealed.len() {
        for bit in 0..8 {
            let mut damaged = sealed.clone();
            damaged[byte] ^= 1 << bit;
            let ok = batches(&damaged).all(|b| b.is_ok());
            assert!(!ok, "flip at byte {byte} bit {bit} went unnoticed");
        }
    }
}

#[test]
fn truncation_is_detected() {
    let sealed = sample(2).seal(7);
    for cut in 1..sealed.len() {
        assert!(
            batches(&sealed[..cut]).any(|b| b.is_err()),
            "cut at {cut} went unnoticed"
        );
    }
}
