//! Reading the snapshot: streamed from the file (never read whole), each
//! entry checked as a fresh origin response would be and handed to the
//! store as soon as it is read, so that loading a full snapshot takes no
//! more memory than the cache it fills.
//!
//! The file is trusted for nothing: a status outside 200-599 (or one never
//! stored, 206 and 304), an invalid header name or value, a key that is
//! not a cache key, a body that is not base64 or larger than the object
//! limit, a 204 with a body: the entry is dropped and counted. Framing and
//! hop-by-hop fields are dropped and `Content-Length` is rebuilt from the
//! body. A file larger than a full cache can write, a directory, or a
//! document that is not a version-1 snapshot is moved aside; entries
//! restored before a damaged part stay (each passed every check).

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::cache::purge::LogPosition;

use super::VERSION;
use super::files::move_aside;
use super::format::SnapshotEntry;
use crate::cache::admit::{MAX_FIELDS, Parts, admit};
use crate::cache::entry::{CachedResponse, ReuseRules};
use crate::cache::key::CacheKey;
use crate::clock::from_unix_millis;
use crate::error::chain;

/// Where a restored entry goes, as the configuration sees its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// No route serves this key any more (or its route bypasses the
    /// cache): drop it.
    Unrouted,
    /// Its route's lifetime cap (`None`: no cap).
    Ttl(Option<Duration>),
}

/// Bounds of a load.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Larger files are moved aside unread.
    pub max_file_bytes: u64,
    /// Larger bodies are dropped (the proxy would not have stored them).
    pub max_object_size: u64,
}

/// What a load did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Entries put back into the cache.
    pub restored: usize,
    /// Entries no longer fresh.
    pub expired: usize,
    /// Entries that failed a check.
    pub invalid: usize,
    /// Entries no route serves any more.
    pub unrouted: usize,
    /// Where the file was moved, if it could not be used.
    pub moved_aside: Option<PathBuf>,
    /// The fleet's purge log position the entries reflect, if recorded.
    pub position: Option<LogPosition>,
}

/// Why a document could not be read as a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, not the right shape, or not version 1.
    #[error("not a version-1 cache snapshot")]
    Corrupt(#[source] serde_json::Error),
    /// The file could not be read.
    #[error("read failed")]
    Io(#[source] serde_json::Error),
}

/// Reads the snapshot at `path` into `restore`: a missing file is an empty
/// cache; a bad one is moved aside (`<file>.corrupt-<unix seconds>`) with a
/// warning. Never fails: the proxy starts with what could be restored.
pub fn load(
    path: &Path,
    now: SystemTime,
    limits: Limits,
    place: impl Fn(&CacheKey) -> Placement,
    restore: impl FnMut(CacheKey, CachedResponse),
) -> LoadReport {
    load_after_head(path, now, limits, place, |_| {}, restore)
}

/// [`load`], telling `head` the fleet's purge log position the entries
/// reflect as soon as it is read (before the first entry; at the end for a
/// file without entries), so that purges missed since can be applied while
/// the entries are still being read.
pub fn load_after_head(
    path: &Path,
    now: SystemTime,
    limits: Limits,
    place: impl Fn(&CacheKey) -> Placement,
    head: impl FnOnce(Option<LogPosition>),
    mut restore: impl FnMut(CacheKey, CachedResponse),
) -> LoadReport {
    let mut head: Head<'_> = Some(Box::new(head));
    let report = load_into(path, now, limits, &place, &mut head, &mut restore);
    if let Some(head) = head.take() {
        head(report.position.clone());
    }
    report
}

fn load_into(
    path: &Path,
    now: SystemTime,
    limits: Limits,
    place: &dyn Fn(&CacheKey) -> Placement,
    head: &mut Head<'_>,
    restore: &mut dyn FnMut(CacheKey, CachedResponse),
) -> LoadReport {
    let mut report = LoadReport::default();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return report,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read cache snapshot; starting empty");
            return report;
        }
    };
    let unusable = if meta.is_dir() {
        Some("it is a directory".to_owned())
    } else if meta.len() > limits.max_file_bytes {
        Some(format!(
            "it is {} bytes, more than a full cache writes ({} bytes)",
            meta.len(),
            limits.max_file_bytes
        ))
    } else {
        None
    };
    if let Some(why) = unusable {
        report.moved_aside = set_aside(path, now, &why);
        return report;
    }
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read cache snapshot; starting empty");
            return report;
        }
    };
    let reader = BufReader::with_capacity(1 << 20, file);
    let mut sink = Sink {
        now,
        limits,
        place,
        restore,
        report: &mut report,
        head: head.take(),
    };
    let decoded = decode_into(reader, &mut sink);
    *head = sink.head.take();
    match decoded {
        Ok(()) => {}
        Err(err @ DecodeError::Io(_)) => {
            tracing::warn!(path = %path.display(), error = %chain(&err), restored = report.restored,
                "cache snapshot read failed; keeping what was restored");
        }
        Err(err @ DecodeError::Corrupt(_)) => {
            report.moved_aside = set_aside(path, now, &chain(&err));
        }
    }
    report
}

