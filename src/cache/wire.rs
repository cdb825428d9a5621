//! The compact binary form of a stored response, for the shared tier: one
//! value per entry, written whole (a reader gets all of it or none), read
//! without copying the body, and checked like a snapshot entry.
//!
//! Version 1, integers big-endian:
//!
//! ```text
//! "CPW" 0x01                      magic and version
//! u64 stored_at (Unix ms)         when the fetching instance received it
//! u64 fresh_until (Unix ms)       0: no expiry
//! u32 initial_age (s)             its age when received
//! u8  flags                       1 forbids_stale, 2 no_cache, 4 immutable
//! u32 stale_while_revalidate (s)
//! u32 stale_if_error (s)
//! u16 status
//! u16 n, n x (u8 name length, name, u32 value length, value)    headers
//! u16 n, n x (u8 name length, name, u8 present, u32 length, value)  vary
//! u16 n, n x (u16 length, tag)                                  tags
//! u32 body length, body
//! ```
//!
//! Times are wall-clock, so `Age` on every instance counts from when the
//! fetching instance received the response (clocks kept by NTP agree to
//! well within the second `Age` is counted in).

use std::time::{Duration, SystemTime};

use bytes::{Buf, BufMut, Bytes};
use http::{HeaderName, HeaderValue};

use super::admit::{MAX_FIELDS, Parts, admit};
use super::entry::{CachedResponse, ReuseRules};
use crate::clock::{from_unix_millis, unix_millis};

const MAGIC: &[u8; 3] = b"CPW";
const VERSION: u8 = 1;

const FORBIDS_STALE: u8 = 1;
const NO_CACHE: u8 = 2;
const IMMUTABLE: u8 = 4;

/// Why a value could not be read as an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not this format, or a version this build does not read.
    #[error("not a version-{VERSION} stored response")]
    Version,
    /// Ends before its declared parts.
    #[error("truncated stored response")]
    Truncated,
    /// A name or value that is not a valid header field.
    #[error("invalid header field in a stored response")]
    Field,
    /// Well-formed, but not something the proxy would have stored.
    #[error("stored response refused: {0}")]
    Refused(&'static str),
}

/// `entry` in the wire form, or `None` if a part does not fit the form's
/// length fields (a header value over 4 GiB, a name over 255 bytes).
pub fn encode(entry: &CachedResponse) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(64 + entry.heap_bytes());
    out.put_slice(MAGIC);
    out.put_u8(VERSION);
    out.put_u64(unix_millis(entry.stored_at()));
    out.put_u64(entry.fresh_until().map_or(0, unix_millis));
    out.put_u32(u32::try_from(entry.initial_age().as_secs()).unwrap_or(u32::MAX));
    let rules = entry.rules();
    let flags = (if rules.forbids_stale {
        FORBIDS_STALE
    } else {
        0
    }) | (if rules.no_cache { NO_CACHE } else { 0 })
        | (if rules.immutable { IMMUTABLE } else { 0 });
    out.put_u8(flags);
    out.put_u32(seconds(rules.stale_while_revalidate));
    out.put_u32(seconds(rules.stale_if_error));
    out.put_u16(entry.status.as_u16());
    let headers: Vec<_> = entry.headers.raw().collect();
    out.put_u16(u16::try_from(headers.len()).ok()?);
    for (name, value) in headers {
        put_name(&mut out, name)?;
        out.put_u32(u32::try_from(value.len()).ok()?);
        out.put_slice(value);
    }
    let vary = entry.vary().pairs();
    out.put_u16(u16::try_from(vary.len()).ok()?);
    for (name, value) in vary {
        put_name(&mut out, name)?;
        match value {
            Some(value) => {
                out.put_u8(1);
                out.put_u32(u32::try_from(value.len()).ok()?);
                out.put_slice(value.as_bytes());
            }
            None => out.put_u8(0),
        }
    }
    let tags = entry.tags();
    out.put_u16(u16::try_from(tags.len()).ok()?);
    for tag in tags {
        out.put_u16(u16::try_from(tag.len()).ok()?);
        out.put_slice(tag.as_bytes());
    }
    out.put_u32(u32::try_from(entry.body.len()).ok()?);
    out.put_slice(&entry.body);
    Some(out)
}

