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
//! `systemd-notify` from elsewhere is ignored. [`SenderView`] makes the
//! same judgement per instance, with memory, at one /proc read a datagram.
//!
//! Where the sockets live, and who may connect:
//!
//! ```text
//! RUNTIME/            0700, or 0711 when a process runs as another `user`
//!   n/                0711: others may pass through, not list
//!     .lock           serializes creating and sweeping run folders
//!     RUNID/          0711, one per running prodserver (64 random bits)
//!       lock          flocked by that prodserver for as long as it runs
//!       SLOT.sock     0600, owned by the instance's user
//! ```
//!
//! Connecting to a unix socket needs write permission on the socket file
//! and search permission on every directory above it. A child that runs
//! as `user = "www-data"` cannot enter a 0700 directory of root's, so the
//! engine opens RUNTIME to 0711 ([`crate::os::share_runtime_dir`]) in that
//! case, and each socket is chowned to the user of its own instance with
//! mode 0600: that user (and root) can send to it, other users cannot even
//! connect.
//!
//! Several prodservers may share RUNTIME, some of them in containers or
//! other PID namespaces, where pids mean nothing to each other: so nothing
//! is named or judged by pid. Each run gets a folder named by a random id
//! ([`prepare_dir`]), and holds an flock on its `lock` file until it exits
//! (the kernel drops it even on SIGKILL). A folder is swept only when its
//! lock can be taken, that is when its prodserver is provably gone.
//!
//! A socket path must fit in `sun_path` (108 bytes with its NUL). When
//! RUNTIME is too deep for that, the socket is abstract
//! (`@prodserver.RUNID.SLOT.RANDOM`, no file, no permissions: any local
//! process may send, and only the credential check keeps strangers out,
//! which is systemd's own model for /run/systemd/notify).

mod message;
mod sender;

use std::fs::{self, File};
use std::io;
use std::ops::Deref;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::socket::{
    bind, recvmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, UnixAddr, UnixCredentials,
};
use tokio::io::Interest;

pub use message::{parse, Message, MAX_STATUS};
pub use sender::{sender_belongs, SenderView};

/// Largest datagram read. Longer ones are dropped whole, as systemd does:
/// a truncated `STATUS=` or `TASKS_DONE=` would be wrong, not just short.
pub const MAX_DATAGRAM: usize = 4096;

/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// Name of the sockets' directory under the runtime directory.
const SOCKET_DIR: &str = "n";

/// The guard file in [`SOCKET_DIR`].
const DIR_LOCK: &str = ".lock";

/// The lock file in each run folder.
const RUN_LOCK: &str = "lock";

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

/// This run's folder of notify sockets, `RUNTIME/n/RUNID/`, from
/// [`prepare_dir`]. Its lock is held, and the folder kept, while any clone
/// lives; the last one removes the folder.
#[derive(Debug, Clone)]
pub struct RunDir(Arc<RunDirInner>);

#[derive(Debug)]
struct RunDirInner {
    path: PathBuf,
    id: String,
    _lock: Flock<File>,
}

impl RunDir {
    /// The random id naming this run.
    pub fn id(&self) -> &str {
        &self.0.id
    }
}

impl Deref for RunDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0.path
    }
}

