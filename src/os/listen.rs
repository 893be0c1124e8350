//! Listening sockets prodserver binds itself, so that every generation of
//! a web process inherits the one socket and the port never closes across
//! a restart.
//!
//! Each socket is created close-on-exec: a child receives it only through
//! [`crate::os::spawn::spawn_with`], which moves the sockets of that child
//! (and no other) to fd 3 onwards without the flag.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::sys::socket::{
    bind, connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
    SockaddrIn6, UnixAddr,
};

/// Where a held socket listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `host:port`; a host that is not an IP literal is resolved when the
    /// socket is bound (the first address found wins).
    Tcp { host: String, port: u16 },
    /// A unix socket path (absolute).
    Unix(PathBuf),
}

/// Options of a held socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenOptions {
    /// listen(2)'s queue; the kernel caps it at `net.core.somaxconn`.
    pub backlog: u32,
    /// SO_REUSEPORT: lets another program (an old prodserver during a
    /// host-level switch) bind the same port too.
    pub reuse_port: bool,
}

/// The socket family, which some servers must be told (daphne's
/// `fd:domain=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Inet,
    Inet6,
    Unix,
}

/// A bound, listening socket. Dropping it closes prodserver's copy and,
/// for a unix socket, removes the file if it is still the one we created
/// (a child keeps serving on its own copy of the descriptor until it
/// exits).
#[derive(Debug)]
pub struct Bound {
    fd: OwnedFd,
    family: Family,
    /// The path and inode of a unix socket we created.
    unix: Option<(PathBuf, u64, u64)>,
}

impl Bound {
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// The bound address, as the kernel reports it (the port of `:0`).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        let addr: nix::sys::socket::SockaddrStorage =
            nix::sys::socket::getsockname(self.fd.as_raw_fd()).ok()?;
        if let Some(v4) = addr.as_sockaddr_in() {
            return Some(SocketAddr::from((v4.ip(), v4.port())));
        }
        addr.as_sockaddr_in6()
            .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
    }
}

impl Drop for Bound {
    fn drop(&mut self) {
        if let Some((path, dev, ino)) = &self.unix {
            // Only our own file: another program may have replaced it.
            let ours = std::fs::symlink_metadata(path)
                .is_ok_and(|m| m.file_type().is_socket() && m.dev() == *dev && m.ino() == *ino);
            if ours {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Binds and listens on `address`.
///
/// TCP sockets get SO_REUSEADDR (a restart of prodserver must not wait for
/// TIME_WAIT connections of the previous one to expire). A unix socket
/// path left over by a previous run (a socket file nobody listens on) is
/// removed first; one somebody listens on, or any other kind of file, is
/// an error.
pub fn bind_listener(address: &Address, opts: ListenOptions) -> io::Result<Bound> {
    match address {
        Address::Tcp { host, port } => bind_tcp(host, *port, opts),
        Address::Unix(path) => bind_unix(path, opts),
    }
}

fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    let bare = host.trim().trim_start_matches('[').trim_end_matches(']');
    let bare = if bare.is_empty() { "0.0.0.0" } else { bare };
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (bare, port).to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{bare} resolves to no address"),
        )
    })
}

fn bind_tcp(host: &str, port: u16, opts: ListenOptions) -> io::Result<Bound> {
    let addr = resolve(host, port)?;
    let (family, af) = match addr {
        SocketAddr::V4(_) => (Family::Inet, AddressFamily::Inet),
        SocketAddr::V6(_) => (Family::Inet6, AddressFamily::Inet6),
    };
    let fd = socket(af, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if opts.reuse_port {
        setsockopt(&fd, sockopt::ReusePort, &true)?;
    }
    match addr {
        SocketAddr::V4(a) => bind(fd.as_raw_fd(), &SockaddrIn::from(a))?,
        SocketAddr::V6(a) => bind(fd.as_raw_fd(), &SockaddrIn6::from(a))?,
    }
    listen(&fd, opts.backlog)?;
    Ok(Bound {
        fd,
        family,
        unix: None,
    })
}

fn bind_unix(path: &Path, opts: ListenOptions) -> io::Result<Bound> {
    remove_stale(path)?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    bind(fd.as_raw_fd(), &addr)?;
    let meta = std::fs::symlink_metadata(path)?;
    listen(&fd, opts.backlog)?;
    Ok(Bound {
        fd,
        family: Family::Unix,
        unix: Some((path.to_path_buf(), meta.dev(), meta.ino())),
    })
}

/// Removes a socket file nobody listens on (left by a killed prodserver,
/// or by a server that bound it itself).
fn remove_stale(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    let probe = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    match connect(probe.as_raw_fd(), &UnixAddr::new(path)?) {
        Ok(()) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another program listens on {}", path.display()),
        )),
        Err(nix::errno::Errno::ECONNREFUSED) => std::fs::remove_file(path),
        Err(e) => Err(e.into()),
    }
}

fn listen(fd: &OwnedFd, backlog: u32) -> io::Result<()> {
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    // SAFETY: listen(2) on a descriptor we own, with a plain integer; it
    // touches no memory of ours. nix's wrapper refuses values above
    // SOMAXCONN, which the kernel itself caps at its current setting.
    let r = unsafe { libc::listen(fd.as_fd().as_raw_fd(), backlog) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: ListenOptions = ListenOptions {
        backlog: 16,
        reuse_port: false,
    };

    #[test]
    fn tcp_listens_and_is_close_on_exec() {
        let b = bind_listener(
            &Address::Tcp {
                host: "127.0.0.1".into(),
                port: 0,
            },
            OPTS,
        )
        .unwrap();
        let addr = b.local_addr().unwrap();
        assert!(std::net::TcpStream::connect(addr).is_ok());
        // SAFETY: F_GETFD on a descriptor the test owns.
        let flags = unsafe { libc::fcntl(b.raw_fd(), libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        assert_eq!(b.family(), Family::Inet);
    }

    #[test]
    fn ipv6_and_hostnames() {
        let v6 = bind_listener(
            &Address::Tcp {
                host: "[::1]".into(),
                port: 0,
            },
            OPTS,
        );
        if let Ok(v6) = v6 {
            assert_eq!(v6.family(), Family::Inet6);
        }
        let named = bind_listener(
            &Address::Tcp {
                host: "localhost".into(),
                port: 0,
            },
            OPTS,
        )
        .unwrap();
        assert!(named.local_addr().is_some());
    }

    #[test]
    fn unix_replaces_a_stale_file_but_not_a_live_one_and_removes_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.sock");
        // A stale socket: bound, then its listener closed.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let b = bind_listener(&Address::Unix(path.clone()), OPTS).unwrap();
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
        let again = bind_listener(&Address::Unix(path.clone()), OPTS).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AddrInUse, "{again}");
        drop(b);
        assert!(!path.exists());

        std::fs::write(&path, "x").unwrap();
        let err = bind_listener(&Address::Unix(path.clone()), OPTS).unwrap_err();
        assert!(err.to_string().contains("not a socket"), "{err}");
    }

    #[test]
    fn a_replaced_unix_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.sock");
        let b = bind_listener(&Address::Unix(path.clone()), OPTS).unwrap();
        std::fs::remove_file(&path).unwrap();
        let other = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(b);
        assert!(path.exists());
        drop(other);
    }
}