fn set_aside(path: &Path, now: SystemTime, why: &str) -> Option<PathBuf> {
    match move_aside(path, now) {
        Ok(aside) => {
            tracing::warn!(
                path = %path.display(), moved_to = %aside.display(), why,
                "cache snapshot cannot be used; moved aside"
            );
            Some(aside)
        }
        Err(e) => {
            tracing::warn!(
                path = %path.display(), why, error = %e,
                "cache snapshot cannot be used and could not be moved aside"
            );
            None
        }
    }
}

/// Parses a snapshot from `reader`, restoring each usable entry as it is
/// read and counting the rest in `report`.
pub fn decode<R: Read>(
    reader: R,
    now: SystemTime,
    limits: Limits,
    place: &dyn Fn(&CacheKey) -> Placement,
    restore: &mut dyn FnMut(CacheKey, CachedResponse),
    report: &mut LoadReport,
) -> Result<(), DecodeError> {
    let mut sink = Sink {
        now,
        limits,
        place,
        restore,
        report,
        head: None,
    };
    decode_into(reader, &mut sink)
}

fn decode_into<R: Read>(reader: R, sink: &mut Sink<'_, '_>) -> Result<(), DecodeError> {
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let classify = |e: serde_json::Error| {
        if e.is_io() {
            DecodeError::Io(e)
        } else {
            DecodeError::Corrupt(e)
        }
    };
    DocumentSeed(sink)
        .deserialize(&mut deserializer)
        .map_err(classify)?;
    deserializer.end().map_err(classify)
}

/// Told the fleet's purge log position once, before the entries.
type Head<'a> = Option<Box<dyn FnOnce(Option<LogPosition>) + 'a>>;

/// Where decoded entries go.
struct Sink<'a, 'h> {
    now: SystemTime,
    limits: Limits,
    place: &'a dyn Fn(&CacheKey) -> Placement,
    restore: &'a mut dyn FnMut(CacheKey, CachedResponse),
    report: &'a mut LoadReport,
    head: Head<'h>,
}

impl Sink<'_, '_> {
    fn take(&mut self, raw: SnapshotEntry) {
        let (key, entry) = match check(raw, self.now, self.limits) {
            Ok(checked) => checked,
            Err(why) => {
                tracing::debug!(why, "snapshot entry dropped");
                self.report.invalid += 1;
                return;
            }
        };
        let entry = match (self.place)(&key) {
            Placement::Unrouted => {
                self.report.unrouted += 1;
                return;
            }
            Placement::Ttl(cap) => entry.capped(cap),
        };
        if !entry.is_fresh(self.now) {
            self.report.expired += 1;
            return;
        }
        self.report.restored += 1;
        (self.restore)(key, entry);
    }
}

/// `"fleet"`: the purge log position the entries reflect.
#[derive(serde::Deserialize)]
struct FleetIn {
    log: String,
    applied: String,
}

