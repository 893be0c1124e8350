//! Ports reserved for one test, for children that must bind them
//! themselves (so the test cannot simply hold a listener on port 0).
//!
//! A port from `bind(0)` is only free at that instant: the next `bind(0)`
//! or outgoing connection of any parallel test may take it before the
//! child binds it. Reserved ports avoid both races:
//! - they lie outside the kernel's ephemeral range
//!   (/proc/sys/net/ipv4/ip_local_port_range), so no `bind(0)` or outgoing
//!   connection is ever given one;
//! - tests claim them in blocks of ten through an exclusive lock on a file
//!   per block in the temp directory, held until the reservation is
//!   dropped, so two tests (in this binary or another) never share one;
//! - each port of a block is checked bindable when claimed (some other
//!   program may use a fixed port there).

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::PathBuf;

/// Ports per block.
pub const BLOCK: u16 = 10;

/// Ten consecutive ports, `first` to `first + 9`, with `first` a multiple
/// of ten (so `{prefix}{instance}` in a config names ports of the block).
/// Released on drop.
pub struct Ports {
    pub first: u16,
    _lock: File,
}

impl Ports {
    /// The `i`-th port of the block (0-based).
    pub fn port(&self, i: u16) -> u16 {
        assert!(i < BLOCK, "a block has {BLOCK} ports");
        self.first + i
    }
}

/// Reserves a block of [`BLOCK`] ports; panics if none can be had.
pub fn reserve() -> Ports {
    let (low, high) = ephemeral_range();
    let dir = lock_dir();
    // Start at a different block in every process, so parallel test
    // binaries do not all contend for the first ones.
    let candidates: Vec<u16> = (1_000u16..6_500)
        .map(|b| b * BLOCK)
        .filter(|&first| first + BLOCK <= low || first > high)
        .collect();
    assert!(!candidates.is_empty(), "no ports outside {low}-{high}");
    let start = (std::process::id() as usize * 7919) % candidates.len();
    for k in 0..candidates.len() {
        let first = candidates[(start + k) % candidates.len()];
        let Ok(file) = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("block-{first}")))
        else {
            continue;
        };
        if file.try_lock().is_err() {
            continue;
        }
        // One address at a time: each probe listener is closed before the
        // next bind (never accepted a connection, so no TIME_WAIT).
        let bindable = (first..first + BLOCK).all(|p| {
            ["127.0.0.1", "0.0.0.0"]
                .iter()
                .all(|ip| TcpListener::bind((*ip, p)).is_ok())
        });
        if bindable {
            return Ports { first, _lock: file };
        }
    }
    panic!("no free block of {BLOCK} ports outside the ephemeral range {low}-{high}");
}

fn ephemeral_range() -> (u16, u16) {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .expect("read ip_local_port_range");
    let mut it = text.split_ascii_whitespace().map(|n| n.parse::<u16>());
    match (it.next(), it.next()) {
        (Some(Ok(low)), Some(Ok(high))) => (low, high),
        _ => panic!("cannot read ip_local_port_range: {text:?}"),
    }
}

fn lock_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("prodserver-test-ports");
    std::fs::create_dir_all(&dir).expect("create the port lock directory");
    dir
}
