//! The child protocol: systemd's sd_notify, one socket per instance.
//!
//! Theory of operation. Each instance gets `NOTIFY_SOCKET` naming a
//! datagram socket of ours ([`NotifySocket::for_instance`]), so existing
//! sd_notify libraries work unchanged (`READY=1`, `STATUS=...`,
//! `WATCHDOG=1`, `STOPPING=1`, and our `TASKS_DONE=N`). The socket has
//! SO_PASSCRED set, so the kernel attaches the sender's real pid, uid and
//! gid to every datagram ([`NotifySocket::recv`]); a sender cannot forge
//! them without CAP_SYS_ADMIN. A message counts only if its sender belongs
//! to the instance ([`sender_belongs`]: same process group, or a
//! descendant), so one instance cannot speak for another, and a stray
//! `systemd-notify` from elsewhere is ignored.
//!
//! Where the sockets live, and who may connect:
//!
//! ```text
//! RUNTIME/            0700, or 0711 when a process runs as another `user`
//!   n/                0711: others may pass through, not list
//!     PID.SLOT.sock   0600, owned by the instance's user
//! ```
//!
//! Connecting to a unix socket needs write permission on the socket file
//! and search permission on every directory above it. A child that runs
//! as `user = "www-data"` cannot enter a 0700 directory of root's, so the
//! engine opens RUNTIME to 0711 ([`crate::os::share_runtime_dir`]) in that
//! case, and each socket is chowned to the user of its own instance with
//! mode 0600: that user (and root) can send to it, other users cannot even
//! connect. The names carry prodserver's pid, so two supervisors sharing
//! RUNTIME never take each other's sockets; sockets left by a prodserver
//! that was SIGKILLed are removed by [`prepare_dir`].
//!
//! A socket path must fit in `sun_path` (108 bytes with its NUL). When
//! RUNTIME is too deep for that, the socket is abstract (`@prodserver...`,
//! no file, no permissions: any local process may send, and only the
//! credential check keeps strangers out, which is systemd's own model for
//! /run/systemd/notify).

mod message;
mod sender;

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    bind, recvmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, UnixAddr, UnixCredentials,
};
use tokio::io::Interest;

pub use message::{parse, Message, MAX_STATUS};
pub use sender::sender_belongs;

/// Largest datagram read. Longer ones are dropped whole, as systemd does:
/// a truncated `STATUS=` or `TASKS_DONE=` would be wrong, not just short.
pub const MAX_DATAGRAM: usize = 4096;

/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// Name of the sockets' directory under the runtime directory.
const SOCKET_DIR: &str = "n";

/// Who sent a datagram, as the kernel saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sender {
    /// 0 if the kernel could not name it in our pid namespace.
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// Where a [`NotifySocket`] is bound.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    Path(PathBuf),
    /// The name after the leading NUL (shown as `@name`).
    Abstract(String),
}

/// A datagram socket receiving one instance's notifications.
#[derive(Debug)]
pub struct NotifySocket {
    sock: tokio::net::UnixDatagram,
    address: Address,
}

/// Creates `RUNTIME/n` (mode 0711, ours) and removes sockets left there by
/// prodservers that no longer run. Returns the directory, for
/// [`NotifySocket::for_instance`].
pub fn prepare_dir(runtime_dir: &Path) -> io::Result<PathBuf> {
    let dir = runtime_dir.join(SOCKET_DIR);
    crate::os::ensure_own_dir(&dir, 0o711)?;
    sweep(&dir);
    Ok(dir)
}

