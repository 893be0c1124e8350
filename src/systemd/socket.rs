//! The thin I/O side: prodserver's own `NOTIFY_SOCKET` and watchdog.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::time::Duration;

/// How long a send may block: systemd reads its socket promptly, and the
/// loop that sends must not hang on a manager that stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_millis(200);

/// Where systemd listens for us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Path(std::path::PathBuf),
    /// `@name`: an abstract socket (the name without the `@`).
    Abstract(Vec<u8>),
}

/// Reads `NOTIFY_SOCKET`'s value: a path, or `@name` for an abstract
/// socket. `None` for an empty value or a relative path, which systemd
/// never hands out (and sd_notify ignores too).
pub fn target(value: &str) -> Option<Target> {
    if let Some(name) = value.strip_prefix('@') {
        return (!name.is_empty()).then(|| Target::Abstract(name.as_bytes().to_vec()));
    }
    Path::new(value)
        .is_absolute()
        .then(|| Target::Path(value.into()))
}

/// The watchdog period systemd asks of us, from `WATCHDOG_USEC` and
/// `WATCHDOG_PID` (as sd_watchdog_enabled reads them): `Ok(None)` when no
/// watchdog is set or it is meant for another process; `Err` for values
/// that cannot be read, which the caller reports.
pub fn watchdog(
    usec: Option<&str>,
    pid: Option<&str>,
    own_pid: u32,
) -> Result<Option<Duration>, String> {
    let Some(usec) = usec else {
        return Ok(None);
    };
    if let Some(pid) = pid {
        match pid.parse::<u32>() {
            Ok(p) if p == own_pid => {}
            Ok(_) => return Ok(None),
            Err(_) => return Err(format!("WATCHDOG_PID={pid:?} is not a pid")),
        }
    }
    match usec.parse::<u64>() {
        Ok(0) | Err(_) => Err(format!(
            "WATCHDOG_USEC={usec:?} is not a positive number of microseconds"
        )),
        Ok(n) => Ok(Some(Duration::from_micros(n))),
    }
}

/// An unbound datagram socket that sends to systemd's notify socket.
#[derive(Debug)]
pub struct ManagerSocket {
    sock: UnixDatagram,
    addr: SocketAddr,
    /// For messages: the value of NOTIFY_SOCKET.
    shown: String,
}

impl ManagerSocket {
    pub fn connect(target: &Target) -> io::Result<ManagerSocket> {
        let (addr, shown) = match target {
            Target::Path(p) => (SocketAddr::from_pathname(p)?, p.display().to_string()),
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                (
                    SocketAddr::from_abstract_name(name)?,
                    format!("@{}", String::from_utf8_lossy(name)),
                )
            }
        };
        let sock = UnixDatagram::unbound()?;
        sock.set_write_timeout(Some(SEND_TIMEOUT))?;
        Ok(ManagerSocket { sock, addr, shown })
    }

    /// Sends one datagram.
    pub fn send(&self, payload: &str) -> io::Result<()> {
        self.sock
            .send_to_addr(payload.as_bytes(), &self.addr)
            .map(|_| ())
            .map_err(|e| io::Error::new(e.kind(), format!("send to {}: {e}", self.shown)))
    }
}

/// CLOCK_MONOTONIC in microseconds, the clock of `MONOTONIC_USEC`.
pub fn monotonic_usec() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => (ts.tv_sec() as u64) * 1_000_000 + (ts.tv_nsec() as u64) / 1_000,
        // CLOCK_MONOTONIC cannot fail on Linux; 0 makes systemd ignore it.
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_socket_values() {
        assert_eq!(
            target("/run/systemd/notify"),
            Some(Target::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            target("@/org/freedesktop/systemd1/notify/123"),
            Some(Target::Abstract(
                b"/org/freedesktop/systemd1/notify/123".to_vec()
            ))
        );
        assert_eq!(target(""), None);
        assert_eq!(target("@"), None);
        assert_eq!(target("relative/notify"), None);
    }

    #[test]
    fn watchdog_values() {
        let s = |n| Ok(Some(Duration::from_micros(n)));
        assert_eq!(watchdog(None, None, 7), Ok(None));
        assert_eq!(watchdog(Some("3000000"), None, 7), s(3_000_000));
        assert_eq!(watchdog(Some("3000000"), Some("7"), 7), s(3_000_000));
        assert_eq!(
            watchdog(Some("3000000"), Some("8"), 7),
            Ok(None),
            "another's"
        );
        assert!(watchdog(Some("0"), None, 7).is_err());
        assert!(watchdog(Some("soon"), None, 7).is_err());
        assert!(watchdog(Some("1"), Some("me"), 7).is_err());
    }

    #[test]
    fn sends_to_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let sock = ManagerSocket::connect(&target(path.to_str().unwrap()).unwrap()).unwrap();
        sock.send("READY=1\nSTATUS=1/1 ready").unwrap();
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=1/1 ready");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("prodserver-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let sock = ManagerSocket::connect(&target(&format!("@{name}")).unwrap()).unwrap();
        sock.send("WATCHDOG=1").unwrap();
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");

        drop(server);
        let err = sock.send("WATCHDOG=1").unwrap_err().to_string();
        assert!(err.contains(&format!("@{name}")), "{err}");
        assert!(monotonic_usec() > 0);
    }
}
