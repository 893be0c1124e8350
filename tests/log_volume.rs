//! Volume and size extremes through the real binary: every line counted
//! exactly, and a 100 MB line without a newline passing in bounded memory.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::Project;

#[test]
fn a_million_lines_from_four_children_arrive_exactly_and_in_order() {
    let mut config = String::new();
    for name in ["a", "b", "c", "d"] {
        config.push_str(&format!("[processes.{name}]\nbackend = \"command\"\ncommand = [\"seq\", \"1\", \"250000\"]\nrestart = \"never\"\n"));
    }
    let p = Project::new(&config);
    let mut child = p
        .command(&["start"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let reader = BufReader::with_capacity(1 << 20, child.stdout.take().expect("stdout"));
    let mut next = [1u64; 4];
    let mut total = 0u64;
    let mut prev = String::new();
    for line in reader.lines() {
        let line = line.expect("utf-8 line");
        let Some((prefix, message)) = line.split_once(" | ") else {
            continue;
        };
        let Some(slot) = ["a.1", "b.1", "c.1", "d.1"]
            .iter()
            .position(|p| *p == prefix.trim())
        else {
            continue;
        };
        let Ok(n) = message.parse::<u64>() else {
            continue;
        };
        assert_eq!(n, next[slot], "{prefix}: out of order after {prev:?}");
        prev = line.clone();
        next[slot] += 1;
        total += 1;
    }
    let status = child.wait().expect("wait");
    let errors = errors.join().expect("stderr reader");
    assert!(status.success(), "{status:?}: {errors}");
    assert_eq!(total, 1_000_000, "{errors}");
    assert_eq!(next, [250_001; 4]);
}

/// Peak resident memory of a process, from /proc (kB).
fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_100_mb_line_without_newline_passes_in_bounded_memory() {
    const SIZE: u64 = 100_000_000;
    let p = Project::new(
        r#"
[processes.big]
backend = "command"
command = ["sh", "-c", "head -c 100000000 /dev/zero | tr '\\0' x"]
restart = "never"
"#,
    );
    let mut child = p
        .command(&["start"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(kb) = vm_hwm_kb(pid) {
                    peak.fetch_max(kb, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut reader = BufReader::with_capacity(1 << 20, child.stdout.take().expect("stdout"));
    let mut xs = 0u64;
    let mut pieces = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).expect("read") == 0 {
            break;
        }
        // Only the child's output: `big.1 | xxx` or `big.1 +| xxx`.
        let Some(bar) = line.iter().position(|b| *b == b'|') else {
            continue;
        };
        if !line.starts_with(b"big.1 ") {
            continue;
        }
        let message = line[bar + 1..].trim_ascii();
        // Supervisor events ("exited ...") share the prefix: skip them.
        if !message.is_empty() && message.iter().all(|b| *b == b'x') {
            pieces += 1;
            xs += message.len() as u64;
        }
    }
    assert!(child.wait().expect("wait").success());
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    assert_eq!(xs, SIZE, "every byte arrives");
    let expected_pieces = SIZE.div_ceil(64 * 1024);
    assert!(
        pieces >= expected_pieces,
        "split into 64 KiB pieces: {pieces} < {expected_pieces}"
    );
    let peak_mib = peak.load(Ordering::Relaxed) / 1024;
    assert!(peak_mib > 0, "memory was sampled");
    assert!(
        peak_mib < 40,
        "prodserver's peak RSS was {peak_mib} MiB for a 100 MB line"
    );
}

/// Whether prodserver's log writer thread is blocked writing to a full
/// pipe (its stdout).
fn writer_blocked_on_pipe(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        let read = |f: &str| std::fs::read_to_string(task.path().join(f)).unwrap_or_default();
        read("comm").trim() == "prodserver-logs" && read("wchan").contains("pipe_write")
    })
}

#[test]
fn exit_with_stdout_stalled_is_bounded_and_reports_what_was_discarded() {
    let p = Project::new(
        r#"
[processes.spam]
backend = "command"
command = ["yes", "spam"]
"#,
    );
    // Our end of prodserver's stdout: held open, never read.
    let (_unread, stdout) = std::io::pipe().expect("pipe");
    let mut child = p
        .command(&["start"])
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let stderr = child.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            all.push_str(&line.unwrap_or_default());
            all.push('\n');
        }
        all
    });
    assert!(
        support::wait_until(Duration::from_secs(30), || writer_blocked_on_pipe(pid)),
        "prodserver's stdout never filled up"
    );

    let sent = std::time::Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let mut status = None;
    support::wait_until(Duration::from_secs(30), || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("prodserver did not exit within 30s of SIGTERM with its stdout stalled");
    };
    let took = sent.elapsed();
    let errors = errors.join().expect("stderr reader");
    assert!(status.code().is_some(), "{status:?}: {errors}");
    // The wait is the documented 5 s, not less (it did try) and not much more.
    assert!(
        took >= Duration::from_millis(4_900) && took < Duration::from_secs(20),
        "{took:?}"
    );
    let warning = errors
        .lines()
        .find(|l| l.contains("did not take the log output within 5s"))
        .unwrap_or_else(|| panic!("no warning on stderr: {errors}"));
    let rest = warning
        .split_once(": discarded ")
        .unwrap_or_else(|| panic!("{warning}"))
        .1;
    let (bytes, rest) = rest
        .split_once(" bytes (")
        .unwrap_or_else(|| panic!("{warning}"));
    let lines = rest
        .split_once(" line")
        .unwrap_or_else(|| panic!("{warning}"))
        .0;
    let number = |s: &str| {
        s.replace(',', "")
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("{warning}"))
    };
    // At least the full pipe's worth of `spam.1 | spam` lines was queued.
    assert!(number(bytes) > 64 * 1024, "{warning}");
    assert!(number(lines) > 1_000, "{warning}");
}

