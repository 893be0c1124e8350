//! Helpers shared by the tests/os_*.rs files: polling with a deadline
//! (never a fixed sleep) and reading process state from /proc.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use prodserver::os::SpawnRequest;

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns
/// whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[derive(Debug, Clone)]
pub struct Stat {
    pub pid: i32,
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
}

pub fn stat(pid: i32) -> Option<Stat> {
    let line = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line[open + 1..close].to_owned();
    let mut f = line[close + 1..].split_ascii_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    Some(Stat {
        pid,
        comm,
        state,
        ppid,
        pgrp,
    })
}

/// Gone, or a zombie (dead, only waiting to be reaped by someone).
pub fn is_dead(pid: i32) -> bool {
    stat(pid).is_none_or(|s| s.state == 'Z' || s.state == 'X')
}

/// Live (non-zombie) members of process group `pgid`.
pub fn group_members(pgid: i32) -> Vec<Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat)
        .filter(|s| s.pgrp == pgid && s.state != 'Z' && s.state != 'X')
        .collect()
}

pub fn path_env() -> Vec<(String, String)> {
    vec![("PATH".to_owned(), "/usr/bin:/bin".to_owned())]
}

pub fn request(argv: &[&str]) -> SpawnRequest {
    SpawnRequest {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: path_env(),
        cwd: PathBuf::from("/"),
        creds: None,
    }
}

/// Python packages the venv of [`venv`] holds, pinned.
pub const VENV_PACKAGES: &[&str] = &["sdnotify==0.3.2", "celery==5.7.0"];

/// A Python virtualenv in `target/health-venv` with [`VENV_PACKAGES`],
/// created on first use (`python3 -m venv` + pip) and reused after; a
/// stamp file records what was installed. Serialized across test binaries
/// with a lock file. Panics, loudly, if it cannot be created: tests that
/// need it must fail, never skip.
pub fn venv() -> PathBuf {
    use std::io::Write as _;
    use std::process::Command;

    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_owned();
    let dir = target.join("health-venv");
    let stamp = dir.join("prodserver-stamp");
    let wanted = VENV_PACKAGES.join("\n");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(target.join("health-venv.lock"))
        .expect("open venv lock");
    let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock venv");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let run = |cmd: &mut Command| {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(Command::new("python3").arg("-m").arg("venv").arg(&dir));
    run(Command::new(dir.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(VENV_PACKAGES));
    let mut f = std::fs::File::create(&stamp).expect("stamp");
    f.write_all(wanted.as_bytes()).expect("stamp");
    dir
}
