//! A stalled stdout reader must slow the children (pipe backpressure), keep
//! our memory bounded, and never block supervisor events.

use std::io::{self, Write};
use std::process::Stdio;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use prodserver::logs::writer::{BATCH_BYTES, QUEUE_BATCHES};
use prodserver::logs::{Format, Logs, Stream};
use tokio::process::Command;

/// A stdout whose reader is stalled until `open()` is called.
#[derive(Clone, Default)]
struct Gate {
    state: Arc<(Mutex<bool>, Condvar)>,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Gate {
    fn open(&self) {
        *self.state.0.lock().unwrap() = true;
        self.state.1.notify_all();
    }
}

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (open, cv) = &*self.state;
        let mut open = open.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        self.out.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const LINES: u32 = 1_000_000;
const EVENTS: u32 = 10_000;
const DEADLINE: Duration = Duration::from_secs(120);

/// Waits for `cond` with a deadline, polling: the condition lives in another
/// thread's data structure, which offers no notification to wait on.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn stalled_stdout_blocks_children_not_events() {
    let gate = Gate::default();
    let (logs, handle) =
        Logs::start(Format::Text { color: false }, 5, Box::new(gate.clone())).unwrap();
    // ~6.9 MB of input, ~15 MB formatted: far more than the queue can hold.
    let mut child = Command::new("seq")
        .arg(LINES.to_string())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let pump = tokio::spawn(logs.pump(
        "seq".into(),
        1,
        pid,
        Stream::Stdout,
        child.stdout.take().unwrap(),
    ));

    // The writer holds one batch (blocked in write), the rest of the slots
    // fill up, and then the pump must stop reading.
    wait_for("the batch queue to fill", || {
        logs.stats().queued_batches >= QUEUE_BATCHES - 1
    })
    .await;
    let full = logs.stats();
    assert_eq!(full.queued_batches, QUEUE_BATCHES - 1, "{full:?}");
    // Memory bound: each queued batch is at most BATCH_BYTES plus one line.
    assert!(
        full.queued_batch_bytes <= (QUEUE_BATCHES - 1) * (BATCH_BYTES + 1024),
        "{full:?}"
    );
    // So the child cannot have written everything: at most the queue, one
    // read buffer and one pipe's worth of its output has left it. It is
    // blocked on its own write.
    assert!(
        child.try_wait().unwrap().is_none(),
        "child finished while stdout was stalled"
    );
    assert!(!pump.is_finished());

    // Supervisor events do not wait for the stalled writer. Run them on a
    // thread so that a blocking event() fails the test instead of hanging it.
    let (done_tx, done_rx) = mpsc::channel();
    let ev_logs = logs.clone();
    std::thread::spawn(move || {
        let start = Instant::now();
        for i in 0..EVENTS {
            ev_logs.event("seq", 1, Some(pid), &format!("event {i}"));
        }
        done_tx.send(start.elapsed()).unwrap();
    });
    let took = done_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("event() blocked behind a stalled stdout");
    assert!(
        took < Duration::from_secs(5),
        "{EVENTS} events took {took:?}"
    );
    let after = logs.stats();
    assert!(after.queued_event_bytes >= EVENTS as usize * "seq.1 | event 0\n".len());
    // The queue did not grow past its bound meanwhile, and the child is
    // still blocked.
    assert_eq!(after.queued_batches, QUEUE_BATCHES - 1, "{after:?}");
    assert!(child.try_wait().unwrap().is_none());

    // Reader catches up: everything arrives, events included.
    gate.open();
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(DEADLINE, pump).await.unwrap().unwrap();
    handle.flush_and_stop().unwrap();

    let out = gate.out.lock().unwrap();
    let text = std::str::from_utf8(&out).unwrap();
    let (mut next_line, mut next_event) = (1u32, 0u32);
    for line in text.lines() {
        let msg = line
            .strip_prefix("seq.1 | ")
            .unwrap_or_else(|| panic!("{line:?}"));
        if let Some(e) = msg.strip_prefix("event ") {
            assert_eq!(e.parse::<u32>().unwrap(), next_event);
            next_event += 1;
        } else {
            assert_eq!(msg.parse::<u32>().unwrap(), next_line);
            next_line += 1;
        }
    }
    assert_eq!((next_line, next_event), (LINES + 1, EVENTS));
}
