//! A Redis Stream entry id (`ms-seq`): the position of a purge in the
//! fleet's purge log, ordered as Redis orders them.

use std::fmt;

/// An entry id; `LogId::ZERO` is before every entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogId {
    /// Redis's clock when the entry was added, Unix milliseconds.
    pub ms: u64,
    /// Its number within that millisecond.
    pub seq: u64,
}

impl LogId {
    /// Before every entry (`0-0`).
    pub const ZERO: LogId = LogId { ms: 0, seq: 0 };

    /// Reads `ms-seq` (or a bare `ms`).
    pub fn parse(text: &str) -> Option<Self> {
        let (ms, seq) = text.split_once('-').unwrap_or((text, "0"));
        Some(LogId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    /// The 16 bytes of [`LogId::from_bytes`].
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.ms.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// Reads 16 bytes written by [`LogId::to_bytes`].
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        let (ms, seq) = bytes.split_at(8);
        LogId {
            ms: u64::from_be_bytes(ms.try_into().unwrap_or_default()),
            seq: u64::from_be_bytes(seq.try_into().unwrap_or_default()),
        }
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_write_and_order_as_redis_does() {
        let a = LogId::parse("1700000000000-2").unwrap();
        assert_eq!(a.to_string(), "1700000000000-2");
        assert_eq!(LogId::from_bytes(a.to_bytes()), a);
        assert!(LogId::parse("1700000000000-10").unwrap() > a);
        assert!(LogId::parse("1700000000001-0").unwrap() > a);
        assert_eq!(LogId::parse("5"), Some(LogId { ms: 5, seq: 0 }));
        assert_eq!(LogId::parse("x-1"), None);
        assert!(LogId::ZERO < a);
    }
}
