//! The admin API: its own listener (loopback by default), never reaching an
//! origin or the cache's request path.
//!
//! - `GET /healthz` (process up), `GET /readyz` (listeners bound, config
//!   loaded), `GET /metrics` (Prometheus text), `GET /stats` (JSON).
//! - `POST /purge` with `{"url": ...}`, `{"prefix": ...}`, `{"tag": ...}` or
//!   `{"all": true}`; the `PURGE` method on a URL. Answers `{"purged": N}`.
//! - `GET /cache/keys?filter=&limit=`, `GET /cache/entry?url=`,
//!   `GET /cache/explain?url=`: inspection.
//!
//! With a token configured, every endpoint but the health checks needs
//! `Authorization: Bearer <token>`; a listener off loopback requires one.
//! The instance records its address (and token) in `<cache file>.admin`
//! (mode 0600) so that `caching-proxy --clear-cache` and `caching-proxy
//! cache ...` find it; see [`client`].

pub mod client;
mod dashboard;
mod error;
mod inspect;
mod purge;

use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accept::BindError;
use crate::cache::persist::{Snapshotter, write_atomic};
use crate::cache::purge::PurgeRule;
use crate::dashboard::Dashboard;
use crate::error::chain;
use crate::proxy::Proxy;

/// How long a purge's answer waits for the fleet's other instances to
/// confirm it (it is applied by them either way).
const FLEET_CONFIRM_WITHIN: Duration = Duration::from_secs(1);
pub use error::AdminError;

/// Where a running instance advertises its admin endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminFile {
    /// The instance's process id.
    pub pid: u32,
    /// Its admin address.
    pub address: SocketAddr,
    /// The bearer token it requires, if any.
    #[serde(default)]
    pub token: Option<String>,
}

/// `<cache file>.admin`
pub fn admin_file_path(cache_file: &Path) -> PathBuf {
    let mut name = cache_file.file_name().unwrap_or_default().to_os_string();
    name.push(".admin");
    cache_file.with_file_name(name)
}

/// The admin endpoint's state.
#[derive(Debug)]
pub struct Admin {
    proxy: Arc<Proxy>,
    snapshotter: Arc<Snapshotter>,
    dashboard: Arc<Dashboard>,
    token: Option<String>,
    address: SocketAddr,
    ready: AtomicBool,
    /// A `POST /snapshot` write is under way (asking again adds none).
    snapshot_running: Arc<AtomicBool>,
}

type Answer = Response<Full<Bytes>>;

