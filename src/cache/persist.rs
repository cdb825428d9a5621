//! `cache.json`: the snapshot that lets the cache survive restarts.
//!
//! Format, version 1:
//! `{"version":1,"entries":[{"key","status","headers":[[name,value]],
//! "body":base64,"stored_at":ms,"expires_at":ms|null,"initial_age":s,
//! "vary":[[name,value|null]]}]}`, times in wall-clock Unix milliseconds.
//!
//! Written write-behind (debounced, on a blocking thread) and at shutdown,
//! always as temp file + fsync + rename, mode 0600. Loading drops expired
//! entries; a file that cannot be read as a version-1 snapshot is moved
//! aside with a warning and the proxy starts empty.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::entry::{CachedResponse, ReuseRules};
use super::key::CacheKey;
use super::store::Store;
use super::vary::VaryValues;
use crate::clock::{from_unix_millis, unix_millis};
use crate::error::Error;
use crate::metrics::Metrics;

/// Write-behind waits at least this many times the last write's duration.
const WRITE_PACING: u32 = 10;

/// The snapshot format this build reads and writes.
pub const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotFile {
    version: u32,
    entries: Vec<SnapshotEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotEntry {
    key: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    stored_at: u64,
    expires_at: Option<u64>,
    #[serde(default)]
    initial_age: u64,
    #[serde(default)]
    vary: Vec<(String, Option<String>)>,
    #[serde(default)]
    rules: SnapshotRules,
    #[serde(default)]
    tags: Vec<String>,
}

/// [`ReuseRules`] as stored: windows in seconds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SnapshotRules {
    #[serde(default)]
    forbids_stale: bool,
    #[serde(default)]
    no_cache: bool,
    #[serde(default)]
    immutable: bool,
    #[serde(default)]
    stale_while_revalidate: u64,
    #[serde(default)]
    stale_if_error: u64,
}

impl From<ReuseRules> for SnapshotRules {
    fn from(rules: ReuseRules) -> Self {
        SnapshotRules {
            forbids_stale: rules.forbids_stale,
            no_cache: rules.no_cache,
            immutable: rules.immutable,
            stale_while_revalidate: rules.stale_while_revalidate.as_secs(),
            stale_if_error: rules.stale_if_error.as_secs(),
        }
    }
}

impl From<&SnapshotRules> for ReuseRules {
    fn from(rules: &SnapshotRules) -> Self {
        ReuseRules {
            forbids_stale: rules.forbids_stale,
            no_cache: rules.no_cache,
            immutable: rules.immutable,
            stale_while_revalidate: Duration::from_secs(rules.stale_while_revalidate),
            stale_if_error: Duration::from_secs(rules.stale_if_error),
        }
    }
}

/// The document as written: entries are converted one at a time while
/// serializing, so a write never holds a second copy of the whole cache.
struct SnapshotOut<'a> {
    entries: &'a [(CacheKey, Arc<CachedResponse>)],
}

impl Serialize for SnapshotOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Entries<'a>(&'a [(CacheKey, Arc<CachedResponse>)]);
        impl Serialize for Entries<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(
                    self.0
                        .iter()
                        .filter(|(_, entry)| is_text(entry))
                        .map(|(key, entry)| EntryOut { key, entry }),
                )
            }
        }
        let mut document = serializer.serialize_struct("SnapshotFile", 2)?;
        document.serialize_field("version", &VERSION)?;
        document.serialize_field("entries", &Entries(self.entries))?;
        document.end()
    }
}

/// Serializes entries into `writer`; entries whose headers are not UTF-8
/// are left out (they stay in memory, they just do not survive a restart).
pub fn encode_into(
    entries: &[(CacheKey, Arc<CachedResponse>)],
    writer: impl Write,
) -> io::Result<()> {
    serde_json::to_writer(writer, &SnapshotOut { entries }).map_err(io::Error::other)
}

/// Serializes entries into a byte vector (see [`encode_into`]).
pub fn encode(entries: &[(CacheKey, Arc<CachedResponse>)]) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = encode_into(entries, &mut out);
    out
}

/// Whether every header and Vary value is text (a snapshot holds only
/// text; other entries stay in memory and do not survive a restart).
fn is_text(entry: &CachedResponse) -> bool {
    entry.headers.is_text()
        && entry
            .vary()
            .pairs()
            .iter()
            .all(|(_, v)| v.as_ref().is_none_or(|v| v.to_str().is_ok()))
}

