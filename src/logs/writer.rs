//! The single writer: one std thread owns the output and writes, in order,
//! what pumps and the supervisor queue for it.
//!
//! Theory of operation. Two queues share one mutex:
//!
//! - **batches** of formatted child output, at most [`QUEUE_BATCHES`]. A
//!   pump must take a slot (an async semaphore permit) before queueing a
//!   batch, and the writer gives the slot back only after the batch has been
//!   written. So when the reader of our stdout is slow, slots run out, pumps
//!   wait, stop reading their pipes, and the children block in `write(2)`:
//!   backpressure reaches the children, and our memory stays bounded by
//!   `QUEUE_BATCHES` batches of about [`BATCH_BYTES`] (+ one line) each.
//! - **events** from the supervisor, appended without waiting
//!   ([`Channel::push_event`] takes the mutex for a memcpy and never awaits),
//!   so supervision is never stalled by a slow log reader. The writer drains
//!   all queued events before each batch. This queue is bounded too, at
//!   [`EVENT_QUEUE_BYTES`]: events are rare in a healthy project, but a
//!   child spawning short-lived orphans in a loop makes one per reap, and
//!   a stdout stalled for hours (Ctrl-S, a stuck log shipper) must not
//!   grow our memory. An event that does not fit is not queued but counted,
//!   per label (`web.1`, `prodserver`); once the writer has drained the
//!   queue it writes one line saying how many were dropped. So the supervisor
//!   never waits, and memory stays at about twice `EVENT_QUEUE_BYTES` (the
//!   queue and the buffer being written) plus one counter per label.
//!
//! The thread flushes `out` whenever it runs out of work, so a quiet child's
//! line shows up at once, while under load writes are large (one per batch).
//!
//! If writing fails for good (stdout closed, EPIPE), the writer reports it
//! once on stderr and from then on discards: it keeps draining so that
//! children never block on a log nobody can read, and memory stays bounded.
//!
//! At exit, [`WriterHandle::stop_within`] waits a bounded time for the
//! output to take what is queued: a stalled stdout must not keep prodserver
//! from exiting. Past the deadline it gives up and reports what was
//! discarded: the queues plus what the blocked `write` had not yet
//! confirmed (an upper bound: the kernel may have taken part of it).

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};

/// Most batches queued at once (see the module docs for the memory bound).
/// A few are enough to keep the writer busy while pumps refill; 32 leaves
/// slack for many processes writing at once, at a worst case of a few MiB.
pub const QUEUE_BATCHES: usize = 32;

/// A pump sends its batch once it reaches this size, even mid-chunk, so a
/// chunk of many tiny lines (whose prefixes multiply its size) cannot make
/// one huge batch.
pub const BATCH_BYTES: usize = 64 * 1024;

/// Most bytes of events queued at once (see the module docs): thousands of
/// events, far more than a burst of lifecycle transitions produces.
pub const EVENT_QUEUE_BYTES: usize = 256 * 1024;

/// Renders the "events were dropped" line (a project event) into the buffer.
pub(crate) type SummaryFormat = Box<dyn Fn(&str, &mut Vec<u8>) + Send>;

/// Recycled buffers kept for pumps; buffers that grew beyond
/// `SPARE_MAX_CAPACITY` (a batch ended by one very long JSON line) are freed
/// rather than kept.
const SPARE_BUFFERS: usize = QUEUE_BATCHES;
const SPARE_MAX_CAPACITY: usize = 4 * BATCH_BYTES;

/// What is waiting for the writer right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub queued_batches: usize,
    pub queued_batch_bytes: usize,
    pub queued_event_bytes: usize,
    /// Events dropped because their queue was full, not yet summarised.
    pub dropped_events: u64,
}

/// Output given up on at exit (see [`WriterHandle::stop_within`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Discarded {
    pub bytes: u64,
    pub lines: u64,
    /// Events that had been dropped (queue full) and not yet summarised.
    pub dropped_events: u64,
}

