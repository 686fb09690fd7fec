//! The Kafka listener's request decoding: any frame (header, body, a produce's record
//! batches with any codec) decodes or is refused with a reason, never a panic, a
//! hang or a decompression that outgrows its bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    // The limit a 64 KiB frame limit gives a batch's expansion.
    let _ = weir_kafka::decode_frame(frame, 8 * (64 << 10));
});
