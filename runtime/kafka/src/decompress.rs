//! Decompressing a produced batch, bounded: a few megabytes of gzip can expand to
//! gigabytes, so every codec stops at a limit (the frame limit times
//! [`EXPANSION`]) and the batch is refused instead of exhausting memory.

use std::io::Read;

use anyhow::{Context, bail};
use bytes::{Buf, Bytes};
use kafka_protocol::records::Compression;

/// How much larger than the largest frame a batch may decompress to.
pub(crate) const EXPANSION: usize = 8;

/// Snappy as Kafka's Java client frames it (xerial's stream header).
const XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

/// `compressed` decompressed with `compression`, at most `limit` bytes.
pub(crate) fn bounded(
    compressed: &mut Bytes,
    compression: Compression,
    limit: usize,
) -> anyhow::Result<Bytes> {
    let input = compressed.copy_to_bytes(compressed.remaining());
    let out = match compression {
        Compression::None => return Ok(input),
        Compression::Gzip => read_at_most(flate2::read::GzDecoder::new(input.reader()), limit)?,
        Compression::Lz4 => read_at_most(
            lz4::Decoder::new(input.reader()).context("lz4 frame header")?,
            limit,
        )?,
        Compression::Zstd => {
            let mut d =
                zstd::stream::read::Decoder::new(input.reader()).context("zstd frame header")?;
            // Its window (memory held while decoding) at most 16 MiB, not zstd's
            // default 128 MiB: producers' levels use far less.
            d.window_log_max(24).context("zstd window")?;
            read_at_most(d, limit)?
        }
        Compression::Snappy => snappy(&input, limit)?,
    };
    Ok(Bytes::from(out))
}

fn read_at_most(reader: impl Read, limit: usize) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .context("decompressing")?;
    if out.len() > limit {
        bail!("the batch decompresses to more than {limit} bytes");
    }
    Ok(out)
}

/// Raw snappy, or xerial's framing of it (length-prefixed raw blocks after a
/// header): each block's length is read from its header before anything is
/// allocated.
fn snappy(input: &[u8], limit: usize) -> anyhow::Result<Vec<u8>> {
    let raw = |block: &[u8], out: &mut Vec<u8>| -> anyhow::Result<()> {
        let len = snap::raw::decompress_len(block).context("snappy block header")?;
        if out.len() + len > limit {
            bail!("the batch decompresses to more than {limit} bytes");
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .context("snappy block")?;
        Ok(())
    };
    let mut out = Vec::new();
    let Some(mut rest) = input.strip_prefix(&XERIAL_MAGIC[..]) else {
        raw(input, &mut out)?;
        return Ok(out);
    };
    while !rest.is_empty() {
        if rest.len() < 4 {
            bail!("a truncated snappy block length");
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let block = rest.get(4..4 + len).context("a truncated snappy block")?;
        raw(block, &mut out)?;
        rest = &rest[4 + len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_batch_that_expands_past_the_bound_is_refused_by_every_codec() {
        let zeros = vec![0u8; 4 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&zeros).unwrap();
        let gz = gz.finish().unwrap();
        let zstd = zstd::encode_all(&zeros[..], 3).unwrap();
        let mut lz = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
        lz.write_all(&zeros).unwrap();
        let (lz, _) = lz.finish();
        let snappy = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
        for (codec, compressed) in [
            (Compression::Gzip, gz),
            (Compression::Zstd, zstd),
            (Compression::Lz4, lz),
            (Compression::Snappy, snappy),
        ] {
            assert!(compressed.len() < 1 << 20, "{codec:?} compresses zeros");
            let refused = bounded(&mut Bytes::from(compressed.clone()), codec, 1 << 20);
            assert!(refused.is_err(), "{codec:?}");
            let whole = bounded(&mut Bytes::from(compressed), codec, 8 << 20).unwrap();
            assert_eq!(whole.len(), 4 << 20, "{codec:?}");
        }
    }
}
