//! The control endpoint: how `--clear-cache` reaches a running instance.
//!
//! Each instance listens on an ephemeral loopback port and records it, with
//! a random token, in `<cache file>.admin` (mode 0600, next to the cache
//! file). `caching-proxy --clear-cache` reads that file and sends
//! `POST /purge {"all":true}` with `Authorization: Bearer <token>`; the
//! instance empties its memory and rewrites the snapshot. When no instance
//! answers, the command empties the file itself.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cache::Store;
use crate::cache::persist::{Snapshotter, write_atomic};
use crate::error::Error;

/// Where a running instance advertises its control endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminFile {
    /// The instance's process id.
    pub pid: u32,
    /// Its loopback control address.
    pub address: SocketAddr,
    /// The bearer token it accepts.
    pub token: String,
}

/// `<cache file>.admin`
pub fn admin_file_path(cache_file: &Path) -> PathBuf {
    let mut name = cache_file.file_name().unwrap_or_default().to_os_string();
    name.push(".admin");
    cache_file.with_file_name(name)
}

/// The state the control endpoint acts on.
#[derive(Debug)]
pub struct Admin {
    store: Store,
    snapshotter: Arc<Snapshotter>,
    token: String,
}

impl Admin {
    /// Binds the control endpoint (on `address`, or an ephemeral loopback
    /// port) and records it next to the cache file.
    pub async fn bind(
        address: Option<SocketAddr>,
        store: Store,
        snapshotter: Arc<Snapshotter>,
    ) -> Result<(Arc<Self>, TcpListener), Error> {
        let addr = address.unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::from_bind(addr, e))?;
        let address = listener
            .local_addr()
            .map_err(|e| Error::from_bind(addr, e))?;
        let token = random_token()?;
        let record = AdminFile {
            pid: std::process::id(),
            address,
            token: token.clone(),
        };
        let path = admin_file_path(snapshotter.path());
        let bytes = serde_json::to_vec(&record).map_err(|e| Error::Internal(e.to_string()))?;
        let write_path = path.clone();
        tokio::task::spawn_blocking(move || write_atomic(&write_path, &bytes))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|source| Error::CacheFile { path, source })?;
        let admin = Arc::new(Admin {
            store,
            snapshotter,
            token,
        });
        Ok((admin, listener))
    }

    /// Serves control requests until `cancel` fires, then removes the
    /// record if it is still ours.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, cancel: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = cancel.cancelled() => break,
            };
            let Ok((stream, _)) = accepted else { continue };
            let admin = self.clone();
            let service = service_fn(move |request| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(admin.answer(request).await) }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(5))
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
        self.remove_record();
    }

    fn remove_record(&self) {
        let path = admin_file_path(self.snapshotter.path());
        let ours = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<AdminFile>(&b).ok())
            .is_some_and(|record| record.token == self.token);
        if ours {
            let _ = std::fs::remove_file(path);
        }
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let authorized = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t == self.token);
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
            (&Method::POST, "/purge") if !authorized => {
                tracing::warn!("control request with a wrong or missing token refused");
                text(StatusCode::UNAUTHORIZED, "unauthorized\n")
            }
            (&Method::POST, "/purge") => self.purge(request).await,
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    async fn purge(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        #[derive(Deserialize)]
        struct Purge {
            all: bool,
        }
        let body = match Limited::new(request.into_body(), 4096).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return text(StatusCode::BAD_REQUEST, "unreadable body\n"),
        };
        match serde_json::from_slice::<Purge>(&body) {
            Ok(Purge { all: true }) => {}
            _ => return text(StatusCode::BAD_REQUEST, "expected {\"all\":true}\n"),
        }
        let purged = self.store.clear();
        let snapshotter = self.snapshotter.clone();
        let written = tokio::task::spawn_blocking(move || snapshotter.write_now()).await;
        if !matches!(written, Ok(Ok(_))) {
            return text(StatusCode::INTERNAL_SERVER_ERROR, "snapshot not written\n");
        }
        tracing::info!(purged, "cache cleared on request");
        let mut response = text(StatusCode::OK, "");
        *response.body_mut() = Full::new(Bytes::from(format!("{{\"purged\":{purged}}}")));
        response.headers_mut().insert(
            CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

fn random_token() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What `--clear-cache` found.
#[derive(Debug, PartialEq, Eq)]
pub enum ClearOutcome {
    /// A running instance emptied its memory and its snapshot.
    Instance {
        /// How many entries it dropped.
        purged: u64,
    },
    /// No instance runs on this cache file; the file was emptied.
    FileOnly,
}

/// Empties the cache at `cache_file`: through the running instance when
/// there is one, else by writing an empty snapshot.
pub async fn clear_cache(cache_file: &Path) -> Result<ClearOutcome, Error> {
    let record_path = admin_file_path(cache_file);
    let record = tokio::fs::read(&record_path)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<AdminFile>(&b).ok());
    if let Some(record) = record {
        match purge_all(&record).await {
            Ok(purged) => return Ok(ClearOutcome::Instance { purged }),
            Err(PurgeError::Unreachable) => {
                // A stale record from an instance that is gone.
                let _ = tokio::fs::remove_file(&record_path).await;
            }
            Err(PurgeError::Refused(status)) => {
                return Err(Error::AdminRefused {
                    addr: record.address,
                    status,
                });
            }
        }
    }
    let empty = crate::cache::persist::encode(&[]);
    let path = cache_file.to_owned();
    tokio::task::spawn_blocking(move || write_atomic(&path, &empty))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(|source| Error::CacheFile {
            path: cache_file.to_owned(),
            source,
        })?;
    Ok(ClearOutcome::FileOnly)
}

enum PurgeError {
    Unreachable,
    Refused(StatusCode),
}

async fn purge_all(record: &AdminFile) -> Result<u64, PurgeError> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(record.address)
            .await
            .map_err(|_| PurgeError::Unreachable)?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| PurgeError::Unreachable)?;
        tokio::spawn(connection);
        let request = Request::post("/purge")
            .header(http::header::HOST, record.address.to_string())
            .header(AUTHORIZATION, format!("Bearer {}", record.token))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(b"{\"all\":true}")))
            .map_err(|_| PurgeError::Refused(StatusCode::BAD_REQUEST))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|_| PurgeError::Unreachable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(PurgeError::Refused(status));
        }
        #[derive(Deserialize)]
        struct Purged {
            purged: u64,
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|_| PurgeError::Unreachable)?
            .to_bytes();
        serde_json::from_slice::<Purged>(&body)
            .map(|p| p.purged)
            .map_err(|_| PurgeError::Refused(status))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or(Err(PurgeError::Unreachable))
}
