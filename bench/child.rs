//! The child program the benchmark supervises (built as an example:
//! `cargo build --release --example bench-child`).
//!
//! - `lines N`: writes N short lines as fast as it can;
//! - `crash FILE`: appends its start and exit times (CLOCK_MONOTONIC, ns,
//!   comparable across processes) to FILE and exits 1;
//! - `sleep`: waits forever.

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
        _ => {
            eprintln!("usage: bench-child lines N | crash FILE | sleep");
            std::process::exit(2);
        }
    }
}