/// One entry as written, in [`SnapshotEntry`]'s shape, borrowing from the
/// cache: nothing is copied per entry but the base64 body. Only for
/// entries that pass [`is_text`].
struct EntryOut<'a> {
    key: &'a CacheKey,
    entry: &'a CachedResponse,
}

impl Serialize for EntryOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let entry = self.entry;
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
struct Text<V>(V);

impl<V: std::borrow::Borrow<HeaderValue>> Serialize for Text<V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.borrow().to_str().unwrap_or_default())
    }
}

/// A stored value's bytes as a JSON string. Entries are written only when
/// every value is text ([`StoredHeaders::is_text`]), so this is the same
/// string [`HeaderValue::to_str`] gives.
///
/// [`StoredHeaders::is_text`]: super::headers::StoredHeaders::is_text
struct RawText<'a>(&'a [u8]);

impl Serialize for RawText<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(std::str::from_utf8(self.0).unwrap_or_default())
    }
}

/// Parses a snapshot, keeping the entries still fresh at `now`. With a
/// `ttl`, no entry outlives `stored_at + ttl`. Entries that are not valid
/// HTTP are skipped; a document that is not a version-1 snapshot is an
/// error.
pub fn decode(
    bytes: &[u8],
    now: SystemTime,
    ttl: Option<Duration>,
) -> Result<Vec<(CacheKey, CachedResponse)>, String> {
    let file: SnapshotFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.version != VERSION {
        return Err(format!("unsupported snapshot version {}", file.version));
    }
    Ok(file
        .entries
        .into_iter()
        .filter_map(|e| from_snapshot(e, ttl))
        .filter(|(_, entry)| entry.is_fresh(now))
        .collect())
}

fn from_snapshot(e: SnapshotEntry, ttl: Option<Duration>) -> Option<(CacheKey, CachedResponse)> {
    let status = StatusCode::from_u16(e.status).ok()?;
    let mut headers = HeaderMap::with_capacity(e.headers.len());
    for (name, value) in e.headers {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).ok()?,
            HeaderValue::from_str(&value).ok()?,
        );
    }
    let vary = e
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
        .collect::<Option<Vec<_>>>()?;
    let body = Bytes::from(BASE64.decode(e.body.as_bytes()).ok()?);
    let stored_at = from_unix_millis(e.stored_at);
    let mut fresh_until = e.expires_at.map(from_unix_millis);
    if let Some(ttl) = ttl {
        let cap = stored_at + ttl;
        fresh_until = Some(fresh_until.map_or(cap, |until| until.min(cap)));
    }
    let fresh_for = fresh_until.map(|until| until.duration_since(stored_at).unwrap_or_default());
    let entry = CachedResponse::new(
        status,
        headers,
        body,
        stored_at,
        fresh_for,
        Duration::from_secs(e.initial_age),
        VaryValues::from_pairs(vary),
        ReuseRules::from(&e.rules),
    )
    .with_tags(e.tags.into_iter().map(String::into_boxed_str).collect());
    Some((CacheKey::from_text(&e.key), entry))
}

/// Reads the snapshot at `path`. A missing file is an empty cache; an
/// unreadable one is moved aside (`<file>.corrupt-<unix seconds>`) with a
/// warning, and the cache starts empty.
pub fn load(
    path: &Path,
    now: SystemTime,
    ttl: Option<Duration>,
) -> Vec<(CacheKey, CachedResponse)> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read cache snapshot; starting empty");
            return Vec::new();
        }
    };
    match decode(&bytes, now, ttl) {
        Ok(entries) => entries,
        Err(why) => {
            let aside = aside_path(path, now);
            match fs::rename(path, &aside) {
                Ok(()) => tracing::warn!(
                    path = %path.display(), moved_to = %aside.display(), %why,
                    "cache snapshot is corrupt or foreign; moved aside, starting empty"
                ),
                Err(e) => tracing::warn!(
                    path = %path.display(), %why, error = %e,
                    "cache snapshot is corrupt or foreign and could not be moved aside; starting empty"
                ),
            }
            Vec::new()
        }
    }
}

fn aside_path(path: &Path, now: SystemTime) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".corrupt-{}", unix_millis(now) / 1000));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory,
/// mode 0600, fsynced, renamed over `path`, then the directory fsynced.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, |writer| writer.write_all(bytes))
}

/// Like [`write_atomic`], with the content produced by `write`.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let result = (|| {
        let file = options.open(&tmp)?;
        let mut writer = BufWriter::with_capacity(1 << 16, file);
        write(&mut writer)?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes the store's snapshot; one write at a time per process.
