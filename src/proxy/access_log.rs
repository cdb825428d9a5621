//! One access-log line per request, written when the response body is
//! done (sent, or abandoned), so that duration and bytes are the real ones;
//! the route's byte counters and the dashboard's URL sample are fed there
//! too.
//!
//! The line is formatted here, in the shape tracing's text or JSON format
//! gives every other line, and handed to the log writer as one buffer:
//! formatting its fields through tracing's visitor would dominate a cache
//! hit's cost. `RUST_LOG` still decides (target `access`, level info).

use std::fmt::Display;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body::{Body, Frame, SizeHint};

use serde::{Serialize, Serializer};

use super::Peer;
use super::body::ProxyBody;
use super::cache_status::CacheStatus;
use crate::clock::{Stopwatch, wall_now};
use crate::runtime::Route;
use crate::telemetry::{AccessSink, LogFormat, timestamp};
use crate::upstream::body::BodyError;

/// The request facts the log line needs, taken before the request is
/// consumed.
#[derive(Debug)]
pub struct AccessRecord {
    client: Peer,
    method: Method,
    target: String,
    started: Stopwatch,
    /// The normalized Host, once checked.
    pub host: Option<String>,
    /// The route (and through it the origin's name), once routed.
    pub route: Option<Arc<Route>>,
    /// Time to the origin's response headers, if the origin was asked.
    pub origin_time: Arc<OriginTime>,
}

/// Time to the origin's response headers, in microseconds (`u64::MAX`: the
/// origin was not asked). Shared with the exchange that asks it.
#[derive(Debug)]
pub struct OriginTime(AtomicU64);

impl Default for OriginTime {
    fn default() -> Self {
        OriginTime(AtomicU64::new(u64::MAX))
    }
}

impl OriginTime {
    /// Records how long the origin took.
    pub fn set(&self, elapsed: std::time::Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX - 1);
        self.0.store(micros, Ordering::Relaxed);
    }

    fn millis(&self) -> Option<f64> {
        let micros = self.0.load(Ordering::Relaxed);
        (micros != u64::MAX).then(|| micros as f64 / 1000.0)
    }
}

impl AccessRecord {
    /// Starts timing a request.
    pub fn start(client: Peer, method: Method, target: &str) -> Self {
        AccessRecord {
            client,
            method,
            target: target.to_owned(),
            started: Stopwatch::start(),
            host: None,
            route: None,
            origin_time: Arc::default(),
        }
    }

    /// The client's `ip:port`.
    pub fn client(&self) -> &str {
        self.client.shown()
    }
}

/// A response body that logs the request when it is dropped.
#[derive(Debug)]
pub struct LoggedBody {
    inner: ProxyBody,
    record: AccessRecord,
    status: StatusCode,
    cache: CacheStatus,
    bytes: u64,
    finished: bool,
    /// The client went away before the answer: never complete.
    abandoned: bool,
}

impl LoggedBody {
    /// Wraps `inner`; the line is written when the body is dropped.
    pub fn new(
        inner: ProxyBody,
        record: AccessRecord,
        status: StatusCode,
        cache: CacheStatus,
    ) -> Self {
        LoggedBody {
            inner,
            record,
            status,
            cache,
            bytes: 0,
            finished: false,
            abandoned: false,
        }
    }

    /// The line for a request whose client went away before its answer
    /// (written when this is dropped, at once).
    pub fn abandoned(record: AccessRecord, status: StatusCode, cache: CacheStatus) -> Self {
        let mut body = LoggedBody::new(ProxyBody::Empty, record, status, cache);
        body.abandoned = true;
        body
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => this.finished = true,
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        let record = &self.record;
        if let Some(route) = &record.route {
            // The URL is built only for the sampled request in eight.
            let url = || format!("{}{}", record.host.as_deref().unwrap_or(""), record.target);
            route.counters.sent(self.cache.is_hit(), self.bytes, url);
        }
        if !tracing::enabled!(target: "access", tracing::Level::INFO) {
            return;
        }
        let line = Line {
            client: record.client(),
            method: Shown(&record.method),
            host: record.host.as_deref().unwrap_or("-"),
            path: Shown(&record.target),
            status: self.status.as_u16(),
            cache: self.cache.as_str(),
            reason: self.cache.reason(),
            route: record.route.as_ref().map_or("-", |route| &route.name),
            origin: record
                .route
                .as_ref()
                .map_or("-", |route| &route.origin_name),
            origin_ms: record.origin_time.millis(),
            duration_ms: record.started.elapsed().as_micros() as f64 / 1000.0,
            bytes: self.bytes,
            complete: !self.abandoned && (self.finished || self.inner.is_end_stream()),
        };
        match AccessSink::get() {
            // The log line's own time stamp, like tracing's; not a cache
            // decision, so not the proxy's clock.
            Some(sink) => sink.write(line.render(sink.format, wall_now())),
            // A library user without `telemetry::init`: through tracing.
            None => {
                let mut fields = Vec::new();
                line.text_fields(&mut fields);
                tracing::info!(target: "access", "{}", String::from_utf8_lossy(&fields));
            }
        }
    }
}

/// The fields of one access-log line.
#[derive(Debug, Serialize)]
struct Line<'a> {
    client: &'a str,
    method: Shown<&'a Method>,
    host: &'a str,
    path: Shown<&'a String>,
    status: u16,
    cache: &'static str,
    reason: &'static str,
    route: &'a str,
    origin: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin_ms: Option<f64>,
    duration_ms: f64,
    bytes: u64,
    complete: bool,
}