impl Discarded {
    /// The stderr warning at exit, e.g. `warning: stdout did not take the
    /// log output within 5s: discarded 1,234 bytes (56 lines)`.
    pub fn warning(&self, limit: Duration) -> String {
        let lines = if self.lines == 1 { "line" } else { "lines" };
        let mut s = format!(
            "warning: stdout did not take the log output within {}s: discarded {} bytes ({} {lines})",
            limit.as_secs(),
            thousands(self.bytes),
            thousands(self.lines),
        );
        if self.dropped_events > 0 {
            s.push_str(&format!(
                ", after {} events had been dropped while it was stalled",
                thousands(self.dropped_events)
            ));
        }
        s
    }
}

/// How long prodserver waits at exit, once the children have stopped, for
/// a stalled stdout to take the rest of the log.
pub const EXIT_FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// How [`WriterHandle::stop_within`] ended.
#[derive(Debug)]
pub enum Stopped {
    /// Everything was written and flushed.
    Flushed,
    /// Writing failed (and the rest was discarded, see the module docs).
    Failed(io::Error),
    /// The output did not take everything before the deadline.
    TimedOut(Discarded),
}

/// The queues shared by the writer thread, the pumps and `Logs::event`.
#[derive(Debug)]
pub(crate) struct Channel {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Free batch slots (see module docs). Closed when the writer stops.
    slots: Semaphore,
    /// Batches written so far (FIFO, so a count is a position): what
    /// [`Channel::barrier`] waits on.
    written: watch::Sender<u64>,
    /// Signalled when the writer thread sets `closed`.
    done: Condvar,
    /// Subscribers to the output (a `logs` command): each gets a copy of
    /// every chunk written, or loses chunks while it lags; it never slows
    /// the writer.
    taps: Mutex<Vec<tokio::sync::mpsc::Sender<Arc<[u8]>>>>,
}

/// Chunks a subscriber may lag behind before it loses some.
pub const TAP_CHUNKS: usize = 64;

#[derive(Debug, Default)]
struct Queue {
    events: Vec<u8>,
    /// Events refused because `events` was full, per label; the writer
    /// takes them with the events and writes the summary.
    dropped: BTreeMap<String, u64>,
    /// What the writer has taken out of the queue and the output has not
    /// yet accepted: bytes and newlines.
    in_flight: (u64, u64),
    batches: VecDeque<Vec<u8>>,
    batch_bytes: usize,
    /// Batches ever queued.
    queued_total: u64,
    spare: Vec<Vec<u8>>,
    /// The writer is (about to be) asleep on `wake`: only then is a
    /// notification needed, which saves a futex syscall per batch under load.
    writer_waiting: bool,
    /// Stop requested: drain what is queued, then exit.
    stopping: bool,
    /// The writer has exited: nothing more will be written.
    closed: bool,
}

/// The writer has stopped; the batch was not queued.
#[derive(Debug)]
pub(crate) struct Closed;

