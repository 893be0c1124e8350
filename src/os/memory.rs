//! How much memory one process tree holds right now, read from /proc.
//!
//! An instance's memory is the sum over its whole tree: the main pid and
//! every descendant (gunicorn workers, Celery pool children, a shell
//! wrapper's child). Figures are *current* (never a peak such as
//! `ru_maxrss` or `VmHWM`, which cannot go down after a leak is freed).
//!
//! - **RSS**: field 24 of /proc/PID/stat (resident pages), which is read
//!   anyway for the parent pid and CPU ticks, so RSS costs no extra file.
//! - **PSS**: `Pss:` of /proc/PID/smaps_rollup: each resident page divided
//!   by the number of processes mapping it, so a copy-on-write page shared
//!   by a prefork pool is counted once over the tree, not once per child.
//! - **USS**: `Private_Clean:` + `Private_Dirty:` of smaps_rollup: what
//!   would be freed if that one process exited.
//!
//! smaps_rollup needs ptrace-read access: for another user's process
//! without that right, RSS is counted instead and the sample says it is
//! approximate.
//!
//! Descendants come from /proc/PID/task/TID/children (each thread has its
//! own list of the children it forked). Kernels built without
//! CONFIG_PROC_CHILDREN have no such file: then one scan of every
//! /proc/PID/stat gives the parent of each process.
//!
//! Everything here blocks on /proc reads: call it off the event loop. A
//! [`Sampler`] keeps its buffers between sweeps, so a sweep allocates
//! only the result, and keeps each process's stat and children files
//! open, so a later sample reads them again (pread) instead of opening
//! them: that halves the cost of a sweep (see the README's Performance).
//!
//! smaps_rollup walks the page tables of the whole process, and costs
//! about ten times an RSS read. For a limit check,
//! [`Sampler::sample_tree_within`] reads it only for a tree whose RSS is
//! over the limit: PSS and USS are never more than RSS.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;

use crate::plan::MemoryMetric;

/// Bound on the processes walked in one tree. With every child's parent
/// checked, the walk cannot loop; this only bounds the work a fork bomb
/// can cause in one sample.
const MAX_TREE: usize = 1 << 16;

/// The slot of the root in [`Sampler::members`] (no direct child's).
const ROOT: usize = usize::MAX;

/// One process tree's memory at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeSample {
    /// Sum over the root and every descendant, in the metric asked.
    pub bytes: u64,
    /// How many processes were counted.
    pub processes: u32,
    /// Each direct child of the root with its own subtree's total, in the
    /// order the kernel lists them.
    pub children: Vec<ChildSample>,
    /// utime + stime summed over the tree, in clock ticks.
    pub cpu_ticks: u64,
    /// Some process's PSS/USS was unreadable (permissions): its RSS was
    /// counted instead.
    pub approximate: bool,
    /// The metric `bytes` is in: the one asked, or RSS when
    /// [`Sampler::sample_tree_within`] found the RSS within the limit.
    pub metric: MemoryMetric,
}

/// A direct child of a tree's root, with its whole subtree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSample {
    pub pid: i32,
    pub bytes: u64,
    pub processes: u32,
}

/// The tree of `root` now, in `metric`. `None` when `root` no longer
/// exists (or has exited and awaits its reaper). Processes that vanish
/// mid-walk are skipped.
pub fn sample_tree(root: i32, metric: MemoryMetric) -> Option<TreeSample> {
    Sampler::new().sample_tree(root, metric)
}

/// `pid` is alive (not a zombie) and its parent is `parent`. Checked right
/// before signalling a pool child, since pids get reused.
pub fn is_child_of(pid: i32, parent: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(text) = fs::read(format!("/proc/{pid}/stat")) else {
        return false;
    };
    parse_stat(&text).is_some_and(|st| st.live && st.ppid == parent)
}

/// The fields of /proc/PID/stat a sample needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFields {
    /// Not a zombie (`Z`) nor dead (`X`/`x`).
    pub live: bool,
    pub ppid: i32,
    /// utime + stime, clock ticks.
    pub cpu_ticks: u64,
    pub threads: u32,
    /// Resident pages.
    pub rss_pages: u64,
}

