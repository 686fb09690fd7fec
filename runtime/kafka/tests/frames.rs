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
