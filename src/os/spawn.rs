//! Starting one child: its own process group, a clean slate of signals and
//! file descriptors, exactly the environment asked for, and an optional
//! privilege drop.
//!
//! Everything that can fail for a reason worth a good message (unknown user,
//! missing program, bad working directory) is decided in the parent, where
//! we may allocate and look things up. The code between fork and exec
//! (`ChildSetup::run`) only makes async-signal-safe system calls on data
//! prepared beforehand: prodserver may have other threads (tokio's blocking
//! pool), and after fork only the forking thread exists, so a lock another
//! thread held (malloc's, stdout's) would stay locked forever.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
use nix::unistd::{getgrouplist, getppid, setgid, setgroups, setpgid, setuid, Gid, Pid, Uid};

/// Who a child runs as, resolved by [`resolve_credentials`] before spawning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, set with setgroups(2). Empty means "none".
    pub groups: Vec<u32>,
}

/// Everything needed to start one instance.
#[derive(Debug, Clone)]
pub struct SpawnRequest {
    /// Program and arguments. A program without `/` is looked up on the
    /// `PATH` found in `env` (or `/bin:/usr/bin` when `env` has none).
    pub argv: Vec<String>,
    /// The COMPLETE environment of the child: nothing is inherited.
    /// Build it from [`scrub_inherited_env`] plus the configured variables.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub creds: Option<Credentials>,
}

/// A started child: stdout and stderr are pipes to read, stdin is
/// `/dev/null`. Its process group id equals `pid`.
#[derive(Debug)]
pub struct Spawned {
    pub child: tokio::process::Child,
    pub pid: i32,
}

/// Why a child could not be started.
#[derive(Debug)]
pub enum SpawnError {
    /// The program cannot run as configured (missing, not executable, bad
    /// working directory, bad interpreter line…). Permanent: report it once
    /// and do not respawn; trying again would only produce the same error.
    CannotExecute { program: String, reason: String },
    /// A failure that may go away (out of processes, memory or file
    /// descriptors): retry with backoff.
    Failed { program: String, source: io::Error },
}

impl SpawnError {
    /// True when retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, SpawnError::CannotExecute { .. })
    }

    pub fn program(&self) -> &str {
        match self {
            SpawnError::CannotExecute { program, .. } | SpawnError::Failed { program, .. } => {
                program
            }
        }
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::CannotExecute { program, reason } => {
                write!(f, "cannot execute {program:?}: {reason}")
            }
            SpawnError::Failed { program, source } => {
                write!(f, "cannot start {program:?}: {source}")
            }
        }
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpawnError::CannotExecute { .. } => None,
            SpawnError::Failed { source, .. } => Some(source),
        }
    }
}

/// Resolves `user` / `group` (names, or numeric ids) into [`Credentials`].
///
/// - only `user`: the user's primary group plus its supplementary groups
///   (what a login gets, via getgrouplist(3));
/// - `user` and `group`: that group as primary, plus the user's groups;
/// - only `group`: keep our uid (root), switch group, no supplementary ones.
///
/// Changing identity needs root; the error says so rather than letting every
/// spawn fail with EPERM.
pub fn resolve_credentials(
    user: Option<&str>,
    group: Option<&str>,
) -> Result<Option<Credentials>, String> {
    if user.is_none() && group.is_none() {
        return Ok(None);
    }
    let euid = Uid::effective();
    if !euid.is_root() {
        return Err(format!(
            "user/group need prodserver to run as root (it runs as uid {euid}); \
             remove \"user\"/\"group\" or start prodserver as root"
        ));
    }
    let group = group.map(lookup_group).transpose()?;
    let Some(user) = user else {
        let gid = group.map_or(0, |g| g.as_raw());
        return Ok(Some(Credentials {
            uid: euid.as_raw(),
            gid,
            groups: vec![gid],
        }));
    };
    let found = lookup_user(user)?;
    match found {
        FoundUser::Named { name, uid, gid } => {
            let gid = group.unwrap_or(gid);
            let cname = std::ffi::CString::new(name.as_str())
                .map_err(|_| format!("user {name:?} contains a NUL byte"))?;
            let groups = getgrouplist(&cname, gid)
                .map_err(|e| format!("cannot list the groups of user {name:?}: {e}"))?;
            Ok(Some(Credentials {
                uid: uid.as_raw(),
                gid: gid.as_raw(),
                groups: groups.into_iter().map(|g| g.as_raw()).collect(),
            }))
        }
        FoundUser::Numeric(uid) => match group {
            Some(gid) => Ok(Some(Credentials {
                uid,
                gid: gid.as_raw(),
                groups: vec![gid.as_raw()],
            })),
            None => Err(format!(
                "uid {uid} has no entry in the user database, so its primary group is \
                 unknown: set \"group\" as well"
            )),
        },
    }
}

