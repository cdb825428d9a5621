//! Listeners: bind, accept, serve HTTP/1.1 and h2c with hyper's timers, and
//! drain gracefully.
//!
//! The accept loop never ends on an accept error (too many open files, a
//! connection reset before accept): it logs, backs off briefly and goes on.
//! A semaphore caps open connections; at the cap, new clients wait in the
//! kernel's backlog.

use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::Limits;
use crate::error::Error;
use crate::proxy::Proxy;

/// Linux's "address family not supported" (no IPv6 in this kernel).
const EAFNOSUPPORT: i32 = 97;

/// Pending connections the kernel queues for us.
const BACKLOG: i32 = 1024;

/// Binds `addr`. The unspecified IPv6 address listens on IPv4 too
/// (dual-stack); where IPv6 is unavailable it falls back to `0.0.0.0`.
/// Must be called within a tokio runtime.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    match bind_socket(addr) {
        Err(err)
            if addr.is_ipv6()
                && addr.ip().is_unspecified()
                && (err.kind() == io::ErrorKind::Unsupported
                    || err.raw_os_error() == Some(EAFNOSUPPORT)) =>
        {
            let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port()));
            tracing::warn!("IPv6 is unavailable; listening on IPv4 only");
            bind_socket(v4).map_err(|e| Error::from_bind(v4, e))
        }
        other => other.map_err(|e| Error::from_bind(addr, e)),
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

/// Serves `listener` until `cancel` fires, then stops accepting and gives
/// open connections `limits.shutdown_grace` to finish.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    limits: Limits,
    cancel: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
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
                backoff_after(&err, &cancel).await;
                continue;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %err, "cannot set TCP_NODELAY");
        }
        let proxy = proxy.clone();
        let service = service_fn(move |request| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.handle(request, peer).await) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("all connections closed"),
        () = tokio::time::sleep(limits.shutdown_grace) => tracing::warn!(
            grace_secs = limits.shutdown_grace.as_secs_f64(),
            "shutdown grace expired; closing remaining connections"
        ),
    }
}

/// Connection-level errors concern one client and are retried at once;
/// resource errors (EMFILE, ENOBUFS) get a short pause so the loop does not
/// spin.
async fn backoff_after(err: &io::Error, cancel: &CancellationToken) {
    let per_connection = matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    );
    if per_connection {
        tracing::debug!(error = %err, "accept failed for one connection");
        return;
    }
    tracing::warn!(error = %err, "accept failed; retrying in 100 ms");
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(100)) => {}
        () = cancel.cancelled() => {}
    }
}
