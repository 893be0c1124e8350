//! The merged log stream with real child processes writing to real pipes.

use std::io::{self, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prodserver::logs::{Format, Logs, Stream};
use tokio::process::Command;

/// An in-memory stdout.
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

impl Captured {
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

const DEADLINE: Duration = Duration::from_secs(120);

/// Runs `sh -c script` as instance 1 of `name`, pumping both streams, until
/// it has exited and both pumps reached EOF. Returns its pid.
async fn run_child(logs: &Logs, name: &str, script: &str) -> u32 {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sh");
    let pid = child.id().expect("pid");
    let out = tokio::spawn(logs.pump(
        name.into(),
        1,
        pid,
        Stream::Stdout,
        child.stdout.take().unwrap(),
    ));
    let err = tokio::spawn(logs.pump(
        name.into(),
        1,
        pid,
        Stream::Stderr,
        child.stderr.take().unwrap(),
    ));
    let all = async {
        let status = child.wait().await.unwrap();
        out.await.unwrap();
        err.await.unwrap();
        status
    };
    let status = tokio::time::timeout(DEADLINE, all)
        .await
        .expect("child finished in time");
    assert!(status.success(), "{name}: {status}");
    pid
}

fn text_logs(width: usize) -> (Logs, prodserver::logs::WriterHandle, Captured) {
    let out = Captured::default();
    let (logs, handle) =
        Logs::start(Format::Text { color: false }, width, Box::new(out.clone())).unwrap();
    (logs, handle, out)
}

#[tokio::test]
async fn four_children_250k_lines_each_exact_order_per_stream() {
    const N: u32 = 250_000;
    let (logs, handle, out) = text_logs(4);
    // stdout and stderr written concurrently by each child.
    let script = format!("seq -f 'err %.0f' 1 {N} >&2 & seq -f 'out %.0f' 1 {N}; wait");
    let tasks: Vec<_> = (1..=4)
        .map(|i| {
            let logs = logs.clone();
            let script = script.clone();
            tokio::spawn(async move { run_child(&logs, &format!("c{i}"), &script).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    handle.flush_and_stop().unwrap();

    let bytes = out.bytes();
    let text = std::str::from_utf8(&bytes).unwrap();
    // next[child][stream] = next number expected.
    let mut next = [[1u32; 2]; 4];
    let mut lines = 0;
    for line in text.lines() {
        lines += 1;
        let (label, msg) = line.split_once(" | ").unwrap_or_else(|| panic!("{line:?}"));
        let child = match label {
            "c1.1" => 0,
            "c2.1" => 1,
            "c3.1" => 2,
            "c4.1" => 3,
            _ => panic!("bad label in {line:?}"),
        };
        let (stream, n) = msg.split_once(' ').unwrap();
        let s = usize::from(stream == "err");
        assert_eq!(n.parse::<u32>().unwrap(), next[child][s], "{line:?}");
        next[child][s] += 1;
    }
    assert_eq!(lines, 4 * 2 * N as usize);
    assert_eq!(next, [[N + 1; 2]; 4]);
}

#[tokio::test]
async fn ten_megabyte_line_without_newline_arrives_in_160_marked_pieces() {
    const TEN_MIB: usize = 10 * 1024 * 1024;
    let script = format!("head -c {TEN_MIB} /dev/zero | tr '\\0' x");

    // JSON: 160 objects, all but the first "continued".
    let out = Captured::default();
    let (logs, handle) = Logs::start(Format::Json, 0, Box::new(out.clone())).unwrap();
    let pid = run_child(&logs, "big", &script).await;
    handle.flush_and_stop().unwrap();
    let bytes = out.bytes();
    let objs: Vec<serde_json::Value> = bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 160);
    let mut total = 0;
    for (i, o) in objs.iter().enumerate() {
        let msg = o["message"].as_str().unwrap();
        assert_eq!(msg.len(), 64 * 1024, "piece {i}");
        assert!(msg.bytes().all(|b| b == b'x'));
        total += msg.len();
        assert_eq!(o["process"], "big");
        assert_eq!(o["instance"], 1);
        assert_eq!(o["pid"], pid);
        assert_eq!(o["stream"], "stdout");
        if i == 0 {
            assert!(o.get("continued").is_none());
        } else {
            assert_eq!(o["continued"], true, "piece {i}");
        }
    }
    assert_eq!(total, TEN_MIB);

    // Text: the same pieces, marked with `+|`.
    let (logs, handle, out) = text_logs(5);
    run_child(&logs, "big", &script).await;
    handle.flush_and_stop().unwrap();
    let bytes = out.bytes();
    let text = std::str::from_utf8(&bytes).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 160);
    let piece = "x".repeat(64 * 1024);
    assert_eq!(lines[0], format!("big.1 | {piece}"));
    for l in &lines[1..] {
        assert_eq!(*l, format!("big.1+| {piece}"));
    }
}

#[tokio::test]
async fn invalid_utf8_crlf_and_partial_last_line() {
    let (logs, handle, out) = text_logs(3);
    logs.project_event("starting");
    run_child(&logs, "t", r"printf 'ok\r\n\377\376bad\n\nend'").await;
    handle.flush_and_stop().unwrap();
    assert_eq!(
        String::from_utf8(out.bytes()).unwrap(),
        "prodserver | starting\nt.1 | ok\nt.1 | \u{fffd}\u{fffd}bad\nt.1 |\nt.1 | end\n"
    );
}

#[tokio::test]
async fn json_streams_and_events_are_labelled() {
    let out = Captured::default();
    let (logs, handle) = Logs::start(Format::Json, 0, Box::new(out.clone())).unwrap();
    let pid = run_child(&logs, "j", "echo to-out; echo to-err >&2").await;
    logs.event("j", 1, Some(pid), "exited with code 0");
    handle.flush_and_stop().unwrap();
    let bytes = out.bytes();
    let mut objs: Vec<serde_json::Value> = bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    objs.sort_by_key(|o| o["message"].as_str().unwrap().to_owned());
    let summary: Vec<(&str, &str)> = objs
        .iter()
        .map(|o| {
            (
                o["stream"].as_str().unwrap(),
                o["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("event", "exited with code 0"),
            ("stderr", "to-err"),
            ("stdout", "to-out")
        ]
    );
    for o in &objs {
        assert_eq!(o["pid"], pid);
        let time = o["time"].as_str().unwrap();
        assert_eq!(time.len(), 24, "{time}");
        assert!(time.starts_with("20") && time.ends_with('Z'), "{time}");
    }
}

#[tokio::test]
async fn last_lines_of_a_failed_oneshot() {
    let (logs, handle, _out) = text_logs(7);
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("seq 1 30; exit 3")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let pump = logs.pump(
        "migrate".into(),
        1,
        pid,
        Stream::Stdout,
        child.stdout.take().unwrap(),
    );
    let (status, ()) = tokio::time::timeout(DEADLINE, async { tokio::join!(child.wait(), pump) })
        .await
        .unwrap();
    assert_eq!(status.unwrap().code(), Some(3));
    let want: Vec<String> = (11..=30).map(|i| i.to_string()).collect();
    assert_eq!(logs.last_lines("migrate", 1), want);
    assert!(logs.last_lines("migrate", 2).is_empty());

    // The next run of the same instance starts with a clean slate.
    run_child(&logs, "migrate", "echo again").await;
    assert_eq!(logs.last_lines("migrate", 1), ["again"]);
    handle.flush_and_stop().unwrap();
}
