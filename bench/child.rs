//! The child program the benchmark supervises (built as an example:
//! `cargo build --release --example bench-child`).
//!
//! - `lines N`: writes N short lines as fast as it can;
//! - `crash FILE`: appends its start and exit times (CLOCK_MONOTONIC, ns,
//!   comparable across processes) to FILE and exits 1;
//! - `sleep`: waits forever;
//! - `grow LIMIT_MIB FILE`: allocates (and touches) memory a MiB at a
//!   time until its own PSS passes LIMIT_MIB, appends `c <monotonic ns>`
//!   (the crossing) to FILE, sends READY=1 to $NOTIFY_SOCKET (if set),
//!   then holds it; on SIGTERM appends
//!   `t <monotonic ns>` and exits 0: the recycle's reaction time;
//! - `ready`: sends READY=1 to $NOTIFY_SOCKET after 200 ms, then waits;
//!   exits 0 on SIGTERM.

use std::io::Write;

fn monotonic_ns() -> u128 {
    // CLOCK_MONOTONIC is system-wide: stamps compare across processes.
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u128 * 1_000_000_000 + t.tv_nsec() as u128)
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("lines") => {
            let n: u64 = args
                .get(2)
                .and_then(|n| n.parse().ok())
                .unwrap_or(1_000_000);
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            for i in 0..n {
                let _ = writeln!(out, "line {i}");
            }
        }
        Some("crash") => {
            let start = monotonic_ns();
            let path = args.get(2).expect("crash FILE");
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open");
            let _ = writeln!(f, "s {start}\ne {}", monotonic_ns());
            std::process::exit(1);
        }
        Some("sleep") => loop {
            std::thread::park();
        },
        Some("grow") => {
            let limit: u64 = args.get(2).and_then(|n| n.parse().ok()).expect("LIMIT_MIB");
            let path = args.get(3).expect("grow LIMIT_MIB FILE").clone();
            let term = term_waiter();
            let mut held: Vec<Vec<u8>> = Vec::new();
            while pss_bytes() <= limit * 1024 * 1024 {
                held.push(vec![1u8; 1 << 20]);
            }
            append(&path, &format!("c {}", monotonic_ns()));
            // Well over, so no sample can see it under again.
            for _ in 0..8 {
                held.push(vec![1u8; 1 << 20]);
            }
            notify_ready();
            let _ = term.recv();
            append(&path, &format!("t {}", monotonic_ns()));
            drop(held);
        }
        Some("ready") => {
            let term = term_waiter();
            std::thread::sleep(std::time::Duration::from_millis(200));
            notify_ready();
            let _ = term.recv();
        }
        _ => {
            eprintln!(
                "usage: bench-child lines N | crash FILE | sleep | grow LIMIT_MIB FILE | ready"
            );
            std::process::exit(2);
        }
    }
}

fn notify_ready() {
    if let Ok(path) = std::env::var("NOTIFY_SOCKET") {
        let sock = std::os::unix::net::UnixDatagram::unbound().expect("socket");
        let _ = sock.send_to(b"READY=1", path);
    }
}

fn append(path: &str, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    let _ = writeln!(f, "{line}");
}

/// Its own PSS, as prodserver's default metric sees it (a lone process's
/// PSS is a little under its RSS: the shared libraries' pages are split).
fn pss_bytes() -> u64 {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// A channel that receives once SIGTERM arrives (blocked in every thread,
/// taken by a thread of its own with sigwait).
fn term_waiter() -> std::sync::mpsc::Receiver<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.thread_block().expect("block SIGTERM");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if set.wait().is_ok() {
            let _ = tx.send(());
        }
    });
    rx
}