/// `{"version": 1, "entries": [...]}`, with the version first (as this
/// proxy writes it), so that entries are restored while they are read.
struct DocumentSeed<'s, 'a, 'h>(&'s mut Sink<'a, 'h>);

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a cache snapshot {\"version\": 1, \"entries\": [...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        use serde::de::Error;
        let mut version = None;
        while let Some(field) = map.next_key::<String>()? {
            match field.as_str() {
                "version" => {
                    let found: u32 = map.next_value()?;
                    if found != VERSION {
                        return Err(A::Error::custom(format!(
                            "unsupported snapshot version {found}"
                        )));
                    }
                    version = Some(found);
                }
                "fleet" => {
                    let fleet: FleetIn = map.next_value()?;
                    self.0.report.position = Some(LogPosition {
                        log: fleet.log,
                        applied: fleet.applied,
                    });
                }
                "entries" if version.is_some() => {
                    if let Some(head) = self.0.head.take() {
                        head(self.0.report.position.clone());
                    }
                    map.next_value_seed(EntriesSeed(&mut *self.0))?;
                }
                "entries" => return Err(A::Error::custom("the version must come first")),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match version {
            Some(_) => Ok(()),
            None => Err(A::Error::custom("not a cache snapshot: no version")),
        }
    }
}

struct EntriesSeed<'s, 'a, 'h>(&'s mut Sink<'a, 'h>);

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of snapshot entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<SnapshotEntry>()? {
            self.0.take(raw);
        }
        Ok(())
    }
}

