//! Who holds a listening socket, read from /proc: the listeners in
//! /proc/net/tcp and tcp6, the sockets among a process's descriptors
//! (/proc/PID/fd → `socket:[INODE]`), its children and its name.
//!
//! Parsing is in pure functions over the text the kernel prints, so it is
//! tested on sample lines; the readers around them are thin. Everything
//! here blocks on /proc reads: call it off the event loop.
//!
//! A listening socket is known by its inode number; the processes holding
//! it are those with a descriptor linking to `socket:[INODE]` (a forking
//! server's workers inherit their master's listener, so several may).

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// `st` of a listening socket in /proc/net/tcp (TCP_LISTEN).
const TCP_LISTEN: u8 = 0x0A;

/// Bound on the processes walked in one instance tree, against a tree
/// read while it changes (pids reused as children of their own
/// descendants cannot happen, but a fork bomb can).
const MAX_TREE: usize = 4096;

/// One socket line of /proc/net/tcp or tcp6: its local address, its `st`
/// and its inode. `None` for the header or a line we cannot read.
///
/// Addresses are printed as the raw in-memory words of the address in
/// hex (`0100007F` is 127.0.0.1 on a little-endian machine), so each
/// 32-bit word is turned back into bytes in native order; the port is a
/// plain hex number.
pub fn parse_net_tcp_line(line: &str) -> Option<(SocketAddr, u8, u64)> {
    let mut fields = line.split_ascii_whitespace();
    let slot = fields.next()?;
    if !slot.ends_with(':') {
        return None;
    }
    let local = fields.next()?;
    let _remote = fields.next()?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    // tx:rx queues, timer, retransmits, uid, timeout, then the inode.
    let inode = fields.nth(5)?.parse().ok()?;
    let (ip, port) = local.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(ip)?.to_ne_bytes())),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word(ip.get(i * 8..i * 8 + 8)?)?.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some((SocketAddr::new(ip, port), state, inode))
}

fn word(hex: &str) -> Option<u32> {
    u32::from_str_radix(hex, 16).ok()
}

/// `::ffff:a.b.c.d` → `a.b.c.d`: a dual-stack socket shows IPv4 peers and
/// addresses in that form.
fn plain(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// How well a listener bound to `listen` matches a connection made to
/// `to`, higher is better, `None` not at all. As the kernel picks the
/// listener: one bound to that very address beats a wildcard (0.0.0.0
/// for IPv4; `::` for both, as a dual-stack socket accepts IPv4 too), and
/// among equals a socket of the connection's own family wins (an IPv4
/// socket over an IPv6 one for an IPv4 peer). So only the best matches
/// can have answered.
pub fn listener_match(listen: SocketAddr, to: SocketAddr) -> Option<u8> {
    if listen.port() != to.port() {
        return None;
    }
    let (l, t) = (plain(listen.ip()), plain(to.ip()));
    let family = u8::from(listen.is_ipv4() == t.is_ipv4());
    if l == t {
        return Some(3 + family);
    }
    match l {
        IpAddr::V4(v4) if v4.is_unspecified() && t.is_ipv4() => Some(1 + family),
        IpAddr::V6(v6) if v6.is_unspecified() => Some(1 + family),
        _ => None,
    }
}

/// The inodes of the listeners that can have accepted a connection to
/// `to`, from /proc/net/tcp(6) lines: those of the best match (several
/// when they share the port with SO_REUSEPORT).
pub fn best_listeners<'a>(lines: impl IntoIterator<Item = &'a str>, to: SocketAddr) -> Vec<u64> {
    let mut best = 0;
    let mut inodes = Vec::new();
    for (addr, state, inode) in lines.into_iter().filter_map(parse_net_tcp_line) {
        if state != TCP_LISTEN || inode == 0 {
            continue;
        }
        let Some(score) = listener_match(addr, to) else {
            continue;
        };
        if score > best {
            best = score;
            inodes.clear();
        }
        if score == best {
            inodes.push(inode);
        }
    }
    inodes
}

/// `socket:[12345]` (a /proc/PID/fd link) → 12345.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// /proc/PID/task/TID/children: space-separated pids.
pub fn parse_children(text: &str) -> Vec<i32> {
    text.split_ascii_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// /proc/PID/comm without its newline.
pub fn parse_comm(text: &str) -> String {
    text.trim_end_matches('\n').to_owned()
}

/// The inodes of the listeners that can have accepted a connection to
/// `to` ([`best_listeners`]), in this network namespace.
pub fn listeners_for(to: SocketAddr) -> io::Result<Vec<u64>> {
    let mut lines = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match read_listening_lines(file, &mut lines) {
            Ok(()) => {}
            // No IPv6 in this kernel: no tcp6 file.
            Err(e) if e.kind() == io::ErrorKind::NotFound && file.ends_with('6') => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("{file}: {e}"))),
        }
    }
    Ok(best_listeners(lines.iter().map(String::as_str), to))
}