enum FoundUser {
    Named {
        name: String,
        uid: Uid,
        gid: Gid,
    },
    /// A numeric uid without a passwd entry (common in containers).
    Numeric(u32),
}

fn lookup_user(user: &str) -> Result<FoundUser, String> {
    if user.is_empty() {
        return Err("\"user\" is empty: name a user, or remove the key".to_owned());
    }
    let by_name = nix::unistd::User::from_name(user)
        .map_err(|e| format!("cannot look up user {user:?}: {e}"))?;
    if let Some(u) = by_name {
        return Ok(FoundUser::Named {
            name: u.name,
            uid: u.uid,
            gid: u.gid,
        });
    }
    let Ok(uid) = user.parse::<u32>() else {
        return Err(format!(
            "user {user:?} does not exist: create it (e.g. `useradd --system {user}`) \
             or fix \"user\""
        ));
    };
    match nix::unistd::User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(u)) => Ok(FoundUser::Named {
            name: u.name,
            uid: u.uid,
            gid: u.gid,
        }),
        Ok(None) => Ok(FoundUser::Numeric(uid)),
        Err(e) => Err(format!("cannot look up uid {uid}: {e}")),
    }
}

fn lookup_group(group: &str) -> Result<Gid, String> {
    if group.is_empty() {
        return Err("\"group\" is empty: name a group, or remove the key".to_owned());
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid),
        // A numeric gid needs no entry in /etc/group to be valid.
        Ok(None) => group.parse::<u32>().map(Gid::from_raw).map_err(|_| {
            format!(
                "group {group:?} does not exist: create it (e.g. `groupadd --system {group}`) \
                 or fix \"group\""
            )
        }),
        Err(e) => Err(format!("cannot look up group {group:?}: {e}")),
    }
}

/// True for the variables systemd hands to prodserver itself, which must
/// not reach children: a child would answer systemd's watchdog or claim
/// sockets meant for us (docs/process-facts.md, "systemd").
pub fn is_systemd_handoff_var(key: &str) -> bool {
    key == "NOTIFY_SOCKET" || key.starts_with("WATCHDOG_") || key.starts_with("LISTEN_")
}

/// Our inherited environment minus [`is_systemd_handoff_var`] keys, in the
/// original order: the base of every child's environment.
/// `scrub_inherited_env(std::env::vars())`.
pub fn scrub_inherited_env(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    vars.into_iter()
        .filter(|(k, _)| !is_systemd_handoff_var(k))
        .collect()
}

/// Starts `req` (see the module doc for the child's starting state).
///
/// Must be called inside a tokio runtime, from the thread that lives as
/// long as the supervisor: PR_SET_PDEATHSIG fires when the *thread* that
/// forked the child exits, so never spawn from `spawn_blocking`.
///
/// When this returns `Ok`, the child has already passed exec (std waits for
/// its close-on-exec error pipe), so its process group exists and may be
/// registered with the keeper or signalled right away.
pub fn spawn(req: &SpawnRequest) -> Result<Spawned, SpawnError> {
    spawn_with(req, &PassFds::default())
}

/// Listening sockets handed to one child, in the order it receives them
/// (fd 3, 4, ...). The descriptors stay owned by the caller and must stay
/// open until `spawn_with` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassFds {
    pub fds: Vec<RawFd>,
    /// Also set systemd's socket activation variables: `LISTEN_FDS=n` and
    /// `LISTEN_PID` equal to the child's own pid.
    pub listen_env: bool,
}

/// At most this many sockets are handed to one child; the low descriptors
/// they land on are kept occupied in prodserver (see [`reserve_low_fds`]).
pub const MAX_PASSED_FDS: usize = 16;

