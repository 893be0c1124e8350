//! Is a datagram's sender part of an instance? Decided from /proc.

use std::collections::HashMap;

use crate::os::proc::Stat as ProcStat;

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

/// Most verdicts a [`SenderView`] keeps. Senders outside the instance's
/// group are few (daemons that called setsid); the bound only matters
/// against a flood of strangers, who then cost a walk each, as before.
const MAX_KNOWN: usize = 256;

/// One instance's view of who may speak for it: [`sender_belongs`] with
/// memory, for the engine to own per running instance.
///
/// Each datagram costs at most one /proc read: the sender's stat, whose
/// process group settles the common case (pool children, a Celery worker
/// sending `TASKS_DONE` per task) at once. A sender outside the group is
/// judged by walking its parents once; the verdict is then kept under the
/// sender's pid AND start time, so a pid reused by another process is
/// judged anew, never trusted on its predecessor's behalf. Verdicts cannot
/// go stale otherwise: a process is only ever re-parented upwards (to a
/// subreaper or init), so a stranger never becomes a descendant, and a
/// descendant is not disowned by its parent's death.
///
/// Make a new view (or [`SenderView::respawned`]) for each new main
/// process: verdicts are about one main pid.
#[derive(Debug, Clone)]
pub struct SenderView {
    main: i32,
    /// (pid, start time) -> belongs, for senders outside the main group.
    known: HashMap<(i32, u64), bool>,
}

impl SenderView {
    pub fn new(main_pid: i32) -> SenderView {
        SenderView {
            main: main_pid,
            known: HashMap::new(),
        }
    }

    /// The instance's main process whose senders this view judges.
    pub fn main_pid(&self) -> i32 {
        self.main
    }

    /// The instance restarted as `main_pid`: forgets every verdict.
    pub fn respawned(&mut self, main_pid: i32) {
        self.main = main_pid;
        self.known.clear();
    }

    /// As [`sender_belongs`]`(sender_pid, self.main_pid())`, with the same
    /// race for a sender already reaped: call it on receipt.
    pub fn accepts(&mut self, sender_pid: i32) -> bool {
        self.accepts_with(sender_pid, read_stat)
    }

    fn accepts_with(&mut self, sender: i32, stat: impl Fn(i32) -> Option<ProcStat>) -> bool {
        if let Some(settled) = settled_without_proc(sender, self.main) {
            return settled;
        }
        let Some(first) = stat(sender) else {
            return false;
        };
        if first.pgrp == self.main {
            return true;
        }
        let key = (sender, first.start);
        if let Some(&known) = self.known.get(&key) {
            return known;
        }
        let verdict = descends(first.ppid, self.main, &stat);
        if self.known.len() >= MAX_KNOWN {
            self.known.clear();
        }
        self.known.insert(key, verdict);
        verdict
    }
}

/// The verdicts that need no /proc read.
fn settled_without_proc(sender: i32, instance: i32) -> Option<bool> {
    // pid 0: the kernel could not name the sender (gone, or another pid
    // namespace); pid 1 is never one of our instances.
    if sender <= 0 || instance <= 1 {
        return Some(false);
    }
    (sender == instance).then_some(true)
}

pub(crate) fn belongs_with(
    sender: i32,
    instance: i32,
    stat: impl Fn(i32) -> Option<ProcStat>,
) -> bool {
    if let Some(settled) = settled_without_proc(sender, instance) {
        return settled;
    }
    let Some(first) = stat(sender) else {
        return false;
    };
    first.pgrp == instance || descends(first.ppid, instance, &stat)
}