/// Locks, recovering from poisoning: the queue holds only plain buffers and
/// flags with no invariant a panicking holder could break half-way, and none
/// of the code holding the lock can panic in the first place. Recovering
/// beats losing every later log line.
fn lock(m: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Channel {
    fn new() -> Self {
        Channel {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            slots: Semaphore::new(QUEUE_BATCHES),
            written: watch::Sender::new(0),
            done: Condvar::new(),
            taps: Mutex::new(Vec::new()),
        }
    }

    /// A copy of everything written from now on, in chunks of whole lines.
    /// Ends when the writer stops.
    pub fn subscribe(&self) -> tokio::sync::mpsc::Receiver<Arc<[u8]>> {
        let (tx, rx) = tokio::sync::mpsc::channel(TAP_CHUNKS);
        self.taps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(tx);
        rx
    }

    /// Hands `buf` to every subscriber that keeps up; forgets those gone.
    fn tap(&self, buf: &[u8]) {
        let mut taps = self.taps.lock().unwrap_or_else(PoisonError::into_inner);
        if taps.is_empty() {
            return;
        }
        let chunk: Arc<[u8]> = Arc::from(buf);
        taps.retain(|tx| {
            !matches!(
                tx.try_send(Arc::clone(&chunk)),
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_))
            )
        });
    }

    /// An empty buffer for a pump to format into, recycled when possible.
    pub fn buffer(&self) -> Vec<u8> {
        lock(&self.queue)
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BATCH_BYTES + 4096))
    }

    /// Queues `batch` (non-empty) for writing, waiting for a free slot: this
    /// wait is the backpressure. Replaces `batch` with an unallocated
    /// buffer: an idle pump holds no batch memory (1,000 quiet children
    /// must not pin 1,000 × 64 KiB); `buffer()` recycles one when needed.
    pub async fn send(&self, batch: &mut Vec<u8>) -> Result<(), Closed> {
        let permit = self.slots.acquire().await.map_err(|_| Closed)?;
        // The writer returns the slot (add_permits) once the batch is written.
        permit.forget();
        let mut q = lock(&self.queue);
        if q.closed {
            return Err(Closed);
        }
        let full = std::mem::take(batch);
        q.queued_total += 1;
        q.batch_bytes += full.len();
        q.batches.push_back(full);
        self.notify(q);
        Ok(())
    }

    /// Resolves once every batch queued before the call has been written:
    /// so an exit event can follow the child's last lines instead of
    /// overtaking them on the priority path. Callers bound the wait (a slow
    /// reader of our stdout must never stall supervision).
    pub async fn barrier(&self) {
        let target = {
            let q = lock(&self.queue);
            if q.closed {
                return;
            }
            q.queued_total
        };
        let mut rx = self.written.subscribe();
        let _ = rx.wait_for(|n| *n >= target).await;
    }

    /// Queues already formatted event bytes, or counts them as dropped
    /// under `label` when the queue is full. Never waits (beyond the mutex,
    /// which is only ever held for a memcpy or a buffer swap).
    pub fn push_event(&self, bytes: &[u8], label: &str) {
        let mut q = lock(&self.queue);
        if q.closed {
            return;
        }
        // An empty queue takes any event, so an oversized one is not
        // dropped forever.
        if !q.events.is_empty() && q.events.len() + bytes.len() > EVENT_QUEUE_BYTES {
            match q.dropped.get_mut(label) {
                Some(n) => *n += 1,
                None => {
                    q.dropped.insert(label.to_owned(), 1);
                }
            }
            return;
        }
        q.events.extend_from_slice(bytes);
        self.notify(q);
    }

    fn notify(&self, mut q: MutexGuard<'_, Queue>) {
        if q.writer_waiting {
            q.writer_waiting = false;
            drop(q);
            self.wake.notify_one();
        }
    }

    pub fn stats(&self) -> Stats {
        let q = lock(&self.queue);
        Stats {
            queued_batches: q.batches.len(),
            queued_batch_bytes: q.batch_bytes,
            queued_event_bytes: q.events.len(),
            dropped_events: q.dropped.values().sum(),
        }
    }

    fn request_stop(&self) {
        let mut q = lock(&self.queue);
        q.stopping = true;
        q.writer_waiting = false;
        drop(q);
        self.wake.notify_one();
    }
}

/// Owns the writer thread. Call [`flush_and_stop`](Self::flush_and_stop)
/// before exiting. Dropping the handle leaves the thread running (it dies
/// with the process), so `let (logs, _) = Logs::start(..)` cannot silently
/// stop the log; but then whatever is still queued at exit is lost.
#[must_use = "call flush_and_stop() before exiting, or queued lines are lost"]
#[derive(Debug)]
pub struct WriterHandle {
    channel: Arc<Channel>,
    thread: JoinHandle<io::Result<()>>,
}

impl WriterHandle {
    /// Writes everything queued so far (events and batches), flushes, and
    /// joins the thread. Call it after the pumps have finished (children
    /// exited): a batch a pump queues after this call may be refused, and
    /// that pump then stops reading. Blocks the calling thread until the
    /// output has accepted everything, however long that takes (see
    /// [`stop_within`](Self::stop_within)). Returns the first write error.
    pub fn flush_and_stop(self) -> io::Result<()> {
        self.channel.request_stop();
        self.join()
    }

