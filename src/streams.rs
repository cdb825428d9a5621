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
//! costs a few uncontended atomic operations per poll.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use futures_util::task::AtomicWaker;

type Stream = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The executor hyper is given for one connection: it queues the streams
/// for [`run`] to poll.
#[derive(Clone, Default)]
pub struct Streams {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Streams handed over and not yet taken into the running set.
    new: Mutex<Vec<Stream>>,
    has_new: AtomicBool,
    /// Whether [`run`] is polling now (a stream handed over then is
    /// taken in the same poll: no wake-up needed).
    in_poll: AtomicBool,
    waker: AtomicWaker,
}

impl<F> hyper::rt::Executor<F> for Streams
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, stream: F) {
        let shared = &self.shared;
        shared
            .new
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::pin(stream));
        shared.has_new.store(true, Ordering::Release);
        if !shared.in_poll.load(Ordering::Acquire) {
            shared.waker.wake();
        }
    }
}

impl Streams {
    fn take_new(&self, running: &mut FuturesUnordered<Stream>) {
        // A load first: the common case (nothing new) writes nothing.
        if self.shared.has_new.load(Ordering::Acquire)
            && self.shared.has_new.swap(false, Ordering::Acquire)
        {
            let mut new = self
                .shared
                .new
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            running.extend(new.drain(..));
        }
    }
}

/// Runs `connection`, and the streams it hands to `streams`, until the
/// connection has ended and every stream is done; returns what the
/// connection returned.
pub async fn run<C: Future>(connection: C, streams: Streams) -> C::Output {
    let mut connection = pin!(connection);
    let mut running = FuturesUnordered::new();
    let mut ended = None;
    let shared = streams.shared.clone();
    poll_fn(move |cx| {
        shared.in_poll.store(true, Ordering::Release);
        if ended.is_none()
            && let Poll::Ready(output) = connection.as_mut().poll(cx)
        {
            ended = Some(output);
        }
        streams.take_new(&mut running);
        // Polls each ready stream at most once, then yields. An HTTP/1.1
        // connection never has one: no need to look.
        if !running.is_empty() {
            while let Poll::Ready(Some(())) = running.poll_next_unpin(cx) {}
        }
        shared.waker.register(cx.waker());
        shared.in_poll.store(false, Ordering::Release);
        // A stream handed over after the set was polled is polled next time.
        if shared.has_new.load(Ordering::Acquire) {
            cx.waker().wake_by_ref();
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
    use std::sync::atomic::AtomicUsize;
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn streams_handed_over_run_and_the_connection_waits_for_them() {
        let streams = Streams::default();
        let done = Arc::new(AtomicUsize::new(0));
        let (release, released) = oneshot::channel::<()>();
        let executor = streams.clone();
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
        let runner = tokio::spawn(run(connection, streams));
        tokio::task::yield_now().await;
        assert!(!runner.is_finished(), "a stream is still running");
        release.send(()).unwrap();
        assert_eq!(runner.await.unwrap(), "ended");
        assert_eq!(done.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_stream_handed_over_from_outside_a_poll_wakes_the_connection() {
        let streams = Streams::default();
        let executor = streams.clone();
        let (close, closed) = oneshot::channel::<()>();
        let (ran, has_run) = oneshot::channel::<()>();
        let runner = tokio::spawn(run(
            async move {
                let _ = closed.await;
            },
            streams,
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