/// True when the chain of parents starting at `parent` reaches `instance`.
fn descends(parent: i32, instance: i32, stat: &impl Fn(i32) -> Option<ProcStat>) -> bool {
    let mut pid = parent;
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
                        start: 7,
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

    /// A stat table whose reads are counted, with start times.
    struct Proc {
        rows: HashMap<i32, ProcStat>,
        reads: std::cell::Cell<usize>,
    }

    impl Proc {
        /// pid -> (ppid, pgrp, start)
        fn new(rows: &[(i32, i32, i32, u64)]) -> Proc {
            let mut p = Proc {
                rows: HashMap::new(),
                reads: Default::default(),
            };
            for &(pid, ppid, pgrp, start) in rows {
                p.set(pid, ppid, pgrp, start);
            }
            p
        }
        fn set(&mut self, pid: i32, ppid: i32, pgrp: i32, start: u64) {
            let row = ProcStat {
                state: b'S',
                ppid,
                pgrp,
                start,
            };
            self.rows.insert(pid, row);
        }
        fn stat(&self) -> impl Fn(i32) -> Option<ProcStat> + '_ {
            |pid| {
                self.reads.set(self.reads.get() + 1);
                self.rows.get(&pid).copied()
            }
        }
        fn take_reads(&self) -> usize {
            self.reads.replace(0)
        }
    }

    /// The tree of `group_member_ancestry_and_strangers`, with start times.
    fn tree() -> Proc {
        Proc::new(&[
            (100, 50, 100, 1),
            (101, 100, 100, 2),
            (102, 101, 102, 3),
            (103, 102, 102, 4),
            (200, 1, 200, 5),
            (201, 200, 200, 6),
            (50, 1, 50, 0),
        ])
    }

    #[test]
    fn the_view_agrees_with_the_walk() {
        let p = tree();
        let mut view = SenderView::new(100);
        for pid in [100, 101, 102, 103, 200, 201, 50, 999, 0, -1] {
            for round in 0..2 {
                assert_eq!(
                    view.accepts_with(pid, p.stat()),
                    belongs_with(pid, 100, p.stat()),
                    "pid {pid}, round {round}"
                );
            }
        }
        let mut init = SenderView::new(1);
        assert!(!init.accepts_with(101, p.stat()));
    }

    #[test]
    fn one_proc_read_per_datagram_at_most() {
        let p = tree();
        let mut view = SenderView::new(100);
        let storm = 1000;
        let count = |view: &mut SenderView, pid: i32| {
            p.take_reads();
            for _ in 0..storm {
                assert_eq!(view.accepts_with(pid, p.stat()), matches!(pid, 100..=103));
            }
            p.take_reads()
        };
        assert_eq!(count(&mut view, 100), 0, "the main process: no read");
        assert_eq!(count(&mut view, 101), storm, "a group member: its stat");
        // 103 -> 102 -> 101 -> 100: three reads the first time, then one.
        assert_eq!(count(&mut view, 103), storm + 2, "outside the group");
        assert_eq!(count(&mut view, 201), storm + 1, "a stranger");
        // What the walk alone costs for the same storm.
        for _ in 0..storm {
            belongs_with(103, 100, p.stat());
        }
        assert_eq!(p.take_reads(), 3 * storm);
    }

    #[test]
    fn a_reused_pid_is_judged_anew() {
        let mut p = tree();
        let mut view = SenderView::new(100);
        assert!(view.accepts_with(103, p.stat()));
        // 103 exits; a stranger (child of 200) gets its pid.
        p.set(103, 200, 200, 40);
        assert!(!view.accepts_with(103, p.stat()));
        // And the other way round: a stranger's pid reused by a descendant.
        assert!(!view.accepts_with(201, p.stat()));
        p.set(201, 102, 102, 41);
        assert!(view.accepts_with(201, p.stat()));
    }

    #[test]
    fn a_respawned_instance_starts_afresh_and_memory_is_bounded() {
        let mut p = tree();
        let mut view = SenderView::new(100);
        assert!(view.accepts_with(103, p.stat()));
        // The instance restarted as 300; 103 (same process) is not its own.
        p.set(300, 50, 300, 9);
        view.respawned(300);
        assert_eq!(view.main_pid(), 300);
        assert!(!view.accepts_with(103, p.stat()));

        let mut view = SenderView::new(100);
        for pid in 1000..1000 + 3 * MAX_KNOWN as i32 {
            p.set(pid, 1, pid, 1);
            assert!(!view.accepts_with(pid, p.stat()));
            assert!(view.known.len() <= MAX_KNOWN);
        }
        assert!(view.accepts_with(103, p.stat()), "still judged right");
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
        assert!(SenderView::new(me).accepts(me));
        if parent > 1 {
            assert!(sender_belongs(me, parent), "a child of the instance");
            assert!(!sender_belongs(parent, me), "a parent is not a member");
            assert!(SenderView::new(parent).accepts(me));
            assert!(!SenderView::new(me).accepts(parent));
        }
    }
}