/// A /proc/PID/stat line: `pid (comm) S ppid pgrp …`. comm may contain
/// spaces and parentheses, so fields are counted after the LAST `)`.
pub fn parse_stat(line: &[u8]) -> Option<StatFields> {
    let close = memchr::memrchr(b')', line)?;
    let mut fields = line[close + 1..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    // Field numbers as in proc(5); the state is field 3.
    let state = *fields.next()?.first()?;
    let ppid = int(fields.next()?)?;
    let utime: u64 = int(fields.nth(9)?)?; // 14
    let stime: u64 = int(fields.next()?)?; // 15
    let threads = int(fields.nth(4)?)?; // 20
    let rss: i64 = int(fields.nth(3)?)?; // 24
    Some(StatFields {
        live: !matches!(state, b'Z' | b'X' | b'x'),
        ppid,
        cpu_ticks: utime.saturating_add(stime),
        threads,
        // A kernel thread or an exiting process may show 0; never negative
        // in practice, but the field is signed.
        rss_pages: u64::try_from(rss).unwrap_or(0),
    })
}

/// The figures of /proc/PID/smaps_rollup a sample needs, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rollup {
    pub rss: u64,
    pub pss: u64,
    pub private: u64,
}

/// smaps_rollup's `Key:   N kB` lines. `None` unless Rss, Pss and both
/// Private lines were all read, so a truncated file is never taken for a
/// small process.
pub fn parse_rollup(text: &[u8]) -> Option<Rollup> {
    let mut out = Rollup::default();
    let mut seen = 0u8;
    for line in text.split(|&b| b == b'\n') {
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let (key, bit) = match &line[..colon] {
            b"Rss" => (&mut out.rss, 1),
            b"Pss" => (&mut out.pss, 2),
            b"Private_Clean" => (&mut out.private, 4),
            b"Private_Dirty" => (&mut out.private, 8),
            _ => continue,
        };
        let kib = kib_value(&line[colon + 1..])?;
        *key = key.saturating_add(kib.saturating_mul(1024));
        seen |= bit;
    }
    (seen == 15).then_some(out)
}

/// `   1234 kB` → 1234.
fn kib_value(rest: &[u8]) -> Option<u64> {
    let mut parts = rest
        .split(|b| b.is_ascii_whitespace())
        .filter(|p| !p.is_empty());
    let n = int(parts.next()?)?;
    (parts.next()? == b"kB").then_some(n)
}

/// /proc/PID/task/TID/children: space-separated pids, appended to `out`.
pub fn parse_children(text: &[u8], out: &mut Vec<i32>) {
    out.extend(
        text.split(|b| b.is_ascii_whitespace())
            .filter_map(int::<i32>)
            .filter(|&p| p > 0),
    );
}

fn int<T: std::str::FromStr>(field: &[u8]) -> Option<T> {
    std::str::from_utf8(field).ok()?.parse().ok()
}

/// What reading one process's smaps_rollup gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollupRead {
    Read(Rollup),
    /// Not ours to read (EACCES/EPERM), or text we could not parse.
    Unreadable,
    /// The process is gone or exiting (ENOENT/ESRCH): nothing to count.
    Gone,
}

/// One process's bytes in `metric`, and whether RSS stood in for it.
/// `None` when the process is gone.
pub fn process_bytes(metric: MemoryMetric, rss: u64, rollup: RollupRead) -> Option<(u64, bool)> {
    match (metric, rollup) {
        (MemoryMetric::Rss, _) => Some((rss, false)),
        (_, RollupRead::Gone) => None,
        (_, RollupRead::Unreadable) => Some((rss, true)),
        (MemoryMetric::Pss, RollupRead::Read(r)) => Some((r.pss, false)),
        (MemoryMetric::Uss, RollupRead::Read(r)) => Some((r.private, false)),
    }
}

/// Samples trees, keeping its buffers from one sweep to the next.
#[derive(Debug)]
pub struct Sampler {
    path: String,
    buf: Vec<u8>,
    kids: Vec<i32>,
    /// (pid, index of the root's direct child it descends from, parent).
    stack: Vec<(i32, usize, i32)>,
    /// The tree being sampled: (pid, slot of its direct child or [`ROOT`],
    /// RSS in bytes).
    members: Vec<(i32, usize, u64)>,
    page_size: u64,
    /// `None` until known: whether this kernel has the children files.
    children_files: Option<bool>,
    /// For the kernels without them: (ppid, pid) of every process, sorted,
    /// rebuilt once per sample.
    parents: Vec<(i32, i32)>,
    /// Files kept open between samples, by pid; at most `keep_max`.
    kept: HashMap<i32, Kept>,
    keep_max: usize,
}