impl Drop for RunDirInner {
    fn drop(&mut self) {
        // Still locked here: no sweeper can be inside it at the same time.
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Creates `RUNTIME/n` (mode 0711, ours), removes the run folders of
/// prodservers that are gone, and creates this run's own folder, locked.
pub fn prepare_dir(runtime_dir: &Path) -> io::Result<RunDir> {
    let dir = runtime_dir.join(SOCKET_DIR);
    crate::os::ensure_own_dir(&dir, 0o711)?;
    // Creating a folder and locking it are two steps; a sweep in between
    // would see an unlocked folder and remove it. The guard makes the pair
    // atomic to sweepers, who take it too.
    let guard = crate::os::lock::open_lock_file(&dir.join(DIR_LOCK))?;
    let _guard = Flock::lock(guard, FlockArg::LockExclusive).map_err(|(_, e)| {
        io::Error::new(io::Error::from(e).kind(), format!("lock {dir:?}: {e}"))
    })?;
    sweep(&dir);
    loop {
        let id = format!("{:016x}", random_u64());
        let path = dir.join(&id);
        match fs::DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("mkdir {path:?}: {e}"))),
        }
        // mkdir applies the umask.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o711))?;
        let lock = crate::os::lock::open_lock_file(&path.join(RUN_LOCK))
            .and_then(|f| {
                Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| e.into())
            })
            .inspect_err(|_| {
                let _ = fs::remove_dir_all(&path);
            })?;
        return Ok(RunDir(Arc::new(RunDirInner {
            path,
            id,
            _lock: lock,
        })));
    }
}

/// What the sweep does with one run folder.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Its prodserver still holds the lock.
    Live,
    /// Nobody holds the lock, or there is none (a crash between mkdir and
    /// the lock, which the guard otherwise makes impossible to observe).
    Gone,
}

/// Judges the run folder `path` by its lock. On `Gone` the lock (if any) is
/// held by the returned file until the caller has removed the folder.
fn judge(path: &Path) -> (Verdict, Option<Flock<File>>) {
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path.join(RUN_LOCK))
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (Verdict::Gone, None),
        // Unreadable or odd: not provably gone, keep it.
        Err(_) => return (Verdict::Live, None),
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(held) => (Verdict::Gone, Some(held)),
        Err(_) => (Verdict::Live, None),
    }
}