/// [`spawn`], handing `pass.fds` to the child as fds 3, 4, ...
///
/// `LISTEN_PID` must be the child's pid, known only after fork, while the
/// environment is otherwise built before it (no allocation after fork).
/// So the parent builds the whole envp itself, with a `LISTEN_PID=` entry
/// of room enough for any pid; the child writes its getpid() digits into
/// its own copy of that buffer and points `environ` at the array. std's
/// Command is given no environment of its own in that case (it would
/// otherwise install its own envp after our pre_exec hook), so its execvp
/// runs with ours, PATH search included.
pub fn spawn_with(req: &SpawnRequest, pass: &PassFds) -> Result<Spawned, SpawnError> {
    let program = match req.argv.first() {
        Some(p) if !p.is_empty() => p.clone(),
        _ => {
            return Err(SpawnError::CannotExecute {
                program: String::new(),
                reason: "the command is empty".to_owned(),
            })
        }
    };
    if let Some(reason) = invalid_request(req) {
        return Err(SpawnError::CannotExecute { program, reason });
    }

    if pass.fds.len() > MAX_PASSED_FDS {
        return Err(SpawnError::CannotExecute {
            program,
            reason: format!(
                "{} sockets to pass, at most {MAX_PASSED_FDS} are supported",
                pass.fds.len()
            ),
        });
    }
    let envp = if pass.listen_env {
        Some(PreparedEnv::new(&req.env, pass.fds.len()))
    } else {
        None
    };
    if !pass.fds.is_empty() {
        reserve_low_fds(pass.fds.len());
    }

    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&req.argv[1..]);
    if envp.is_none() {
        cmd.env_clear()
            .envs(req.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    cmd.current_dir(&req.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let setup = ChildSetup {
        parent: Pid::this(),
        creds: req.creds.as_ref().map(|c| PreparedCreds {
            uid: Uid::from_raw(c.uid),
            gid: Gid::from_raw(c.gid),
            groups: c.groups.iter().map(|&g| Gid::from_raw(g)).collect(),
        }),
        passed: pass.fds.clone(),
        moved: vec![-1; pass.fds.len()],
        envp,
    };
    let mut setup = setup;
    // SAFETY: the closure runs in the forked child before exec. It only
    // makes async-signal-safe system calls (setpgid, sigprocmask,
    // sigaction, close_range/fcntl/getrlimit, setgroups/setgid/setuid,
    // prctl, getppid, dup2, getpid) and plain stores on data allocated
    // before the fork, and never allocates, locks or unwinds: see
    // ChildSetup::run.
    unsafe {
        cmd.pre_exec(move || setup.run());
    }

    match cmd.spawn() {
        Ok(child) => match child.id().and_then(|id| i32::try_from(id).ok()) {
            Some(pid) => Ok(Spawned { child, pid }),
            // tokio only forgets the pid once the child has been waited for,
            // which cannot have happened yet.
            None => Err(SpawnError::Failed {
                program,
                source: io::Error::other("the child's pid is unknown"),
            }),
        },
        Err(err) => Err(classify(req, program, err)),
    }
}

/// Checks std would otherwise report as a bare "nul byte found".
fn invalid_request(req: &SpawnRequest) -> Option<String> {
    if let Some(arg) = req.argv.iter().find(|a| a.contains('\0')) {
        return Some(format!("argument {arg:?} contains a NUL byte"));
    }
    for (k, v) in &req.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Some(format!("invalid environment variable name {k:?}"));
        }
        if v.contains('\0') {
            return Some(format!("environment variable {k} contains a NUL byte"));
        }
    }
    None
}

struct PreparedCreds {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
}

/// What the child does between fork and exec. Everything here is prepared
/// in the parent; `run` must stay async-signal-safe (no allocation, no
/// locks, no panics).
struct ChildSetup {
    parent: Pid,
    creds: Option<PreparedCreds>,
    /// Sockets for fds 3, 4, ... (see [`spawn_with`]).
    passed: Vec<RawFd>,
    /// Scratch space for their temporary copies, sized before the fork.
    moved: Vec<RawFd>,
    envp: Option<PreparedEnv>,
}

/// A child's environment built in the parent, with a `LISTEN_PID=` entry
/// the child completes (see [`spawn_with`]).
struct PreparedEnv {
    /// `KEY=VALUE\0` strings; never resized once built, so the pointers
    /// below stay valid (in the child's copy of the heap too).
    entries: Vec<Vec<u8>>,
    /// Index in `entries` of the `LISTEN_PID=` entry.
    listen_pid: usize,
    /// Pointers to `entries`, null-terminated: the child's `environ`.
    pointers: Vec<*const libc::c_char>,
}