/// The files of one process kept open between samples.
#[derive(Debug)]
struct Kept {
    stat: File,
    /// Its main thread's children list, once read.
    children: Option<File>,
    /// Sampled since the last [`Sampler::end_sweep`].
    used: bool,
}

/// At most this many processes' files are kept open (two descriptors
/// each), and at most an eighth of the descriptor limit: a supervisor of
/// many instances needs its descriptors for their pipes and sockets.
const KEEP_MAX: usize = 4096;

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler {
    pub fn new() -> Sampler {
        Sampler {
            path: String::with_capacity(64),
            buf: Vec::with_capacity(4096),
            kids: Vec::new(),
            stack: Vec::new(),
            members: Vec::new(),
            page_size: page_size(),
            children_files: None,
            parents: Vec::new(),
            kept: HashMap::new(),
            keep_max: crate::os::limits::nofile()
                .map_or(0, |(soft, _)| usize::try_from(soft / 8).unwrap_or(KEEP_MAX))
                .min(KEEP_MAX),
        }
    }

    /// A sampler that finds descendants by scanning every /proc/PID/stat,
    /// as it does on kernels without /proc/PID/task/TID/children. For
    /// tests and the benchmark of that path.
    pub fn scanning_parents() -> Sampler {
        Sampler {
            children_files: Some(false),
            ..Sampler::new()
        }
    }

    /// See [`sample_tree`].
    pub fn sample_tree(&mut self, root: i32, metric: MemoryMetric) -> Option<TreeSample> {
        self.sample(root, metric, None)
    }

    /// [`sample_tree`] for a limit check: when the tree's RSS is at most
    /// `limit`, its PSS or USS (never more than its RSS) cannot exceed the
    /// limit either, so smaps_rollup, by far the dearest read, is skipped
    /// and the sample reports the RSS, with `metric` saying so. Only a
    /// tree whose RSS is over the limit is measured in the metric asked.
    pub fn sample_tree_within(
        &mut self,
        root: i32,
        metric: MemoryMetric,
        limit: u64,
    ) -> Option<TreeSample> {
        self.sample(root, metric, Some(limit))
    }

    fn sample(
        &mut self,
        root: i32,
        metric: MemoryMetric,
        limit: Option<u64>,
    ) -> Option<TreeSample> {
        if root <= 0 {
            return None;
        }
        let st = self.read_stat(root)?;
        if !st.live {
            return None;
        }
        if self.children_files == Some(false) {
            self.scan_parents();
        }
        // First the tree, from the stat lines (which carry RSS)...
        let mut cpu_ticks = st.cpu_ticks;
        self.members.clear();
        self.members.push((root, ROOT, self.rss(&st)));
        self.stack.clear();
        self.kids.clear();
        self.children_of(root, &st);
        let mut children = Vec::with_capacity(self.kids.len());
        for (slot, &pid) in self.kids.iter().enumerate() {
            children.push(ChildSample {
                pid,
                bytes: 0,
                processes: 0,
            });
            self.stack.push((pid, slot, root));
        }
        while let Some((pid, slot, parent)) = self.stack.pop() {
            if self.members.len() >= MAX_TREE {
                break;
            }
            // Gone, a zombie, or a reused pid no longer ours: skipped.
            let Some(st) = self.read_stat(pid) else {
                continue;
            };
            if !st.live || st.ppid != parent {
                continue;
            }
            cpu_ticks += st.cpu_ticks;
            self.members.push((pid, slot, self.rss(&st)));
            self.kids.clear();
            self.children_of(pid, &st);
            for &kid in &self.kids {
                self.stack.push((kid, slot, pid));
            }
        }
        // ...then each member in the metric, unless RSS already bounds it.
        let rss_total: u64 = self.members.iter().map(|m| m.2).sum();
        let reported = match limit {
            Some(limit) if rss_total <= limit => MemoryMetric::Rss,
            _ => metric,
        };
        let mut sample = TreeSample {
            bytes: 0,
            processes: 0,
            children,
            cpu_ticks,
            approximate: false,
            metric: reported,
        };
        for i in 0..self.members.len() {
            let (pid, slot, rss) = self.members[i];
            let rollup = if reported == MemoryMetric::Rss {
                RollupRead::Unreadable // not needed
            } else {
                self.read_rollup(pid)
            };
            let Some((bytes, approximate)) = process_bytes(reported, rss, rollup) else {
                if slot == ROOT {
                    return None;
                }
                continue;
            };
            sample.bytes += bytes;
            sample.processes += 1;
            sample.approximate |= approximate;
            if let Some(child) = sample.children.get_mut(slot) {
                child.bytes += bytes;
                child.processes += 1;
            }
        }
        // A direct child gone mid-walk is not a child any more.
        sample.children.retain(|c| c.processes > 0);
        Some(sample)
    }

    fn rss(&self, st: &StatFields) -> u64 {
        st.rss_pages.saturating_mul(self.page_size)
    }

    /// `pid`'s stat line, through the file kept open for it since an
    /// earlier sample when there is one: a read instead of an open, a read
    /// and a close. A kept file names one process, not a number: once that
    /// process is reaped its reads fail (ESRCH), and the pid, maybe reused
    /// by now, is opened afresh.
    fn read_stat(&mut self, pid: i32) -> Option<StatFields> {
        if let Some(kept) = self.kept.get_mut(&pid) {
            if read_fd(&kept.stat, &mut self.buf, true).is_ok() {
                if let Some(st) = parse_stat(&self.buf) {
                    kept.used = true;
                    return Some(st);
                }
            }
            self.kept.remove(&pid);
        }
        self.set_path(pid, "stat");
        let file = File::open(&self.path).ok()?;
        read_fd(&file, &mut self.buf, true).ok()?;
        let st = parse_stat(&self.buf)?;
        if self.kept.len() < self.keep_max {
            let kept = Kept {
                stat: file,
                children: None,
                used: true,
            };
            self.kept.insert(pid, kept);
        }
        Some(st)
    }

    /// [`Self::read_stat`] without keeping the file: for the scan of every
    /// process on the machine.
    fn read_stat_once(&mut self, pid: i32) -> Option<StatFields> {
        self.set_path(pid, "stat");
        read_record(&self.path, &mut self.buf).ok()?;
        parse_stat(&self.buf)
    }

    /// Closes the files kept for processes not sampled since the previous
    /// call. The sampling thread calls it after each sweep over every
    /// instance, so the files of exited processes do not pile up (until
    /// then they are only bounded by the cap on kept files).
    pub fn end_sweep(&mut self) {
        self.kept
            .retain(|_, kept| std::mem::replace(&mut kept.used, false));
    }

    /// How many processes have files kept open between samples.
    pub fn kept_files(&self) -> usize {
        self.kept.len()
    }

    fn read_rollup(&mut self, pid: i32) -> RollupRead {
        self.set_path(pid, "smaps_rollup");
        match read_record(&self.path, &mut self.buf) {
            Ok(()) => parse_rollup(&self.buf).map_or(RollupRead::Unreadable, RollupRead::Read),
            Err(e) => match e.raw_os_error() {
                Some(libc::ENOENT | libc::ESRCH) => RollupRead::Gone,
                _ => RollupRead::Unreadable,
            },
        }
    }

    /// `pid`'s children into `self.kids`.
    fn children_of(&mut self, pid: i32, st: &StatFields) {
        if self.children_files == Some(false) {
            let start = self.parents.partition_point(|&(pp, _)| pp < pid);
            let more = self.parents[start..]
                .iter()
                .take_while(|&&(pp, _)| pp == pid)
                .map(|&(_, p)| p);
            self.kids.extend(more);
            return;
        }
        // A single-threaded process has one list, at a known path: no
        // directory listing.
        if st.threads <= 1 {
            use std::fmt::Write;
            self.path.clear();
            if let Some(file) = self.kept.get(&pid).and_then(|k| k.children.as_ref()) {
                if read_fd(file, &mut self.buf, false).is_ok() {
                    parse_children(&self.buf, &mut self.kids);
                    return;
                }
            }
            let _ = write!(self.path, "/proc/{pid}/task/{pid}/children");
            match File::open(&self.path) {
                Ok(file) => {
                    self.children_files = Some(true);
                    if read_fd(&file, &mut self.buf, false).is_ok() {
                        parse_children(&self.buf, &mut self.kids);
                    }
                    if let Some(kept) = self.kept.get_mut(&pid) {
                        kept.children = Some(file);
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => return,
            }
        }
        self.set_path(pid, "task");
        let Ok(tasks) = fs::read_dir(&self.path) else {
            return;
        };
        let mut any = false;
        for task in tasks.flatten() {
            let path = task.path().join("children");
            match read_into(&path, &mut self.buf) {
                Ok(()) => {
                    any = true;
                    parse_children(&self.buf, &mut self.kids);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(_) => any = true,
            }
        }
        if any {
            self.children_files = Some(true);
        } else if self.children_files.is_none() && self.read_stat(pid).is_some() {
            // The process still exists, yet none of its threads has the
            // file: this kernel has none. From now on, scan the parents.
            self.children_files = Some(false);
            self.scan_parents();
            self.children_of(pid, st);
        }
    }

    fn scan_parents(&mut self) {
        self.parents.clear();
        let Ok(dir) = fs::read_dir("/proc") else {
            return;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some(st) = self.read_stat_once(pid) {
                self.parents.push((st.ppid, pid));
            }
        }
        self.parents.sort_unstable();
    }

    fn set_path(&mut self, pid: i32, file: &str) {
        use std::fmt::Write;
        self.path.clear();
        let _ = write!(self.path, "/proc/{pid}/{file}");
    }
}

/// Reads a whole /proc file into `buf` (cleared first), with plain
/// read(2) calls: `read_to_end` would also stat and seek the file.
fn read_into(path: impl AsRef<std::path::Path>, buf: &mut Vec<u8>) -> io::Result<()> {
    read_file(path, buf, false)
}

/// [`read_into`] for a file the kernel prints as ONE seq_file record
/// (stat, smaps_rollup): such a read returns the whole rest of the record
/// or fills the buffer, so a short read is the end and the read that
/// would return 0 is saved. Not so for files of many records (children,
/// maps), where a read may stop early at a record boundary.
fn read_record(path: impl AsRef<std::path::Path>, buf: &mut Vec<u8>) -> io::Result<()> {
    read_file(path, buf, true)
}

fn read_file(
    path: impl AsRef<std::path::Path>,
    buf: &mut Vec<u8>,
    one_record: bool,
) -> io::Result<()> {
    read_fd(&File::open(path)?, buf, one_record)
}

/// [`read_file`] from an open file, from its start (pread: a kept file
/// is read again at each sample).
fn read_fd(file: &File, buf: &mut Vec<u8>, one_record: bool) -> io::Result<()> {
    buf.clear();
    loop {
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        let len = buf.len();
        buf.resize(buf.capacity(), 0);
        let n = match file.read_at(&mut buf[len..], len as u64) {
            Ok(n) => n,
            Err(e) => {
                buf.truncate(len);
                return Err(e);
            }
        };
        let room = buf.len() - len;
        buf.truncate(len + n);
        if n == 0 || (one_record && n < room) {
            return Ok(());
        }
    }
}

fn page_size() -> u64 {
    sysconf_or(nix::unistd::SysconfVar::PAGE_SIZE, 4096)
}

/// The unit of the CPU times in /proc/PID/stat (USER_HZ): 100 on every
/// Linux architecture; sysconf only confirms it.
pub fn clock_ticks_per_second() -> u64 {
    sysconf_or(nix::unistd::SysconfVar::CLK_TCK, 100)
}

/// A sysconf value, or Linux's fixed one where sysconf cannot say.
fn sysconf_or(var: nix::unistd::SysconfVar, linux: u64) -> u64 {
    nix::unistd::sysconf(var)
        .ok()
        .flatten()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(linux)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &[u8] = b"4242 (gunicorn: worker [shop] (x)) S 4200 4200 4200 0 -1 4194560 2301 0 0 0 17 5 0 0 20 0 3 0 12345 251236352 9472 18446744073709551615 1 1 0 0 0 0 0 16781312 134235659 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn stat_fields_after_the_last_paren() {
        let st = parse_stat(STAT).unwrap();
        assert_eq!(
            st,
            StatFields {
                live: true,
                ppid: 4200,
                cpu_ticks: 22,
                threads: 3,
                rss_pages: 9472,
            }
        );
    }

    #[test]
    fn a_zombie_is_not_live() {
        let line = b"7 (sh) Z 1 7 7 0 -1 4227084 0 0 0 0 1 2 0 0 20 0 1 0 99 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0";
        let st = parse_stat(line).unwrap();
        assert!(!st.live);
        assert_eq!((st.ppid, st.cpu_ticks, st.rss_pages), (1, 3, 0));
    }

    #[test]
    fn stat_garbage_and_truncation_give_none() {
        for cut in 0..STAT.len() {
            // Every prefix that stops before the rss field is refused,
            // never misread.
            let got = parse_stat(&STAT[..cut]);
            if cut < 100 {
                assert_eq!(got, None, "prefix of {cut} bytes");
            }
        }
        assert_eq!(parse_stat(b""), None);
        assert_eq!(parse_stat(b"no paren at all 1 2 3"), None);
        assert_eq!(parse_stat(b"1 (x) S notanumber 1 1"), None);
        assert_eq!(parse_stat(&[0xff, b')', 0xfe, b' ', b'1']), None);
    }

    const ROLLUP: &[u8] =
        b"55ae9efe4000-7fffb937d000 ---p 00000000 00:00 0                          [rollup]
Rss:                1640 kB
Pss:                 369 kB
Pss_Dirty:           112 kB
Pss_Anon:            112 kB
Pss_File:            257 kB
Pss_Shmem:             0 kB
Shared_Clean:       1464 kB
Shared_Dirty:          0 kB
Private_Clean:        64 kB
Private_Dirty:       112 kB
Referenced:         1640 kB
Anonymous:           112 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
";

    #[test]
    fn rollup_figures_in_bytes() {
        assert_eq!(
            parse_rollup(ROLLUP),
            Some(Rollup {
                rss: 1640 * 1024,
                pss: 369 * 1024,
                private: (64 + 112) * 1024,
            })
        );
    }

    #[test]
    fn truncated_or_garbage_rollup_is_refused() {
        // Cut anywhere before the Private_Dirty figure: refused, so a
        // half-read file never passes for a small process.
        let end = ROLLUP
            .windows(13)
            .position(|w| w == b"Private_Dirty")
            .unwrap();
        for cut in 0..end {
            assert_eq!(parse_rollup(&ROLLUP[..cut]), None, "prefix of {cut} bytes");
        }
        assert_eq!(parse_rollup(b""), None);
        assert_eq!(
            parse_rollup(b"Rss: x kB\nPss: 1 kB\nPrivate_Clean: 1 kB\nPrivate_Dirty: 1 kB\n"),
            None
        );
        assert_eq!(
            parse_rollup(b"Rss: 1\nPss: 1 kB\nPrivate_Clean: 1 kB\nPrivate_Dirty: 1 kB\n"),
            None
        );
        assert_eq!(parse_rollup(&[0xff; 64]), None);
        assert_eq!(
            parse_rollup(b"Rss: 1 kB\nPss: 2 kB\nPrivate_Clean: 3 kB\nPrivate_Dirty: 4 kB"),
            Some(Rollup {
                rss: 1024,
                pss: 2048,
                private: 7 * 1024
            })
        );
    }

    #[test]
    fn children_lists() {
        let mut out = vec![1];
        parse_children(b"12 13 4000 \n", &mut out);
        assert_eq!(out, [1, 12, 13, 4000]);
        out.clear();
        parse_children(b"", &mut out);
        parse_children(b"12 x -3 0 1", &mut out);
        assert_eq!(out, [12, 1]);
    }

    #[test]
    fn the_metric_asked_is_the_one_counted() {
        let r = RollupRead::Read(Rollup {
            rss: 30,
            pss: 20,
            private: 10,
        });
        assert_eq!(process_bytes(MemoryMetric::Rss, 30, r), Some((30, false)));
        assert_eq!(process_bytes(MemoryMetric::Pss, 30, r), Some((20, false)));
        assert_eq!(process_bytes(MemoryMetric::Uss, 30, r), Some((10, false)));
        // Unreadable: RSS stands in, and the sample says so.
        let u = RollupRead::Unreadable;
        assert_eq!(process_bytes(MemoryMetric::Pss, 30, u), Some((30, true)));
        assert_eq!(process_bytes(MemoryMetric::Uss, 30, u), Some((30, true)));
        assert_eq!(process_bytes(MemoryMetric::Pss, 30, RollupRead::Gone), None);
    }

    #[test]
    fn files_of_many_records_are_read_to_the_end() {
        // /proc/crypto is a static seq_file of many records, larger than
        // the kernel's first page: its reads stop short at record
        // boundaries (4021, 4057, ... bytes into a 64 KiB buffer), which
        // must not be taken for the end.
        let Ok(whole) = std::fs::read("/proc/crypto") else {
            return; // a kernel without it
        };
        let mut buf = Vec::with_capacity(16);
        read_into("/proc/crypto", &mut buf).unwrap();
        assert_eq!(buf, whole);
    }
}
