//! Memory of a process tree (`os::memory`), on real Python processes that
//! fork and touch known amounts of memory. Each script writes marker files
//! atomically (write, then rename) once its memory is in place, and the
//! test polls for them with a deadline.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use prodserver::os::memory::{is_child_of, sample_tree, Sampler, TreeSample};
use prodserver::plan::MemoryMetric;

const MIB: u64 = 1 << 20;

/// Helpers every script starts with: `mark(name)` writes a marker
/// atomically; `hold()` keeps the process alive until killed.
const PRELUDE: &str = r#"
import os, sys, signal, threading
D = sys.argv[1]
def mark(name, text=""):
    tmp = os.path.join(D, name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, os.path.join(D, name))
def hold():
    while True:
        signal.pause()
def touched(mib):
    # bytes of one repeated value: every page written, none left as the
    # shared zero page.
    return b"x" * (mib << 20)
"#;

/// A script's process group, SIGKILLed and reaped on drop.
struct Tree {
    child: Child,
    dir: tempfile::TempDir,
}

impl Tree {
    fn start(script: &str) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("python3")
            .arg("-c")
            .arg(format!("{PRELUDE}\n{script}"))
            .arg(dir.path())
            .process_group(0)
            .spawn()
            .expect("python3");
        Tree { child, dir }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for `marker` and returns its text.
    fn wait(&mut self, marker: &str) -> String {
        let path = self.dir.path().join(marker);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                return text;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the script exited ({status}) before writing {marker}");
            }
            assert!(Instant::now() < deadline, "no {marker} within 30 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}

fn sample(root: i32, metric: MemoryMetric) -> TreeSample {
    sample_tree(root, metric).expect("the root is alive")
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

#[test]
fn forked_children_sharing_memory_count_once_in_pss() {
    let mut tree = Tree::start(
        r#"
import gc
big = touched(64)
gc.freeze()  # the collector would otherwise write to every object's header
for i in range(3):
    if os.fork() == 0:
        mark(f"child{i}")
        hold()
mark("parent")
hold()
"#,
    );
    tree.wait("parent");
    for i in 0..3 {
        tree.wait(&format!("child{i}"));
    }
    let rss = sample(tree.pid(), MemoryMetric::Rss);
    let pss = sample(tree.pid(), MemoryMetric::Pss);
    let uss = sample(tree.pid(), MemoryMetric::Uss);
    let say = format!(
        "rss {:.1} MiB, pss {:.1} MiB, uss {:.1} MiB",
        mib(rss.bytes),
        mib(pss.bytes),
        mib(uss.bytes)
    );
    for (s, metric) in [
        (&rss, MemoryMetric::Rss),
        (&pss, MemoryMetric::Pss),
        (&uss, MemoryMetric::Uss),
    ] {
        assert_eq!(s.metric, metric, "{s:?}");
        assert_eq!(s.processes, 4, "{s:?}");
        assert_eq!(s.children.len(), 3, "{s:?}");
        assert!(!s.approximate, "{s:?}");
        assert!(s.cpu_ticks > 0, "python took no CPU time at all? {s:?}");
    }
    // Each of the four maps the same 64 MiB: RSS counts it four times.
    assert!(rss.bytes >= 4 * 64 * MIB, "{say}");
    // PSS counts it once (plus four interpreters' own pages).
    assert!(pss.bytes >= 64 * MIB, "{say}");
    assert!(pss.bytes < 64 * MIB + 4 * 16 * MIB, "{say}");
    assert!(pss.bytes < rss.bytes / 2, "{say}");
    // USS counts only what each owns alone: the shared 64 MiB not at all.
    assert!(uss.bytes < pss.bytes, "{say}");
    assert!(uss.bytes < 64 * MIB, "{say}");
    // Each child's own share of the pages: a quarter of 64 MiB in PSS,
    // all of it in RSS.
    for c in &pss.children {
        assert!(c.bytes >= 16 * MIB && c.bytes < 32 * MIB, "{c:?} ({say})");
    }
    for c in &rss.children {
        assert!(c.bytes >= 64 * MIB, "{c:?} ({say})");
    }
    // A 200 MiB limit: the RSS (over 256 MiB) does not settle it, so the
    // PSS is read, and it is well within.
    let within = Sampler::new()
        .sample_tree_within(tree.pid(), MemoryMetric::Pss, 200 * MIB)
        .unwrap();
    assert_eq!(within.metric, MemoryMetric::Pss, "{within:?}");
    assert!(within.bytes < 200 * MIB, "{within:?}");
}

#[test]
fn within_a_limit_that_rss_already_meets_pss_is_not_read() {
    let mut tree = Tree::start(
        r#"
if os.fork() == 0:
    big = touched(100)
    mark("child")
    hold()
hold()
"#,
    );
    tree.wait("child");
    let mut sampler = Sampler::new();
    for metric in [MemoryMetric::Pss, MemoryMetric::Uss] {
        // RSS ≤ 1 GiB, so PSS and USS are too: RSS is reported.
        let s = sampler
            .sample_tree_within(tree.pid(), metric, 1 << 30)
            .unwrap();
        assert_eq!(s.metric, MemoryMetric::Rss, "{s:?}");
        assert!(s.bytes >= 100 * MIB && s.bytes < (1 << 30), "{s:?}");
        assert_eq!((s.processes, s.children.len()), (2, 1), "{s:?}");
        // Over 50 MiB of RSS: the metric asked is read, and over it too.
        let s = sampler
            .sample_tree_within(tree.pid(), metric, 50 * MIB)
            .unwrap();
        assert_eq!(s.metric, metric, "{s:?}");
        assert!(s.bytes > 50 * MIB, "{s:?}");
        assert_eq!(s.children[0].processes, 1, "{s:?}");
    }
}

#[test]
fn a_small_parent_with_a_big_child_is_caught_by_the_tree_sum() {
    let mut tree = Tree::start(
        r#"
pid = os.fork()
if pid == 0:
    big = touched(100)
    mark("child")
    hold()
mark("parent", str(pid))
hold()
"#,
    );
    let child: i32 = tree.wait("parent").parse().unwrap();
    tree.wait("child");
    for metric in [MemoryMetric::Rss, MemoryMetric::Pss, MemoryMetric::Uss] {
        let s = sample(tree.pid(), metric);
        assert_eq!(s.processes, 2, "{metric:?}: {s:?}");
        assert!(s.bytes >= 100 * MIB, "{metric:?}: {s:?}");
        assert_eq!(s.children.len(), 1, "{metric:?}: {s:?}");
        let c = &s.children[0];
        assert_eq!((c.pid, c.processes), (child, 1), "{metric:?}: {s:?}");
        assert!(c.bytes >= 100 * MIB, "{metric:?}: {s:?}");
        let root_own = s.bytes - c.bytes;
        assert!(
            root_own < 30 * MIB,
            "{metric:?}: root's own {root_own} of {s:?}"
        );
    }
}

/// A grandchild forked from a second thread of the child: found through
/// every thread's children list (or through the parent scan).
const GRANDCHILD: &str = r#"
if os.fork() == 0:
    def fork_grandchild():
        if os.fork() == 0:
            big = touched(50)
            mark("grandchild")
            hold()
        threading.Event().wait()  # the thread stays, owning its child
    threading.Thread(target=fork_grandchild, daemon=True).start()
    hold()
hold()
"#;

fn grandchild_counted(sampler: &mut Sampler) {
    let mut tree = Tree::start(GRANDCHILD);
    tree.wait("grandchild");
    let s = sampler
        .sample_tree(tree.pid(), MemoryMetric::Pss)
        .expect("the root is alive");
    assert_eq!(s.processes, 3, "{s:?}");
    assert_eq!(s.children.len(), 1, "{s:?}");
    assert_eq!(s.children[0].processes, 2, "{s:?}");
    assert!(s.children[0].bytes >= 50 * MIB, "{s:?}");
    assert!(s.bytes >= 50 * MIB, "{s:?}");
}

#[test]
fn a_grandchild_forked_by_another_thread_is_counted() {
    grandchild_counted(&mut Sampler::new());
}

#[test]
fn without_children_files_the_parent_scan_finds_the_same_tree() {
    grandchild_counted(&mut Sampler::scanning_parents());
}

#[test]
fn a_sampler_reused_across_trees_gives_each_its_own() {
    let mut sampler = Sampler::new();
    let mut a = Tree::start("big = touched(40)\nmark('up')\nhold()");
    let mut b = Tree::start("mark('up')\nhold()");
    a.wait("up");
    b.wait("up");
    let sa = sampler.sample_tree(a.pid(), MemoryMetric::Uss).unwrap();
    let sb = sampler.sample_tree(b.pid(), MemoryMetric::Uss).unwrap();
    let sa2 = sampler.sample_tree(a.pid(), MemoryMetric::Uss).unwrap();
    assert!(sa.bytes >= 40 * MIB && sb.bytes < 20 * MIB, "{sa:?} {sb:?}");
    assert_eq!((sa.processes, sb.processes), (1, 1));
    assert!(sa2.bytes.abs_diff(sa.bytes) < 4 * MIB, "{sa:?} {sa2:?}");
}

#[test]
fn a_root_that_exited_gives_none() {
    // Exited and not yet reaped (a zombie): no memory to speak of.
    let mut tree = Tree::start("mark('up')");
    tree.wait("up");
    let pid = tree.pid();
    assert!(
        wait_for(
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s
                .rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z')))
        ),
        "never became a zombie"
    );
    assert_eq!(sample_tree(pid, MemoryMetric::Pss), None);
    // Reaped: no such process.
    tree.child.wait().unwrap();
    assert_eq!(sample_tree(pid, MemoryMetric::Rss), None);
    assert_eq!(sample_tree(0, MemoryMetric::Rss), None);
    assert_eq!(sample_tree(-1, MemoryMetric::Rss), None);
}

#[test]
fn is_child_of_checks_parent_and_life() {
    let mut tree = Tree::start(
        r#"
pid = os.fork()
if pid == 0:
    mark("child")
    hold()
mark("parent", str(pid))
hold()
"#,
    );
    let child: i32 = tree.wait("parent").parse().unwrap();
    tree.wait("child");
    let me = std::process::id() as i32;
    assert!(is_child_of(tree.pid(), me));
    assert!(is_child_of(child, tree.pid()));
    assert!(!is_child_of(child, me), "a grandchild is not a child");
    assert!(!is_child_of(tree.pid(), 1));
    assert!(!is_child_of(0, me));
    assert!(!is_child_of(-1, me));
    // Killed and still unreaped (a zombie), then reaped: neither alive.
    let pid = tree.pid();
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(wait_for(|| !is_child_of(pid, me)), "a zombie is not alive");
    tree.child.wait().unwrap();
    assert!(!is_child_of(pid, me));
}

fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn files_kept_between_samples_follow_processes_not_pids() {
    let mut tree = Tree::start(
        r#"
pid = os.fork()
if pid == 0:
    hold()
def reap(*_):
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    mark("reaped")
signal.signal(signal.SIGUSR1, reap)
mark("parent", str(pid))
hold()
"#,
    );
    let child: i32 = tree.wait("parent").parse().unwrap();
    let mut sampler = Sampler::new();
    let s = sampler.sample_tree(tree.pid(), MemoryMetric::Rss).unwrap();
    assert_eq!(s.processes, 2, "{s:?}");
    assert_eq!(sampler.kept_files(), 2);
    sampler.end_sweep();
    // The child is killed and reaped: its kept file now names no process,
    // and the next sample finds only the parent.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(tree.pid()),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    tree.wait("reaped");
    assert!(!is_child_of(child, tree.pid()));
    let s = sampler.sample_tree(tree.pid(), MemoryMetric::Rss).unwrap();
    assert_eq!((s.processes, s.children.len()), (1, 0), "{s:?}");
    // Its file is closed at the end of the sweep that did not see it.
    sampler.end_sweep();
    assert_eq!(sampler.kept_files(), 1);
    // The parent's kept file still reads the same process.
    let again = sampler.sample_tree(tree.pid(), MemoryMetric::Rss).unwrap();
    assert_eq!(again.processes, 1, "{again:?}");
}
