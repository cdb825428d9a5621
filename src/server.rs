//! Listeners: bind, accept, TLS (rustls, ALPN h2 and http/1.1), serve
//! HTTP/1.1 and HTTP/2 (h2c by prior knowledge) with hyper's timers, and
//! drain gracefully. [`ListenerSet`] keeps the listeners a reload adds,
//! keeps or removes.
//!
//! The accept loop never ends on an accept error (too many open files, a
//! connection reset before accept): it logs, backs off briefly and goes on.
//! A semaphore caps open connections; at the cap, new clients wait in the
//! kernel's backlog.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::accept::{self, BindError};
use crate::config::Limits;
use crate::proxy::{ClientConn, Peer, Proxy, RequestLimits};
use crate::streams::{self, Streams};
use crate::upstream::body::MinRate;

/// Linux's "address family not supported" (no IPv6 in this kernel).
const EAFNOSUPPORT: i32 = 97;

/// Pending connections the kernel queues for us.
const BACKLOG: i32 = 1024;

/// Binds `addr`. The unspecified IPv6 address listens on IPv4 too
/// (dual-stack); where IPv6 is unavailable it falls back to `0.0.0.0`.
/// Must be called within a tokio runtime.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    match bind_socket(addr) {
        Err(err)
            if addr.is_ipv6()
                && addr.ip().is_unspecified()
                && (err.kind() == io::ErrorKind::Unsupported
                    || err.raw_os_error() == Some(EAFNOSUPPORT)) =>
        {
            let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port()));
            tracing::warn!("IPv6 is unavailable; listening on IPv4 only");
            bind_socket(v4).map_err(|e| BindError::new(v4, e))
        }
        other => other.map_err(|e| BindError::new(addr, e)),
    }
}

fn bind_socket(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// The listeners being served, by configured address. Reload adds and
/// removes listeners here; an address that stays keeps its socket and its
/// open connections.
#[derive(Debug)]
pub struct ListenerSet {
    proxy: Arc<Proxy>,
    parent: CancellationToken,
    running: HashMap<SocketAddr, RunningListener>,
    draining: Vec<JoinHandle<()>>,
}

#[derive(Debug)]
struct RunningListener {
    local: SocketAddr,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl ListenerSet {
    /// An empty set; every listener stops when `parent` is cancelled.
    pub fn new(proxy: Arc<Proxy>, parent: CancellationToken) -> Self {
        ListenerSet {
            proxy,
            parent,
            running: HashMap::new(),
            draining: Vec::new(),
        }
    }

    /// Configured and bound address of each listener.
    pub fn addresses(&self) -> Vec<(SocketAddr, SocketAddr)> {
        let mut addresses: Vec<_> = self.running.iter().map(|(c, r)| (*c, r.local)).collect();
        addresses.sort();
        addresses
    }

    /// Binds every address in `wanted` that is not served yet; all or
    /// nothing, so a failed bind leaves no half-applied change.
    pub fn bind_missing(
        &self,
        wanted: &[SocketAddr],
    ) -> Result<Vec<(SocketAddr, TcpListener)>, BindError> {
        wanted
            .iter()
            .filter(|address| !self.running.contains_key(address))
            .map(|address| Ok((*address, bind(*address)?)))
            .collect()
    }

    /// Starts serving listeners bound by [`ListenerSet::bind_missing`].
    pub fn start(&mut self, bound: Vec<(SocketAddr, TcpListener)>, limits: &Limits) {
        for (configured, listener) in bound {
            let local = listener.local_addr().unwrap_or(configured);
            let cancel = self.parent.child_token();
            let task = tokio::spawn(serve(
                listener,
                configured,
                self.proxy.clone(),
                limits.clone(),
                cancel.clone(),
            ));
            self.running.insert(
                configured,
                RunningListener {
                    local,
                    cancel,
                    task,
                },
            );
        }
    }

    /// Stops accepting on every listener not in `wanted`; their open
    /// connections drain in the background. Returns the stopped addresses.
    pub fn stop_unwanted(&mut self, wanted: &[SocketAddr]) -> Vec<SocketAddr> {
        let unwanted: Vec<SocketAddr> = self
            .running
            .keys()
            .filter(|address| !wanted.contains(address))
            .copied()
            .collect();
        for address in &unwanted {
            if let Some(listener) = self.running.remove(address) {
                listener.cancel.cancel();
                self.draining.push(listener.task);
            }
        }
        self.draining.retain(|task| !task.is_finished());
        unwanted
    }

    /// Stops every listener and waits for their connections to drain.
    pub async fn shutdown(self) {
        self.parent.cancel();
        let tasks = self
            .running
            .into_values()
            .map(|l| l.task)
            .chain(self.draining);
        for task in tasks {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "a listener task failed");
            }
        }
    }
}

