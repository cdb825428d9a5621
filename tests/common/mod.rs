//! Test harness: an in-process origin that counts hits per path, a raw
//! origin for broken responses, the proxy on 127.0.0.1:0 with a clock the
//! test can advance, and a small HTTP client.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use caching_proxy::app::{self, RunningProxy};
use caching_proxy::clock::ManualClock;
use caching_proxy::config::{Config, Limits, Origin as OriginConfig, TtlFrom};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub mod binary;
pub mod redis;
pub mod relay;
pub mod tls;

/// Sets `[cache].ttl`, and the ttl of every route that inherits it (as the
/// config file's `ttl` under `[cache]` would).
#[allow(dead_code)] // not every test binary sets a ttl
pub fn set_cache_ttl(config: &mut Config, ttl: Option<Duration>) {
    config.cache.ttl = ttl;
    for route in &mut config.routes {
        if route.ttl_from == TtlFrom::Cache {
            route.ttl = ttl;
        }
    }
}

/// What the origin answers on one path.
#[derive(Clone, Debug)]
pub struct Route {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    delay: Duration,
    echo: bool,
    negotiate: bool,
    chunk_size: Option<usize>,
    etag: Option<String>,
    stall_after: Option<usize>,
    ranges: bool,
}

impl Route {
    pub fn ok(body: impl Into<Bytes>) -> Self {
        Route {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
            echo: false,
            negotiate: false,
            chunk_size: None,
            etag: None,
            stall_after: None,
            ranges: false,
        }
    }

    /// Answers with the request's method and body.
    pub fn echo() -> Self {
        Route {
            echo: true,
            ..Route::ok("")
        }
    }

    /// Compresses the body in the first coding the request asks for, as
    /// origins that compress do, with `Vary: Accept-Encoding`; an
    /// `Accept-Encoding` naming anything but `br`, `zstd` and `gzip`, or with
    /// weights (what the proxy should have normalized), is answered 400.
    pub fn negotiated(mut self) -> Self {
        self.negotiate = true;
        self
    }

    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sends `ETag: tag` and answers 304 when If-None-Match names it.
    pub fn etag(mut self, tag: &str) -> Self {
        self.etag = Some(tag.to_owned());
        self.headers.push(("etag".into(), tag.into()));
        self
    }

    /// Announces the whole body, sends its first `bytes`, then stops
    /// sending without closing: a stalled origin.
    pub fn stall_after(mut self, bytes: usize) -> Self {
        self.stall_after = Some(bytes);
        self
    }

    /// Answers a single `Range: bytes=...` with 206 and `Content-Range`
    /// (honouring `If-Range` against its `ETag`), as file servers do.
    pub fn ranges(mut self) -> Self {
        self.ranges = true;
        self
    }

    /// Sends the body chunked (no Content-Length), in pieces of `size`.
    pub fn chunked(mut self, size: usize) -> Self {
        self.chunk_size = Some(size);
        self
    }
}

#[derive(Default)]
struct OriginState {
    routes: Mutex<HashMap<String, Route>>,
    hits: Mutex<HashMap<String, usize>>,
    /// Woken on every hit.
    hit: tokio::sync::Notify,
    last_request: Mutex<HashMap<String, HeaderMap>>,
    ranges_asked: Mutex<HashMap<String, Vec<Option<String>>>>,
    statuses: Mutex<HashMap<String, Vec<u16>>>,
    clock: Mutex<Option<Arc<ManualClock>>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    connections: std::sync::atomic::AtomicUsize,
}

/// An origin server on 127.0.0.1:0.
pub struct TestOrigin {
    pub addr: SocketAddr,
    state: Arc<OriginState>,
}