const LISTEN_PID_PREFIX: &[u8] = b"LISTEN_PID=";
/// Room for any pid (at most 10 digits) and the terminating NUL.
const PID_ROOM: usize = 11;

impl PreparedEnv {
    fn new(env: &[(String, String)], count: usize) -> PreparedEnv {
        let mut entries: Vec<Vec<u8>> = env
            .iter()
            // The socket activation variables are ours to set.
            .filter(|(k, _)| !k.starts_with("LISTEN_"))
            .map(|(k, v)| format!("{k}={v}\0").into_bytes())
            .collect();
        entries.push(format!("LISTEN_FDS={count}\0").into_bytes());
        let mut slot = LISTEN_PID_PREFIX.to_vec();
        slot.resize(LISTEN_PID_PREFIX.len() + PID_ROOM, 0);
        entries.push(slot);
        let listen_pid = entries.len() - 1;
        let mut pointers: Vec<*const libc::c_char> =
            entries.iter().map(|e| e.as_ptr().cast()).collect();
        pointers.push(std::ptr::null());
        PreparedEnv {
            entries,
            listen_pid,
            pointers,
        }
    }

    /// Writes `pid` into the `LISTEN_PID=` entry, in place, without
    /// allocating.
    fn set_pid(&mut self, pid: i32) {
        let slot = &mut self.entries[self.listen_pid][LISTEN_PID_PREFIX.len()..];
        write_decimal(slot, pid.unsigned_abs());
    }
}

/// Writes `n` in decimal at the start of `out`, then a NUL. `out` has room
/// for any u32 and its NUL (11 bytes). Async-signal-safe.
fn write_decimal(out: &mut [u8], mut n: u32) {
    let mut digits = [0u8; 10];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for (slot, digit) in out.iter_mut().zip(digits[..len].iter().rev()) {
        *slot = *digit;
    }
    out[len] = 0;
}

// SAFETY: the raw pointers point into `entries`, owned by the same value
// and never resized; they are only dereferenced by execve in the child.
unsafe impl Send for PreparedEnv {}
// SAFETY: as above; nothing mutates through a shared reference.
unsafe impl Sync for PreparedEnv {}

extern "C" {
    static mut environ: *const *const libc::c_char;
}

/// Keeps fds 3..3+n open in prodserver, with /dev/null where nothing else
/// is, so that std's exec-error pipe (created just before fork, at the
/// lowest free numbers) never sits where a child's sockets go. The
/// placeholders are kept for the life of the process: a handful of
/// descriptors, opened once.
pub fn reserve_low_fds(n: usize) {
    let top = 3 + n.min(MAX_PASSED_FDS) as RawFd;
    loop {
        // SAFETY: open(2) with a static NUL-terminated path; the returned
        // descriptor is either kept for good (a placeholder) or closed.
        let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return;
        }
        if fd >= top {
            // SAFETY: closing the descriptor opened just above.
            unsafe { libc::close(fd) };
            return;
        }
    }
}