/// Removes `PID.*.sock` files whose PID is not a running process.
fn sweep(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(pid) = name
            .strip_suffix(".sock")
            .and_then(|n| n.split_once('.'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists()
            && entry.file_type().is_ok_and(|t| t.is_socket())
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The environment an instance needs to talk to `socket`: `NOTIFY_SOCKET`,
/// and `WATCHDOG_USEC` when a watchdog is configured, so that libraries
/// which ping on their own (libsystemd's `sd_watchdog_enabled`, and our
/// Celery integration) know the period. `WATCHDOG_PID` is left unset: the
/// pid is unknown before the fork, and unset means "any process".
pub fn child_env(socket: &NotifySocket, watchdog: Option<Duration>) -> Vec<(String, String)> {
    let mut env = vec![("NOTIFY_SOCKET".to_owned(), socket.env_value())];
    if let Some(wd) = watchdog {
        env.push(("WATCHDOG_USEC".to_owned(), wd.as_micros().to_string()));
    }
    env
}

impl NotifySocket {
    /// The socket of instance `slot` in `dir` (from [`prepare_dir`]):
    /// `dir/PID.SLOT.sock`, owned by `owner` (uid, gid; `None`: by us) with
    /// mode 0600, or an abstract socket when that path would not fit in
    /// `sun_path`. Call inside the tokio runtime.
    pub fn for_instance(
        dir: &Path,
        slot: usize,
        owner: Option<(u32, u32)>,
    ) -> io::Result<NotifySocket> {
        let pid = std::process::id();
        let path = dir.join(format!("{pid}.{slot}.sock"));
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            return NotifySocket::bind_abstract(&format!(
                "prodserver.{pid}.{slot}.{:08x}",
                random_u32()
            ));
        }
        let socket = NotifySocket::bind(&path)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot chown {path:?} to {uid}:{gid}: {e}"),
                )
            })?;
        }
        Ok(socket)
    }

    /// Binds a datagram socket at `path` (mode 0600), replacing a stale
    /// socket file there; any other kind of file is an error, not removed.
    /// Call inside the tokio runtime.
    pub fn bind(path: &Path) -> io::Result<NotifySocket> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => fs::remove_file(path)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{path:?} exists and is not a socket: remove it"),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let addr = UnixAddr::new(path).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("socket path {path:?}: {e}"),
            )
        })?;
        let fd = new_socket()?;
        bind(fd.as_raw_fd(), &addr).map_err(|e| {
            io::Error::new(io::Error::from(e).kind(), format!("bind {path:?}: {e}"))
        })?;
        let address = Address::Path(path.to_owned());
        // Construct before chmod, so Drop removes the file if chmod fails.
        let socket = NotifySocket::wrap(fd, address)?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        Ok(socket)
    }

    /// Binds an abstract socket (`NOTIFY_SOCKET=@name`). Call inside the
    /// tokio runtime.
    pub fn bind_abstract(name: &str) -> io::Result<NotifySocket> {
        let addr = UnixAddr::new_abstract(name.as_bytes())
            .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("@{name}: {e}")))?;
        let fd = new_socket()?;
        bind(fd.as_raw_fd(), &addr)
            .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("bind @{name}: {e}")))?;
        NotifySocket::wrap(fd, Address::Abstract(name.to_owned()))
    }

    fn wrap(fd: OwnedFd, address: Address) -> io::Result<NotifySocket> {
        let std_sock = std::os::unix::net::UnixDatagram::from(fd);
        let sock = tokio::net::UnixDatagram::from_std(std_sock)?;
        Ok(NotifySocket { sock, address })
    }

    /// The value for the child's `NOTIFY_SOCKET`: a path, or `@name`.
    pub fn env_value(&self) -> String {
        match &self.address {
            Address::Path(p) => p.to_string_lossy().into_owned(),
            Address::Abstract(name) => format!("@{name}"),
        }
    }

    /// The socket file, if it is not abstract.
    pub fn path(&self) -> Option<&Path> {
        match &self.address {
            Address::Path(p) => Some(p),
            Address::Abstract(_) => None,
        }
    }

    /// Waits for the next datagram that carries credentials and fits in
    /// [`MAX_DATAGRAM`]; returns its messages (possibly none) and its
    /// sender. Check the sender with [`sender_belongs`] before acting.
    /// Datagrams without credentials, too long, or carrying file
    /// descriptors (which the kernel then discards) are skipped.
    /// Cancel-safe: dropping the future loses no datagram.
    pub async fn recv(&self) -> io::Result<(Vec<Message>, Sender)> {
        loop {
            // Wait before allocating: a thousand quiet instances must not
            // each hold a 4 KiB buffer while nothing arrives.
            self.sock.readable().await?;
            let mut buf = vec![0u8; MAX_DATAGRAM];
            let fd = self.sock.as_raw_fd();
            match self
                .sock
                .try_io(Interest::READABLE, || recv_one(fd, &mut buf))
            {
                Ok(Some((len, sender))) => return Ok((parse(&buf[..len]), sender)),
                Ok(None) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        if let Address::Path(p) = &self.address {
            let _ = fs::remove_file(p);
        }
    }
}

fn new_socket() -> io::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    setsockopt(&fd, sockopt::PassCred, &true)?;
    Ok(fd)
}

/// One non-blocking recvmsg. `Ok(None)`: a datagram was consumed but is
/// unusable. EAGAIN comes back as WouldBlock, which re-arms `async_io`.
fn recv_one(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<(usize, Sender)>> {
    let mut iov = [io::IoSliceMut::new(buf)];
    // Room for the credentials only: descriptors sent along do not fit, so
    // the kernel never installs them in our table (no fd leak) and flags
    // MSG_CTRUNC, and we drop the datagram.
    let mut cmsg = nix::cmsg_space!(UnixCredentials);
    let msg = loop {
        match recvmsg::<()>(
            fd,
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            other => break other?,
        }
    };
    if msg
        .flags
        .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC)
    {
        return Ok(None);
    }
    let bytes = msg.bytes;
    let sender = msg.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|c| match c {
            ControlMessageOwned::ScmCredentials(cred) => Some(Sender {
                pid: cred.pid(),
                uid: cred.uid(),
                gid: cred.gid(),
            }),
            _ => None,
        })
    });
    Ok(sender.map(|s| (bytes, s)))
}

