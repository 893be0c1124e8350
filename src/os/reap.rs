//! Orphans: processes that are our children without having been spawned by
//! us through tokio.
//!
//! As a child subreaper (or as a container's PID 1), every process whose
//! parent dies below us is re-parented to prodserver: the grandchild a
//! `sh -c 'worker &'` wrapper leaves behind, a daemonizing program's
//! intermediate process. Their zombies must be reaped, and live ones killed
//! on stop.
//!
//! We never call `waitpid(-1)`: it would steal the exit status of a child
//! tokio is waiting for, and the supervisor would never learn how its
//! instance ended. Instead we list our children in /proc and wait for each
//! unknown zombie by pid. Call [`reap_orphans`] on every SIGCHLD.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// Makes prodserver the reaper of every orphan below it
/// (PR_SET_CHILD_SUBREAPER), so descendants that lose their parent stay
/// within reach instead of escaping to PID 1.
pub fn set_child_subreaper() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)
}

/// Reaps our zombie children for which `known(pid)` is false, by pid, and
/// returns their exit statuses.
///
/// `known` must be true for EVERY child spawned through tokio anywhere in
/// the process (instances, `exec` health probes, hooks), or we would reap
/// it under tokio's feet. The keeper is excluded automatically.
pub fn reap_orphans(known: &impl Fn(i32) -> bool) -> Vec<(i32, ExitStatus)> {
    let mut reaped = Vec::new();
    for_each_child(|pid, state| {
        if state != b'Z' || known(pid) {
            return;
        }
        let mut status = 0;
        // SAFETY: waitpid writes the status into our stack variable only.
        // The pid is a zombie child of ours that nobody else waits for.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            reaped.push((pid, ExitStatus::from_raw(status)));
        }
    });
    reaped
}

/// Our live (non-zombie) children for which `known(pid)` is false: orphans
/// to SIGKILL when stopping, since no instance owns them. The keeper is
/// excluded automatically.
pub fn live_orphans(known: &impl Fn(i32) -> bool) -> Vec<i32> {
    let mut live = Vec::new();
    for_each_child(|pid, state| {
        if state != b'Z' && !known(pid) {
            live.push(pid);
        }
    });
    live
}

/// Calls `f(pid, state)` for each process whose parent is us, except the
/// keeper. A full /proc scan: O(processes on the host), cheap enough on
/// SIGCHLD, and it works the same when we are PID 1 of a container.
fn for_each_child(mut f: impl FnMut(i32, u8)) {
    let me = std::process::id();
    let keeper = crate::os::keeper::keeper_pid();
    let Ok(dir) = fs::read_dir("/proc") else {
        return;
    };
    let mut buf = String::with_capacity(512);
    let mut path = String::with_capacity(32);
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if Some(pid) == keeper {
            continue;
        }
        buf.clear();
        path.clear();
        let _ = write!(path, "/proc/{pid}/stat");
        // The process may vanish between readdir and open: skip it.
        if fs::File::open(&path)
            .and_then(|mut f| f.read_to_string(&mut buf))
            .is_err()
        {
            continue;
        }
        if let Some((state, ppid)) = parse_stat(&buf) {
            if u32::try_from(ppid).ok() == Some(me) {
                f(pid, state);
            }
        }
    }
}

/// `(state, ppid)` from a /proc/PID/stat line: `pid (comm) S ppid …`.
/// comm may contain spaces and parentheses, so split after the LAST ')'.
pub(crate) fn parse_stat(line: &str) -> Option<(u8, i32)> {
    let rest = &line[line.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

#[cfg(test)]
mod tests {
    use super::parse_stat;

    #[test]
    fn parses_stat_with_awkward_comm() {
        let line = "4242 (a) b (c)) Z 17 4242 4242 0 -1 4194564 0 0";
        assert_eq!(parse_stat(line), Some((b'Z', 17)));
        assert_eq!(parse_stat("garbage"), None);
    }
}
