//! Host-wide singleton locks ("run only ONE beat") and the runtime
//! directory that holds them.
//!
//! A lock is flock(2) on `<runtime dir>/<project>.<process>.lock`. The
//! kernel drops it when the holding descriptor closes, so a crashed or
//! SIGKILLed prodserver never leaves a stale lock behind; the pid written
//! into the file is informational only ("waiting for lock held by pid N").

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::Uid;

/// `$XDG_RUNTIME_DIR/prodserver` when XDG_RUNTIME_DIR is set (systemd
/// user sessions, per-user and cleaned at logout), else
/// `/tmp/prodserver-$UID`. Pass the result to [`ensure_runtime_dir`].
pub fn runtime_dir() -> PathBuf {
    runtime_dir_for(
        std::env::var_os("XDG_RUNTIME_DIR"),
        Uid::effective().as_raw(),
    )
}

fn runtime_dir_for(xdg: Option<OsString>, uid: u32) -> PathBuf {
    match xdg {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("prodserver"),
        _ => PathBuf::from(format!("/tmp/prodserver-{uid}")),
    }
}

/// Creates `dir` with mode 0700 if needed, and checks an existing one.
///
/// In a shared /tmp anyone can create `/tmp/prodserver-$UID` first; using
/// such a directory would let its owner read our sockets or swap our lock
/// files. So we refuse a directory (or a symlink) we do not own, and
/// tighten the mode of one we do.
pub fn ensure_runtime_dir(dir: &Path) -> io::Result<()> {
    ensure_own_dir(dir, 0o700).map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => {
            io::Error::new(e.kind(), format!("{e}; or set XDG_RUNTIME_DIR"))
        }
        _ => e,
    })
}

/// Creates `dir` with `mode` if needed; refuses an existing one that is
/// not a directory (a symlink or file in the way) or not ours, since its
/// owner could tamper with what we put there; sets the mode of one we own
/// (mkdir applies the umask, and an existing directory may be looser).
/// Shared by the runtime directory and the folders inside it.
pub fn ensure_own_dir(dir: &Path, mode: u32) -> io::Result<()> {
    match DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot create {dir:?}: {e}"),
            ))
        }
    }
    let meta = fs::symlink_metadata(dir)?;
    if !meta.file_type().is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{dir:?} is not a directory (a file or symlink is in the way): remove it"),
        ));
    }
    let me = Uid::effective().as_raw();
    if meta.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refusing {dir:?}: it belongs to uid {}, not to us (uid {me}), so that user could \
                 tamper with our locks and sockets; remove it",
                meta.uid()
            ),
        ));
    }
    if meta.mode() & 0o7777 != mode {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Lets children that run as another user (`user = ...`) pass through
/// `dir` to what is meant for them, by name (their notify socket, the
/// Celery integration module), without being able to list it: mode 0711.
/// Call after [`ensure_runtime_dir`] (which tightens to 0700 again on the
/// next start), and only when some process sets `user`. Nothing private
/// becomes reachable: lock files are 0600, and each notify socket is 0600
/// and owned by its own instance's user.
pub fn share_runtime_dir(dir: &Path) -> io::Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o711)).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot open runtime directory {dir:?} to children: {e}"),
        )
    })
}

/// The result of [`try_lock`].
#[derive(Debug)]
pub enum LockOutcome {
    Acquired(SingletonLock),
    /// Someone else holds it; `pid` is what the holder wrote into the file
    /// (None while it is between truncating and writing, or if unreadable).
    Held {
        pid: Option<i32>,
    },
}

/// A held singleton lock. Dropping it releases the lock.
#[derive(Debug)]
pub struct SingletonLock {
    file: Flock<File>,
    path: PathBuf,
}

impl SingletonLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SingletonLock {
    fn drop(&mut self) {
        // Clear our pid while we still hold the lock, so nobody reads a
        // stale holder. The lock itself goes with the descriptor, next.
        let _ = self.file.set_len(0);
    }
}

/// Tries once, without blocking, to take the lock for `project`'s singleton
/// `process` in `dir` (see [`ensure_runtime_dir`]). Call it again on a
/// timer to wait.
///
/// The descriptor is close-on-exec: a child inheriting it would keep the
/// lock after prodserver died.
/// Opens (creating, mode 0600) a lock file without truncating it (that
/// would erase the holder's pid before we hold the lock). std adds
/// O_CLOEXEC, so a child never keeps a lock after we die; O_NOFOLLOW
/// refuses a planted symlink.
pub fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open lock file {path:?}: {e}")))
}

pub fn try_lock(dir: &Path, project: &str, process: &str) -> io::Result<LockOutcome> {
    check_name("project", project)?;
    check_name("process", process)?;
    let path = dir.join(format!("{project}.{process}.lock"));
    let file = open_lock_file(&path)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(file) => {
            file.set_len(0)?;
            file.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0)?;
            Ok(LockOutcome::Acquired(SingletonLock { file, path }))
        }
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let pid = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse::<i32>().ok());
            Ok(LockOutcome::Held { pid })
        }
        Err((_, e)) => Err(io::Error::new(
            io::Error::from(e).kind(),
            format!("cannot lock {path:?}: {e}"),
        )),
    }
}

/// Names become part of a file name: keep them from escaping `dir`.
fn check_name(what: &str, name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} name {name:?} cannot be used in a lock file name"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_dir_prefers_xdg() {
        assert_eq!(
            runtime_dir_for(Some("/run/user/1000".into()), 1000),
            PathBuf::from("/run/user/1000/prodserver")
        );
        assert_eq!(
            runtime_dir_for(None, 1000),
            PathBuf::from("/tmp/prodserver-1000")
        );
        assert_eq!(
            runtime_dir_for(Some("".into()), 7),
            PathBuf::from("/tmp/prodserver-7")
        );
    }
}
