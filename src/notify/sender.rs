//! Is a datagram's sender part of an instance? Decided from /proc.

/// Longest parent chain followed. Process trees are shallow; the bound
/// only guards against a loop read from a racing /proc.
const MAX_DEPTH: usize = 64;

/// True when `sender_pid` belongs to the instance whose main process is
/// `instance_pid`: it is that process, it is in its process group (every
/// instance leads a group of its own: pool children, shell wrappers), or
/// its chain of parents reaches it (a descendant that moved to a group or
/// session of its own).
///
/// Read from /proc at the time of the call: a sender that has already
/// exited and been reaped cannot be checked and is refused (its message
/// could have come from anyone). A zombie still has its /proc entry. So a
/// long-lived sender (a library inside the app, our Celery module) is
/// always heard, while a one-shot `systemd-notify READY=1` run from a
/// shell script can lose the race with its parent's wait(); systemd had
/// the same race. Call this as soon as the datagram is received.
pub fn sender_belongs(sender_pid: i32, instance_pid: i32) -> bool {
    belongs_with(sender_pid, instance_pid, read_stat)
}

use crate::os::proc::Stat as ProcStat;

pub(crate) fn belongs_with(
    sender: i32,
    instance: i32,
    stat: impl Fn(i32) -> Option<ProcStat>,
) -> bool {
    // pid 0: the kernel could not name the sender (gone, or another pid
    // namespace); pid 1 is never one of our instances.
    if sender <= 0 || instance <= 1 {
        return false;
    }
    if sender == instance {
        return true;
    }
    let Some(first) = stat(sender) else {
        return false;
    };
    if first.pgrp == instance {
        return true;
    }
    let mut pid = first.ppid;
    for _ in 0..MAX_DEPTH {
        if pid == instance {
            return true;
        }
        if pid <= 1 {
            return false;
        }
        match stat(pid) {
            Some(s) => pid = s.ppid,
            None => return false,
        }
    }
    false
}

fn read_stat(pid: i32) -> Option<ProcStat> {
    crate::os::proc::stat(pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// pid -> (ppid, pgrp)
    fn table(rows: &[(i32, i32, i32)]) -> impl Fn(i32) -> Option<ProcStat> {
        let map: HashMap<i32, ProcStat> = rows
            .iter()
            .map(|&(pid, ppid, pgrp)| {
                (
                    pid,
                    ProcStat {
                        state: b'S',
                        ppid,
                        pgrp,
                    },
                )
            })
            .collect();
        move |pid| map.get(&pid).copied()
    }

    #[test]
    fn group_member_ancestry_and_strangers() {
        // 100: instance (group 100). 101: pool child. 102: a daemon that
        // called setsid (group 102), child of 101. 103: its child.
        // 200: unrelated, child of 1. 50: prodserver.
        let t = table(&[
            (100, 50, 100),
            (101, 100, 100),
            (102, 101, 102),
            (103, 102, 102),
            (200, 1, 200),
            (201, 200, 200),
            (50, 1, 50),
        ]);
        assert!(belongs_with(100, 100, &t), "the main process");
        assert!(belongs_with(101, 100, &t), "same process group");
        assert!(
            belongs_with(102, 100, &t),
            "left the group, still a descendant"
        );
        assert!(belongs_with(103, 100, &t), "grandchild outside the group");
        assert!(!belongs_with(200, 100, &t));
        assert!(!belongs_with(201, 100, &t));
        assert!(!belongs_with(50, 100, &t), "not even prodserver itself");
        assert!(!belongs_with(999, 100, &t), "gone");
        assert!(!belongs_with(0, 100, &t));
        assert!(!belongs_with(100, 1, &t));
    }

    #[test]
    fn a_parent_loop_ends() {
        let t = table(&[(10, 11, 10), (11, 10, 11)]);
        assert!(!belongs_with(10, 100, &t));
    }

    #[test]
    fn real_processes() {
        let me = std::process::id() as i32;
        let parent = nix::unistd::getppid().as_raw();
        assert!(sender_belongs(me, me));
        if parent > 1 {
            assert!(sender_belongs(me, parent), "a child of the instance");
            assert!(!sender_belongs(parent, me), "a parent is not a member");
        }
    }
}
