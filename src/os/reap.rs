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

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use crate::os::proc;

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
/// keeper. Our children come from /proc/self/task/*/children, so the cost
/// grows with our own children, not with the host's processes (this runs
/// on every SIGCHLD); without that file (a kernel built without
/// CONFIG_PROC_CHILDREN) it falls back to scanning /proc.
fn for_each_child(mut f: impl FnMut(i32, u8)) {
    let me = std::process::id() as i32;
    let keeper = crate::os::keeper::keeper_pid();
    let candidates = if children_lists_available() {
        proc::children(me)
    } else {
        proc::all_pids()
    };
    for pid in candidates {
        if Some(pid) == keeper {
            continue;
        }
        // The process may vanish meanwhile: skip it.
        if let Some(st) = proc::stat(pid) {
            if st.ppid == me {
                f(pid, st.state);
            }
        }
    }
}

fn children_lists_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::path::Path::new("/proc/self/task/")
            .join(std::process::id().to_string())
            .join("children")
            .exists()
    })
}
