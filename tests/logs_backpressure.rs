//! A stalled stdout reader must slow the children (pipe backpressure), keep
//! our memory bounded, and never block supervisor events.

use std::io::{self, Write};
use std::process::Stdio;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use prodserver::logs::writer::{thousands, BATCH_BYTES, EVENT_QUEUE_BYTES, QUEUE_BATCHES};
use prodserver::logs::{Format, Logs, Stopped, Stream};
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

/// Waits (blocking) for `cond`, polling, with the deadline.
fn wait_sync(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A child reaping orphans in a loop makes one event per reap: with stdout
/// stalled they must not pile up in memory. They are counted instead, and
/// one line says so once the output catches up.
#[test]
fn stalled_stdout_bounds_the_event_queue() {
    const MANY: u32 = 100_000;
    let gate = Gate::default();
    let (logs, handle) =
        Logs::start(Format::Text { color: false }, 10, Box::new(gate.clone())).unwrap();
    // The writer takes this one and blocks in write(): stdout is stalled.
    logs.project_event("first");
    wait_sync("the writer to take the first event", || {
        logs.stats().queued_event_bytes == 0
    });

    for i in 0..MANY {
        if i % 2 == 0 {
            logs.project_event(&format!("reaped orphan pid {i} (exit code 0)"));
        } else {
            logs.event("web", 1, Some(7), &format!("event {i}"));
        }
        let stats = logs.stats();
        assert!(
            stats.queued_event_bytes <= EVENT_QUEUE_BYTES,
            "after {i}: {stats:?}"
        );
    }
    let stalled = logs.stats();
    assert!(stalled.dropped_events > 0, "{stalled:?}");
    assert!(
        stalled.queued_event_bytes > EVENT_QUEUE_BYTES - 100,
        "{stalled:?}"
    );

    gate.open();
    // Only once the writer has caught up is there room again: "last" must
    // not itself be dropped.
    wait_sync("the writer to catch up", || {
        let s = logs.stats();
        s.queued_event_bytes == 0 && s.dropped_events == 0
    });
    logs.project_event("last");
    handle.flush_and_stop().unwrap();
    let after = logs.stats();
    assert_eq!(after.dropped_events, 0, "{after:?}");

    let out = gate.out.lock().unwrap();
    let text = std::str::from_utf8(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"prodserver | first"));
    assert_eq!(lines.last(), Some(&"prodserver | last"));
    let summaries: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("dropped while output was stalled"))
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    // Every event is either written or counted, and the counts per label
    // add up.
    let kept = lines.len() as u64 - 3;
    let dropped = MANY as u64 - kept;
    let by_prodserver = MANY as u64 / 2
        - lines
            .iter()
            .filter(|l| l.starts_with("prodserver | reaped"))
            .count() as u64;
    let by_web = dropped - by_prodserver;
    let want = format!(
        "prodserver | {} events were dropped while output was stalled ({})",
        thousands(dropped),
        if by_prodserver >= by_web {
            format!(
                "{} prodserver, {} web.1",
                thousands(by_prodserver),
                thousands(by_web)
            )
        } else {
            format!(
                "{} web.1, {} prodserver",
                thousands(by_web),
                thousands(by_prodserver)
            )
        }
    );
    assert_eq!(summaries[0], want);
    // The kept events are the oldest, in order, then the summary.
    let summary_at = lines.iter().position(|l| *l == want).unwrap();
    assert_eq!(summary_at as u64, kept + 1);
}

/// At exit, a stalled stdout gets a bounded wait; what could not be written
/// is reported, not waited for.
#[tokio::test]
async fn stop_within_gives_up_on_a_stalled_stdout() {
    let gate = Gate::default();
    let (logs, handle) =
        Logs::start(Format::Text { color: false }, 5, Box::new(gate.clone())).unwrap();
    logs.event("web", 1, None, "first");
    wait_for("the writer to block", || {
        logs.stats().queued_event_bytes == 0
    })
    .await;
    for i in 0..10 {
        logs.event("web", 1, None, &format!("e{i}"));
    }
    let queued = logs.stats().queued_event_bytes as u64;
    let start = Instant::now();
    let stopped =
        tokio::task::spawn_blocking(move || handle.stop_within(Duration::from_millis(300)))
            .await
            .unwrap();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    match stopped {
        Stopped::TimedOut(d) => {
            // The 10 queued events plus the blocked write of the first one.
            let first = "web.1 | first\n".len() as u64;
            assert_eq!(d.bytes, queued + first, "{d:?}");
            assert_eq!(d.lines, 11, "{d:?}");
            assert_eq!(d.dropped_events, 0, "{d:?}");
        }
        other => panic!("{other:?}"),
    }
    // Refused from now on, not queued.
    logs.event("web", 1, None, "late");
    assert_eq!(logs.stats(), Default::default());
}
