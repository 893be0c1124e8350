//! The controlling terminal, kept open to tell a hangup from a `kill -HUP`.
//!
//! SIGHUP has two meanings for a supervisor: the terminal (or SSH session)
//! it runs in went away, or an operator (`kill -HUP`, systemd's
//! `ExecReload=`) asks for a reload. The signal alone does not say which:
//! when a shell hangs up it forwards SIGHUP to its jobs with `kill()`, so
//! even the sender's si_code is not a reliable sign. The terminal itself
//! is: after a hangup, every descriptor open on it polls as POLLHUP. So
//! prodserver opens its controlling terminal once at start and, on
//! SIGHUP, asks that descriptor.

use std::os::fd::{AsFd, OwnedFd};

use nix::fcntl::{open, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;

/// An open descriptor on prodserver's controlling terminal.
#[derive(Debug)]
pub struct Terminal {
    fd: OwnedFd,
}

impl Terminal {
    /// The controlling terminal, or `None` without one (systemd, a
    /// container, `setsid`): then every SIGHUP is a reload request.
    pub fn controlling() -> Option<Terminal> {
        // O_NOCTTY: never acquire a terminal by opening one. O_NONBLOCK:
        // we never read, but a blocking open could wait on a modem line.
        let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = open("/dev/tty", flags, Mode::empty()).ok()?;
        Some(Terminal { fd })
    }

    /// True once the terminal has hung up (closed window, lost SSH
    /// session, `vhangup`).
    pub fn hung_up(&self) -> bool {
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::empty())];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => fds[0].revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
            }),
            // A terminal we can no longer even poll is gone.
            Err(_) => true,
        }
    }
}
