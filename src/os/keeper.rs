//! The keeper: no child outlives prodserver, even after `kill -9`.
//!
//! PR_SET_PDEATHSIG only reaches direct children, and a SIGKILLed
//! supervisor runs no cleanup. So, before the runtime starts, prodserver
//! forks a tiny keeper process and keeps one end of a socket pair to it.
//! Every process group prodserver starts is registered with the keeper and
//! unregistered once gone. When the keeper reads end-of-file (prodserver
//! exited or died: the kernel closes its end either way), it SIGKILLs every
//! group still registered and exits.
//!
//! The channel is a `SOCK_SEQPACKET` socket pair rather than a pipe: each
//! record arrives whole, and `MSG_NOSIGNAL` turns a dead keeper into EPIPE
//! without raising SIGPIPE, whatever the process-wide disposition.

use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::errno::Errno;
use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use nix::unistd::{fork, ForkResult};

const OP_ADD: i32 = 1;
const OP_REMOVE: i32 = 2;
/// Sent by [`Keeper::shutdown`]: every group is gone, kill nothing.
const OP_FORGET_ALL: i32 = 3;
const RECORD: usize = 8;

/// The keeper's pid while one runs, so that [`crate::os::reap`] never
/// treats it as an orphan to reap or kill.
static KEEPER_PID: AtomicI32 = AtomicI32::new(0);

pub(crate) fn keeper_pid() -> Option<i32> {
    match KEEPER_PID.load(Ordering::Relaxed) {
        0 => None,
        pid => Some(pid),
    }
}

/// prodserver's handle on the keeper process.
///
/// Dropping it without [`Keeper::shutdown`] closes the socket, and the
/// keeper then kills every group still registered: the safe default.
#[derive(Debug)]
pub struct Keeper {
    sock: OwnedFd,
    pid: i32,
    gone: AtomicBool,
}

/// The keeper process is gone: groups are no longer protected against a
/// SIGKILL of prodserver (a normal stop still stops them). Not fatal.
#[derive(Debug)]
pub struct KeeperGone {
    /// True the first time this is reported, so the caller can log once.
    pub first_report: bool,
    pub source: io::Error,
}

impl std::fmt::Display for KeeperGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the keeper process is gone ({}): children would outlive a kill -9 of prodserver",
            self.source
        )
    }
}

impl std::error::Error for KeeperGone {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Forks the keeper. Call it first thing in `main`, BEFORE the tokio
/// runtime (or any other thread) starts: fork copies only the calling
/// thread, and the keeper must not inherit locks held by others.
pub fn start_keeper() -> io::Result<Keeper> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        // Children must never hold our end: the keeper would not see EOF
        // while any of them lives.
        SockFlag::SOCK_CLOEXEC,
    )?;
    // Allocated before fork, so the keeper does not allocate until it
    // tracks more groups than this.
    let groups: Vec<i32> = Vec::with_capacity(256);

    // SAFETY: the caller runs us single-threaded (documented above), so the
    // child is a complete copy; it only runs keeper_main, which never
    // returns into the caller's code.
    match unsafe { fork() }? {
        ForkResult::Child => {
            // The keeper must not hold prodserver's end, or it would never
            // read EOF.
            drop(ours);
            keeper_main(theirs.into_raw_fd(), groups)
        }
        ForkResult::Parent { child } => {
            drop(theirs);
            KEEPER_PID.store(child.as_raw(), Ordering::Relaxed);
            Ok(Keeper {
                sock: ours,
                pid: child.as_raw(),
                gone: AtomicBool::new(false),
            })
        }
    }
}