/// Serializes a value by its `Display`.
#[derive(Debug)]
struct Shown<T>(T);

impl<T: Display> Serialize for Shown<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// The JSON object: tracing's JSON format with the event flattened.
#[derive(Serialize)]
struct JsonLine<'a> {
    timestamp: &'a str,
    level: &'static str,
    #[serde(flatten)]
    line: &'a Line<'a>,
    target: &'static str,
}

impl Line<'_> {
    /// The whole line, ending in a newline.
    fn render(&self, format: LogFormat, now: SystemTime) -> Vec<u8> {
        let mut out = Vec::with_capacity(320);
        let timestamp = timestamp::rfc3339_micros(now);
        match format {
            LogFormat::Text => {
                out.extend_from_slice(&timestamp);
                out.extend_from_slice(b"  INFO access: ");
                self.text_fields(&mut out);
            }
            LogFormat::Json => {
                let json = JsonLine {
                    // ASCII digits and punctuation only.
                    timestamp: std::str::from_utf8(&timestamp).unwrap_or_default(),
                    level: "INFO",
                    line: self,
                    target: "access",
                };
                // Writing into a Vec fails only if serialization does,
                // and every field here serializes.
                let _ = serde_json::to_writer(&mut out, &json);
            }
        }
        out.push(b'\n');
        out
    }

    /// `name=value` pairs as tracing's text format writes them: strings
    /// quoted and escaped (a Host cannot forge a field), numbers bare,
    /// milliseconds with three decimals.
    fn text_fields(&self, out: &mut Vec<u8>) {
        let mut numbers = itoa::Buffer::new();
        out.extend_from_slice(b"client=");
        out.extend_from_slice(self.client.as_bytes());
        out.extend_from_slice(b" method=");
        out.extend_from_slice(self.method.0.as_str().as_bytes());
        out.extend_from_slice(b" host=");
        quoted(out, self.host);
        out.extend_from_slice(b" path=");
        out.extend_from_slice(self.path.0.as_bytes());
        out.extend_from_slice(b" status=");
        out.extend_from_slice(numbers.format(self.status).as_bytes());
        out.extend_from_slice(b" cache=");
        quoted(out, self.cache);
        out.extend_from_slice(b" reason=");
        quoted(out, self.reason);
        out.extend_from_slice(b" route=");
        quoted(out, self.route);
        out.extend_from_slice(b" origin=");
        quoted(out, self.origin);
        if let Some(origin_ms) = self.origin_ms {
            out.extend_from_slice(b" origin_ms=");
            millis(out, origin_ms);
        }
        out.extend_from_slice(b" duration_ms=");
        millis(out, self.duration_ms);
        out.extend_from_slice(b" bytes=");
        out.extend_from_slice(numbers.format(self.bytes).as_bytes());
        out.extend_from_slice(if self.complete {
            b" complete=true"
        } else {
            b" complete=false"
        });
    }
}

/// `"text"`, escaped like `{:?}` when it holds a quote, a backslash or a
/// control character.
fn quoted(out: &mut Vec<u8>, text: &str) {
    if text
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(out, "{text:?}");
    }
}

/// Milliseconds with three decimals (microsecond resolution).
fn millis(out: &mut Vec<u8>, ms: f64) {
    let micros = (ms * 1000.0).round() as u64;
    let mut numbers = itoa::Buffer::new();
    out.extend_from_slice(numbers.format(micros / 1000).as_bytes());
    let fraction = micros % 1000;
    out.push(b'.');
    out.extend_from_slice(&[
        b'0' + (fraction / 100) as u8,
        b'0' + (fraction / 10 % 10) as u8,
        b'0' + (fraction % 10) as u8,
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn line(origin_ms: Option<f64>) -> Line<'static> {
        Line {
            client: "127.0.0.1:5000",
            method: Shown(&Method::GET),
            host: "example.test",
            path: Shown(Box::leak(Box::new("/a?b=\"c\"".to_owned()))),
            status: 200,
            cache: "HIT",
            reason: "-",
            route: "default",
            origin: "o\"1",
            origin_ms,
            duration_ms: 0.25,
            bytes: 1024,
            complete: true,
        }
    }

    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_micros(1_764_000_000_123_456)
    }

    #[test]
    fn text_lines_read_like_tracing_lines() {
        let text = String::from_utf8(line(Some(1.5)).render(LogFormat::Text, at())).unwrap();
        assert_eq!(
            text,
            "2025-11-24T16:00:00.123456Z  INFO access: client=127.0.0.1:5000 method=GET \
             host=\"example.test\" path=/a?b=\"c\" status=200 cache=\"HIT\" reason=\"-\" \
             route=\"default\" origin=\"o\\\"1\" origin_ms=1.500 duration_ms=0.250 bytes=1024 \
             complete=true\n"
        );
        let text = String::from_utf8(line(None).render(LogFormat::Text, at())).unwrap();
        assert!(!text.contains("origin_ms"));
    }

    #[test]
    fn json_lines_are_one_object_with_tracings_keys() {
        let json = line(None).render(LogFormat::Json, at());
        assert_eq!(json.last(), Some(&b'\n'));
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["timestamp"], "2025-11-24T16:00:00.123456Z");
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["target"], "access");
        assert_eq!(value["path"], "/a?b=\"c\"");
        assert_eq!(value["origin"], "o\"1");
        assert_eq!(value["status"], 200);
        assert_eq!(value["duration_ms"], 0.25);
        assert!(value.get("origin_ms").is_none());
    }
}
