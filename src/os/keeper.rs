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

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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

/// prodserver's handle on the keeper process. Cloning it shares the same
/// keeper (exec health probes register their groups too).
///
/// Writes never block: the keeper may be stopped (SIGSTOP to prodserver's
/// process group, a debugger), and a supervisor blocked in `send()` would
/// ignore SIGTERM. Records that do not fit are queued and sent by
/// [`Keeper::flush`]; the queue is bounded by the number of live groups.
///
/// Dropping the last handle without [`Keeper::shutdown`] closes the
/// socket, and the keeper then kills every group still registered: the
/// safe default.
#[derive(Debug, Clone)]
pub struct Keeper {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    /// `None` once shut down.
    sock: Option<OwnedFd>,
    pid: i32,
    /// What the keeper should hold: replayed to a new keeper.
    groups: BTreeSet<i32>,
    /// Records not sent yet, oldest first.
    pending: VecDeque<[u8; RECORD]>,
    gone: bool,
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

/// How the keeper process ended, as [`Keeper::check_exit`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperExit {
    pub pid: i32,
    /// `killed by SIGKILL`, `exited with code 1`.
    pub how: String,
}

/// Forks the keeper. Call it first thing, BEFORE the tokio runtime (or any
/// other thread) starts: fork copies only the calling thread, and the
/// keeper must not inherit locks held by others. Refused, forking nothing,
/// when another thread is already running. ([`Keeper::respawn`] is the
/// exception, and says why it is safe.)
pub fn start_keeper() -> io::Result<Keeper> {
    single_threaded(crate::os::proc::threads_of_self()?)?;
    start_keeper_among_threads()
}

/// Forks the keeper from a process that already runs threads (a test
/// harness embedding the engine). Sound for the reason given on
/// [`Keeper::respawn`]: the keeper only makes system calls after the fork.
/// prodserver itself uses [`start_keeper`], whose check keeps it honest.
pub fn start_keeper_among_threads() -> io::Result<Keeper> {
    let (sock, pid) = fork_keeper(256)?;
    Ok(Keeper {
        inner: Arc::new(Mutex::new(Inner {
            sock: Some(sock),
            pid,
            groups: BTreeSet::new(),
            pending: VecDeque::new(),
            gone: false,
        })),
    })
}

/// `Ok` for a process of `threads` threads only when that is one: the
/// count cannot grow behind our back, as no other thread exists to start
/// one.
fn single_threaded(threads: usize) -> io::Result<()> {
    if threads == 1 {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{threads} threads are running: the keeper must be forked before any thread starts"
    )))
}

/// A socket pair for prodserver and its keeper (see the module doc).
fn channel() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        // Children must never hold prodserver's end: the keeper would not
        // see EOF while any of them lives.
        SockFlag::SOCK_CLOEXEC,
    )?)
}

fn fork_keeper(capacity: usize) -> io::Result<(OwnedFd, i32)> {
    let (ours, theirs) = channel()?;
    // Allocated before fork, so the keeper does not allocate until it
    // tracks more groups than this.
    let groups: Vec<i32> = Vec::with_capacity(capacity);

    // SAFETY: the child only runs keeper_main, which never returns into the
    // caller's code and makes system calls only (its one allocation, a
    // push beyond the preallocated capacity, is safe after fork with the
    // C libraries we build against, which reset their allocator locks in
    // the child). At start the caller is single-threaded (start_keeper
    // checks); respawn says why it may fork from many threads.
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
            Ok((ours, child.as_raw()))
        }
    }
}