    /// [`flush_and_stop`](Self::flush_and_stop), waiting at most `limit`
    /// for the output. Past it, the queues are emptied and refused from then
    /// on, the thread is left blocked in its write (it dies with the
    /// process), and the result says what was discarded.
    pub fn stop_within(self, limit: Duration) -> Stopped {
        let deadline = Instant::now() + limit;
        self.channel.request_stop();
        let mut q = lock(&self.channel.queue);
        while !q.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let discarded = discard(&mut q);
                q.closed = true;
                drop(q);
                // Wakes pumps still waiting for a slot: they see Closed.
                self.channel.slots.close();
                return Stopped::TimedOut(discarded);
            }
            q = self
                .channel
                .done
                .wait_timeout(q, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(q);
        match self.join() {
            Ok(()) => Stopped::Flushed,
            Err(e) => Stopped::Failed(e),
        }
    }

    fn join(self) -> io::Result<()> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("log writer thread panicked")))
    }
}

/// Empties the queues, returning what they and the write in progress held.
fn discard(q: &mut Queue) -> Discarded {
    let mut d = Discarded {
        bytes: q.in_flight.0 + q.events.len() as u64,
        lines: q.in_flight.1 + newlines(&q.events),
        dropped_events: q.dropped.values().sum(),
    };
    for b in q.batches.drain(..) {
        d.bytes += b.len() as u64;
        d.lines += newlines(&b);
    }
    q.batch_bytes = 0;
    q.events = Vec::new();
    q.dropped.clear();
    d
}