#[derive(Debug)]
pub struct Snapshotter {
    store: Store,
    writes: watch::Sender<u64>,
    metrics: Metrics,
    path: PathBuf,
    write_lock: Mutex<()>,
}

impl Snapshotter {
    /// A writer of `store` to `path`.
    pub fn new(store: Store, path: PathBuf, metrics: Metrics) -> Self {
        Snapshotter {
            store,
            writes: watch::Sender::new(0),
            metrics,
            path,
            write_lock: Mutex::new(()),
        }
    }

    /// Counts completed writes (for whoever needs to know the file is
    /// current, such as tests).
    pub fn writes(&self) -> watch::Receiver<u64> {
        self.writes.subscribe()
    }

    /// The snapshot path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the snapshot now. Blocking: call from a blocking thread.
    pub fn write_now(&self) -> Result<usize, Error> {
        let _serialized = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let started = std::time::Instant::now();
        let entries = self.store.entries();
        let written = write_atomic_with(&self.path, |writer| encode_into(&entries, writer));
        self.metrics.snapshot_writes.inc();
        self.metrics
            .snapshot_duration
            .observe(started.elapsed().as_secs_f64());
        if let Err(source) = written {
            self.metrics.snapshot_failures.inc();
            return Err(Error::CacheFile {
                path: self.path.clone(),
                source,
            });
        }
        self.writes
            .send_modify(|count| *count = count.wrapping_add(1));
        if let Ok(meta) = fs::metadata(&self.path) {
            self.metrics
                .snapshot_bytes
                .set(i64::try_from(meta.len()).unwrap_or(i64::MAX));
        }
        Ok(entries.len())
    }

    /// Writes the snapshot on its own thread, at the lowest CPU priority,
    /// and logs the outcome; returns how long it took. On a busy core the
    /// requests run first and the write waits (the pacing in [`run`]
    /// stretches accordingly); on an idle one it runs at full speed.
    ///
    /// [`run`]: Snapshotter::run
    pub async fn write_in_background(self: &Arc<Self>) -> Duration {
        let this = self.clone();
        let started = std::time::Instant::now();
        let (done, outcome) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("snapshot-writer".into())
            .spawn(move || {
                yield_cpu_to_requests();
                let _ = done.send(this.write_now());
            });
        let result = match spawned {
            Ok(_) => outcome
                .await
                .map_err(|_| "the writer thread ended early".to_owned()),
            Err(e) => Err(format!("cannot start the writer thread: {e}")),
        };
        let elapsed = started.elapsed();
        match result {
            Ok(Ok(entries)) => tracing::debug!(
                entries,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "cache snapshot written"
            ),
            Ok(Err(e)) => tracing::error!(error = %e.chain(), "cache snapshot not written"),
            Err(e) => tracing::error!(error = %e, "cache snapshot task failed"),
        }
        elapsed
    }

    /// Writes the snapshot `delay` after changes, until `cancel` fires.
    /// A write costs time in proportion to the cache's size, so under
    /// constant change the next one waits at least ten times as long as the
    /// last took: snapshots never take more than about a tenth of a core.
    pub async fn run(self: Arc<Self>, delay: Duration, cancel: CancellationToken) {
        let mut changes = self.store.changes();
        let mut pause = delay;
        loop {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = cancel.cancelled() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = cancel.cancelled() => return,
            }
            let took = self.write_in_background().await;
            pause = delay.max(took.saturating_mul(WRITE_PACING));
        }
    }
}

