//! Writing the snapshot: entries are serialized one at a time as they are
//! read from the cache, borrowing their parts; only the base64 body is
//! built per entry. Entries whose headers are not text are left out (they
//! stay in memory, they just do not survive a restart).

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::HeaderValue;
use serde::Serialize;
use serde::ser::SerializeStruct;

use super::VERSION;
use super::format::SnapshotRules;
use crate::cache::entry::CachedResponse;
use crate::cache::key::CacheKey;
use crate::cache::purge::LogPosition;
use crate::clock::unix_millis;

/// Serializes `entries` into `writer`, with the fleet's purge log
/// `position` they reflect (read before the entries); returns how many
/// entries were written.
pub fn encode_into(
    entries: impl Iterator<Item = (CacheKey, Arc<CachedResponse>)>,
    position: Option<&LogPosition>,
    writer: impl Write,
) -> io::Result<usize> {
    let document = Document {
        entries: RefCell::new(Some(entries)),
        written: Cell::new(0),
        position: position.map(|p| FleetOut {
            log: &p.log,
            applied: &p.applied,
        }),
    };
    serde_json::to_writer(writer, &document).map_err(io::Error::other)?;
    Ok(document.written.get())
}

/// Serializes entries into a byte vector (see [`encode_into`]).
pub fn encode(entries: impl Iterator<Item = (CacheKey, Arc<CachedResponse>)>) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = encode_into(entries, None, &mut out);
    out
}

/// The document: `Serialize` takes `&self`, so the iterator is taken out
/// of a cell the one time it is serialized.
struct Document<'p, I> {
    entries: RefCell<Option<I>>,
    written: Cell<usize>,
    position: Option<FleetOut<'p>>,
}

/// `"fleet": {"log": ..., "applied": ...}`: the purge log position.
#[derive(Serialize)]
struct FleetOut<'p> {
    log: &'p str,
    applied: &'p str,
}

impl<I: Iterator<Item = (CacheKey, Arc<CachedResponse>)>> Serialize for Document<'_, I> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut document = serializer.serialize_struct("SnapshotFile", 3)?;
        document.serialize_field("version", &VERSION)?;
        if let Some(position) = &self.position {
            document.serialize_field("fleet", position)?;
        }
        document.serialize_field("entries", &Entries(self))?;
        document.end()
    }
}

struct Entries<'a, 'p, I>(&'a Document<'p, I>);

impl<I: Iterator<Item = (CacheKey, Arc<CachedResponse>)>> Serialize for Entries<'_, '_, I> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entries = self.0.entries.borrow_mut().take();
        let written = &self.0.written;
        serializer.collect_seq(
            entries
                .into_iter()
                .flatten()
                .filter(|(_, entry)| is_text(entry))
                .inspect(|_| written.set(written.get() + 1))
                .map(|(key, entry)| EntryOut { key, entry }),
        )
    }
}

/// Whether every header and Vary value is text (a snapshot holds only
/// text).
fn is_text(entry: &CachedResponse) -> bool {
    entry.headers.is_text()
        && entry
            .vary()
            .pairs()
            .iter()
            .all(|(_, v)| v.as_ref().is_none_or(|v| v.to_str().is_ok()))
}

/// One entry as written, in `SnapshotEntry`'s shape. Only for entries
/// that pass [`is_text`].
pub(super) struct EntryOut {
    pub(super) key: CacheKey,
    pub(super) entry: Arc<CachedResponse>,
}

impl Serialize for EntryOut {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entry = &*self.entry;
        let rules = SnapshotRules::from(entry.rules());
        let mut out = serializer.serialize_struct("SnapshotEntry", 10)?;
        out.serialize_field("key", self.key.as_str())?;
        out.serialize_field("status", &entry.status.as_u16())?;
        out.serialize_field("headers", &HeadersOut(entry))?;
        out.serialize_field("body", &BASE64.encode(&entry.body))?;
        out.serialize_field("stored_at", &unix_millis(entry.stored_at()))?;
        out.serialize_field("expires_at", &entry.fresh_until().map(unix_millis))?;
        out.serialize_field("initial_age", &entry.initial_age().as_secs())?;
        out.serialize_field("vary", &VaryOut(entry))?;
        out.serialize_field("rules", &rules)?;
        out.serialize_field("tags", &entry.tags())?;
        out.end()
    }
}

