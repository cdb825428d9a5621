//! Listening sockets, the data listeners' and the admin API's: a failed
//! bind as a message the user can act on, and what an accept loop does
//! after a failed accept (it never ends the loop, and it never spins).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A listening socket that could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The port is taken by another process.
    #[error("port {port} is already in use")]
    PortInUse {
        /// The port that was asked for.
        port: u16,
    },
    /// A privileged port without the right to bind it.
    #[error(
        "permission denied to listen on port {port}: ports below 1024 need root or CAP_NET_BIND_SERVICE; use a port >= 1024"
    )]
    PortPermission {
        /// The port that was asked for.
        port: u16,
    },
    /// Any other failure to listen.
    #[error("cannot listen on {addr}")]
    Other {
        /// The address that was asked for.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

impl BindError {
    /// Classifies the OS's answer to binding `addr`.
    pub fn new(addr: SocketAddr, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::AddrInUse => BindError::PortInUse { port: addr.port() },
            io::ErrorKind::PermissionDenied => BindError::PortPermission { port: addr.port() },
            _ => BindError::Other { addr, source },
        }
    }
}

/// Connection-level errors concern one client and are retried at once;
/// resource errors (EMFILE, ENOBUFS) get a short pause so the loop does not
/// spin.
pub async fn backoff_after(err: &io::Error, cancel: &CancellationToken) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_errors_name_the_port() {
        let addr: SocketAddr = "0.0.0.0:3000".parse().unwrap();
        let in_use = BindError::new(addr, io::Error::from(io::ErrorKind::AddrInUse));
        assert_eq!(in_use.to_string(), "port 3000 is already in use");
        let denied = BindError::new(addr, io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(denied.to_string().contains("port >= 1024"));
    }
}
