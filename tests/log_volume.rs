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
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let reader = BufReader::with_capacity(1 << 20, child.stdout.take().expect("stdout"));
    let mut next = [1u64; 4];
    let mut total = 0u64;
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
        assert_eq!(n, next[slot], "{prefix}: out of order");
        next[slot] += 1;
        total += 1;
    }
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    assert_eq!(total, 1_000_000);
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
