//! Test harness: runs the built `prodserver` binary on a config written into
//! a scratch folder, collects its output line by line on a thread, and lets
//! tests wait on conditions with deadlines instead of sleeping.

#![allow(dead_code)] // each test file uses a different part of the harness

pub mod engine;
pub mod http;
pub mod ports;
pub mod python;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use prodserver::os::SpawnRequest;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_prodserver");

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
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

/// A scratch project folder with a `prodserver.toml`.
pub struct Project {
    dir: tempfile::TempDir,
    runtime: tempfile::TempDir,
}

impl Project {
    pub fn new(config: &str) -> Project {
        let dir = tempfile::Builder::new()
            .prefix("prodserver-test")
            .tempdir()
            .expect("tempdir");
        let runtime = tempfile::Builder::new()
            .prefix("prodserver-rt")
            .tempdir()
            .expect("tempdir");
        std::fs::write(dir.path().join("prodserver.toml"), config).expect("write config");
        Project { dir, runtime }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The runtime directory the supervisor uses (locks, sockets).
    pub fn runtime_dir(&self) -> PathBuf {
        self.runtime.path().to_path_buf()
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// Writes `name` whole at once (a temporary file, then a rename), for
    /// files a running child may read at any moment.
    pub fn write_atomic(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents).expect("write file");
        std::fs::rename(&tmp, &path).expect("rename file");
        path
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("XDG_RUNTIME_DIR", self.runtime.path())
            .env("NO_COLOR", "1")
            .env_remove("PRODSERVER_CONFIG");
        cmd
    }

    /// Starts `prodserver ARGS` in this project.
    pub fn spawn(&self, args: &[&str]) -> Running {
        Running::spawn(self.command(args))
    }

    /// Runs `prodserver ARGS` to completion (with a deadline).
    pub fn run(&self, args: &[&str], timeout: Duration) -> (i32, String) {
        let mut running = self.spawn(args);
        let code = running.wait_exit(timeout);
        (code, running.output())
    }
}

#[derive(Default)]
struct Captured {
    lines: Vec<String>,
    eof: usize,
}

/// A running supervisor whose stdout and stderr are captured line by line.
pub struct Running {
    child: Child,
    captured: Arc<(Mutex<Captured>, Condvar)>,
    code: Option<i32>,
}

impl Running {
    pub fn spawn(cmd: Command) -> Running {
        Running::spawn_with_stdin(cmd, Stdio::null())
    }

    /// As [`Running::spawn`], with this standard input (a terminal, say).
    pub fn spawn_with_stdin(mut cmd: Command, stdin: Stdio) -> Running {
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn prodserver");
        let captured = Arc::new((Mutex::new(Captured::default()), Condvar::new()));
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for stream in [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err),
        ] {
            let captured = Arc::clone(&captured);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let line = unpad(String::from_utf8_lossy(&buf).trim_end_matches('\n'));
                            let (lock, cv) = &*captured;
                            lock.lock().expect("lock").lines.push(line);
                            cv.notify_all();
                        }
                    }
                }
                let (lock, cv) = &*captured;
                lock.lock().expect("lock").eof += 1;
                cv.notify_all();
            });
        }
        Running {
            child,
            captured,
            code: None,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn output(&self) -> String {
        self.captured.0.lock().expect("lock").lines.join("\n")
    }

    pub fn lines(&self) -> Vec<String> {
        self.captured.0.lock().expect("lock").lines.clone()
    }

    /// Waits until some output line satisfies `pred`; returns it. Panics
    /// with the whole output on timeout, so a failure shows what happened.
    pub fn wait_for_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.captured;
        let mut captured = lock.lock().expect("lock");
        loop {
            if let Some(line) = captured.lines.iter().find(|l| pred(l)) {
                return line.clone();
            }
            let now = Instant::now();
            if now >= deadline || captured.eof == 2 {
                let out = captured.lines.join("\n");
                drop(captured);
                panic!("no matching line within {timeout:?}; output so far:\n{out}");
            }
            captured = cv.wait_timeout(captured, deadline - now).expect("wait").0;
        }
    }

    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_line(timeout, |l| l.contains(needle))
    }

    /// Waits until `n` lines contain `needle`.
    pub fn wait_for_count(&self, needle: &str, n: usize, timeout: Duration) {
        let ok = wait_until(timeout, || self.count(needle) >= n);
        assert!(
            ok,
            "expected {n} lines containing {needle:?} within {timeout:?}; output:\n{}",
            self.output()
        );
    }

    pub fn count(&self, needle: &str) -> usize {
        self.captured
            .0
            .lock()
            .expect("lock")
            .lines
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    pub fn signal(&self, sig: i32) {
        let signal = nix::sys::signal::Signal::try_from(sig).expect("a signal number");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal)
            .unwrap_or_else(|e| panic!("kill({}, {sig}): {e}", self.pid()));
    }

    /// Waits for the supervisor to exit; returns its exit code (128+N when
    /// killed by signal N). Panics with the output on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        if let Some(code) = self.code {
            return code;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                use std::os::unix::process::ExitStatusExt;
                let code = status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
                // Let the reader threads see EOF so output() is complete.
                let (lock, _) = &*self.captured;
                wait_until(Duration::from_secs(5), || {
                    lock.lock().expect("lock").eof == 2
                });
                self.code = Some(code);
                return code;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "prodserver did not exit within {timeout:?}; output:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.code.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `web.1      | msg` → `web.1 | msg`: the padding depends on the longest
/// name of the project, which tests should not have to know.
fn unpad(line: &str) -> String {
    let Some(end) = line.find(' ') else {
        return line.to_string();
    };
    let (label, rest) = (&line[..end], line[end..].trim_start_matches(' '));
    if rest.starts_with('|') || rest.starts_with("+|") {
        format!("{label} {rest}")
    } else {
        line.to_string()
    }
}

/// One line of /proc/PID/stat, the fields tests look at.
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

/// Alive and not a zombie.
pub fn alive(pid: i32) -> bool {
    !is_dead(pid)
}

/// Pids of every live descendant of `root`, found through /proc.
pub fn descendants(root: i32) -> Vec<i32> {
    let all: Vec<Stat> = std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter_map(stat)
                .filter(|s| s.state != 'Z' && s.state != 'X')
                .collect()
        })
        .unwrap_or_default();
    let mut out = vec![];
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for s in all.iter().filter(|s| s.ppid == p) {
            out.push(s.pid);
            frontier.push(s.pid);
        }
    }
    out
}

/// A spawn request for the OS-layer tests.
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