impl ChildSetup {
    fn run(&mut self) -> io::Result<()> {
        // Own process group, so that a stop can signal the child and all its
        // descendants at once, and a terminal's Ctrl-C (sent to the
        // foreground group) reaches prodserver only, which then stops
        // children in order.
        setpgid(Pid::from_raw(0), Pid::from_raw(0))?;

        reset_signal_dispositions();
        // An inherited blocked mask leaves a child that cannot be stopped.
        sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;

        mark_fds_cloexec();
        self.place_passed_fds()?;
        crate::os::limits::restore_for_child();

        if let Some(c) = &self.creds {
            // setgroups and setgid need privileges that setuid gives up, so
            // this order is the only one that works; skipping setgroups
            // would leave the child in root's groups.
            setgroups(&c.groups)?;
            setgid(c.gid)?;
            setuid(c.uid)?;
        }

        // After the privilege drop: the kernel clears the parent-death
        // signal whenever credentials change (commit_creds).
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
        // If prodserver died before the line above, nobody would ever send
        // the signal: bail out instead of running unsupervised.
        if getppid() != self.parent {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        if let Some(envp) = &mut self.envp {
            envp.set_pid(nix::unistd::getpid().as_raw());
            // SAFETY: this process has a single thread (we are between
            // fork and exec), so nothing reads `environ` concurrently; the
            // array lives in `self`, which outlives exec (std runs execvp
            // right after this hook returns).
            unsafe { environ = envp.pointers.as_ptr() };
        }
        Ok(())
    }

    /// Moves the passed sockets to fds 3, 4, ... without close-on-exec.
    /// They are first copied above the target range, so that a socket
    /// already sitting at a target number is not closed by another dup2.
    fn place_passed_fds(&mut self) -> io::Result<()> {
        let n = self.passed.len() as RawFd;
        for (i, &fd) in self.passed.iter().enumerate() {
            // A write-only pipe in the target range can only be std's
            // exec-error pipe (every other pipe of ours is a read end):
            // clobbering it would hide an exec failure, so give up on this
            // attempt (a transient failure, retried) rather than do so.
            let target = 3 + i as RawFd;
            if is_write_only_pipe(target) {
                return Err(io::Error::from_raw_os_error(libc::EBUSY));
            }
            // SAFETY: fcntl(F_DUPFD_CLOEXEC) on an integer fd touches no
            // memory; the copy lands at 3+n or above.
            let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3 + n) };
            if copy < 0 {
                return Err(io::Error::last_os_error());
            }
            self.moved[i] = copy;
        }
        for (i, &copy) in self.moved.iter().enumerate() {
            // SAFETY: dup2 on integer fds; the new descriptor has no
            // close-on-exec flag, which is what hands it to the program.
            if unsafe { libc::dup2(copy, 3 + i as RawFd) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

fn is_write_only_pipe(fd: RawFd) -> bool {
    // SAFETY: fstat writes into the zeroed stat on our stack; fcntl takes
    // integers. Both are async-signal-safe.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFIFO {
            return false;
        }
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && flags & libc::O_ACCMODE == libc::O_WRONLY
    }
}

/// Highest signal number on Linux (`_NSIG - 1`).
const MAX_SIGNAL: i32 = 64;

/// SIG_IGN survives exec (a handler does not), so a signal prodserver or its
/// own parent ignores would be ignored by the child too: nohup'd shells and
/// some CI runners ignore SIGINT/SIGHUP/SIGPIPE.
///
/// This uses the raw rt_sigaction system call because glibc's wrappers
/// refuse signals 32 and 33 (reserved for its threads) with EINVAL, yet an
/// ignored 32 does get inherited: we found one in our own test runs.
fn reset_signal_dispositions() {
    // An all-zero kernel sigaction is SIG_DFL (0), no flags, empty mask, on
    // every architecture; oversized so it covers the largest layout.
    let default_action = [0u64; 8];
    for sig in 1..=MAX_SIGNAL {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction reads the zeroed buffer above, which outlives
        // the call, and writes nothing (old action pointer is null).
        // Installing SIG_DFL runs no code of ours; an error changes nothing.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                default_action.as_ptr(),
                std::ptr::null_mut::<u64>(),
                SIGSET_BYTES,
            );
        }
    }
}

/// The kernel's sigset size (`_NSIG / 8`), which rt_sigaction requires.
const SIGSET_BYTES: libc::size_t = 8;

/// Marks every fd >= 3 close-on-exec rather than closing it: std's own
/// error pipe (how an exec failure reaches the parent) is among them and
/// must stay open until exec succeeds.
fn mark_fds_cloexec() {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on our
    // own descriptor table; its arguments are plain integers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return;
    }
    // Kernels before 5.11 lack CLOSE_RANGE_CLOEXEC: walk the table.
    for fd in 3..fd_scan_limit() {
        // SAFETY: fcntl(F_GETFD/F_SETFD) on an integer fd touches no memory;
        // on a closed fd it just fails with EBADF.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// The RLIMIT_NOFILE soft limit capped at 65536 (a limit of a million
/// would make the fallback loop slow for nothing). Async-signal-safe.
pub(crate) fn fd_scan_limit() -> i32 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit we pass, which lives on our
    // stack for the duration of the call.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    if ok {
        // Capped, so the conversion cannot fail.
        i32::try_from(lim.rlim_cur.min(65536)).unwrap_or(65536)
    } else {
        1024
    }
}

