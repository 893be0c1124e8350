//! Sending signals to one process or to a whole group. (Their names are
//! the crate's one table in `crate::signals`, re-exported here.)
//!
//! Stopping follows systemd's `KillMode=mixed` (see docs/process-facts.md, Celery): the
//! stop signal goes to the main pid only ([`send`]), and after the grace
//! period the whole group gets SIGKILL ([`kill_group`]).

use std::io;

use nix::unistd::getpgrp;

pub use crate::signals::{signal_by_name, signal_name};

/// Sends `sig` to one process, the main pid of an instance.
///
/// Refuses `pid <= 0`: `kill(0, …)` and `kill(-1, …)` would hit our own
/// group or every process we may signal, never what a caller means.
/// ESRCH (already gone) is returned as an error: the caller decides.
pub fn send(pid: i32, sig: i32) -> io::Result<()> {
    if pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("refusing to send {} to pid {pid}", signal_name(sig)),
        ));
    }
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends `sig` to every process of group `pgid`. A group that no longer
/// exists (ESRCH) is fine: that is what we wanted.
///
/// Refuses `pgid <= 1` (`kill(-1)` signals every process) and our own group
/// (it would signal prodserver itself: the group of a child spawned by
/// [`crate::os::spawn()`] is never ours).
pub fn signal_group(pgid: i32, sig: i32) -> io::Result<()> {
    if pgid <= 1 || pgid == getpgrp().as_raw() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "refusing to send {} to process group {pgid}",
                signal_name(sig)
            ),
        ));
    }
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    if unsafe { libc::kill(-pgid, sig) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(err)
    }
}

/// SIGKILL to every process of group `pgid`; ESRCH is `Ok`.
pub fn kill_group(pgid: i32) -> io::Result<()> {
    signal_group(pgid, libc::SIGKILL)
}

/// Ignores SIGPIPE process-wide, so that a write to a closed pipe or socket
/// (a child's log pipe, the keeper's socket, a control client that hung up)
/// returns EPIPE instead of killing prodserver. Children do not inherit
/// this: [`crate::os::spawn()`] resets every disposition before exec.
pub fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN runs no handler code, so no Rust code can
    // be interrupted in an unsafe state. sigaction(2) only fails for an
    // invalid signal number, and SIGPIPE is valid, so the result is moot.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}