/// The listening lines of one /proc/net/tcp file. The kernel prints the
/// listening table before the established one, so reading stops at the
/// first socket in another state: a busy server's thousands of
/// connections are neither formatted nor read at every probe.
fn read_listening_lines(file: &str, out: &mut Vec<String>) -> io::Result<()> {
    let mut reader = BufReader::new(fs::File::open(file)?);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        match parse_net_tcp_line(&line) {
            Some((_, state, _)) if state != TCP_LISTEN => return Ok(()),
            Some(_) => out.push(line.clone()),
            None => {} // the header
        }
    }
}

/// The socket inodes among `pid`'s open descriptors. A descriptor closed
/// between listing and reading is skipped.
pub fn socket_inodes(pid: i32) -> io::Result<Vec<u64>> {
    let mut inodes = Vec::new();
    for entry in fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Ok(entry) = entry else { continue };
        if let Ok(link) = fs::read_link(entry.path()) {
            if let Some(inode) = link.to_str().and_then(socket_inode) {
                inodes.push(inode);
            }
        }
    }
    Ok(inodes)
}

/// The children of every thread of `pid` (a child belongs to the thread
/// that forked it, so reading only the main thread's list would miss a
/// worker spawned from another thread).
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        if let Ok(text) = fs::read_to_string(task.path().join("children")) {
            out.extend(parse_children(&text));
        }
    }
    out
}

/// The fields of /proc/PID/stat that prodserver reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `R`, `S`, `Z`, ...
    pub state: u8,
    pub ppid: i32,
    pub pgrp: i32,
    /// When the process started, in clock ticks after boot: with the pid,
    /// it names one process, whereas a pid alone may be reused.
    pub start: u64,
}

/// A live process's [`Stat`]; `None` once it is gone.
pub fn stat(pid: i32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// A /proc/PID/stat line: `pid (comm) S ppid pgrp …`. comm may contain
/// spaces and parentheses, so fields are counted after the LAST ')'.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let rest = &line[line.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    // Field 22 of the line; pgrp was field 5.
    let start = fields.nth(16)?.parse().ok()?;
    Some(Stat {
        state,
        ppid,
        pgrp,
        start,
    })
}

/// How many threads this process has, from /proc/self/task.
pub fn threads_of_self() -> io::Result<usize> {
    let dir = "/proc/self/task";
    let entries = fs::read_dir(dir).map_err(|e| io::Error::new(e.kind(), format!("{dir}: {e}")))?;
    Ok(entries.count())
}

/// `pid`'s command name (at most 15 bytes, as the kernel keeps it).
pub fn comm(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|t| parse_comm(&t))
}

/// True when `root` or one of its descendants holds one of `inodes`.
/// Walks the tree breadth-first from `root` and stops at the first holder:
/// a server's master usually holds its listener itself.
pub fn tree_holds(root: i32, inodes: &[u64]) -> bool {
    let mut seen = BTreeSet::new();
    let mut queue = std::collections::VecDeque::from([root]);
    while let Some(pid) = queue.pop_front() {
        if seen.len() >= MAX_TREE || !seen.insert(pid) {
            continue;
        }
        if socket_inodes(pid).is_ok_and(|held| held.iter().any(|i| inodes.contains(i))) {
            return true;
        }
        queue.extend(children(pid));
    }
    false
}

/// Some process holding one of `inodes`, found by reading every
/// process's descriptors: costly, so only to name a stranger. `None` when
/// no readable process holds it (its holder belongs to another user we
/// may not inspect, or has just closed it).
pub fn socket_holder(inodes: &[u64]) -> Option<i32> {
    all_pids()
        .into_iter()
        .find(|&pid| socket_inodes(pid).is_ok_and(|held| held.iter().any(|i| inodes.contains(i))))
}