/// Serves `listener` (configured as `configured`) until `cancel` fires,
/// then stops accepting and gives open connections `limits.shutdown_grace`
/// to finish. Whether a connection speaks TLS is read from the runtime
/// snapshot when it is accepted, so certificates change with a reload.
pub async fn serve(
    listener: TcpListener,
    configured: SocketAddr,
    proxy: Arc<Proxy>,
    limits: Limits,
    cancel: CancellationToken,
) {
    let protocols = Arc::new(Protocols::from(&limits));
    let request_limits = RequestLimits {
        body_rate: MinRate {
            grace: limits.client_body_timeout,
            bytes_per_second: limits.client_body_min_rate,
        },
        max_uri_bytes: limits.max_uri_bytes,
        max_headers: limits.max_headers,
    };
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));

    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = cancel.cancelled() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = cancel.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                accept::backoff_after(&err, &cancel).await;
                continue;
            }
        };
        // An IPv4 client of the dual-stack socket as 127.0.0.1, not
        // ::ffff:127.0.0.1, in logs and forwarding headers.
        let peer = Peer::new(peer);
        // Every log line about this connection and its requests names the
        // client and the listener through this span.
        let span =
            tracing::info_span!("connection", client = %peer.shown(), listener = %configured);
        if let Err(err) = stream.set_nodelay(true) {
            span.in_scope(|| tracing::debug!(error = %err, "cannot set TCP_NODELAY"));
        }
        let acceptor = proxy.runtime().tls_acceptor(&configured);
        let connection = Connection {
            proxy: proxy.clone(),
            protocols: protocols.clone(),
            watcher: graceful.watcher(),
            handshake_timeout: limits.header_read_timeout,
            limits: request_limits,
            peer,
        };
        tokio::spawn(
            async move {
                connection.run(stream, acceptor).await;
                drop(slot);
            }
            .instrument(span),
        );
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!(%configured, "listener drained"),
        () = tokio::time::sleep(limits.shutdown_grace) => tracing::warn!(
            %configured,
            grace_secs = limits.shutdown_grace.as_secs_f64(),
            "shutdown grace expired; closing remaining connections"
        ),
    }
}

/// How client connections speak HTTP/1.1 and HTTP/2: the limits on a
/// request head, hyper's timers, HTTP/2 keep-alive pings.
struct Protocols {
    header_read_timeout: Duration,
    max_header_bytes: usize,
    max_headers: usize,
}

impl From<&Limits> for Protocols {
    fn from(limits: &Limits) -> Self {
        Protocols {
            header_read_timeout: limits.header_read_timeout,
            max_header_bytes: limits.max_header_bytes,
            max_headers: limits.max_headers,
        }
    }
}

impl Protocols {
    /// A builder for one connection, whose HTTP/2 streams go to `streams`.
    fn builder(&self, streams: Streams) -> auto::Builder<Streams> {
        let mut builder = auto::Builder::new(streams);
        // The request head is bounded where it is read: hyper answers a
        // longer one (its read buffer's limit) or one with more fields 431
        // and closes, before reading further.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_buf_size(self.max_header_bytes)
            .max_headers(self.max_headers)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX))
            .keep_alive_interval(Some(Duration::from_secs(30)));
        builder
    }
}

/// One accepted client connection.
struct Connection {
    proxy: Arc<Proxy>,
    protocols: Arc<Protocols>,
    watcher: Watcher,
    handshake_timeout: Duration,
    limits: RequestLimits,
    peer: Peer,
}

impl Connection {
    async fn run(self, stream: TcpStream, acceptor: Option<TlsAcceptor>) {
        match acceptor {
            None => self.serve(stream, false).await,
            Some(acceptor) => {
                match tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => self.serve(tls, true).await,
                    Ok(Err(err)) => tracing::debug!(error = %err, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            }
        }
    }

    async fn serve<IO>(self, io: IO, tls: bool)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let conn = ClientConn {
            peer: self.peer.clone(),
            tls,
            limits: self.limits,
        };
        let proxy = self.proxy;
        let service = service_fn(move |request| proxy.handle(request, conn.clone()));
        // HTTP/2 streams run in this task (`streams`), not a task each.
        let (streams, arrivals) = streams::channel();
        let connection = self
            .protocols
            .builder(streams)
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        if let Err(err) = streams::run(self.watcher.watch(connection), arrivals).await {
            tracing::debug!(error = %err, "connection ended with an error");
        }
    }
}