/// Reads a value written by [`encode`]; the body shares `value`'s buffer.
/// The entry must pass the checks a snapshot entry passes ([`admit`]).
pub fn decode(
    value: Bytes,
    now: SystemTime,
    max_object_size: u64,
) -> Result<CachedResponse, WireError> {
    let mut reader = Reader(value);
    if reader.take(3)? != MAGIC.as_slice() || reader.u8()? != VERSION {
        return Err(WireError::Version);
    }
    let stored_at = from_unix_millis(reader.u64()?);
    let fresh_until = match reader.u64()? {
        0 => None,
        ms => Some(from_unix_millis(ms)),
    };
    let initial_age = Duration::from_secs(u64::from(reader.u32()?));
    let flags = reader.u8()?;
    let rules = ReuseRules {
        forbids_stale: flags & FORBIDS_STALE != 0,
        no_cache: flags & NO_CACHE != 0,
        immutable: flags & IMMUTABLE != 0,
        stale_while_revalidate: Duration::from_secs(u64::from(reader.u32()?)),
        stale_if_error: Duration::from_secs(u64::from(reader.u32()?)),
    };
    let status = reader.u16()?;
    let count = usize::from(reader.u16()?);
    if count > MAX_FIELDS {
        return Err(WireError::Refused("too many header fields"));
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let name = reader.name()?;
        let len = reader.len32()?;
        headers.push((name, reader.value(len)?));
    }
    let count = usize::from(reader.u16()?);
    let mut vary = Vec::with_capacity(count.min(MAX_FIELDS));
    for _ in 0..count {
        let name = reader.name()?;
        let value = match reader.u8()? {
            0 => None,
            _ => {
                let len = reader.len32()?;
                Some(reader.value(len)?)
            }
        };
        vary.push((name, value));
    }
    let count = usize::from(reader.u16()?);
    let mut tags = Vec::with_capacity(count.min(MAX_FIELDS));
    for _ in 0..count {
        let len = usize::from(reader.u16()?);
        let tag = std::str::from_utf8(&reader.take(len)?)
            .map_err(|_| WireError::Field)?
            .into();
        tags.push(tag);
    }
    let len = reader.len32()?;
    if len as u64 > max_object_size {
        return Err(WireError::Refused("body larger than the object limit"));
    }
    let body = reader.take(len)?;
    if reader.0.has_remaining() {
        return Err(WireError::Truncated);
    }
    let parts = Parts {
        status,
        headers,
        body,
        stored_at,
        fresh_until,
        initial_age,
        vary,
        rules,
        tags,
    };
    admit(parts, now, max_object_size).map_err(WireError::Refused)
}

fn seconds(duration: Duration) -> u32 {
    u32::try_from(duration.as_secs()).unwrap_or(u32::MAX)
}

fn put_name(out: &mut Vec<u8>, name: &HeaderName) -> Option<()> {
    out.put_u8(u8::try_from(name.as_str().len()).ok()?);
    out.put_slice(name.as_str().as_bytes());
    Some(())
}

/// Reads the form's parts, each checked against what is left.
struct Reader(Bytes);

impl Reader {
    fn take(&mut self, len: usize) -> Result<Bytes, WireError> {
        if self.0.remaining() < len {
            return Err(WireError::Truncated);
        }
        Ok(self.0.split_to(len))
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        self.0.try_get_u8().map_err(|_| WireError::Truncated)
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        self.0.try_get_u16().map_err(|_| WireError::Truncated)
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        self.0.try_get_u32().map_err(|_| WireError::Truncated)
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        self.0.try_get_u64().map_err(|_| WireError::Truncated)
    }