/// Gives the calling thread the lowest scheduling priority (nice 19: about
/// 1.5% of a core when requests want it all). Best effort: without
/// permission the thread keeps its priority.
fn yield_cpu_to_requests() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let thread = rustix::thread::gettid();
        if let Err(err) = rustix::process::setpriority_process(Some(thread), 19) {
            tracing::debug!(error = %err, "cannot lower the snapshot writer's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{CONTENT_TYPE, VARY};

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

    fn entry(stored_at: SystemTime, fresh_for: Option<u64>) -> CachedResponse {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(VARY, HeaderValue::from_static("accept"));
        CachedResponse::new(
            StatusCode::OK,
            headers,
            Bytes::from_static(b"\x00binary\xffbody"),
            stored_at,
            fresh_for.map(Duration::from_secs),
            Duration::from_secs(3),
            VaryValues::from_pairs(vec![(
                http::header::ACCEPT,
                Some(HeaderValue::from_static("x/y")),
            )]),
            ReuseRules {
                stale_if_error: Duration::from_secs(9),
                ..ReuseRules::default()
            },
        )
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_snapshot_writer_runs_at_the_lowest_priority() {
        let nice = std::thread::spawn(|| {
            yield_cpu_to_requests();
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(nice, 19);
        let here = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        assert_ne!(here, 19, "only the writer's own thread is lowered");
    }

    #[test]
    fn the_borrowed_writer_writes_what_the_owned_form_serializes_to() {
        let key = CacheKey::from_text("http://o h/p?q");
        let tagged =
            entry(SystemTime::now(), Some(60)).with_tags(vec![Box::from("a"), Box::from("b\"q")]);
        for entry in [tagged, entry(SystemTime::now(), None)] {
            let borrowed = serde_json::to_string(&EntryOut {
                key: &key,
                entry: &entry,
            })
            .unwrap();
            let owned = serde_json::to_string(&to_snapshot(&key, &entry).unwrap()).unwrap();
            assert_eq!(borrowed, owned);
        }
    }

    #[test]
    fn entries_with_non_text_headers_are_left_out() {
        let now = SystemTime::now();
        let mut opaque = HeaderMap::new();
        opaque.insert("x-raw", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let binary = CachedResponse::new(
            StatusCode::OK,
            opaque,
            Bytes::from_static(b"b"),
            now,
            Some(Duration::from_secs(60)),
            Duration::ZERO,
            VaryValues::default(),
            ReuseRules::default(),
        );
        let bytes = encode(&[
            (CacheKey::from_text("o h/raw"), Arc::new(binary)),
            (
                CacheKey::from_text("o h/text"),
                Arc::new(entry(now, Some(60))),
            ),
        ]);
        let loaded = decode(&bytes, now, None).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].0.as_str(), "o h/text");
    }

    #[test]
    fn round_trip_keeps_everything() {
        let now = SystemTime::now();
        let key = CacheKey::from_text("http://o h/p?q");
        let bytes = encode(&[(key.clone(), Arc::new(entry(now, Some(60))))]);
        let loaded = decode(&bytes, now, None).unwrap();
        assert_eq!(loaded.len(), 1);
        let (k, e) = &loaded[0];
        assert_eq!(k, &key);
        assert_eq!(&e.body[..], b"\x00binary\xffbody");
        assert_eq!(e.headers.get(CONTENT_TYPE).unwrap(), "text/plain");
        assert_eq!(e.initial_age(), Duration::from_secs(3));
        assert_eq!(
            unix_millis(e.fresh_until().unwrap()),
            unix_millis(now + Duration::from_secs(60))
        );
        assert_eq!(e.vary().pairs().len(), 1);
        assert_eq!(e.rules().stale_if_error, Duration::from_secs(9));
    }

    #[test]
    fn expired_entries_are_dropped_and_ttl_caps_the_rest() {
        let now = SystemTime::now();
        let old = now - Duration::from_secs(100);
        let bytes = encode(&[
            (
                CacheKey::from_text("expired"),
                Arc::new(entry(old, Some(50))),
            ),
            (CacheKey::from_text("live"), Arc::new(entry(old, Some(500)))),
            (CacheKey::from_text("forever"), Arc::new(entry(old, None))),
        ]);
        let keys = |ttl| {
            let mut keys: Vec<_> = decode(&bytes, now, ttl)
                .unwrap()
                .into_iter()
                .map(|(k, _)| k.as_str().to_owned())
                .collect();
            keys.sort();
            keys
        };
        assert_eq!(keys(None), ["forever", "live"]);
        assert_eq!(keys(Some(Duration::from_secs(200))), ["forever", "live"]);
        assert!(keys(Some(Duration::from_secs(60))).is_empty());
    }

    #[test]
    fn foreign_and_corrupt_documents_are_errors() {
        let now = SystemTime::now();
        assert!(decode(b"{\"version\":2,\"entries\":[]}", now, None).is_err());
        assert!(decode(b"{\"version\":1,\"entr", now, None).is_err());
        assert!(decode(b"[1,2,3]", now, None).is_err());
        assert!(
            decode(b"{\"version\":1,\"entries\":[]}", now, None)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        fs::write(&path, b"not json").unwrap();
        assert!(load(&path, SystemTime::now(), None).is_empty());
        assert!(!path.exists());
        let aside: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(aside.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn written_atomically_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        write_atomic(&path, b"{}").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = decode(&bytes, SystemTime::now(), None);
        }
    }
}