impl TestOrigin {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// An origin on `addr` (a stopped origin's, to start it again).
    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(OriginState::default());
        let serving = state.clone();
        let accept_loop = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                serving
                    .connections
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let state = serving.clone();
                let connection = tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let state = state.clone();
                        async move {
                            let key = req
                                .uri()
                                .path_and_query()
                                .map_or("/", |pq| pq.as_str())
                                .to_owned();
                            let mut response = answer(&state, req).await;
                            if let Some(clock) = state.clock.lock().unwrap().as_ref() {
                                let date = httpdate::fmt_http_date(
                                    caching_proxy::clock::Clock::now(clock.as_ref()),
                                );
                                response
                                    .headers_mut()
                                    .insert(http::header::DATE, date.parse().unwrap());
                            }
                            state
                                .statuses
                                .lock()
                                .unwrap()
                                .entry(key)
                                .or_default()
                                .push(response.status().as_u16());
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                serving
                    .tasks
                    .lock()
                    .unwrap()
                    .push(connection.abort_handle());
            }
        });
        state.tasks.lock().unwrap().push(accept_loop.abort_handle());
        TestOrigin { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many connections the origin has accepted.
    pub fn connections(&self) -> usize {
        self.state
            .connections
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops listening and closes every connection: the origin is gone.
    pub fn stop(&self) {
        for task in self.state.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    pub fn route(&self, path: &str, route: Route) -> &Self {
        self.state.routes.lock().unwrap().insert(path.into(), route);
        self
    }

    /// Requests received for this path and query.
    /// Waits until `path_and_query` has been requested `count` times (at
    /// most 5 s).
    #[allow(dead_code)] // not every test binary waits for a hit
    pub async fn wait_for_hits(&self, path_and_query: &str, count: usize) {
        let reached = async {
            loop {
                let hit = self.state.hit.notified();
                if self.hits(path_and_query) >= count {
                    return;
                }
                hit.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), reached)
            .await
            .unwrap_or_else(|_| panic!("{path_and_query} was not requested {count} times"));
    }

    pub fn hits(&self, path_and_query: &str) -> usize {
        *self
            .state
            .hits
            .lock()
            .unwrap()
            .get(path_and_query)
            .unwrap_or(&0)
    }

    /// Dates responses with `clock` (the proxy's test clock), so that a
    /// test that moves time does not see the origin's clock lag behind.
    pub fn use_clock(&self, clock: &Arc<ManualClock>) {
        *self.state.clock.lock().unwrap() = Some(clock.clone());
    }

    /// The statuses the origin answered this path and query with.
    pub fn statuses(&self, path_and_query: &str) -> Vec<u16> {
        self.state
            .statuses
            .lock()
            .unwrap()
            .get(path_and_query)
            .cloned()
            .unwrap_or_default()
    }

    /// The headers of the last request for this path and query.
    /// The `Range` of each request for `path_and_query`, in order.
    pub fn ranges_asked(&self, path_and_query: &str) -> Vec<Option<String>> {
        self.state
            .ranges_asked
            .lock()
            .unwrap()
            .get(path_and_query)
            .cloned()
            .unwrap_or_default()
    }

    pub fn last_headers(&self, path_and_query: &str) -> HeaderMap {
        self.state
            .last_request
            .lock()
            .unwrap()
            .get(path_and_query)
            .cloned()
            .unwrap_or_default()
    }
}

async fn answer(state: &OriginState, req: Request<Incoming>) -> Response<TestBody> {
    let key = req
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    *state.hits.lock().unwrap().entry(key.clone()).or_default() += 1;
    state.hit.notify_waiters();
    let accept_encoding = req
        .headers()
        .get("accept-encoding")
        .map(|v| v.to_str().unwrap().to_owned());
    let range = req
        .headers()
        .get("range")
        .map(|v| v.to_str().unwrap().to_owned());
    state
        .ranges_asked
        .lock()
        .unwrap()
        .entry(key.clone())
        .or_default()
        .push(range.clone());
    state
        .last_request
        .lock()
        .unwrap()
        .insert(key, req.headers().clone());
    let route = state.routes.lock().unwrap().get(req.uri().path()).cloned();
    let Some(route) = route else {
        let mut response = Response::new(TestBody::full(Bytes::from_static(b"no such route")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    if !route.delay.is_zero() {
        tokio::time::sleep(route.delay).await;
    }
    let if_range_holds = req
        .headers()
        .get("if-range")
        .is_none_or(|v| route.etag.as_deref() == v.to_str().ok());

    let not_modified = route.etag.as_ref().is_some_and(|tag| {
        req.headers()
            .get("if-none-match")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == tag))
    });
    if not_modified {
        let mut response = Response::new(TestBody::full(Bytes::new()));
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        for (name, value) in &route.headers {
            response.headers_mut().append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                http::HeaderValue::from_str(value).unwrap(),
            );
        }
        return response;
    }
    let mut body = if route.echo {
        let method = req.method().to_string();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        Bytes::from([method.as_bytes(), b" ", &body[..]].concat())
    } else {
        route.body.clone()
    };
    let mut negotiated = None;
    if route.negotiate {
        match encode(accept_encoding.as_deref(), &body) {
            Some((coding, encoded)) => {
                negotiated = coding;
                body = encoded;
            }
            None => {
                let mut response = Response::new(TestBody::full(Bytes::from_static(b"bad ae")));
                *response.status_mut() = StatusCode::BAD_REQUEST;
                return response;
            }
        }
    }
    let mut content_range = None;
    if let (true, true, Some(range)) = (route.ranges, if_range_holds, range.as_deref()) {
        if let Some(bytes) = single_range(range, body.len()) {
            content_range = Some(format!(
                "bytes {}-{}/{}",
                bytes.start,
                bytes.end - 1,
                body.len()
            ));
            body = body.slice(bytes);
        }
    }
    let mut body = match route.chunk_size {
        Some(size) => TestBody::chunked(body, size),
        None => TestBody::full(body),
    };
    body.stall_after = route.stall_after;
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(route.status).unwrap();
    if let Some(content_range) = content_range {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        response
            .headers_mut()
            .insert("content-range", content_range.parse().unwrap());
    }
    if route.negotiate {
        let headers = response.headers_mut();
        headers.insert("vary", http::HeaderValue::from_static("Accept-Encoding"));
        if let Some(coding) = negotiated {
            headers.insert("content-encoding", http::HeaderValue::from_static(coding));
        }
    }
    for (name, value) in &route.headers {
        response.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    response
}

/// The bytes of one `bytes=a-b`, `bytes=a-` or `bytes=-n` in a body of `len`.
fn single_range(value: &str, len: usize) -> Option<std::ops::Range<usize>> {
    let (first, last) = value.strip_prefix("bytes=")?.split_once('-')?;
    let (start, end) = match (first.parse::<usize>().ok(), last.parse::<usize>().ok()) {
        (Some(a), Some(b)) => (a, b.min(len - 1) + 1),
        (Some(a), None) if last.is_empty() => (a, len),
        (None, Some(n)) if first.is_empty() => (len.saturating_sub(n), len),
        _ => return None,
    };
    (start < end && end <= len).then_some(start..end)
}

/// `body` in the first coding `accept_encoding` names (`None`: identity);
/// `None` when it names another coding or weighs them.
fn encode(accept_encoding: Option<&str>, body: &[u8]) -> Option<(Option<&'static str>, Bytes)> {
    use std::io::Write;
    let codings: Vec<&str> = accept_encoding.map_or(Vec::new(), |v| v.split(", ").collect());
    if codings.iter().any(|c| !["br", "zstd", "gzip"].contains(c)) {
        return None;
    }
    let encoded = match codings.first().copied() {
        None => return Some((None, Bytes::copy_from_slice(body))),
        Some("gzip") => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(body).unwrap();
            ("gzip", encoder.finish().unwrap())
        }
        Some("br") => {
            let mut encoder = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22);
            encoder.write_all(body).unwrap();
            encoder.flush().unwrap();
            ("br", encoder.into_inner())
        }
        Some("zstd") => ("zstd", zstd::stream::encode_all(body, 3).unwrap()),
        Some(_) => return None,
    };
    Some((Some(encoded.0), Bytes::from(encoded.1)))
}

/// Decodes a body in `coding` (`None`: identity).
pub fn decode(coding: Option<&str>, body: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match coding {
        None => out.extend_from_slice(body),
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("br") => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("zstd") => out = zstd::stream::decode_all(body).unwrap(),
        Some(other) => panic!("unknown coding {other}"),
    }
    out
}

/// A body sent whole (with Content-Length) or in chunks (without); maybe
/// stalling after some bytes.
pub struct TestBody {
    rest: Bytes,
    chunk: Option<usize>,
    announced: u64,
    stall_after: Option<usize>,
}

impl TestBody {
    fn full(bytes: Bytes) -> Self {
        TestBody {
            announced: bytes.len() as u64,
            rest: bytes,
            chunk: None,
            stall_after: None,
        }
    }
    fn chunked(bytes: Bytes, size: usize) -> Self {
        TestBody {
            announced: bytes.len() as u64,
            rest: bytes,
            chunk: Some(size),
            stall_after: None,
        }
    }
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.rest.is_empty() {
            return Poll::Ready(None);
        }
        let mut n = this.chunk.unwrap_or(this.rest.len()).min(this.rest.len());
        if let Some(left) = this.stall_after.as_mut() {
            if *left == 0 {
                // Never woken: the origin just stops sending.
                return Poll::Pending;
            }
            n = n.min(*left);
            *left -= n;
        }
        Poll::Ready(Some(Ok(Frame::data(this.rest.split_to(n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.chunk {
            Some(_) => http_body::SizeHint::default(),
            None => http_body::SizeHint::with_exact(self.announced),
        }
    }
}

/// An origin that answers every connection with `raw` bytes and closes.
pub async fn raw_origin(raw: &'static [u8]) -> (SocketAddr, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(Mutex::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            *counter.lock().unwrap() += 1;
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(raw).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, count)
}

/// An origin that sends a chunked body of `chunks` ten-byte chunks, one
/// every `every`.
pub async fn paced_origin(chunks: usize, every: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: no-store\r\n\r\n")
                    .await;
                for _ in 0..chunks {
                    tokio::time::sleep(every).await;
                    let _ = stream.write_all(b"a\r\n0123456789\r\n").await;
                }
                let _ = stream.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    addr
}

/// A proxy on 127.0.0.1:0 with a clock the test advances.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    pub cache_file: PathBuf,
    running: Option<RunningProxy>,
    _dir: Option<tempfile::TempDir>,
}

/// A config for `origin_url` with the snapshot in `cache_file`.
pub fn config(origin_url: &str, cache_file: PathBuf) -> Config {
    let origin = OriginConfig::parse(origin_url, Duration::from_secs(5)).unwrap();
    let mut config = Config::single("127.0.0.1:0".parse().unwrap(), origin, cache_file);
    config.cache.write_delay = Duration::from_millis(20);
    config.limits = Limits {
        shutdown_grace: Duration::from_secs(2),
        ..Limits::default()
    };
    config
}

impl TestProxy {
    /// A proxy in front of `origin_url` with the default settings.
    pub async fn start(origin_url: &str) -> Self {
        Self::start_with(origin_url, |_| {}).await
    }

    /// A proxy whose config the test adjusts first.
    pub async fn start_with(origin_url: &str, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cache_file = dir.path().join("cache.json");
        let mut proxy = Self::start_on(
            origin_url,
            cache_file,
            Arc::new(ManualClock::default()),
            adjust,
        )
        .await;
        proxy._dir = Some(dir);
        proxy
    }

    /// A proxy on a given snapshot file and clock (for restarts).
    pub async fn start_on(
        origin_url: &str,
        cache_file: PathBuf,
        clock: Arc<ManualClock>,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = config(origin_url, cache_file.clone());
        adjust(&mut config);
        let running = app::start(config, clock.clone()).await.unwrap();
        TestProxy {
            addr: running.local_addr(),
            clock,
            cache_file,
            running: Some(running),
            _dir: None,
        }
    }

    pub fn running(&self) -> &RunningProxy {
        self.running.as_ref().unwrap()
    }

    /// Graceful shutdown (writes the snapshot); keeps the temp dir alive.
    pub async fn stop(&mut self) {
        self.running.take().unwrap().shutdown().await.unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// A response read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn x_cache(&self) -> &str {
        self.header("x-cache").unwrap_or("<none>")
    }
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `request` and reads the whole answer.
pub async fn send(client: &TestClient, request: Request<Full<Bytes>>) -> Answer {
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// GET `url` on a fresh client.
pub async fn get(url: &str) -> Answer {
    send(&client(), Request::get(url).body(Full::default()).unwrap()).await
}

/// GET `url` with these request headers, on a fresh client.
pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut builder = Request::get(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(&client(), builder.body(Full::default()).unwrap()).await
}

/// Writes `raw` to `addr` and reads until the server closes (or 5 s).
pub async fn raw_exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// GET `url` with a fixed `Host`, so that proxies on different ports share
/// keys (as one proxy does across restarts on its fixed port).
pub async fn get_as(url: &str, host: &str) -> Answer {
    let request = Request::get(url)
        .header(http::header::HOST, host)
        .body(Full::default())
        .unwrap();
    send(&client(), request).await
}

/// A proxy started from a config file in a temp dir, as `--config` does.
pub struct FileProxy {
    pub path: PathBuf,
    pub clock: Arc<ManualClock>,
    running: Option<RunningProxy>,
    _dir: tempfile::TempDir,
}

impl FileProxy {
    /// Writes `toml` to `<tmp>/proxy.toml` and starts a proxy on it.
    pub async fn start(toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.toml");
        std::fs::write(&path, toml).unwrap();
        let clock = Arc::new(ManualClock::default());
        let source = caching_proxy::config::ConfigSource {
            path: Some(path.clone()),
            overrides: Default::default(),
        };
        let running = app::start_from(source, clock.clone()).await.unwrap();
        FileProxy {
            path,
            clock,
            running: Some(running),
            _dir: dir,
        }
    }

    pub fn running(&self) -> &RunningProxy {
        self.running.as_ref().unwrap()
    }

    /// A URL on the first listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.running().local_addr(), path)
    }

    /// Replaces the file the way editors do: write a temp file, rename it.
    pub fn edit(&self, toml: &str) {
        let tmp = self.path.with_extension("toml.tmp");
        std::fs::write(&tmp, toml).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }

    /// Waits (bounded) for the next reload outcome.
    pub async fn next_reload(
        events: &mut tokio::sync::watch::Receiver<caching_proxy::reload::ReloadEvent>,
    ) -> caching_proxy::reload::ReloadEvent {
        tokio::time::timeout(Duration::from_secs(10), events.changed())
            .await
            .expect("no reload within 10 s")
            .unwrap();
        events.borrow_and_update().clone()
    }

    pub async fn stop(&mut self) {
        self.running.take().unwrap().shutdown().await.unwrap();
    }
}

/// A `[[origins]]` table.
pub fn origin_toml(name: &str, url: &str) -> String {
    format!("[[origins]]\nname = \"{name}\"\nurl = \"{url}\"\n")
}

/// One `[[listeners]]` on 127.0.0.1:0.
pub const LISTENER: &str = "[[listeners]]\naddress = \"127.0.0.1:0\"\n";