/// Removes the run folders in `dir` whose prodserver is gone. Call with
/// the directory guard held (see [`prepare_dir`]). Anything else in `dir`
/// (files of other versions, strangers' names) is left alone.
fn sweep(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_run_id = name
            .to_str()
            .is_some_and(|n| n.len() == 16 && n.bytes().all(|b| b.is_ascii_hexdigit()));
        if !is_run_id || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        if let (Verdict::Gone, _held) = judge(&path) {
            let _ = fs::remove_dir_all(&path);
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
    /// The socket of instance `slot` in this run's folder: `RUNDIR/SLOT.sock`,
    /// owned by `owner` (uid, gid; `None`: by us) with mode 0600, or an
    /// abstract socket when that path would not fit in `sun_path`. Call
    /// inside the tokio runtime.
    pub fn for_instance(
        dir: &RunDir,
        slot: usize,
        owner: Option<(u32, u32)>,
    ) -> io::Result<NotifySocket> {
        let path = dir.join(format!("{slot}.sock"));
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            // The random tail keeps a local user who saw this run's id (in
            // /proc/net/unix) from squatting the names of later slots.
            return NotifySocket::bind_abstract(&format!(
                "prodserver.{}.{slot}.{:08x}",
                dir.id(),
                random_u64() as u32
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
    /// sender. Check the sender ([`SenderView::accepts`]) before acting.
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

/// Unpredictable, and distinct between processes whatever their pids:
/// std seeds `RandomState` from the OS's random source.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
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
        let name = format!("prodserver-test.{:x}", random_u64());
        let sock = NotifySocket::bind_abstract(&name).unwrap();
        assert_eq!(sock.env_value(), format!("@{name}"));
        assert_eq!(sock.path(), None);
        let s = UnixDatagram::unbound().unwrap();
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes());
        use std::os::linux::net::SocketAddrExt;
        s.send_to_addr(b"STOPPING=1", &addr.unwrap()).unwrap();
        assert_eq!(sock.recv().await.unwrap().0, vec![Message::Stopping]);
    }

    /// A run folder as another prodserver would leave it.
    fn fake_run(n: &Path, id: &str) -> PathBuf {
        let run = n.join(id);
        fs::create_dir_all(&run).unwrap();
        fs::write(run.join(RUN_LOCK), "").unwrap();
        let _ = UnixDatagram::bind(run.join("0.sock")).unwrap();
        run
    }

    fn hold(run: &Path) -> Flock<File> {
        let f = File::open(run.join(RUN_LOCK)).unwrap();
        Flock::lock(f, FlockArg::LockExclusiveNonblock).unwrap()
    }

    #[test]
    fn sweep_removes_only_unlocked_run_folders() {
        let runtime = tempfile::tempdir().unwrap();
        let n = runtime.path().join(SOCKET_DIR);
        let live = fake_run(&n, "00000000000000aa");
        let _held = hold(&live);
        let gone = fake_run(&n, "00000000000000bb");
        let no_lock = n.join("00000000000000cc");
        fs::create_dir(&no_lock).unwrap();
        // Not ours to judge: an old-style socket named by pid, other names.
        let old_style = n.join("1.0.sock");
        let _ = UnixDatagram::bind(&old_style).unwrap();
        let other = n.join("not-a-run");
        fs::create_dir(&other).unwrap();

        sweep(&n);
        assert!(live.join("0.sock").exists(), "a locked run is live");
        assert!(!gone.exists(), "an unlocked run is gone");
        assert!(!no_lock.exists(), "a run without a lock file is gone");
        assert!(old_style.exists() && other.exists());
    }

    #[test]
    fn a_run_held_by_another_process_survives_the_sweep() {
        let runtime = tempfile::tempdir().unwrap();
        let n = runtime.path().join(SOCKET_DIR);
        let live = fake_run(&n, "00000000000000dd");
        // flock(1) holds the lock in a child until its stdin closes.
        let mut child = std::process::Command::new("flock")
            .arg(live.join(RUN_LOCK))
            .args(["sh", "-c", "echo held; exec cat"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "held\n");
        sweep(&n);
        assert!(live.join("0.sock").exists(), "held by a live process");
        drop(child.stdin.take());
        child.wait().unwrap();
        sweep(&n);
        assert!(!live.exists(), "its holder has exited");
    }

    #[tokio::test]
    async fn instance_sockets_and_the_run_folder() {
        let runtime = tempfile::tempdir().unwrap();
        let n = runtime.path().join(SOCKET_DIR);
        let dead = fake_run(&n, "0000000000000dea");
        let run = prepare_dir(runtime.path()).unwrap();
        assert_eq!(fs::metadata(&n).unwrap().mode() & 0o7777, 0o711);
        assert_eq!(fs::metadata(&*run).unwrap().mode() & 0o7777, 0o711);
        assert!(!dead.exists(), "a dead prodserver's run is swept");
        assert_eq!(run.parent(), Some(n.as_path()));
        assert_eq!(run.file_name().unwrap().to_str(), Some(run.id()));

        // A second run in the same process (as a second prodserver whose
        // pid is the same) neither shares nor sweeps the first one's.
        let other = prepare_dir(runtime.path()).unwrap();
        assert_ne!(other.id(), run.id());

        let sock = NotifySocket::for_instance(&run, 3, None).unwrap();
        let expected = run.join("3.sock");
        assert_eq!(sock.path(), Some(expected.as_path()));
        let again = NotifySocket::for_instance(&other, 3, None).unwrap();
        assert!(expected.exists(), "the other run's slot 3 is elsewhere");
        drop(again);
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
        let path = run.to_path_buf();
        let clone = run.clone();
        drop(run);
        assert!(path.exists(), "a clone still holds it");
        drop(clone);
        assert!(!path.exists(), "the last one removes its folder");

        // Too deep for sun_path: abstract instead, named by the run.
        let deep = runtime.path().join("d".repeat(100));
        fs::create_dir(&deep).unwrap();
        let run = prepare_dir(&deep).unwrap();
        let sock = NotifySocket::for_instance(&run, 1, None).unwrap();
        let prefix = format!("@prodserver.{}.1.", run.id());
        assert!(
            sock.env_value().starts_with(&prefix),
            "{}",
            sock.env_value()
        );
    }
}