/// Turns std's spawn error into a permanent or transient [`SpawnError`]
/// with a message that says what to fix. The child reports one errno, with
/// no hint of which step failed, so we look at the situation from here.
fn classify(req: &SpawnRequest, program: String, err: io::Error) -> SpawnError {
    let Some(code) = err.raw_os_error() else {
        return if err.kind() == io::ErrorKind::InvalidInput {
            SpawnError::CannotExecute {
                program,
                reason: err.to_string(),
            }
        } else {
            SpawnError::Failed {
                program,
                source: err,
            }
        };
    };
    let permanent = matches!(
        code,
        libc::ENOENT
            | libc::EACCES
            | libc::ENOEXEC
            | libc::ENOTDIR
            | libc::ELOOP
            | libc::ENAMETOOLONG
            | libc::EISDIR
            | libc::E2BIG
            | libc::EPERM
            | libc::EINVAL
    );
    if !permanent {
        return SpawnError::Failed {
            program,
            source: err,
        };
    }
    // std changes directory in the child and reports its failure through
    // the same channel as exec's: check the directory first, or a missing
    // directory would read as a missing program.
    if let Some(reason) = cwd_problem(&req.cwd) {
        return SpawnError::CannotExecute { program, reason };
    }
    let reason = match code {
        libc::ENOENT => missing_reason(req, &program),
        libc::EACCES => match locate(req, &program) {
            Some(found) => format!(
                "permission denied: {found:?} is not executable{}",
                as_whom(req)
            ),
            None => format!("permission denied{}", as_whom(req)),
        },
        libc::ENOEXEC => "not an executable file (a script needs a #! line)".to_owned(),
        libc::EPERM | libc::EINVAL if req.creds.is_some() => {
            format!("{err}{}", as_whom(req))
        }
        _ => err.to_string(),
    };
    SpawnError::CannotExecute { program, reason }
}

fn as_whom(req: &SpawnRequest) -> String {
    match &req.creds {
        Some(c) => format!(" (running as uid {}, gid {})", c.uid, c.gid),
        None => String::new(),
    }
}

fn cwd_problem(cwd: &Path) -> Option<String> {
    match std::fs::metadata(cwd) {
        Ok(m) if m.is_dir() => None,
        Ok(_) => Some(format!("working directory {cwd:?} is not a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Some(format!("working directory {cwd:?} does not exist"))
        }
        Err(e) => Some(format!("working directory {cwd:?}: {e}")),
    }
}

/// glibc's execvp uses this when PATH is unset.
const DEFAULT_PATH: &str = "/bin:/usr/bin";

fn child_path(req: &SpawnRequest) -> Option<&str> {
    req.env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
}

/// Where the child would have found `program`, if anywhere.
fn locate(req: &SpawnRequest, program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = req.cwd.join(program);
        return p.exists().then_some(p);
    }
    let path = child_path(req).unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|dir| {
            // An empty entry means the working directory; relative entries
            // are relative to it too (the child has already changed to it).
            let dir = if dir.is_empty() { "." } else { dir };
            req.cwd.join(OsStr::new(dir)).join(program)
        })
        .find(|candidate| candidate.is_file())
}

fn missing_reason(req: &SpawnRequest, program: &str) -> String {
    // ENOENT for a file that exists means exec could not find the
    // interpreter named on its #! line (or its ELF loader).
    if let Some(found) = locate(req, program) {
        return format!(
            "{found:?} exists, but its interpreter was not found (check the #! line, \
             or the virtualenv it points into)"
        );
    }
    if program.contains('/') {
        return format!("{:?} does not exist", req.cwd.join(program));
    }
    match child_path(req) {
        Some(path) => format!("not found on PATH ({path})"),
        None => format!("not found on PATH (PATH is unset; searched {DEFAULT_PATH})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_pid_is_written_in_place() {
        let env = vec![
            ("PATH".to_owned(), "/bin".to_owned()),
            ("LISTEN_FDS".to_owned(), "9".to_owned()),
        ];
        let mut p = PreparedEnv::new(&env, 2);
        let before: Vec<*const u8> = p.entries.iter().map(|e| e.as_ptr()).collect();
        for pid in [1, 42, 4_194_304, i32::MAX] {
            p.set_pid(pid);
            let text: Vec<String> = p
                .entries
                .iter()
                .map(|e| {
                    let end = e.iter().position(|b| *b == 0).unwrap();
                    String::from_utf8_lossy(&e[..end]).into_owned()
                })
                .collect();
            assert_eq!(
                text,
                ["PATH=/bin", "LISTEN_FDS=2", &format!("LISTEN_PID={pid}")]
            );
        }
        let after: Vec<*const u8> = p.entries.iter().map(|e| e.as_ptr()).collect();
        assert_eq!(before, after, "no entry may move: environ points at them");
        assert_eq!(p.pointers.len(), 4);
        assert!(p.pointers[3].is_null());
    }
}
