//! The content codings at work: a whole body compressed once for storing
//! (called off the runtime threads), and a stored compressed body decoded
//! as it is sent to a client that does not take its coding (streamed in
//! pieces, so a large body neither waits nor sits in memory decoded).

use std::io::{Cursor, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_compression::Level;
use async_compression::tokio::bufread::{
    BrotliDecoder, BrotliEncoder, GzipDecoder, GzipEncoder, ZstdDecoder, ZstdEncoder,
};
use bytes::Bytes;
use futures_util::Stream;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, BufReader};
use tokio_util::io::ReaderStream;

use crate::cache::negotiate::Coding;
use crate::upstream::body::BodyError;

/// Brotli's quality for stored bodies. 4, not nginx's default 6: on an
/// 8 KiB page 5 and 6 take 2 ms (their encoder sets up large tables for
/// every body), 4 takes 0.08 ms for a body 3% larger.
pub(super) const BROTLI_QUALITY: u32 = 4;
/// Brotli's largest window (2^22 bytes, the format's default); a smaller
/// body gets a window just over its size, so the encoder does not set up
/// megabytes of tables to compress a kilobyte.
const BROTLI_MAX_WINDOW: u32 = 22;
/// zstd's default level.
pub(super) const ZSTD_LEVEL: i32 = 3;
/// Decoded bytes sent per frame.
const DECODED_CHUNK: usize = 16 * 1024;
/// The level a body is re-encoded at as it is sent: every such answer
/// pays for it, so a fast one (gzip 4 costs about half of gzip 6, for a
/// body a few per cent larger).
const ON_THE_FLY_LEVEL: i32 = 4;

/// Brotli's window for a body of `len` bytes: just over its size.
pub(super) fn brotli_window(len: usize) -> u32 {
    (usize::BITS - len.leading_zeros()).clamp(10, BROTLI_MAX_WINDOW)
}

/// `body` compressed in `coding` (identity: `None`).
pub fn encode(coding: Coding, body: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
    let out = Vec::with_capacity(body.len() / 3);
    let encoded = match coding {
        Coding::Identity => return Ok(None),
        Coding::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            encoder.write_all(body)?;
            encoder.finish()?
        }
        Coding::Brotli => {
            let window = brotli_window(body.len());
            let mut encoder = brotli::CompressorWriter::new(out, 16 * 1024, BROTLI_QUALITY, window);
            encoder.write_all(body)?;
            encoder.flush()?;
            encoder.into_inner()
        }
        Coding::Zstd => zstd::stream::encode_all(body, ZSTD_LEVEL)?,
    };
    Ok(Some(encoded))
}

/// A stored body in `coding`, decoded (and re-encoded in another coding,
/// when the client takes one) as it is sent.
pub struct RecodedBody {
    stream: ReaderStream<Box<dyn AsyncRead + Send + Unpin>>,
}

impl std::fmt::Debug for RecodedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecodedBody")
    }
}

impl RecodedBody {
    /// Decodes `body` (in `coding`) and encodes it in `to`.
    pub fn new(coding: Coding, body: Bytes, to: Coding) -> Self {
        let source = Cursor::new(body);
        let decoded: Box<dyn AsyncRead + Send + Unpin> = match coding {
            Coding::Gzip => Box::new(GzipDecoder::new(source)),
            Coding::Brotli => Box::new(BrotliDecoder::new(source)),
            Coding::Zstd => Box::new(ZstdDecoder::new(source)),
            Coding::Identity => Box::new(source),
        };
        let level = Level::Precise(ON_THE_FLY_LEVEL);
        let reader: Box<dyn AsyncRead + Send + Unpin> = match to {
            Coding::Identity => decoded,
            Coding::Gzip => Box::new(GzipEncoder::with_quality(BufReader::new(decoded), level)),
            Coding::Brotli => Box::new(BrotliEncoder::with_quality(BufReader::new(decoded), level)),
            Coding::Zstd => Box::new(ZstdEncoder::with_quality(BufReader::new(decoded), level)),
        };
        RecodedBody {
            stream: ReaderStream::with_capacity(reader, DECODED_CHUNK),
        }
    }
}

impl Body for RecodedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match Pin::new(&mut self.get_mut().stream).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            // A stored body that does not decode: the client's connection
            // is cut, so the truncation shows.
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(BodyError::Decode(err)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn text() -> Vec<u8> {
        (0..2000)
            .flat_map(|i| format!("<li>item {i} of the list</li>\n").into_bytes())
            .collect()
    }

    #[tokio::test]
    async fn every_coding_round_trips() {
        let original = text();
        for coding in [Coding::Gzip, Coding::Brotli, Coding::Zstd] {
            let encoded = encode(coding, &original).unwrap().unwrap();
            assert!(
                encoded.len() < original.len() / 4,
                "{coding:?}: {}",
                encoded.len()
            );
            let encoded = Bytes::from(encoded);
            let decoded = RecodedBody::new(coding, encoded.clone(), Coding::Identity)
                .collect()
                .await
                .unwrap()
                .to_bytes();
            assert_eq!(decoded, original, "{coding:?}");
            for to in [Coding::Gzip, Coding::Brotli, Coding::Zstd] {
                let recoded = RecodedBody::new(coding, encoded.clone(), to)
                    .collect()
                    .await
                    .unwrap()
                    .to_bytes();
                let back = RecodedBody::new(to, recoded, Coding::Identity)
                    .collect()
                    .await
                    .unwrap()
                    .to_bytes();
                assert_eq!(back, original, "{coding:?} to {to:?}");
            }
        }
        assert_eq!(encode(Coding::Identity, b"x").unwrap(), None);
    }

    #[tokio::test]
    async fn a_body_that_does_not_decode_is_an_error() {
        let result = RecodedBody::new(
            Coding::Gzip,
            Bytes::from_static(b"not gzip at all"),
            Coding::Identity,
        )
        .collect()
        .await;
        assert!(result.is_err());
    }
}
