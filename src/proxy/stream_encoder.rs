//! A body compressed as it streams: the miss that fills a compressed entry
//! is sent to its client in the stored coding chunk by chunk (as nginx's
//! `gzip` does), and the same bytes are what the cache stores. Each chunk
//! costs the encoder's work on that chunk, never the whole body at once.

use std::io::Write;

use bytes::Bytes;

use super::codec::{BROTLI_QUALITY, ZSTD_LEVEL, brotli_window};
use crate::cache::negotiate::Coding;

/// One encoder writing into a buffer that each call drains.
pub enum StreamEncoder {
    /// gzip at its default level.
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    /// Brotli, its window sized to the announced length.
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    /// zstd at its default level.
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl std::fmt::Debug for StreamEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamEncoder")
    }
}

impl StreamEncoder {
    /// An encoder for `coding` of a body of about `len` bytes; `None` for
    /// identity.
    pub fn new(coding: Coding, len: usize) -> std::io::Result<Option<Self>> {
        let out = Vec::new();
        Ok(Some(match coding {
            Coding::Identity => return Ok(None),
            Coding::Gzip => StreamEncoder::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::default(),
            )),
            Coding::Brotli => StreamEncoder::Brotli(Box::new(brotli::CompressorWriter::new(
                out,
                16 * 1024,
                BROTLI_QUALITY,
                brotli_window(len),
            ))),
            Coding::Zstd => {
                StreamEncoder::Zstd(zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?)
            }
        }))
    }

    /// Encodes `chunk`; returns what the encoder has ready (often nothing:
    /// it waits for a block's worth).
    pub fn push(&mut self, chunk: &[u8]) -> std::io::Result<Bytes> {
        match self {
            StreamEncoder::Gzip(encoder) => {
                encoder.write_all(chunk)?;
                Ok(Bytes::from(std::mem::take(encoder.get_mut())))
            }
            StreamEncoder::Brotli(encoder) => {
                encoder.write_all(chunk)?;
                Ok(Bytes::from(std::mem::take(encoder.get_mut())))
            }
            StreamEncoder::Zstd(encoder) => {
                encoder.write_all(chunk)?;
                Ok(Bytes::from(std::mem::take(encoder.get_mut())))
            }
        }
    }

    /// Ends the stream; returns the last bytes.
    pub fn finish(self) -> std::io::Result<Bytes> {
        let rest = match self {
            StreamEncoder::Gzip(encoder) => encoder.finish()?,
            StreamEncoder::Brotli(mut encoder) => {
                encoder.flush()?;
                encoder.into_inner()
            }
            StreamEncoder::Zstd(encoder) => encoder.finish()?,
        };
        Ok(Bytes::from(rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn decode(coding: Coding, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match coding {
            Coding::Gzip => flate2::read::GzDecoder::new(body).read_to_end(&mut out),
            Coding::Brotli => brotli::Decompressor::new(body, 4096).read_to_end(&mut out),
            Coding::Zstd => zstd::stream::read::Decoder::new(body)
                .unwrap()
                .read_to_end(&mut out),
            Coding::Identity => unreachable!(),
        }
        .unwrap();
        out
    }

    #[test]
    fn chunks_encoded_as_they_come_decode_to_the_body() {
        let body: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        for coding in [Coding::Gzip, Coding::Brotli, Coding::Zstd] {
            let mut encoder = StreamEncoder::new(coding, body.len()).unwrap().unwrap();
            let mut sent = Vec::new();
            for chunk in body.chunks(16 * 1024) {
                sent.extend_from_slice(&encoder.push(chunk).unwrap());
            }
            sent.extend_from_slice(&encoder.finish().unwrap());
            assert!(sent.len() < body.len() / 4, "{coding:?} compresses");
            assert_eq!(decode(coding, &sent), body, "{coding:?}");
        }
        assert!(StreamEncoder::new(Coding::Identity, 1).unwrap().is_none());
    }
}
