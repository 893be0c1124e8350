//! The control socket: how the CLI talks to a running supervisor.
//!
//! Theory of operation. `prodserver start` first [`claim`]s its project:
//! an flock on `RUNTIME/ctl/PROJECT.lock`, then a unix stream socket at
//! `RUNTIME/ctl/PROJECT.sock`. The lock is what makes a supervisor the
//! only one for its project on this host: the kernel drops it when the
//! process dies, however it dies, so a socket file found while the lock
//! is free was left by a killed supervisor and is replaced. The socket is
//! mode 0600 inside a 0700 folder, and every connection's peer uid is
//! checked again (SO_PEERCRED): only our own uid and root are served.
//!
//! The [`server`] runs as tasks on the engine's runtime and is only a
//! transport: each request becomes an engine request through
//! [`crate::supervisor::engine::Control`] and is answered once the engine
//! says it is done. It never blocks the loop and a bad request costs the
//! supervisor nothing but an error reply. The [`client`] is plain blocking
//! I/O for the CLI. The wire format is in [`protocol`].

pub mod client;
pub mod protocol;
pub mod server;
pub mod table;
pub mod verbs;

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// sun_path holds 108 bytes, the terminating NUL included.
const SUN_PATH_MAX: usize = 107;

/// Where a project's lock and socket live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub dir: PathBuf,
    pub lock: PathBuf,
    pub socket: PathBuf,
}

/// The lock and socket paths for `project` under `runtime_dir`. A name
/// that would not fit in sun_path (or is not a plain file name) is
/// replaced by a hash of itself, the same for the server and the client.
pub fn paths(runtime_dir: &Path, project: &str) -> Paths {
    let dir = runtime_dir.join("ctl");
    let plain = !project.is_empty()
        && project
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !project.starts_with('.');
    let fits = |stem: &str| dir.join(format!("{stem}.sock")).as_os_str().len() <= SUN_PATH_MAX;
    let stem = if plain && fits(project) {
        project.to_string()
    } else {
        format!("h{:016x}", fnv1a(project.as_bytes()))
    };
    Paths {
        lock: dir.join(format!("{stem}.lock")),
        socket: dir.join(format!("{stem}.sock")),
        dir,
    }
}

/// Stable across builds and hosts (std's hasher is not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The project name a config file gives, read without validating the rest
/// of the file, so that the CLI still finds a running supervisor while the
/// file is being edited (a `reload` of a broken file must reach it to be
/// refused). Mirrors the loader: `[prodserver] name`, else the folder name.
pub fn project_name(config_path: &Path, text: &str) -> String {
    let named = text.parse::<toml::Table>().ok().and_then(|t| {
        t.get("prodserver")?
            .get("name")?
            .as_str()
            .map(str::to_string)
    });
    named.unwrap_or_else(|| {
        config_path
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "prodserver".into())
    })
}

/// A project claimed by this supervisor: the held lock and the listening
/// socket. Dropping it removes the socket file, then releases the lock.
#[derive(Debug)]
pub struct Claim {
    pub paths: Paths,
    pub listener: Option<UnixListener>,
    _lock: Flock<File>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Removed while we still hold the lock: a newcomer that got the
        // lock never has its fresh socket deleted by us.
        let _ = std::fs::remove_file(&self.paths.socket);
    }
}

#[derive(Debug)]
pub enum ClaimError {
    /// Another supervisor holds the project (its pid, if it wrote it).
    Running {
        pid: Option<i32>,
    },
    Io(io::Error),
}

impl From<io::Error> for ClaimError {
    fn from(e: io::Error) -> Self {
        ClaimError::Io(e)
    }
}

/// Takes the project's lock (refusing when another supervisor has it),
/// replaces a stale socket file and listens. Call it before the keeper is
/// forked or any thread exists: the descriptors are close-on-exec, and the
/// keeper closes what it inherits.
pub fn claim(runtime_dir: &Path, project: &str) -> Result<Claim, ClaimError> {
    let paths = paths(runtime_dir, project);
    crate::os::ensure_own_dir(&paths.dir, 0o700)?;
    let file = crate::os::lock::open_lock_file(&paths.lock)?;
    let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((mut file, Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let pid = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Err(ClaimError::Running { pid });
        }
        Err((_, e)) => {
            return Err(ClaimError::Io(io::Error::other(format!(
                "cannot lock {}: {e}",
                paths.lock.display()
            ))))
        }
    };
    lock.set_len(0)?;
    lock.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0)?;
    // We hold the lock, so a socket file here belongs to a supervisor
    // that died without cleaning up.
    match std::fs::remove_file(&paths.socket) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(ClaimError::Io(io::Error::new(
                e.kind(),
                format!(
                    "cannot remove the stale socket {}: {e}",
                    paths.socket.display()
                ),
            )))
        }
    }
    let listener = UnixListener::bind(&paths.socket).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot listen on {}: {e}", paths.socket.display()),
        )
    })?;
    // The folder is 0700 already, so the moment between bind and chmod
    // exposes nothing; the mode is the second fence.
    std::fs::set_permissions(&paths.socket, std::fs::Permissions::from_mode(0o600))?;
    Ok(Claim {
        paths,
        listener: Some(listener),
        _lock: lock,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept_long_ones_hashed() {
        let p = paths(Path::new("/run/user/1000/prodserver"), "shop");
        assert_eq!(
            p.socket,
            Path::new("/run/user/1000/prodserver/ctl/shop.sock")
        );
        assert_eq!(p.lock, Path::new("/run/user/1000/prodserver/ctl/shop.lock"));
        let long = "x".repeat(100);
        let p = paths(Path::new("/run/user/1000/prodserver"), &long);
        let name = p.socket.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with('h') && name.len() == 22, "{name}");
        assert!(p.socket.as_os_str().len() <= SUN_PATH_MAX);
        assert_eq!(p, paths(Path::new("/run/user/1000/prodserver"), &long));
        // A folder name with a space or a dot-start is not used verbatim.
        for odd in ["my shop", ".hidden", "", "a/b"] {
            let s = paths(Path::new("/r"), odd).socket;
            assert!(
                s.file_name().unwrap().to_str().unwrap().starts_with('h'),
                "{odd}"
            );
        }
    }

    #[test]
    fn project_name_follows_the_loader() {
        let path = Path::new("/srv/shop/prodserver.toml");
        assert_eq!(project_name(path, "[prodserver]\nname = \"bar\"\n"), "bar");
        assert_eq!(project_name(path, "[processes.web]\n"), "shop");
        // A broken file still names its project by folder.
        assert_eq!(project_name(path, "[[[nope"), "shop");
    }

    #[test]
    fn a_second_claim_is_refused_and_a_stale_socket_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path(), "shop");
        std::fs::create_dir_all(&p.dir).unwrap();
        std::fs::write(&p.socket, b"stale").unwrap();
        let first = claim(dir.path(), "shop").unwrap();
        let mode = std::fs::metadata(&p.socket).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        match claim(dir.path(), "shop") {
            Err(ClaimError::Running { pid }) => assert_eq!(pid, Some(std::process::id() as i32)),
            other => panic!("{other:?}"),
        }
        drop(first);
        assert!(!p.socket.exists());
        claim(dir.path(), "shop").unwrap();
    }
}
