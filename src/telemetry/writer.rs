//! A log writer that batches. A formatted line is handed to a bounded
//! queue (no system call, and no wake-up while the writer thread is
//! already collecting); one thread gathers what arrives within a few
//! milliseconds and writes it with one `write`. Under load that is one
//! system call per few hundred access-log lines instead of one per line.
//!
//! The queue is bounded: if the output stops taking data (a pipe nobody
//! reads), logging blocks instead of growing without limit or dropping
//! lines, as nginx's own `write` per line would.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Lines that may wait in the queue.
const QUEUE_LINES: usize = 4096;
/// How long the writer lets lines gather after the first one arrives.
const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// A batch is written early when it reaches this size.
const BATCH_BYTES: usize = 256 * 1024;
/// How long dropping the guard waits for queued lines to be written.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

enum Message {
    Line(Vec<u8>),
    Stop,
}

/// The writer handed to the subscriber; cheap to share.
#[derive(Debug, Clone)]
pub struct BatchWriter {
    queue: SyncSender<Message>,
}

/// Writes what is queued and stops the writer thread when dropped.
#[derive(Debug)]
pub struct FlushGuard {
    queue: SyncSender<Message>,
    done: Receiver<()>,
}

impl BatchWriter {
    /// Starts the writer thread over `out`.
    pub fn spawn<W: Write + Send + 'static>(out: W) -> io::Result<(BatchWriter, FlushGuard)> {
        let (queue, lines) = mpsc::sync_channel(QUEUE_LINES);
        let (finished, done) = mpsc::channel();
        thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                write_batches(lines, out);
                let _ = finished.send(());
            })?;
        let guard = FlushGuard {
            queue: queue.clone(),
            done,
        };
        Ok((BatchWriter { queue }, guard))
    }
}

impl BatchWriter {
    /// Queues one whole line (ending in a newline) without copying it.
    pub fn send_line(&self, line: Vec<u8>) {
        // A stopped writer means the process is exiting: nowhere to log.
        let _ = self.queue.send(Message::Line(line));
    }
}

/// One event's writer: the subscriber formats a whole line and writes it
/// with one `write_all`.
#[derive(Debug)]
pub struct LineWriter<'a> {
    queue: &'a SyncSender<Message>,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.queue
            .send(Message::Line(line.to_vec()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the log writer has stopped"))?;
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { queue: &self.queue }
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        if self.queue.send(Message::Stop).is_ok() {
            let _ = self.done.recv_timeout(FLUSH_TIMEOUT);
        }
    }
}

/// The writer thread: wait for a line, let more gather, write them all.
/// A failing output is ignored (there is nowhere to report it) so that
/// the queue keeps draining.
fn write_batches<W: Write>(lines: Receiver<Message>, mut out: W) {
    let mut batch = Vec::with_capacity(64 * 1024);
    let mut running = true;
    while running {
        match lines.recv() {
            Ok(Message::Line(line)) => batch.extend_from_slice(&line),
            Ok(Message::Stop) | Err(_) => running = false,
        }
        if running {
            thread::sleep(BATCH_WINDOW);
        }
        for message in lines.try_iter() {
            match message {
                Message::Line(line) => batch.extend_from_slice(&line),
                Message::Stop => running = false,
            }
            if batch.len() >= BATCH_BYTES {
                let _ = out.write_all(&batch);
                batch.clear();
            }
        }
        if !batch.is_empty() {
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
        }
        batch.shrink_to(BATCH_BYTES);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// An output the test can read back: what was written, how many
    /// `write` calls, and a signal per call.
    #[derive(Clone)]
    struct Recorded {
        data: Arc<Mutex<(Vec<u8>, usize)>>,
        signal: mpsc::Sender<()>,
    }

    fn recorded() -> (Recorded, Receiver<()>) {
        let (signal, writes) = mpsc::channel();
        let out = Recorded {
            data: Arc::default(),
            signal,
        };
        (out, writes)
    }

    impl Write for Recorded {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut data = self.data.lock().unwrap();
            data.0.extend_from_slice(buf);
            data.1 += 1;
            let _ = self.signal.send(());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_in_order_in_few_writes_and_the_guard_flushes_them() {
        let (out, _writes) = recorded();
        let (writer, guard) = BatchWriter::spawn(out.clone()).unwrap();
        for i in 0..1000 {
            writeln!(writer.make_writer(), "line {i}").unwrap();
        }
        drop(guard);
        let (bytes, writes) = out.data.lock().unwrap().clone();
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(String::from_utf8(bytes).unwrap(), expected);
        assert!(writes < 100, "{writes} writes for 1000 lines");
    }

    #[test]
    fn a_line_written_while_idle_reaches_the_output_without_a_flush() {
        let (out, writes) = recorded();
        let (writer, _guard) = BatchWriter::spawn(out.clone()).unwrap();
        writeln!(writer.make_writer(), "alone").unwrap();
        writes.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(out.data.lock().unwrap().0, b"alone\n");
    }

    #[test]
    fn writing_after_the_guard_is_dropped_is_an_error_not_a_hang() {
        let (out, _writes) = recorded();
        let (writer, guard) = BatchWriter::spawn(out).unwrap();
        drop(guard);
        assert!(writeln!(writer.make_writer(), "late").is_err());
    }
}