impl Keeper {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock; a poisoned one is still
        // consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn pid(&self) -> i32 {
        self.lock().pid
    }

    /// Asks the keeper to SIGKILL group `pgid` if prodserver dies. Register
    /// right after spawn; a group not yet registered is still covered by
    /// the leader's PR_SET_PDEATHSIG.
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
        let mut inner = self.lock();
        inner.groups.insert(pgid);
        inner.queue(OP_ADD, pgid);
        inner.flush()
    }

    /// Forgets group `pgid`. Call once the group is known to be empty (its
    /// leader reaped and the group killed): a stale entry could kill an
    /// unrelated group that reuses the number.
    pub fn unregister(&self, pgid: i32) -> Result<(), KeeperGone> {
        let mut inner = self.lock();
        inner.groups.remove(&pgid);
        inner.queue(OP_REMOVE, pgid);
        inner.flush()
    }

    /// Sends what is queued, without blocking. `Ok(true)`: all sent.
    pub fn flush(&self) -> Result<bool, KeeperGone> {
        let mut inner = self.lock();
        inner.flush()?;
        Ok(inner.pending.is_empty())
    }

    /// Records are waiting for a keeper that does not read (stopped).
    pub fn has_pending(&self) -> bool {
        let inner = self.lock();
        !inner.gone && !inner.pending.is_empty()
    }

    /// Groups the keeper currently guards (or would, once it reads).
    pub fn groups(&self) -> usize {
        self.lock().groups.len()
    }

    /// Reaps the keeper if it has exited (call on SIGCHLD): then it must be
    /// replaced, since nothing would kill the children after a SIGKILL of
    /// prodserver.
    pub fn check_exit(&self) -> Option<KeeperExit> {
        let mut inner = self.lock();
        let mut status = 0;
        // SAFETY: waitpid writes the status into our stack variable only;
        // the pid is our own child, which nobody else waits for.
        let r = unsafe { libc::waitpid(inner.pid, &mut status, libc::WNOHANG) };
        if r != inner.pid {
            return None;
        }
        inner.gone = true;
        let how = if libc::WIFSIGNALED(status) {
            format!(
                "killed by {}",
                crate::os::signal_name(libc::WTERMSIG(status))
            )
        } else {
            format!("exited with code {}", libc::WEXITSTATUS(status))
        };
        Some(KeeperExit {
            pid: inner.pid,
            how,
        })
    }

    /// Replaces a keeper that died, and hands the new one every group the
    /// old one guarded; returns the new pid.
    ///
    /// This forks a process that is multi-threaded by now (the log writer,
    /// the runtime). That is sound because the child runs keeper_main
    /// only, which makes system calls and never touches a lock another
    /// thread could have held at the fork.
    pub fn respawn(&self) -> io::Result<i32> {
        let mut inner = self.lock();
        if !inner.gone {
            // Still running (stopped, maybe): never run two.
            // SAFETY: kill(2) with integers; the pid is our own child.
            unsafe { libc::kill(inner.pid, libc::SIGKILL) };
            let _ = wait_for(inner.pid, 0);
        }
        let (sock, pid) = fork_keeper(256.max(inner.groups.len() * 2))?;
        inner.sock = Some(sock);
        inner.pid = pid;
        inner.gone = false;
        inner.pending.clear();
        let groups: Vec<i32> = inner.groups.iter().copied().collect();
        for pgid in groups {
            inner.queue(OP_ADD, pgid);
        }
        let _ = inner.flush();
        Ok(pid)
    }

    /// Clean exit: tells the keeper that every group is gone, closes the
    /// socket and waits for the keeper to exit. Call after all children
    /// have been stopped. A keeper that cannot be told (stopped, its
    /// socket full) is killed instead: there is nothing left to guard.
    pub fn shutdown(self) -> io::Result<()> {
        let mut inner = self.lock();
        inner.groups.clear();
        inner.pending.clear();
        inner.queue(OP_FORGET_ALL, 0);
        let told = matches!(inner.flush(), Ok(())) && inner.pending.is_empty();
        let pid = inner.pid;
        if !told && !inner.gone {
            // SAFETY: kill(2) with integers; the pid is our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // Close our end: the keeper reads EOF and exits.
        inner.sock = None;
        inner.gone = true;
        drop(inner);
        let result = wait_bounded(pid);
        KEEPER_PID.store(0, Ordering::Relaxed);
        result
    }
}

