//! A pump: reads one child pipe to EOF and feeds the writer.
//!
//! Theory of operation: read up to [`READ_CHUNK`] bytes; split them into
//! lines (no copy for lines wholly inside the chunk); format every line into
//! one batch buffer; send the batch to the writer once per chunk, or earlier
//! when it reaches `BATCH_BYTES`. Sending waits for a free queue slot, and
//! while it waits the pump does not read: that is how a slow consumer of
//! prodserver's stdout slows the children instead of growing our memory.
//! Per-line cost is a `memchr`, a UTF-8 check and three small copies; there
//! is no per-line allocation, message or lock.

use std::time::SystemTime;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::format::LineFormat;
use super::format::Stream;
use super::lines::LineSplitter;
use super::recent::LocalRing;
use super::writer::{Channel, Closed, BATCH_BYTES};
use super::{LineHook, Logs};

/// Bytes asked of the pipe per read once a child is chatty. A Linux pipe
/// holds 64 KiB by default, so one read can take all of it.
pub const READ_CHUNK: usize = 64 * 1024;
/// Read buffer of a pump that has not filled one yet: most children (a
/// sleeping worker, a quiet beat) write little, and 1,000 of them must not
/// cost 1,000 × 64 KiB. A read that fills it grows it to `READ_CHUNK`.
pub const FIRST_CHUNK: usize = 4 * 1024;
/// Longest piece of a line; longer lines are split (see `lines`).
pub const MAX_LINE: usize = 64 * 1024;

pub(super) async fn run<R: AsyncRead + Unpin>(
    logs: Logs,
    process: String,
    instance: u32,
    pid: u32,
    stream: Stream,
    mut reader: R,
    hook: Option<LineHook>,
) {
    let mut batch = Batcher {
        fmt: logs.line_format(&process, Some(instance), Some(pid), stream),
        channel: &logs.channel,
        // Taken from the writer's spares only when there is something to
        // format; `send` leaves it unallocated again.
        out: Vec::new(),
        ring: LocalRing::default(),
        hook,
    };
    let mut buf = vec![0u8; FIRST_CHUNK];
    let mut splitter = LineSplitter::new(MAX_LINE);
    logs.recent.begin(&process, instance, pid);

    let read_error = loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => break None,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Some(e),
        };
        batch.begin_chunk();
        let mut rest = &buf[..n];
        while let Some(line) = splitter.next_line(&mut rest) {
            if batch.line(line.bytes, line.continued).await.is_err() {
                // The writer has stopped (shutdown): nobody will read more.
                // Returning drops the pipe; the child gets EPIPE.
                return;
            }
        }
        if batch.send().await.is_err() {
            return;
        }
        batch.ring.publish(&logs.recent, &process, instance, pid);
        if n == buf.len() && buf.len() < READ_CHUNK {
            buf.resize(READ_CHUNK, 0);
        }
    };

    // EOF (or a read error): the partial last line is still a line.
    batch.begin_chunk();
    while let Some(line) = splitter.finish() {
        if batch.line(line.bytes, line.continued).await.is_err() {
            return;
        }
    }
    batch.ring.publish(&logs.recent, &process, instance, pid);
    if batch.send().await.is_err() {
        return;
    }
    if let Some(e) = read_error {
        logs.event(
            &process,
            instance,
            Some(pid),
            &format!("cannot read {}: {e}", stream.as_str()),
        );
    }
}

/// Formats lines into one batch buffer and sends it to the writer when
/// full, and at the end of each chunk.
struct Batcher<'a> {
    fmt: LineFormat,
    channel: &'a Channel,
    out: Vec<u8>,
    ring: LocalRing,
    hook: Option<LineHook>,
}

impl Batcher<'_> {
    fn begin_chunk(&mut self) {
        // One clock read per chunk, not per line (see LineFormat::set_time).
        self.fmt.set_time(SystemTime::now());
        if self.out.capacity() == 0 {
            self.out = self.channel.buffer();
        }
    }

    async fn line(&mut self, bytes: &[u8], continued: bool) -> Result<(), Closed> {
        self.fmt.write(&mut self.out, bytes, continued);
        self.ring.push(bytes);
        watch(&mut self.hook, bytes);
        if self.out.len() >= BATCH_BYTES {
            self.channel.send(&mut self.out).await?;
            self.out = self.channel.buffer();
        }
        Ok(())
    }

    /// Sends what is formatted, if anything.
    async fn send(&mut self) -> Result<(), Closed> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.channel.send(&mut self.out).await
    }
}

/// Shows `line` to the hook, if any; drops the hook once it has seen
/// enough. Without a hook this is one branch per line.
#[inline]
fn watch(hook: &mut Option<LineHook>, line: &[u8]) {
    if let Some(h) = hook {
        if !h(line) {
            *hook = None;
        }
    }
}