/// An entry as a fresh origin response would be checked, or why not.
fn check(
    raw: SnapshotEntry,
    now: SystemTime,
    limits: Limits,
) -> Result<(CacheKey, CachedResponse), &'static str> {
    let key = CacheKey::parse(&raw.key)?;
    if raw.headers.len() > MAX_FIELDS {
        return Err("too many header fields");
    }
    let headers = raw
        .headers
        .into_iter()
        .map(|(name, value)| {
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| "invalid header name")?;
            let value = HeaderValue::from_str(&value).map_err(|_| "invalid header value")?;
            Ok((name, value))
        })
        .collect::<Result<Vec<_>, &'static str>>()?;
    let vary = raw
        .vary
        .into_iter()
        .map(|(name, value)| {
            let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
            let value = match value {
                Some(v) => Some(HeaderValue::from_str(&v).ok()?),
                None => None,
            };
            Some((name, value))
        })
        .collect::<Option<Vec<_>>>()
        .ok_or("invalid Vary value")?;
    let encoded_limit = limits.max_object_size.saturating_mul(4) / 3 + 4;
    if raw.body.len() as u64 > encoded_limit {
        return Err("body larger than the object limit");
    }
    let body = Bytes::from(
        BASE64
            .decode(raw.body.as_bytes())
            .map_err(|_| "body not base64")?,
    );
    let parts = Parts {
        status: raw.status,
        headers,
        body,
        stored_at: from_unix_millis(raw.stored_at),
        fresh_until: raw.expires_at.map(from_unix_millis),
        initial_age: Duration::from_secs(raw.initial_age),
        vary,
        rules: ReuseRules::from(&raw.rules),
        tags: raw.tags.into_iter().map(String::into_boxed_str).collect(),
    };
    Ok((key, admit(parts, now, limits.max_object_size)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::persist::encode::encode;
    use http::HeaderMap;
    use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
    use http::header::{CONTENT_TYPE, VARY};
    use std::sync::Arc;

    const LIMITS: Limits = Limits {
        max_file_bytes: 1 << 30,
        max_object_size: 1 << 20,
    };

    fn entry(stored_at: SystemTime, fresh_for: Option<u64>) -> CachedResponse {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(VARY, HeaderValue::from_static("accept"));
        crate::cache::persist::test_entry(headers, stored_at, fresh_for)
    }

    /// Decodes `bytes` with every key routed, capped by `ttl`.
    fn read(
        bytes: &[u8],
        now: SystemTime,
        ttl: Option<Duration>,
    ) -> Result<(Vec<(CacheKey, CachedResponse)>, LoadReport), DecodeError> {
        let mut restored = Vec::new();
        let mut report = LoadReport::default();
        decode(
            bytes,
            now,
            LIMITS,
            &|_| Placement::Ttl(ttl),
            &mut |k, e| restored.push((k, e)),
            &mut report,
        )?;
        Ok((restored, report))
    }

    fn one(key: &str, e: CachedResponse) -> Vec<u8> {
        encode(std::iter::once((CacheKey::from_text(key), Arc::new(e))))
    }

    #[test]
    fn round_trip_keeps_everything() {
        let now = SystemTime::now();
        let (loaded, report) =
            read(&one("http://o h/p?q", entry(now, Some(60))), now, None).unwrap();
        assert_eq!((report.restored, report.invalid), (1, 0));
        let (k, e) = &loaded[0];
        assert_eq!(k.as_str(), "http://o h/p?q");
        assert_eq!(&e.body[..], b"\x00binary\xffbody");
        assert_eq!(e.headers.get(CONTENT_TYPE).unwrap(), "text/plain");
        assert_eq!(e.headers.get(CONTENT_LENGTH).unwrap(), "12");
        assert_eq!(e.initial_age(), Duration::from_secs(3));
        assert_eq!(
            crate::clock::unix_millis(e.fresh_until().unwrap()),
            crate::clock::unix_millis(now + Duration::from_secs(60))
        );
        assert_eq!(e.vary().pairs().len(), 1);
        assert_eq!(e.rules().stale_if_error, Duration::from_secs(9));
    }

    #[test]
    fn expired_entries_are_dropped_and_the_route_ttl_caps_the_rest() {
        let now = SystemTime::now();
        let old = now - Duration::from_secs(100);
        let bytes = encode(
            [
                ("http://o h/expired", entry(old, Some(50))),
                ("http://o h/live", entry(old, Some(500))),
                ("http://o h/forever", entry(old, None)),
            ]
            .into_iter()
            .map(|(k, e)| (CacheKey::from_text(k), Arc::new(e))),
        );
        let keys = |ttl| {
            let (loaded, report) = read(&bytes, now, ttl).unwrap();
            let mut keys: Vec<_> = loaded
                .into_iter()
                .map(|(k, _)| k.url().to_owned())
                .collect();
            keys.sort();
            (keys, report.expired)
        };
        assert_eq!(keys(None), (vec!["h/forever".into(), "h/live".into()], 1));
        assert_eq!(
            keys(Some(Duration::from_secs(200))).0,
            ["h/forever", "h/live"]
        );
        assert_eq!(keys(Some(Duration::from_secs(60))), (vec![], 3));
    }

    #[test]
    fn unrouted_keys_are_dropped_and_counted() {
        let now = SystemTime::now();
        let mut report = LoadReport::default();
        let mut restored = 0;
        decode(
            &one("http://gone h/p", entry(now, Some(60)))[..],
            now,
            LIMITS,
            &|_| Placement::Unrouted,
            &mut |_, _| restored += 1,
            &mut report,
        )
        .unwrap();
        assert_eq!((restored, report.unrouted), (0, 1));
    }

    /// A one-entry document with the given fields in place of a good
    /// entry's.
    fn doc_with(fields: &str) -> String {
        format!(
            r#"{{"version":1,"entries":[{{"key":"http://o h/p","status":200,"headers":[],"body":"aGk=","stored_at":{},"expires_at":null,{fields}}}]}}"#,
            crate::clock::unix_millis(SystemTime::now())
        )
        .replace(",}", "}")
    }

    #[test]
    fn entries_that_no_origin_response_could_be_are_dropped() {
        let now = SystemTime::now();
        let good = doc_with("");
        assert_eq!(read(good.as_bytes(), now, None).unwrap().1.restored, 1);
        for bad in [
            good.replace(r#""status":200"#, r#""status":101"#),
            good.replace(r#""status":200"#, r#""status":206"#),
            good.replace(r#""status":200"#, r#""status":304"#),
            good.replace(r#""status":200"#, r#""status":204"#),
            good.replace(r#""headers":[]"#, r#""headers":[["bad name","x"]]"#),
            good.replace(r#""headers":[]"#, r#""headers":[["x","line\nbreak"]]"#),
            good.replace(r#""body":"aGk=""#, r#""body":"not base64!""#),
            good.replace(r#""key":"http://o h/p""#, r#""key":"no-space""#),
            good.replace(r#""key":"http://o h/p""#, r#""key":" h/p""#),
            doc_with(r#""vary":[["accept","\u0000"]]"#),
        ] {
            let (loaded, report) = read(bad.as_bytes(), now, None).unwrap();
            assert!(loaded.is_empty(), "{bad}");
            assert_eq!(report.invalid, 1, "{bad}");
        }
    }

    #[test]
    fn framing_fields_are_rebuilt_from_the_body() {
        let now = SystemTime::now();
        let doc = doc_with("").replace(
            r#""headers":[]"#,
            r#""headers":[["content-length","999"],["transfer-encoding","chunked"],["connection","x"],["x-kept","1"]]"#,
        );
        let (loaded, _) = read(doc.as_bytes(), now, None).unwrap();
        let headers = &loaded[0].1.headers;
        assert_eq!(headers.get(CONTENT_LENGTH).unwrap(), "2");
        assert!(!headers.contains(&TRANSFER_ENCODING) && !headers.contains(&CONNECTION));
        assert_eq!(headers.get("x-kept").unwrap(), "1");
    }

    #[test]
    fn foreign_and_corrupt_documents_are_errors() {
        let now = SystemTime::now();
        for bad in [
            &b"{\"version\":2,\"entries\":[]}"[..],
            b"{\"version\":1,\"entr",
            b"[1,2,3]",
            b"{\"entries\":[],\"version\":1}",
            b"{\"other\":1}",
            b"{\"version\":1,\"entries\":[]} trailing",
        ] {
            assert!(
                matches!(read(bad, now, None), Err(DecodeError::Corrupt(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(
            read(b"{\"version\":1,\"entries\":[]}", now, None)
                .unwrap()
                .0
                .is_empty()
        );
    }

    fn load_dir(path: &Path, limits: Limits) -> (usize, LoadReport) {
        let mut restored = 0;
        let report = load(
            path,
            SystemTime::now(),
            limits,
            |_| Placement::Ttl(None),
            |_, _| restored += 1,
        );
        (restored, report)
    }

    #[test]
    fn unusable_files_are_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        std::fs::write(&path, b"not json").unwrap();
        let (restored, report) = load_dir(&path, LIMITS);
        assert_eq!(restored, 0);
        assert!(report.moved_aside.as_ref().is_some_and(|p| p.exists()));
        assert!(!path.exists());

        std::fs::create_dir(&path).unwrap();
        let (_, report) = load_dir(&path, LIMITS);
        assert!(
            report.moved_aside.is_some() && !path.exists(),
            "a directory too"
        );

        std::fs::write(&path, doc_with("")).unwrap();
        let small = Limits {
            max_file_bytes: 64,
            ..LIMITS
        };
        let (restored, report) = load_dir(&path, small);
        assert_eq!(restored, 0);
        assert!(report.moved_aside.is_some() && !path.exists(), "too large");
    }

    #[test]
    fn a_missing_file_is_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        let (restored, report) = load_dir(&dir.path().join("none.json"), LIMITS);
        assert_eq!((restored, report), (0, LoadReport::default()));
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = read(&bytes, SystemTime::now(), None);
        }

        #[test]
        fn decoding_a_mutated_snapshot_never_panics(at in 0usize..400, byte in proptest::num::u8::ANY) {
            let mut doc = doc_with(r#""vary":[["accept","x"]],"tags":["t"],"rules":{"stale_if_error":5}"#).into_bytes();
            let at = at % doc.len();
            doc[at] = byte;
            let _ = read(&doc, SystemTime::now(), Some(Duration::from_secs(10)));
        }
    }
}