impl Inner {
    fn queue(&mut self, op: i32, pgid: i32) {
        let mut record = [0u8; RECORD];
        record[..4].copy_from_slice(&op.to_ne_bytes());
        record[4..].copy_from_slice(&pgid.to_ne_bytes());
        self.pending.push_back(record);
        // A keeper that reads nothing for long: restate the whole set
        // instead of the history, so the queue never outgrows the groups.
        if self.pending.len() > 2 * self.groups.len() + 64 {
            self.pending.clear();
            let mut forget = [0u8; RECORD];
            forget[..4].copy_from_slice(&OP_FORGET_ALL.to_ne_bytes());
            self.pending.push_back(forget);
            for &g in &self.groups {
                let mut add = [0u8; RECORD];
                add[..4].copy_from_slice(&OP_ADD.to_ne_bytes());
                add[4..].copy_from_slice(&g.to_ne_bytes());
                self.pending.push_back(add);
            }
        }
    }

    fn flush(&mut self) -> Result<(), KeeperGone> {
        if self.gone {
            return Err(KeeperGone {
                first_report: false,
                source: io::Error::from_raw_os_error(libc::EPIPE),
            });
        }
        while let Some(record) = self.pending.front() {
            let flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
            let Some(sock) = &self.sock else {
                self.gone = true;
                return Err(KeeperGone {
                    first_report: false,
                    source: io::Error::from_raw_os_error(libc::EPIPE),
                });
            };
            match send(sock.as_raw_fd(), record, flags) {
                Ok(_) => {
                    self.pending.pop_front();
                }
                Err(Errno::EINTR) => continue,
                // A keeper that does not read (stopped): try again later.
                Err(Errno::EAGAIN) => return Ok(()),
                Err(e) => {
                    // Its zombie is left for check_exit, which replaces it.
                    self.gone = true;
                    return Err(KeeperGone {
                        first_report: true,
                        source: e.into(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Waits for the keeper to exit, for a second at most, then SIGKILLs it:
/// prodserver's exit must never hang on a keeper someone stopped.
fn wait_bounded(pid: i32) -> io::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into our stack variable only.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Ok(());
        }
        if r < 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Ok(()),
                _ => return Err(err),
            }
        }
        if std::time::Instant::now() >= deadline {
            // SAFETY: kill(2) with integers; the pid is our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return wait_for(pid, 0);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
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
    if !groups.is_empty() {
        say_killing(groups.len());
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

/// `prodserver-keeper: prodserver is gone: killing N process groups` on
/// stderr, formatted without allocating (see fork_keeper).
fn say_killing(n: usize) {
    let mut buf = [0u8; 96];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        let end = (len + bytes.len()).min(buf.len());
        buf[len..end].copy_from_slice(&bytes[..end - len]);
        len = end;
    };
    put(b"prodserver-keeper: prodserver is gone: killing ");
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    put(&digits[i..]);
    put(if n == 1 {
        b" process group\n"
    } else {
        b" process groups\n"
    });
    // SAFETY: write(2) from a valid buffer of `len` bytes to stderr.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), len);
    }
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

/// Moves `fd` to 0 and closes every other descriptor but stderr (for its
/// one message): the keeper must not keep prodserver's log pipes,
/// listening sockets or lock files alive.
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
            let one = libc::syscall(
                libc::SYS_close_range,
                1 as libc::c_uint,
                1 as libc::c_uint,
                0,
            );
            let rest = libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                0,
            );
            one | rest
        } else {
            -1
        }
    };
    if r != 0 {
        for other in 0..crate::os::spawn::fd_scan_limit() {
            if other != kept && other != 2 {
                // SAFETY: as above; closing an fd that is not open is EBADF.
                unsafe {
                    libc::close(other);
                }
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_single_thread_may_start_the_keeper() {
        assert!(single_threaded(1).is_ok());
        for n in [0, 2, 40] {
            let err = single_threaded(n).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("{n} threads")),
                "{err}"
            );
        }
    }
}