/// `[[name, value]]`, the stored headers in order.
struct HeadersOut<'a>(&'a CachedResponse);

impl Serialize for HeadersOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.0
                .headers
                .raw()
                .map(|(name, value)| (name.as_str(), RawText(value))),
        )
    }
}

/// `[[name, value or null]]`, the request values the entry was selected by.
struct VaryOut<'a>(&'a CachedResponse);

impl Serialize for VaryOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.0
                .vary()
                .pairs()
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_ref().map(Text))),
        )
    }
}

/// A header value as a JSON string (checked to be text by [`is_text`]).
struct Text<'a>(&'a HeaderValue);

impl Serialize for Text<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.to_str().unwrap_or_default())
    }
}

/// A stored value's bytes as a JSON string. Entries are written only when
/// every value is text ([`StoredHeaders::is_text`]), so this is the same
/// string [`HeaderValue::to_str`] gives.
///
/// [`StoredHeaders::is_text`]: crate::cache::headers::StoredHeaders::is_text
struct RawText<'a>(&'a [u8]);

impl Serialize for RawText<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(std::str::from_utf8(self.0).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::persist::format::SnapshotEntry;
    use http::HeaderMap;
    use std::time::SystemTime;

    /// The owned form of an entry, as the snapshot was written before
    /// [`EntryOut`]: the reference the borrowed writer must match.
    fn to_snapshot(key: &CacheKey, entry: &CachedResponse) -> Option<SnapshotEntry> {
        let headers = entry
            .headers
            .iter()
            .map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect::<Option<Vec<_>>>()?;
        let vary = entry
            .vary()
            .pairs()
            .iter()
            .map(|(n, v)| {
                let value = match v {
                    Some(v) => Some(v.to_str().ok()?.to_owned()),
                    None => None,
                };
                Some((n.as_str().to_owned(), value))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(SnapshotEntry {
            key: key.as_str().to_owned(),
            status: entry.status.as_u16(),
            headers,
            body: BASE64.encode(&entry.body),
            stored_at: unix_millis(entry.stored_at()),
            expires_at: entry.fresh_until().map(unix_millis),
            initial_age: entry.initial_age().as_secs(),
            vary,
            rules: entry.rules().into(),
            tags: entry.tags().iter().map(|t| t.to_string()).collect(),
        })
    }

    fn entry(headers: HeaderMap, fresh_for: Option<u64>) -> CachedResponse {
        crate::cache::persist::test_entry(headers, SystemTime::now(), fresh_for)
    }

    #[test]
    fn the_borrowed_writer_writes_what_the_owned_form_serializes_to() {
        let key = CacheKey::from_text("http://o h/p?q");
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        let tagged =
            entry(headers.clone(), Some(60)).with_tags(vec![Box::from("a"), Box::from("b\"q")]);
        for entry in [tagged, entry(headers, None)] {
            let owned = serde_json::to_string(&to_snapshot(&key, &entry).unwrap()).unwrap();
            let borrowed = serde_json::to_string(&EntryOut {
                key: key.clone(),
                entry: Arc::new(entry),
            })
            .unwrap();
            assert_eq!(borrowed, owned);
        }
    }

    #[test]
    fn entries_with_non_text_headers_are_left_out_and_not_counted() {
        let mut opaque = HeaderMap::new();
        opaque.insert("x-raw", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let entries = vec![
            (
                CacheKey::from_text("o h/raw"),
                Arc::new(entry(opaque, Some(60))),
            ),
            (
                CacheKey::from_text("o h/text"),
                Arc::new(entry(HeaderMap::new(), Some(60))),
            ),
        ];
        let mut out = Vec::new();
        assert_eq!(encode_into(entries.into_iter(), None, &mut out).unwrap(), 1);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("o h/text") && !text.contains("o h/raw"));
    }
}
