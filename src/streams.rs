//! The HTTP/2 streams of one client connection, run inside the
//! connection's own task rather than as a task each.
//!
//! hyper hands every HTTP/2 stream to an executor. Spawned as tasks, a few
//! busy connections put hundreds of tasks on one worker: its local run
//! queue overflows to the global queue, which a busy worker looks at only
//! now and then, and the requests there wait many times the median
//! (bench/results/2026-12-08-0010-http2-streams.md). Run here, the
//! scheduler sees one task per connection, and a connection's streams
//! take turns within it (`FuturesUnordered` yields after polling each
//! once). An HTTP/1.1 connection never hands out a stream; for it this
//! costs a look at an empty channel per poll.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;

type Stream = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The executor hyper is given for one connection: it hands the streams
/// to [`run`], which wakes when one arrives.
#[derive(Clone)]
pub struct Streams {
    handed: mpsc::UnboundedSender<Stream>,
}

/// The streams a connection's [`Streams`] handed over, for [`run`].
pub struct Arrivals {
    arrived: mpsc::UnboundedReceiver<Stream>,
}

/// An executor for one connection and the arrivals [`run`] polls.
pub fn channel() -> (Streams, Arrivals) {
    let (handed, arrived) = mpsc::unbounded_channel();
    (Streams { handed }, Arrivals { arrived })
}

impl<F> hyper::rt::Executor<F> for Streams
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, stream: F) {
        // Refused only once `run` has returned: the connection is gone.
        let _ = self.handed.send(Box::pin(stream));
    }
}

/// Runs `connection`, and the streams it hands over, until the connection
/// has ended and every stream is done; returns what the connection
/// returned.
pub async fn run<C: Future>(connection: C, mut arrivals: Arrivals) -> C::Output {
    let mut connection = pin!(connection);
    let mut running = FuturesUnordered::new();
    let mut ended = None;
    poll_fn(move |cx| {
        if ended.is_none()
            && let Poll::Ready(output) = connection.as_mut().poll(cx)
        {
            ended = Some(output);
        }
        while let Poll::Ready(Some(stream)) = arrivals.arrived.poll_recv(cx) {
            running.push(stream);
        }
        // Polls each ready stream at most once, then yields. An HTTP/1.1
        // connection never has one: no need to look.
        if !running.is_empty() {
            while let Poll::Ready(Some(())) = running.poll_next_unpin(cx) {}
        }
        match ended.take() {
            Some(output) if running.is_empty() => Poll::Ready(output),
            kept => {
                ended = kept;
                Poll::Pending
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn streams_handed_over_run_and_the_connection_waits_for_them() {
        let (streams, arrivals) = channel();
        let done = Arc::new(AtomicUsize::new(0));
        let (release, released) = oneshot::channel::<()>();
        let executor = streams;
        let counted = done.clone();
        // The "connection" hands over two streams, one of which waits for
        // a signal, and ends at once.
        let connection = async move {
            let first = counted.clone();
            executor.execute(async move {
                first.fetch_add(1, Ordering::SeqCst);
            });
            executor.execute(async move {
                let _ = released.await;
                counted.fetch_add(1, Ordering::SeqCst);
            });
            "ended"
        };
        let runner = tokio::spawn(run(connection, arrivals));
        tokio::task::yield_now().await;
        assert!(!runner.is_finished(), "a stream is still running");
        release.send(()).unwrap();
        assert_eq!(runner.await.unwrap(), "ended");
        assert_eq!(done.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_stream_handed_over_from_outside_a_poll_wakes_the_connection() {
        let (executor, arrivals) = channel();
        let (close, closed) = oneshot::channel::<()>();
        let (ran, has_run) = oneshot::channel::<()>();
        let runner = tokio::spawn(run(
            async move {
                let _ = closed.await;
            },
            arrivals,
        ));
        tokio::task::yield_now().await;
        executor.execute(async move {
            let _ = ran.send(());
        });
        has_run.await.unwrap();
        close.send(()).unwrap();
        runner.await.unwrap();
    }
}
