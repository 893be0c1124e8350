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
//!   all queued events before each batch. This queue is unbounded on
//!   purpose: events are a handful per process lifecycle transition (spawn,
//!   exit, restart, health change), and transitions are themselves throttled
//!   by restart backoff, so the queue grows by at most a few hundred bytes per
//!   transition while stdout is stalled. Bounding it would mean blocking the
//!   supervisor or dropping events, both worse.
//!
//! The thread flushes `out` whenever it runs out of work, so a quiet child's
//! line shows up at once, while under load writes are large (one per batch).
//!
//! If writing fails for good (stdout closed, EPIPE), the writer reports it
//! once on stderr and from then on discards: it keeps draining so that
//! children never block on a log nobody can read, and memory stays bounded.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};

/// Most batches queued at once (see the module docs for the memory bound).
/// A few are enough to keep the writer busy while pumps refill; 32 leaves
/// slack for many processes writing at once, at a worst case of a few MiB.
pub const QUEUE_BATCHES: usize = 32;

/// A pump sends its batch once it reaches this size, even mid-chunk, so a
/// chunk of many tiny lines (whose prefixes multiply its size) cannot make
/// one huge batch.
pub const BATCH_BYTES: usize = 64 * 1024;

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
}

#[derive(Debug, Default)]
struct Queue {
    events: Vec<u8>,
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
        }
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

    /// Queues already formatted event bytes. Never waits (beyond the mutex,
    /// which is only ever held for a memcpy or a buffer swap).
    pub fn push_event(&self, bytes: &[u8]) {
        let mut q = lock(&self.queue);
        if q.closed {
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
    /// output has accepted everything. Returns the first write error, if any.
    pub fn flush_and_stop(self) -> io::Result<()> {
        self.channel.request_stop();
        self.thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("log writer thread panicked")))
    }
}

/// Starts the writer thread on `out`.
pub(crate) fn spawn(out: Box<dyn Write + Send>) -> io::Result<(Arc<Channel>, WriterHandle)> {
    let channel = Arc::new(Channel::new());
    let ch = Arc::clone(&channel);
    let thread = std::thread::Builder::new()
        .name("prodserver-logs".into())
        .spawn(move || run(&ch, Sink::new(out)))?;
    Ok((Arc::clone(&channel), WriterHandle { channel, thread }))
}

fn run(ch: &Channel, mut sink: Sink) -> io::Result<()> {
    let mut events = Vec::new();
    let mut dirty = false; // written since the last flush
    loop {
        let batch = {
            let mut q = lock(&ch.queue);
            loop {
                if !q.events.is_empty() || !q.batches.is_empty() || dirty {
                    break;
                }
                if q.stopping {
                    q.closed = true;
                    drop(q);
                    // Wakes pumps still waiting for a slot: they see Closed.
                    ch.slots.close();
                    return sink.into_result();
                }
                q.writer_waiting = true;
                q = ch.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
            std::mem::swap(&mut events, &mut q.events);
            let batch = q.batches.pop_front();
            if let Some(b) = &batch {
                q.batch_bytes -= b.len();
            }
            batch
        };
        if events.is_empty() && batch.is_none() {
            // Out of work: flush outside the lock, so a blocked flush never
            // blocks `push_event`.
            sink.flush();
            dirty = false;
            continue;
        }
        // Events first: they are the priority path.
        sink.write(&events);
        events.clear();
        if events.capacity() > BATCH_BYTES {
            events.shrink_to(BATCH_BYTES);
        }
        if let Some(mut b) = batch {
            sink.write(&b);
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

/// The output, with the "write fails for good → discard" policy.
struct Sink {
    out: Box<dyn Write + Send>,
    error: Option<io::Error>,
}

impl Sink {
    fn new(out: Box<dyn Write + Send>) -> Self {
        Sink { out, error: None }
    }

    fn write(&mut self, buf: &[u8]) {
        if self.error.is_none() && !buf.is_empty() {
            if let Err(e) = write_all(&mut self.out, buf) {
                self.fail(e);
            }
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
fn write_all(out: &mut dyn Write, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match retry(|| out.write(buf))? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => buf = &buf[n..],
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
        write_all(&mut w, b"hello, world, and more").unwrap();
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
        let (ch, handle) = spawn(Box::new(Broken)).unwrap();
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
        ch.push_event(b"event\n");
        let err = handle.flush_and_stop().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
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
        let (ch, handle) = spawn(Box::new(out.clone())).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut b = b"a\n".to_vec();
            ch.send(&mut b).await.unwrap();
            assert!(b.is_empty());
        });
        ch.push_event(b"e\n");
        handle.flush_and_stop().unwrap();
        let got = out.0.lock().unwrap().clone();
        assert!(got == b"a\ne\n" || got == b"e\na\n", "{got:?}");
        // After stop: refused, not queued forever.
        rt.block_on(async {
            let mut b = b"late\n".to_vec();
            assert!(ch.send(&mut b).await.is_err());
        });
        ch.push_event(b"late\n");
        assert_eq!(ch.stats(), Stats::default());
    }
}