impl Admin {
    /// Binds the admin endpoint (on `address`, or an ephemeral loopback
    /// port) and records it next to the cache file.
    pub async fn bind(
        address: Option<SocketAddr>,
        token: Option<String>,
        proxy: Arc<Proxy>,
        snapshotter: Arc<Snapshotter>,
        dashboard: Arc<Dashboard>,
    ) -> Result<(Arc<Self>, TcpListener), BindError> {
        let addr = address.unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| BindError::new(addr, e))?;
        let bound = listener.local_addr().map_err(|e| BindError::new(addr, e))?;
        let record = AdminFile {
            pid: std::process::id(),
            address: bound,
            token: token.clone(),
        };
        let path = admin_file_path(snapshotter.path());
        let write_path = path.clone();
        let written = tokio::task::spawn_blocking(move || {
            let bytes = serde_json::to_vec(&record).map_err(io::Error::other)?;
            write_atomic(&write_path, &bytes)
        })
        .await
        .unwrap_or_else(|joined| Err(io::Error::other(joined)));
        if let Err(err) = written {
            // A read-only directory (a container's read-only root, say)
            // must not stop the proxy; only the commands' way of finding
            // it is lost.
            tracing::warn!(
                path = %path.display(), error = %err,
                "cannot record the admin address; `caching-proxy --clear-cache` and `caching-proxy cache ...` \
                 find this instance only when given --admin {bound}"
            );
        }
        let admin = Arc::new(Admin {
            proxy,
            snapshotter,
            dashboard,
            token,
            address: bound,
            ready: AtomicBool::new(false),
            snapshot_running: Arc::default(),
        });
        Ok((admin, listener))
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Marks the proxy ready (listeners bound, config loaded).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Serves admin requests until `cancel` fires, then removes the record
    /// if it is still ours.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, cancel: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = cancel.cancelled() => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    crate::accept::backoff_after(&err, &cancel).await;
                    continue;
                }
            };
            let admin = self.clone();
            let service = service_fn(move |request| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(admin.answer(request, peer).await) }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
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
            .is_some_and(|record| record.pid == std::process::id());
        if ours {
            let _ = std::fs::remove_file(path);
        }
    }

    fn authorized(&self, request: &Request<Incoming>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let matches = |given: &str| constant_time_eq(given.as_bytes(), token.as_bytes());
        let bearer = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(matches);
        bearer
            || (request.method() == Method::GET
                && dashboard::is_dashboard(request.uri().path())
                && dashboard::query_token(request.uri().query().unwrap_or(""))
                    .is_some_and(|given| matches(&given)))
    }

    async fn answer(&self, request: Request<Incoming>, peer: SocketAddr) -> Answer {
        match self.try_answer(request, peer).await {
            Ok(answer) => answer,
            Err(err) => err.response(),
        }
    }

    async fn try_answer(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Result<Answer, AdminError> {
        let path = request.uri().path().to_owned();
        match (request.method(), path.as_str()) {
            (&Method::GET, "/healthz") => return Ok(text(StatusCode::OK, "ok\n")),
            (&Method::GET, "/readyz") => {
                return Ok(if self.ready.load(Ordering::Acquire) {
                    // A failing shared tier is not a reason to take the
                    // instance out of a load balancer: it serves without.
                    match self.proxy.shared() {
                        Some(tier) => text_owned(
                            StatusCode::OK,
                            format!("ready\nshared tier: {}\n", tier.state().as_str()),
                        ),
                        None => text(StatusCode::OK, "ready\n"),
                    }
                } else {
                    text(StatusCode::SERVICE_UNAVAILABLE, "starting\n")
                });
            }
            _ => {}
        }
        if !self.authorized(&request) {
            tracing::warn!(%peer, %path, "admin request with a wrong or missing token refused");
            return Err(AdminError::Unauthorized);
        }
        let query = request.uri().query().unwrap_or("").to_owned();
        Ok(match (request.method().as_str(), path.as_str()) {
            ("GET", "/") => dashboard::page(),
            ("GET", "/dashboard.json") => {
                let dashboard = self.dashboard.clone();
                let data = tokio::task::spawn_blocking(move || dashboard::data(&dashboard));
                data.await.map_err(AdminError::WorkFailed)?
            }
            ("GET", "/metrics") => {
                let text_of = |proxy: &Proxy| proxy.metrics().encode(proxy.store().usage());
                let encoded = self.off_runtime(text_of).await?;
                let mut response = text(StatusCode::OK, "");
                *response.body_mut() = Full::new(Bytes::from(encoded));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            ("GET", "/stats") => {
                let stats = |proxy: &Proxy| {
                    let mut stats = proxy.metrics().stats(proxy.store().usage());
                    if let Some(tier) = proxy.shared() {
                        stats["shared"] = tier.stats();
                    }
                    let runtime = proxy.runtime();
                    let pools: Vec<serde_json::Value> = runtime
                        .upstreams()
                        .iter()
                        .filter_map(|u| u.servers_stats())
                        .collect();
                    if !pools.is_empty() {
                        stats["origin_servers"] = serde_json::Value::Array(pools);
                    }
                    stats
                };
                let mut stats = self.off_runtime(stats).await?;
                stats["snapshot"]["loading"] = self.snapshotter.is_loading().into();
                json(StatusCode::OK, &stats)
            }
            ("POST", "/purge") => {
                let body = Limited::new(request.into_body(), 64 * 1024)
                    .collect()
                    .await
                    .map_err(AdminError::UnreadableBody)?
                    .to_bytes();
                let purge: purge::Purge =
                    serde_json::from_slice(&body).map_err(AdminError::PurgeBody)?;
                self.purge(purge.rule(&self.proxy.runtime())?).await?
            }
            ("PURGE", _) => {
                let url =
                    purge::url_of_purge_request(&request).ok_or(AdminError::PurgeWithoutUrl)?;
                self.purge(purge::Purge::url(url).rule(&self.proxy.runtime())?)
                    .await?
            }
            ("POST", "/snapshot") => {
                // Like the write-behind: its own thread at the lowest
                // priority; the answer does not wait for it, and asking
                // while a write is under way starts no second one.
                if !self.snapshot_running.swap(true, Ordering::AcqRel) {
                    let snapshotter = self.snapshotter.clone();
                    let running = self.snapshot_running.clone();
                    tokio::spawn(async move {
                        snapshotter.write_in_background().await;
                        running.store(false, Ordering::Release);
                    });
                }
                json(
                    StatusCode::ACCEPTED,
                    &serde_json::json!({ "snapshot": "writing" }),
                )
            }
            ("GET", "/cache/keys") => {
                let keys = self.off_runtime(move |proxy| inspect::keys(proxy, &query));
                json(StatusCode::OK, &keys.await?)
            }
            ("GET", "/cache/entry") => {
                let found = self.off_runtime(move |proxy| inspect::entry(proxy, &query));
                json(StatusCode::OK, &found.await??)
            }
            ("GET", "/cache/explain") => {
                json(StatusCode::OK, &inspect::explain(&self.proxy, &query)?)
            }
            _ => return Err(AdminError::NotFound),
        })
    }

    /// Runs `work` on a blocking thread: walks of the whole cache, and
    /// moka's maintenance (which `usage` waits for), must not hold a
    /// runtime thread that requests need.
    async fn off_runtime<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Proxy) -> T + Send + 'static,
    ) -> Result<T, AdminError> {
        let proxy = self.proxy.clone();
        tokio::task::spawn_blocking(move || work(&proxy))
            .await
            .map_err(AdminError::WorkFailed)
    }

    /// Applies `rule` here, carries it to the fleet (with a shared tier),
    /// and answers after rewriting the snapshot, so that the purged
    /// entries do not come back at the next start.
    async fn purge(&self, rule: PurgeRule) -> Result<Answer, AdminError> {
        let applied = rule.clone();
        let purged = self
            .off_runtime(move |proxy| purge::run(proxy, &applied))
            .await?;
        let mut answer = serde_json::json!({ "purged": purged });
        if let Some(tier) = self.proxy.shared() {
            answer["fleet"] = match tier.publish_purge(&rule, FLEET_CONFIRM_WITHIN).await {
                Ok(fanout) => serde_json::to_value(fanout).unwrap_or_default(),
                Err(err) => {
                    tracing::warn!(error = %chain(&err), "purge not carried to the fleet");
                    serde_json::json!({ "error": chain(&err) })
                }
            };
        }
        let snapshotter = self.snapshotter.clone();
        let write = tokio::task::spawn_blocking(move || snapshotter.write_now());
        // While the snapshot still loads, the write waits for the load's end
        // (it would lose the entries not read yet): it happens then, and the
        // answer does not wait for it.
        let written = if self.snapshotter.is_loading() {
            answer["snapshot"] = "written once the snapshot being loaded is read".into();
            Ok(Ok(0))
        } else {
            write.await
        };
        tracing::info!(purged, op = rule.op(), "cache purged on request");
        let what = match rule {
            PurgeRule::All => "everything".to_owned(),
            _ => format!("{} {}", rule.op(), rule.arg()),
        };
        self.dashboard
            .event("purge", true, format!("{what}: {purged} entries removed"));
        // Memory is purged either way; say when the file is not.
        match written {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => answer["snapshot_error"] = chain(&err).into(),
            Err(err) => answer["snapshot_error"] = chain(&err).into(),
        }
        Ok(json(StatusCode::OK, &answer))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn text(status: StatusCode, body: &'static str) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

fn text_owned(status: StatusCode, body: String) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

fn json(status: StatusCode, value: &serde_json::Value) -> Answer {
    let mut response = text_owned(status, value.to_string());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