#[test]
fn timestamps_flag_prefixes_every_text_line() {
    let p = Project::new(
        r#"
[processes.hello]
backend = "command"
command = ["sh", "-c", "echo one; echo two >&2"]
restart = "never"
"#,
    );
    let mut child = p
        .command(&["start", "--timestamps"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let lines: Vec<String> = out.lines().map(|l| l.expect("utf-8 line")).collect();
    assert!(child.wait().expect("wait").success());
    let is_time = |t: &str| {
        let b = t.as_bytes();
        b.len() == 24
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b'T',
                13 | 16 => *c == b':',
                19 => *c == b'.',
                23 => *c == b'Z',
                _ => c.is_ascii_digit(),
            })
    };
    assert!(lines.len() >= 4, "{lines:#?}");
    for line in &lines {
        let (time, rest) = line.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        assert!(is_time(time), "{line:?}");
        assert!(
            rest.starts_with("hello.1 ") || rest.starts_with("prodserver |"),
            "{line:?}"
        );
    }
    for want in ["| one", "| two", "| spawned (pid", "| exiting with code 0"] {
        assert!(lines.iter().any(|l| l.contains(want)), "{want}: {lines:#?}");
    }
}

/// A slow reader at exit: the child is done, but its last lines are still
/// in its pipe behind a full queue. They must still arrive (within the exit
/// flush deadline), not be cut off when the supervisor loop ends.
#[test]
fn last_lines_reach_a_slow_reader_after_the_child_exits() {
    // About 2.6 MB once prefixed: more than the queue and the pipes hold,
    // so `seq` can only finish as the reader reads.
    const LINES: u64 = 130_000;
    let p = Project::new(&format!(
        "[processes.seq]\nbackend = \"command\"\ncommand = [\"sh\", \"-c\", \"seq 1 {LINES} && : > done.tmp && mv done.tmp done\"]\nrestart = \"never\"\n"
    ));
    let done = p.path().join("done");
    let mut child = p
        .command(&["start"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let mut stdout = child.stdout.take().expect("stdout");
    // Not synchronisation: the reader plays a slow consumer (150 kB/s)
    // until a second after the child has exited, so that the child's last
    // lines are still behind a full queue when the supervisor reports the
    // exit (it waits at most 300 ms for them); then it reads at full speed,
    // well within the exit flush deadline (5 s).
    const SLOW_BYTES_PER_SEC: f64 = 150e3;
    let start = std::time::Instant::now();
    let mut exited_at = None;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = std::io::Read::read(&mut stdout, &mut buf).expect("read");
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if exited_at.is_none() && done.exists() {
            exited_at = Some(std::time::Instant::now());
        }
        if exited_at.is_some_and(|t| t.elapsed() > Duration::from_secs(1)) {
            continue;
        }
        let due = Duration::from_secs_f64(out.len() as f64 / SLOW_BYTES_PER_SEC);
        if let Some(ahead) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
    let status = child.wait().expect("wait");
    let errors = errors.join().expect("stderr reader");
    assert!(status.success(), "{status:?}: {errors}");
    assert!(exited_at.is_some(), "the child never finished");
    let text = String::from_utf8(out).expect("utf-8");
    let mut next = 1;
    for line in text.lines() {
        if let Some(n) = line
            .strip_prefix("seq.1      | ")
            .and_then(|m| m.parse::<u64>().ok())
        {
            assert_eq!(n, next, "out of order");
            next += 1;
        }
    }
    assert_eq!(next - 1, LINES, "lines lost at exit; stderr: {errors}");
}