impl Keeper {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Asks the keeper to SIGKILL group `pgid` if prodserver dies. Register
    /// right after spawn; a group not yet registered is still covered by
    /// the leader's PR_SET_PDEATHSIG.
    ///
    /// Returns at once: the keeper drains its socket continuously, so this
    /// small write never waits in practice.
    pub fn register(&self, pgid: i32) -> Result<(), KeeperGone> {
        if pgid <= 1 {
            // kill(-1) would signal every process: never hand that out.
            return Err(KeeperGone {
                first_report: false,
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("refusing to register process group {pgid}"),
                ),
            });
        }
        self.send(OP_ADD, pgid)
    }

    /// Forgets group `pgid`. Call once the group is known to be empty (its
    /// leader reaped and the group killed): a stale entry could kill an
    /// unrelated group that reuses the number.
    pub fn unregister(&self, pgid: i32) -> Result<(), KeeperGone> {
        self.send(OP_REMOVE, pgid)
    }

    /// Clean exit: tells the keeper that every group is gone, closes the
    /// socket and waits for the keeper to exit. Call after all children
    /// have been stopped.
    pub fn shutdown(self) -> io::Result<()> {
        // If the keeper is already gone there is nothing to tell; its
        // zombie is reaped below either way.
        let _ = self.send(OP_FORGET_ALL, 0);
        let pid = self.pid;
        drop(self.sock);
        let result = wait_for(pid, 0);
        KEEPER_PID.store(0, Ordering::Relaxed);
        result
    }

    fn send(&self, op: i32, pgid: i32) -> Result<(), KeeperGone> {
        if self.gone.load(Ordering::Relaxed) {
            return Err(KeeperGone {
                first_report: false,
                source: io::Error::from_raw_os_error(libc::EPIPE),
            });
        }
        let mut record = [0u8; RECORD];
        record[..4].copy_from_slice(&op.to_ne_bytes());
        record[4..].copy_from_slice(&pgid.to_ne_bytes());
        loop {
            match send(self.sock.as_raw_fd(), &record, MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    let first_report = !self.gone.swap(true, Ordering::Relaxed);
                    // Reap the dead keeper now rather than leave a zombie
                    // until shutdown; a failure here changes nothing.
                    let _ = wait_for(self.pid, libc::WNOHANG);
                    return Err(KeeperGone {
                        first_report,
                        source: e.into(),
                    });
                }
            }
        }
    }
}

/// waitpid on the keeper's pid only (never -1: see reap.rs). ECHILD means
/// it was reaped already, which is fine.
fn wait_for(pid: i32, flags: i32) -> io::Result<()> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into our stack variable only.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ECHILD) => return Ok(()),
            _ => return Err(err),
        }
    }
}

/// Signals a terminal or a careless `kill` sends to the whole foreground
/// group: the keeper must outlive the supervisor, whose own handling of
/// them ends in a clean shutdown that tells us so.
const IGNORED: [i32; 7] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// The keeper process. Never returns; every exit is `_exit`, so nothing of
/// prodserver's (atexit handlers, buffered output) runs twice.
fn keeper_main(fd: RawFd, mut groups: Vec<i32>) -> ! {
    for sig in IGNORED {
        // SAFETY: SIG_IGN runs no code of ours; the signal numbers are valid.
        unsafe {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    let _ = nix::sys::prctl::set_name(c"prodserver-keep");
    // Do not pin the directory prodserver was started from (umount).
    // SAFETY: the argument is a valid NUL-terminated static string.
    unsafe {
        libc::chdir(c"/".as_ptr());
    }
    let fd = keep_only(fd);

    let mut record = [0u8; RECORD];
    loop {
        match recv(fd, &mut record, MsgFlags::empty()) {
            Ok(RECORD) => apply(&mut groups, &record),
            // Records are always whole (SOCK_SEQPACKET); ignore anything odd.
            Ok(n) if n > 0 => {}
            Err(Errno::EINTR) => {}
            // EOF (prodserver is gone) or an error we cannot recover from:
            // either way, nobody will tell us about these groups any more.
            _ => break,
        }
    }
    for &pgid in &groups {
        // SAFETY: kill(2) takes integers only; pgid > 1 is checked on add.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    // SAFETY: _exit ends the process without running Rust or libc cleanup
    // that belongs to prodserver.
    unsafe { libc::_exit(0) }
}

fn apply(groups: &mut Vec<i32>, record: &[u8; RECORD]) {
    let op = i32::from_ne_bytes([record[0], record[1], record[2], record[3]]);
    let pgid = i32::from_ne_bytes([record[4], record[5], record[6], record[7]]);
    match op {
        OP_ADD if pgid > 1 && !groups.contains(&pgid) => groups.push(pgid),
        OP_REMOVE => groups.retain(|&g| g != pgid),
        OP_FORGET_ALL => groups.clear(),
        _ => {}
    }
}

/// Moves `fd` to 0 and closes every other descriptor: the keeper must not
/// keep prodserver's log pipes, listening sockets or lock files alive.
fn keep_only(fd: RawFd) -> RawFd {
    let mut kept = fd;
    if fd != 0 {
        // SAFETY: dup2 on integer fds; fd is the open socket we own.
        if unsafe { libc::dup2(fd, 0) } == 0 {
            kept = 0;
        }
    }
    // SAFETY: close_range closes descriptors only; nothing in this process
    // uses them any more (the keeper's state is `kept` and local memory).
    let r = unsafe {
        if kept == 0 {
            libc::syscall(
                libc::SYS_close_range,
                1 as libc::c_uint,
                libc::c_uint::MAX,
                0,
            )
        } else {
            -1
        }
    };
    if r != 0 {
        for other in 0..crate::os::spawn::fd_scan_limit() {
            if other != kept {
                // SAFETY: as above; closing an fd that is not open is EBADF.
                unsafe {
                    libc::close(other);
                }
            }
        }
    }
    kept
}
