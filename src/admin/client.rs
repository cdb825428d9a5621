//! The client side of the admin API: find a running instance through its
//! `<cache file>.admin` record (or `--admin`), send it requests, and the
//! commands built on that: `--clear-cache`, `cache ...`, `--health-check`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use super::{AdminFile, admin_file_path};
use crate::cache::persist::{encode, write_atomic};
use crate::error::BoxError;

/// Why a command could not get its answer from a running instance.
#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    /// Nothing answered at the address.
    #[error("no admin API answers at {addr}")]
    Unreachable {
        /// The address tried.
        addr: SocketAddr,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// The instance answered, but not with a success.
    #[error("admin API at {addr} answered {status}: {body}")]
    Refused {
        /// The admin address of the instance.
        addr: SocketAddr,
        /// Its answer.
        status: StatusCode,
        /// Its explanation.
        body: String,
    },
    /// No record of a running instance next to the cache file, and no
    /// `--admin` given.
    #[error("no running instance found: no {} (start one, or give --admin ADDR)", record.display())]
    NoInstance {
        /// The record that is missing.
        record: PathBuf,
    },
    /// `--admin ADDR` was given and nothing answers there.
    #[error("no instance answers at --admin {addr}")]
    NotAtAddress {
        /// The address given.
        addr: SocketAddr,
    },
    /// The URL given to `--health-check` cannot be checked.
    #[error("--health-check {url}: {why}")]
    BadHealthUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Emptying the cache file failed.
    #[error("cache file {}", path.display())]
    CacheFile {
        /// The snapshot path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// No answer within this long is no answer.
const NO_ANSWER: Duration = Duration::from_secs(10);

/// Where to reach an instance's admin API.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its address.
    pub address: SocketAddr,
    /// The bearer token, if it needs one.
    pub token: Option<String>,
}

impl Target {
    /// `--admin ADDR` if given, else the record next to the cache file; the
    /// token from `token`, else the record.
    pub fn locate(
        cache_file: &Path,
        address: Option<SocketAddr>,
        token: Option<String>,
    ) -> Option<Target> {
        let record = std::fs::read(admin_file_path(cache_file))
            .ok()
            .and_then(|b| serde_json::from_slice::<AdminFile>(&b).ok());
        let address = address.or(record.as_ref().map(|r| r.address))?;
        let token = token.or(record.and_then(|r| r.token));
        Some(Target { address, token })
    }

    /// Sends one request; `Err` when nothing answers.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, Bytes), AdminClientError> {
        let unreachable = |source: BoxError| AdminClientError::Unreachable {
            addr: self.address,
            source,
        };
        let exchange = async {
            let stream = tokio::net::TcpStream::connect(self.address)
                .await
                .map_err(|e| unreachable(e.into()))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| unreachable(e.into()))?;
            tokio::spawn(connection);
            let mut request = Request::builder()
                .method(method)
                .uri(path_and_query)
                .header(HOST, self.address.to_string());
            if let Some(token) = &self.token {
                request = request.header(AUTHORIZATION, format!("Bearer {token}"));
            }
            if body.is_some() {
                request = request.header(CONTENT_TYPE, "application/json");
            }
            let request = request
                .body(Full::new(Bytes::from(body.unwrap_or_default())))
                .map_err(|e| unreachable(e.into()))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| unreachable(e.into()))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| unreachable(e.into()))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(NO_ANSWER, exchange)
            .await
            .unwrap_or_else(|elapsed| Err(unreachable(elapsed.into())))
    }

    /// Sends a request and expects a 2xx; returns the body.
    pub async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<String>,
    ) -> Result<Bytes, AdminClientError> {
        let (status, body) = self.send(method, path_and_query, body).await?;
        if !status.is_success() {
            return Err(AdminClientError::Refused {
                addr: self.address,
                status,
                body: String::from_utf8_lossy(&body).trim().to_owned(),
            });
        }
        Ok(body)
    }
}

/// What `--clear-cache` found.
#[derive(Debug, PartialEq, Eq)]
pub enum ClearOutcome {
    /// A running instance emptied its memory and its snapshot.
    Instance {
        /// How many entries it dropped.
        purged: u64,
        /// Why it could not rewrite its snapshot, if it could not (its
        /// directory is read-only, its disk full).
        snapshot_error: Option<String>,
    },
    /// No instance runs on this cache file; the file was emptied.
    FileOnly,
}

/// Empties the cache at `cache_file`: through the running instance when
/// there is one (found at `admin`, or through the `.admin` record), else
/// by writing an empty snapshot.
pub async fn clear_cache(
    cache_file: &Path,
    admin: Option<SocketAddr>,
) -> Result<ClearOutcome, AdminClientError> {
    let token = std::env::var(TOKEN_ENV).ok();
    if let Some(target) = Target::locate(cache_file, admin, token) {
        match target
            .call(Method::POST, "/purge", Some("{\"all\":true}".into()))
            .await
        {
            Ok(body) => {
                let answer = serde_json::from_slice::<serde_json::Value>(&body).ok();
                let field = |name: &str| answer.as_ref().map(|v| v[name].clone());
                return Ok(ClearOutcome::Instance {
                    purged: field("purged").and_then(|v| v.as_u64()).unwrap_or(0),
                    snapshot_error: field("snapshot_error")
                        .and_then(|v| v.as_str().map(str::to_owned)),
                });
            }
            Err(AdminClientError::Unreachable { .. }) if admin.is_some() => {
                return Err(AdminClientError::NotAtAddress {
                    addr: target.address,
                });
            }
            Err(AdminClientError::Unreachable { .. }) => {
                // A stale record from an instance that is gone.
                let _ = tokio::fs::remove_file(admin_file_path(cache_file)).await;
            }
            Err(err) => return Err(err),
        }
    }
    let empty = encode(std::iter::empty());
    let path = cache_file.to_owned();
    tokio::task::spawn_blocking(move || write_atomic(&path, &empty))
        .await
        .unwrap_or_else(|joined| Err(std::io::Error::other(joined)))
        .map_err(|source| AdminClientError::CacheFile {
            path: cache_file.to_owned(),
            source,
        })?;
    Ok(ClearOutcome::FileOnly)
}

/// `--health-check URL`: a GET that must answer 2xx within 5 seconds (for
/// container health checks, where no curl is installed).
pub async fn health_check(url: &str) -> Result<(), AdminClientError> {
    let invalid = |why| AdminClientError::BadHealthUrl {
        url: url.to_owned(),
        why,
    };
    let uri: http::Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    if uri.scheme_str() != Some("http") {
        return Err(invalid("only http:// URLs are supported"));
    }
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
    let address = tokio::net::lookup_host((authority.host(), authority.port_u16().unwrap_or(80)))
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| invalid("host not found"))?;
    let target = Target {
        address,
        token: std::env::var(TOKEN_ENV).ok(),
    };
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let (status, _) = target.send(Method::GET, path, None).await?;
    if status.is_success() {
        Ok(())
    } else {
        Err(AdminClientError::Refused {
            addr: address,
            status,
            body: String::new(),
        })
    }
}

/// The environment variable that may hold the admin token.
pub const TOKEN_ENV: &str = "CACHING_PROXY_ADMIN_TOKEN";