/// Unpredictable enough that another local user cannot squat the abstract
/// name before we bind it.
fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::net::UnixDatagram;

    fn send_to(path: &Path, data: &[u8]) {
        let s = UnixDatagram::unbound().unwrap();
        s.send_to(data, path).unwrap();
    }

    #[tokio::test]
    async fn receives_messages_with_our_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sock");
        let sock = NotifySocket::bind(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        send_to(&path, b"READY=1\nSTATUS=hi");
        let (msgs, sender) = sock.recv().await.unwrap();
        assert_eq!(msgs, vec![Message::Ready, Message::Status("hi".into())]);
        assert_eq!(sender.pid, std::process::id() as i32);
        assert_eq!(sender.uid, nix::unistd::getuid().as_raw());
        drop(sock);
        assert!(!path.exists(), "the socket file is removed on drop");
    }

    #[tokio::test]
    async fn oversized_datagrams_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sock");
        let sock = NotifySocket::bind(&path).unwrap();
        let mut big = b"STATUS=".to_vec();
        big.resize(MAX_DATAGRAM + 10, b'x');
        send_to(&path, &big);
        send_to(&path, b"WATCHDOG=1");
        let (msgs, _) = sock.recv().await.unwrap();
        assert_eq!(msgs, vec![Message::Watchdog]);
    }

    #[tokio::test]
    async fn stale_sockets_are_replaced_other_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sock");
        let old = UnixDatagram::bind(&path).unwrap();
        let sock = NotifySocket::bind(&path).unwrap();
        drop(old);
        send_to(&path, b"READY=1");
        assert_eq!(sock.recv().await.unwrap().0, vec![Message::Ready]);
        let file = dir.path().join("file");
        fs::write(&file, "keep me").unwrap();
        let err = NotifySocket::bind(&file).unwrap_err();
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert_eq!(fs::read_to_string(&file).unwrap(), "keep me");
    }

    #[tokio::test]
    async fn abstract_sockets() {
        let name = format!("prodserver-test.{}.{:x}", std::process::id(), random_u32());
        let sock = NotifySocket::bind_abstract(&name).unwrap();
        assert_eq!(sock.env_value(), format!("@{name}"));
        assert_eq!(sock.path(), None);
        let s = UnixDatagram::unbound().unwrap();
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes());
        use std::os::linux::net::SocketAddrExt;
        s.send_to_addr(b"STOPPING=1", &addr.unwrap()).unwrap();
        assert_eq!(sock.recv().await.unwrap().0, vec![Message::Stopping]);
    }

    #[tokio::test]
    async fn instance_sockets_and_the_directory() {
        let runtime = tempfile::tempdir().unwrap();
        // A socket left by a prodserver that is gone: pids never exceed
        // 2^22 (PID_MAX_LIMIT), so 999999999 is dead.
        let dir = runtime.path().join(SOCKET_DIR);
        fs::create_dir(&dir).unwrap();
        let dead = dir.join("999999999.0.sock");
        let _ = UnixDatagram::bind(&dead).unwrap();
        let mine_other = dir.join(format!("{}.77.sock", std::process::id()));
        let _ = UnixDatagram::bind(&mine_other).unwrap();
        let dir = prepare_dir(runtime.path()).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o7777, 0o711);
        assert!(!dead.exists(), "a dead prodserver's socket is swept");
        assert!(mine_other.exists(), "a live prodserver's socket stays");

        let sock = NotifySocket::for_instance(&dir, 3, None).unwrap();
        let expected = dir.join(format!("{}.3.sock", std::process::id()));
        assert_eq!(sock.path(), Some(expected.as_path()));
        let env = child_env(&sock, Some(Duration::from_secs(30)));
        assert_eq!(
            env,
            vec![
                (
                    "NOTIFY_SOCKET".to_owned(),
                    expected.to_string_lossy().into_owned()
                ),
                ("WATCHDOG_USEC".to_owned(), "30000000".to_owned()),
            ]
        );
        assert!(expected.to_string_lossy().len() <= MAX_SOCKET_PATH);

        // Too deep for sun_path: abstract instead.
        let deep = runtime.path().join("d".repeat(120));
        fs::create_dir(&deep).unwrap();
        let sock = NotifySocket::for_instance(&deep, 1, None).unwrap();
        assert!(
            sock.env_value().starts_with("@prodserver."),
            "{}",
            sock.env_value()
        );
    }
}