/// Every pid in /proc: a scan of the whole host, for the rare cases with
/// no narrower list. Empty when /proc cannot be read.
pub fn all_pids() -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_awkward_comm() {
        assert_eq!(
            parse_stat(
                "4242 (a) b (c)) Z 17 4200 4200 0 -1 4194564 0 0 0 0 0 0 0 0 20 0 1 0 987654 0 0"
            ),
            Some(Stat {
                state: b'Z',
                ppid: 17,
                pgrp: 4200,
                start: 987654,
            })
        );
        assert_eq!(
            parse_stat("4242 (a) Z 17 4200 4200 0 -1 4194564"),
            None,
            "cut short before the start time"
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S"), None);
    }

    // Lines as a little-endian kernel prints them.
    const V4_LISTEN: &str = "   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0";
    const V4_ANY: &str = "   1: 00000000:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 100 0 0 10 0";
    const V4_ESTABLISHED: &str = "   2: 0100007F:1F40 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 4444 1 0000000000000000 20 4 30 10 -1";
    const V6_LOOPBACK: &str = "   0: 00000000000000000000000001000000:1F40 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5151 1 0000000000000000 100 0 0 10 0";
    const V6_ANY: &str = "   1: 00000000000000000000000000000000:1F42 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 5252 1 0000000000000000 100 0 0 10 0";
    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode";

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn net_tcp_lines() {
        assert_eq!(
            parse_net_tcp_line(V4_LISTEN),
            Some((sa("127.0.0.1:8000"), 0x0A, 4242))
        );
        assert_eq!(
            parse_net_tcp_line(V4_ESTABLISHED),
            Some((sa("127.0.0.1:8000"), 0x01, 4444))
        );
        assert_eq!(
            parse_net_tcp_line(V6_LOOPBACK),
            Some((sa("[::1]:8000"), 0x0A, 5151))
        );
        assert_eq!(parse_net_tcp_line(HEADER), None);
        assert_eq!(parse_net_tcp_line(""), None);
        assert_eq!(parse_net_tcp_line("   0: 0100007F:1F40 x"), None);
        assert_eq!(parse_net_tcp_line("   0: 7F:1F40 0:0 0A a b c d e 1"), None);
    }

    #[test]
    fn address_matching() {
        let to = sa("127.0.0.1:8000");
        let score = |listen: &str| listener_match(sa(listen), to);
        // Best first: the address itself, then wildcards, IPv4 sockets
        // before dual-stack IPv6 ones.
        assert!(score("127.0.0.1:8000") > score("[::ffff:127.0.0.1]:8000"));
        assert!(score("[::ffff:127.0.0.1]:8000") > score("0.0.0.0:8000"));
        assert!(score("0.0.0.0:8000") > score("[::]:8000"));
        assert!(score("[::]:8000").is_some());
        assert_eq!(score("127.0.0.1:8001"), None);
        assert_eq!(score("127.0.0.2:8000"), None);
        assert_eq!(score("[::1]:8000"), None);
        let to6 = sa("[::1]:8000");
        let score6 = |listen: &str| listener_match(sa(listen), to6);
        assert!(score6("[::1]:8000") > score6("[::]:8000"));
        assert!(score6("[::]:8000").is_some());
        assert_eq!(score6("0.0.0.0:8000"), None);
        assert_eq!(score6("127.0.0.1:8000"), None);
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn the_most_specific_listeners_win() {
        let table = [HEADER, V4_LISTEN, V4_ANY, V4_ESTABLISHED, V6_ANY];
        assert_eq!(best_listeners(table, sa("127.0.0.1:8000")), vec![4242]);
        assert_eq!(best_listeners(table, sa("127.0.0.1:8001")), vec![4343]);
        assert_eq!(best_listeners(table, sa("[::1]:8002")), vec![5252]);
        // A dual-stack wildcard takes IPv4 when no IPv4 socket has the port.
        assert_eq!(best_listeners(table, sa("127.0.0.1:8002")), vec![5252]);
        assert_eq!(best_listeners(table, sa("127.0.0.1:9")), Vec::<u64>::new());
        // SO_REUSEPORT: two listeners on one address, both candidates.
        let twin = V4_LISTEN.replace(" 4242 ", " 4243 ");
        let table = [V4_LISTEN, twin.as_str(), V4_ANY];
        let mut both = best_listeners(table, sa("127.0.0.1:8000"));
        both.sort();
        assert_eq!(both, vec![4242, 4243]);
    }

    #[test]
    fn fd_links_children_and_names() {
        assert_eq!(socket_inode("socket:[12345]"), Some(12345));
        assert_eq!(socket_inode("pipe:[12345]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
        assert_eq!(parse_children("12 345 6789 \n"), vec![12, 345, 6789]);
        assert_eq!(parse_children(""), Vec::<i32>::new());
        assert_eq!(parse_comm("gunicorn\n"), "gunicorn");
    }

    #[test]
    fn our_own_listener_is_found_in_our_tree() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let inodes = listeners_for(addr).unwrap();
        assert_eq!(inodes.len(), 1, "{inodes:?}");
        let me = std::process::id() as i32;
        assert!(tree_holds(me, &inodes));
        assert_eq!(socket_holder(&inodes), Some(me));
        assert!(!tree_holds(me, &[u64::MAX]));
        assert!(comm(me).is_some_and(|c| !c.is_empty()));
        drop(listener);
        assert_eq!(listeners_for(addr).unwrap(), Vec::<u64>::new());
    }
}
