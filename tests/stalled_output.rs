//! With prodserver's stdout stalled (Ctrl-S, a stuck log shipper), its
//! memory stays flat even when a child hands it thousands of orphans a
//! second: supervisor events are coalesced, never queued without bound.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{wait_until, Project};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

#[test]
fn an_orphan_storm_with_stdout_stalled_keeps_memory_flat() {
    let p = Project::new(
        r#"
[processes.storm]
backend = "command"
command = ["sh", "-c", "touch started.tmp && mv started.tmp started; while :; do (true &); done"]
instances = 3
"#,
    );
    // stdout is a pipe nobody reads: it fills, and stays full.
    let mut child = Command::new(env!("CARGO_BIN_EXE_prodserver"))
        .arg("start")
        .current_dir(p.path())
        .env("XDG_RUNTIME_DIR", p.runtime_dir())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let _stalled = child.stdout.take();
    let started = p.path().join("started");
    assert!(wait_until(Duration::from_secs(20), || started.exists()));
    // Let the stdout pipe fill and the allocator settle first.
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        std::thread::park_timeout(settle - Instant::now());
    }
    let before = rss_kib(child.id());
    let until = Instant::now() + Duration::from_secs(8);
    let mut peak = before;
    while Instant::now() < until {
        std::thread::park_timeout(Duration::from_millis(200));
        peak = peak.max(rss_kib(child.id()));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait();
    eprintln!("rss before {before} KiB, peak {peak} KiB");
    assert!(
        peak < before + 256,
        "prodserver grew from {before} KiB to {peak} KiB in 8 s"
    );
}
