//! The `log` probe's hook in the real log pipeline: a child's output still
//! reaches the log whole, and the first matching line, on either stream,
//! produces exactly one readiness event.

use std::io::{self, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prodserver::health::log::{compile, line_hook};
use prodserver::logs::{Format, Logs, Stream};
use tokio::process::Command;
use tokio::sync::mpsc;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn first_matching_line_makes_one_event_and_everything_is_logged() {
    let out = Captured::default();
    let (logs, handle) =
        Logs::start(Format::Text { color: false }, 5, Box::new(out.clone())).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    let hook = line_hook(compile(r"^Listening at: http://\S+").unwrap(), move || {
        let _ = tx.send("ready");
    });

    // The match comes on stderr, between lines on both streams, then again.
    let script = "echo booting; echo 'Listening at: http://127.0.0.1:8000' >&2; \
                  echo after; echo 'Listening at: http://again' >&2; echo done";
    let mut child = Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let a = tokio::spawn(logs.pump_with_hook(
        "web".into(),
        1,
        pid,
        Stream::Stdout,
        child.stdout.take().unwrap(),
        Some(hook.clone()),
    ));
    let b = tokio::spawn(logs.pump_with_hook(
        "web".into(),
        1,
        pid,
        Stream::Stderr,
        child.stderr.take().unwrap(),
        Some(hook),
    ));
    let event = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a readiness event");
    assert_eq!(event, Some("ready"));
    assert!(child.wait().await.unwrap().success());
    a.await.unwrap();
    b.await.unwrap();
    // Every sender is gone with the pumps: no second event was queued.
    assert_eq!(rx.recv().await, None, "exactly one event");

    drop(logs);
    handle.flush_and_stop().unwrap();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    for line in [
        "booting",
        "Listening at: http://127.0.0.1:8000",
        "after",
        "Listening at: http://again",
        "done",
    ] {
        assert!(
            text.contains(&format!("| {line}\n")),
            "{line:?} missing from:\n{text}"
        );
    }
}