fn newlines(b: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', b).count() as u64
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The line written once the output caught up after events were dropped:
/// `1,234 events were dropped while output was stalled (1,230 prodserver,
/// 4 web.1)`.
pub fn dropped_summary(dropped: &BTreeMap<String, u64>) -> String {
    let total: u64 = dropped.values().sum();
    let verb = if total == 1 {
        "event was"
    } else {
        "events were"
    };
    let mut by: Vec<(&String, &u64)> = dropped.iter().collect();
    // Most first; the map already orders equal counts by label.
    by.sort_by(|a, b| b.1.cmp(a.1));
    let parts: Vec<String> = by
        .iter()
        .map(|(label, n)| format!("{} {label}", thousands(**n)))
        .collect();
    format!(
        "{} {verb} dropped while output was stalled ({})",
        thousands(total),
        parts.join(", ")
    )
}

/// Starts the writer thread on `out`.
pub(crate) fn spawn(
    out: Box<dyn Write + Send>,
    summary: SummaryFormat,
) -> io::Result<(Arc<Channel>, WriterHandle)> {
    let channel = Arc::new(Channel::new());
    let ch = Arc::clone(&channel);
    let thread = std::thread::Builder::new()
        .name("prodserver-logs".into())
        .spawn(move || run(&ch, Sink::new(out), &summary))?;
    Ok((Arc::clone(&channel), WriterHandle { channel, thread }))
}

fn run(ch: &Channel, mut sink: Sink, summary: &SummaryFormat) -> io::Result<()> {
    let mut events = Vec::new();
    let mut dirty = false; // written since the last flush
    loop {
        let (batch, dropped) = {
            let mut q = lock(&ch.queue);
            loop {
                if !q.events.is_empty() || !q.batches.is_empty() || !q.dropped.is_empty() || dirty {
                    break;
                }
                if q.stopping {
                    q.closed = true;
                    drop(q);
                    ch.done.notify_all();
                    // Wakes pumps still waiting for a slot: they see Closed.
                    ch.slots.close();
                    return sink.into_result();
                }
                q.writer_waiting = true;
                q = ch.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
            std::mem::swap(&mut events, &mut q.events);
            let dropped = std::mem::take(&mut q.dropped);
            let batch = q.batches.pop_front();
            let mut in_flight = (events.len() as u64, newlines(&events));
            if let Some(b) = &batch {
                q.batch_bytes -= b.len();
                in_flight.0 += b.len() as u64;
                in_flight.1 += newlines(b);
            }
            q.in_flight = in_flight;
            (batch, dropped)
        };
        if events.is_empty() && batch.is_none() && dropped.is_empty() {
            // Out of work: flush outside the lock, so a blocked flush never
            // blocks `push_event`.
            sink.flush();
            dirty = false;
            continue;
        }
        // Events first: they are the priority path. The summary follows the
        // events that were queued before the drops it counts.
        sink.write(&events, ch);
        if !dropped.is_empty() {
            events.clear();
            summary(&dropped_summary(&dropped), &mut events);
            add_in_flight(ch, &events);
            sink.write(&events, ch);
        }
        events.clear();
        if events.capacity() > BATCH_BYTES {
            events.shrink_to(BATCH_BYTES);
        }
        if let Some(mut b) = batch {
            sink.write(&b, ch);
            b.clear();
            let mut q = lock(&ch.queue);
            if q.spare.len() < SPARE_BUFFERS && b.capacity() <= SPARE_MAX_CAPACITY {
                q.spare.push(b);
            }
            drop(q);
            ch.slots.add_permits(1);
            ch.written.send_modify(|n| *n += 1);
        }
        dirty = true;
    }
}

fn add_in_flight(ch: &Channel, buf: &[u8]) {
    let mut q = lock(&ch.queue);
    q.in_flight.0 += buf.len() as u64;
    q.in_flight.1 += newlines(buf);
}

/// The output, with the "write fails for good → discard" policy.
struct Sink {
    out: Box<dyn Write + Send>,
    error: Option<io::Error>,
}

impl Sink {
    fn new(out: Box<dyn Write + Send>) -> Self {
        Sink { out, error: None }
    }

    /// Writes `buf`, taking each accepted part off `ch`'s in-flight count
    /// (all of it when discarding after an error).
    fn write(&mut self, buf: &[u8], ch: &Channel) {
        if buf.is_empty() {
            return;
        }
        ch.tap(buf);
        let taken = |part: &[u8]| {
            let mut q = lock(&ch.queue);
            q.in_flight.0 = q.in_flight.0.saturating_sub(part.len() as u64);
            q.in_flight.1 = q.in_flight.1.saturating_sub(newlines(part));
        };
        if self.error.is_some() {
            taken(buf);
            return;
        }
        let mut rest = buf;
        let result = write_all(&mut self.out, &mut rest, |part| taken(part));
        if let Err(e) = result {
            taken(rest);
            self.fail(e);
        }
    }

    fn flush(&mut self) {
        if self.error.is_none() {
            if let Err(e) = retry(|| self.out.flush()) {
                self.fail(e);
            }
        }
    }

    fn fail(&mut self, e: io::Error) {
        eprintln!("prodserver: cannot write logs ({e}); discarding further log output");
        self.error = Some(e);
    }

    fn into_result(self) -> io::Result<()> {
        self.error.map_or(Ok(()), Err)
    }
}

/// `write_all` that also survives a non-blocking stdout: a parent may hand
/// us a stdout with O_NONBLOCK set (it is a property of the shared file
/// description), and then a full pipe gives `WouldBlock` instead of blocking.
/// `buf` is advanced past what was written, and `accepted` sees each part
/// written.
fn write_all(
    out: &mut dyn Write,
    buf: &mut &[u8],
    mut accepted: impl FnMut(&[u8]),
) -> io::Result<()> {
    while !buf.is_empty() {
        match retry(|| out.write(buf))? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => {
                accepted(&buf[..n]);
                *buf = &buf[n..];
            }
        }
    }
    Ok(())
}

/// Retries `op` on `Interrupted`, and on `WouldBlock` after a short sleep
/// (we cannot poll a `dyn Write`; this only happens with a non-blocking
/// stdout whose reader is behind, so the sleep costs nothing otherwise).
fn retry<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that accepts a few bytes at a time and sometimes refuses.
    struct Flaky {
        out: Arc<Mutex<Vec<u8>>>,
        calls: usize,
    }

    impl Write for Flaky {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            match self.calls % 3 {
                0 => Err(io::ErrorKind::WouldBlock.into()),
                1 => Err(io::ErrorKind::Interrupted.into()),
                _ => {
                    let n = buf.len().min(5);
                    self.out.lock().unwrap().extend_from_slice(&buf[..n]);
                    Ok(n)
                }
            }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn write_all_survives_partial_interrupted_and_wouldblock() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut w = Flaky {
            out: out.clone(),
            calls: 0,
        };
        let mut parts = 0;
        write_all(&mut w, &mut &b"hello, world, and more"[..], |_| parts += 1).unwrap();
        assert_eq!(parts, 5);
        assert_eq!(&*out.lock().unwrap(), b"hello, world, and more");
    }

    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn broken_output_is_reported_and_drained() {
        let (ch, handle) = spawn(Box::new(Broken), Box::new(|_, _| {})).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            // Far more batches than slots: must not block once output failed.
            for _ in 0..QUEUE_BATCHES * 4 {
                let mut b = b"x\n".to_vec();
                ch.send(&mut b).await.unwrap();
            }
        });
        ch.push_event(b"event\n", "x");
        let err = handle.flush_and_stop().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_subscriber_gets_the_output_and_a_lagging_one_never_blocks_it() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let (ch, handle) = spawn(
            Box::new(Flaky {
                out: out.clone(),
                calls: 0,
            }),
            Box::new(|_, _| {}),
        )
        .unwrap();
        let mut reader = ch.subscribe();
        let lagging = ch.subscribe();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            // Far more chunks than a subscriber holds: nobody reads `lagging`.
            for i in 0..TAP_CHUNKS * 4 {
                let mut b = format!("line {i}\n").into_bytes();
                ch.send(&mut b).await.unwrap();
            }
        });
        handle.flush_and_stop().unwrap();
        drop(lagging);
        let mut got = Vec::new();
        while let Ok(chunk) = reader.try_recv() {
            got.extend_from_slice(&chunk);
        }
        let written = out.lock().unwrap().clone();
        // What the reader kept is a prefix of the output, whole lines.
        assert!(!got.is_empty());
        assert!(written.starts_with(&got), "not a prefix");
        assert!(got.ends_with(b"\n"));
    }

    #[test]
    fn events_and_batches_written_then_closed() {
        #[derive(Clone)]
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let out = Shared(Arc::new(Mutex::new(Vec::new())));
        let (ch, handle) = spawn(Box::new(out.clone()), Box::new(|_, _| {})).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut b = b"a\n".to_vec();
            ch.send(&mut b).await.unwrap();
            assert!(b.is_empty());
        });
        ch.push_event(b"e\n", "x");
        handle.flush_and_stop().unwrap();
        let got = out.0.lock().unwrap().clone();
        assert!(got == b"a\ne\n" || got == b"e\na\n", "{got:?}");
        // After stop: refused, not queued forever.
        rt.block_on(async {
            let mut b = b"late\n".to_vec();
            assert!(ch.send(&mut b).await.is_err());
        });
        ch.push_event(b"late\n", "x");
        assert_eq!(ch.stats(), Stats::default());
    }

    #[test]
    fn thousands_groups_digits() {
        let cases = [
            (0, "0"),
            (7, "7"),
            (999, "999"),
            (1_000, "1,000"),
            (12_345, "12,345"),
            (1_234_567, "1,234,567"),
            (u64::MAX, "18,446,744,073,709,551,615"),
        ];
        for (n, want) in cases {
            assert_eq!(thousands(n), want);
        }
    }

    #[test]
    fn dropped_summary_wording() {
        let mut d = BTreeMap::new();
        d.insert("web.1".to_owned(), 1);
        assert_eq!(
            dropped_summary(&d),
            "1 event was dropped while output was stalled (1 web.1)"
        );
        d.insert("prodserver".to_owned(), 1_233);
        d.insert("beat.1".to_owned(), 1);
        assert_eq!(
            dropped_summary(&d),
            "1,235 events were dropped while output was stalled (1,233 prodserver, 1 beat.1, 1 web.1)"
        );
    }

    #[test]
    fn discarded_warning_wording() {
        let d = Discarded {
            bytes: 65_536,
            lines: 1,
            dropped_events: 0,
        };
        assert_eq!(
            d.warning(Duration::from_secs(5)),
            "warning: stdout did not take the log output within 5s: discarded 65,536 bytes (1 line)"
        );
        let d = Discarded {
            bytes: 2_000_000,
            lines: 30_000,
            dropped_events: 1_500,
        };
        assert_eq!(
            d.warning(Duration::from_secs(5)),
            "warning: stdout did not take the log output within 5s: discarded 2,000,000 bytes (30,000 lines), after 1,500 events had been dropped while it was stalled"
        );
    }
}
