//! The fuzz target's seeds (real request frames, hand-encoded) decode: the fuzzer
//! starts from inputs that reach past the header.

#[test]
fn the_fuzz_seeds_are_requests_weir_decodes() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/seeds/kafka_frame");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let frame = std::fs::read(&path).unwrap();
        let decoded = weir_kafka::decode_frame(&frame, 1 << 20);
        assert!(decoded.is_ok(), "{}: {decoded:?}", path.display());
        seen += 1;
    }
    assert!(seen >= 3);
}

#[test]
fn counts_from_the_wire_reserve_no_more_than_the_frame_holds() {
    // Metadata v4 asking for 2^31 - 1 topics in a 20-byte frame: refused, not an
    // allocation of hundreds of gigabytes (which would abort the process).
    let mut frame = vec![0, 3, 0, 4, 0, 0, 0, 1, 0, 4];
    frame.extend_from_slice(b"kcat");
    frame.extend_from_slice(&i32::MAX.to_be_bytes());
    assert!(weir_kafka::decode_frame(&frame, 1 << 20).is_err());
    // The same through a compact array (Metadata v9, flexible): a varint count.
    let mut frame = vec![0, 3, 0, 9, 0, 0, 0, 1, 0, 4];
    frame.extend_from_slice(b"kcat");
    frame.push(0); // header tags
    frame.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(weir_kafka::decode_frame(&frame, 1 << 20).is_err());
}
