//! What an accept loop does after a failed accept (the data listeners'
//! and the admin API's): it never ends the loop, and it never spins.

use std::io;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

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
