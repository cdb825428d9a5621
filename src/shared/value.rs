//! A response as the shared tier stores it: the position in the purge log
//! its fetch started at (so that every instance can tell whether a purge
//! since then removes it), then the entry's [`wire`] form.
//!
//! ```text
//! "CPS" 0x01   magic and version
//! u64 u64      purge log position (LogId ms, seq)
//! ...          cache::wire entry
//! ```

use std::time::SystemTime;

use bytes::Bytes;

use super::log_id::LogId;
use crate::cache::CachedResponse;
use crate::cache::wire::{self, WireError};

const MAGIC: &[u8; 4] = b"CPS\x01";
const HEADER: usize = MAGIC.len() + 16;

/// `entry` for the shared tier, fetched from `watermark` on; `None` if it
/// does not fit the wire form.
pub fn encode(entry: &CachedResponse, watermark: LogId) -> Option<Vec<u8>> {
    let body = wire::encode(entry)?;
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&watermark.to_bytes());
    out.extend_from_slice(&body);
    Some(out)
}

/// Reads a value written by [`encode`]: the entry (sharing `value`'s
/// buffer) and the log position its fetch started at.
pub fn decode(
    value: Bytes,
    now: SystemTime,
    max_object_size: u64,
) -> Result<(CachedResponse, LogId), WireError> {
    if value.len() < HEADER || &value[..MAGIC.len()] != MAGIC {
        return Err(WireError::Version);
    }
    let mut id = [0; 16];
    id.copy_from_slice(&value[MAGIC.len()..HEADER]);
    let entry = wire::decode(value.slice(HEADER..), now, max_object_size)?;
    Ok((entry, LogId::from_bytes(id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn round_trip_keeps_the_position_and_refuses_other_values() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let entry = crate::cache::persist::test_entry(http::HeaderMap::new(), now, Some(60));
        let at = LogId { ms: 17, seq: 3 };
        let value = Bytes::from(encode(&entry, at).unwrap());
        let (back, id) = decode(value.clone(), now, 1 << 20).unwrap();
        assert_eq!(id, at);
        assert_eq!(back.body, entry.body);
        assert_eq!(
            decode(value.slice(..10), now, 1 << 20).unwrap_err(),
            WireError::Version
        );
        assert!(decode(Bytes::from_static(b"CPW\x01"), now, 1 << 20).is_err());
    }
}