    /// A 32-bit length that the rest of the value can hold.
    fn len32(&mut self) -> Result<usize, WireError> {
        let len = usize::try_from(self.u32()?).map_err(|_| WireError::Truncated)?;
        if len > self.0.remaining() {
            return Err(WireError::Truncated);
        }
        Ok(len)
    }

    fn name(&mut self) -> Result<HeaderName, WireError> {
        let len = usize::from(self.u8()?);
        HeaderName::from_bytes(&self.take(len)?).map_err(|_| WireError::Field)
    }

    fn value(&mut self, len: usize) -> Result<HeaderValue, WireError> {
        HeaderValue::from_maybe_shared(self.take(len)?).map_err(|_| WireError::Field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::vary::VaryValues;
    use http::{HeaderMap, StatusCode};

    const LIMIT: u64 = 1 << 20;

    fn sample(now: SystemTime) -> CachedResponse {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.append("set-thing", HeaderValue::from_static("a"));
        headers.append("set-thing", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        headers.insert("etag", HeaderValue::from_static("\"v1\""));
        CachedResponse::new(
            StatusCode::OK,
            headers,
            Bytes::from_static(b"hello, fleet"),
            now - Duration::from_secs(5),
            Some(Duration::from_secs(60)),
            Duration::from_secs(2),
            VaryValues::from_pairs(vec![
                (
                    HeaderName::from_static("accept-encoding"),
                    Some(HeaderValue::from_static("gzip")),
                ),
                (HeaderName::from_static("accept-language"), None),
            ]),
            ReuseRules {
                forbids_stale: false,
                no_cache: false,
                immutable: true,
                stale_while_revalidate: Duration::from_secs(30),
                stale_if_error: Duration::from_secs(300),
            },
        )
        .with_tags(vec!["product-1".into(), "all".into()])
    }

    #[test]
    fn an_entry_round_trips_with_its_times_rules_variant_and_tags() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let entry = sample(now);
        let bytes = Bytes::from(encode(&entry).unwrap());
        let back = decode(bytes.clone(), now, LIMIT).unwrap();
        assert_eq!(back.status, entry.status);
        assert_eq!(back.body, entry.body);
        assert_eq!(back.headers.to_map(), entry.headers.to_map());
        assert_eq!(back.stored_at(), entry.stored_at());
        assert_eq!(back.fresh_until(), entry.fresh_until());
        assert_eq!(back.age(now), entry.age(now));
        assert_eq!(back.remaining(now), Some(Duration::from_secs(55)));
        assert_eq!(back.rules(), entry.rules());
        assert_eq!(back.vary().pairs(), entry.vary().pairs());
        assert_eq!(back.tags(), entry.tags());
        // The body is a view into the value, not a copy.
        let start = bytes.len() - entry.body.len();
        assert_eq!(back.body.as_ptr(), bytes[start..].as_ptr());
    }

    #[test]
    fn every_cut_of_a_value_is_refused_and_never_panics() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let bytes = encode(&sample(now)).unwrap();
        for len in 0..bytes.len() {
            let cut = Bytes::copy_from_slice(&bytes[..len]);
            assert!(decode(cut, now, LIMIT).is_err(), "cut at {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode(Bytes::from(longer), now, LIMIT).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn other_versions_and_refused_entries_are_errors() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut bytes = encode(&sample(now)).unwrap();
        bytes[3] = 2;
        assert_eq!(
            decode(Bytes::from(bytes), now, LIMIT).unwrap_err(),
            WireError::Version
        );
        let bytes = Bytes::from(encode(&sample(now)).unwrap());
        assert_eq!(
            decode(bytes.clone(), now, 4).unwrap_err(),
            WireError::Refused("body larger than the object limit")
        );
        let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(
            decode(bytes, long_ago, LIMIT).unwrap_err(),
            WireError::Refused("stored in the future")
        );
    }
}
