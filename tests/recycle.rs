//! Recycling with real processes: a child that grows is recycled after
//! `memory_samples` samples over its limit, the whole tree is measured,
//! PSS and RSS differ for a forked pool, `TASKS_DONE` recycles at N
//! exactly per incarnation, three instances roll one at a time (sampled:
//! never fewer than two ready), and a process over its limit at every
//! start backs off and ends FAILED with the reason.
//!
//! The children are small Python scripts (python3 is on every machine
//! the tests run on); they synchronise with the test through marker
//! files, written atomically.

mod support;

use std::path::Path;
use std::time::Duration;

use prodserver::supervisor::core::{InstanceStatus, Request};
use support::engine::{self, Setup};

const CHILD: &str = r#"
import os, signal, socket, sys, time

def mark(name, text=""):
    tmp = name + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, name)

def notify(msg):
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect(path)
    s.send(msg.encode())
    s.close()

def wait_for(name):
    while not os.path.exists(name):
        time.sleep(0.01)

MIB = 1024 * 1024
mode = sys.argv[1]
pid = os.getpid()
held = []

if mode == "grow":
    step = int(sys.argv[2])
    k = 1
    while True:
        wait_for(f"step-{k}")
        held.append(b"\x01" * (step * MIB))
        print(f"at step {k}", flush=True)
        mark(f"at-{k}-{pid}")
        k += 1
elif mode == "forked":
    held.append(b"\x01" * (int(sys.argv[2]) * MIB))
    for _ in range(int(sys.argv[3])):
        if os.fork() == 0:
            while True:
                time.sleep(1)
    mark(f"forked-{pid}")
    while True:
        time.sleep(1)
elif mode == "bigchild":
    if os.fork() == 0:
        held.append(b"\x01" * (int(sys.argv[2]) * MIB))
        mark(f"big-{os.getpid()}")
        while True:
            time.sleep(1)
    while True:
        time.sleep(1)
elif mode == "fat":
    held.append(b"\x01" * (int(sys.argv[2]) * MIB))
    while True:
        time.sleep(1)
elif mode == "tasks":
    notify("READY=1")
    while True:
        tasks = sorted(int(n[5:]) for n in os.listdir(".") if n.startswith("task-"))
        if not tasks:
            time.sleep(0.01)
            continue
        k = tasks[0]
        os.unlink(f"task-{k}")
        with open("done.log", "a") as f:
            f.write(f"done {k} {pid}\n")
        notify("TASKS_DONE=1")
elif mode == "rolling":
    time.sleep(0.3)  # loading the app
    notify("READY=1")
    wait_for("go")
    inst = os.environ["PRODSERVER_INSTANCE"]
    if not os.path.exists(f"done-{inst}"):
        mark(f"done-{inst}")
        notify("TASKS_DONE=1")
    while True:
        time.sleep(1)
"#;

/// The real interpreter, not a wrapper script (pyenv's shims run a shell
/// and a few helpers first, which would count in the tree).
fn python() -> String {
    let _no_engine_now = engine::exclusive();
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "python3: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn setup(config: &str) -> Setup {
    let s = Setup::new(&config.replace("\"python3\"", &format!("{:?}", python())));
    std::fs::write(s.path().join("child.py"), CHILD).unwrap();
    s
}

/// Writes `name` in `dir` atomically.
fn mark(dir: &Path, name: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, "").unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn has_marker(dir: &Path, prefix: &str) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().starts_with(prefix))
}

async fn wait_marker(dir: &Path, prefix: &str) {
    tokio::time::timeout(engine::T, async {
        while !has_marker(dir, prefix) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {prefix}* marker within {:?}", engine::T));
}

fn get<'a>(status: &'a [InstanceStatus], name: &str) -> &'a InstanceStatus {
    status
        .iter()
        .find(|s| s.id.to_string() == name)
        .unwrap_or_else(|| panic!("no {name} in {status:#?}"))
}

const MIB: u64 = 1024 * 1024;

#[test]
fn a_child_that_grows_in_steps_is_recycled_after_memory_samples_over_the_limit() {
    let s = setup(
        r#"
[processes.grow]
backend = "command"
command = ["python3", "child.py", "grow", "80"]
max_memory_per_child = "200MiB"
memory_metric = "rss"
memory_interval = "50ms"
memory_samples = 3
"#,
    );
    let dir = s.path().to_path_buf();
    let (_, out) = s.run(async |control, _| {
        let first = engine::wait_status(&control, "grow.1 running", |st| {
            get(st, "grow.1").pid.is_some()
        })
        .await;
        let pid = get(&first, "grow.1").pid.unwrap();
        // Two steps: about 170 MiB, under the limit.
        for k in 1..=2 {
            mark(&dir, &format!("step-{k}"));
            wait_marker(&dir, &format!("at-{k}-{pid}")).await;
        }
        // Measured under the limit after the second step (a sample of
        // its tree now holds both steps), and not recycled.
        let under = engine::wait_status(&control, "a sample after step 2", |st| {
            get(st, "grow.1")
                .usage
                .as_ref()
                .is_some_and(|u| u.bytes >= 160 * MIB)
        })
        .await;
        assert_eq!(get(&under, "grow.1").recycles, 0, "{under:#?}");
        // The third step crosses it: recycled, a new process.
        mark(&dir, "step-3");
        let after = engine::wait_status(&control, "grow.1 recycled", |st| {
            let g = get(st, "grow.1");
            g.recycles == 1 && g.pid.is_some_and(|p| p != pid)
        })
        .await;
        let reason = get(&after, "grow.1").last_recycle.clone().unwrap();
        assert!(
            reason.starts_with("recycled: ") && reason.ends_with("(rss, tree of 1, 3 samples)"),
            "{reason}"
        );
    });
    // Once, after the step that crossed (the recycle may overtake the
    // child's own "at step 3" line: it is measured while it allocates).
    let step2 = out.find("| at step 2").unwrap_or_else(|| panic!("{out}"));
    let recycled = out.find("| recycled: ").unwrap_or_else(|| panic!("{out}"));
    assert!(step2 < recycled, "{out}");
    assert_eq!(out.matches("| recycled: ").count(), 1, "{out}");
}

#[test]
fn a_small_parent_with_a_big_child_is_caught_by_the_tree_sum() {
    let s = setup(
        r#"
[processes.pool]
backend = "command"
command = ["python3", "child.py", "bigchild", "150"]
max_memory_per_child = "100MiB"
memory_metric = "rss"
memory_interval = "50ms"
memory_samples = 1
"#,
    );
    let (_, out) = s.run(async |control, _| {
        let st = engine::wait_status(&control, "pool.1 recycled", |st| {
            get(st, "pool.1").recycles >= 1
        })
        .await;
        let reason = get(&st, "pool.1").last_recycle.clone().unwrap();
        assert!(reason.contains("(rss, tree of 2, 1 sample)"), "{reason}");
    });
    assert!(out.contains("pool.1 "), "{out}");
}

#[test]
fn pss_and_rss_differ_for_a_forked_pool_and_each_metric_behaves_as_documented() {
    // A parent holding 120 MiB and three children sharing it copy-on-write:
    // RSS counts the shared pages four times (about 480 MiB), PSS once
    // (about 120 MiB), USS not at all (they are private to nobody).
    let pool = |name: &str, metric: &str| {
        format!(
            r#"
[processes.{name}]
backend = "command"
command = ["python3", "child.py", "forked", "120", "3"]
max_memory_per_child = "300MiB"
memory_metric = "{metric}"
memory_interval = "50ms"
memory_samples = 1
"#
        )
    };
    let s = setup(&(pool("by-rss", "rss") + &pool("by-pss", "pss") + &pool("by-uss", "uss")));
    s.run(async |control, _| {
        // Each measured with its whole pool (a tree of 4).
        let st = engine::wait_status(&control, "the pools measured whole", |st| {
            let whole = |n: &str| {
                let i = get(st, n);
                i.recycles >= 1 || i.usage.as_ref().is_some_and(|u| u.processes == 4)
            };
            whole("by-rss.1") && whole("by-pss.1") && whole("by-uss.1")
        })
        .await;
        assert!(
            get(&st, "by-rss.1").recycles >= 1 || {
                // Measured whole, yet not recycled: only if RSS were fair.
                panic!("RSS of the pool was under 300 MiB: {st:#?}")
            }
        );
        let reason = get(&st, "by-rss.1").last_recycle.clone().unwrap();
        // Over 300 MiB by RSS as soon as two children share the 120 MiB.
        assert!(
            reason.contains("(rss, tree of ") && reason.ends_with(", 1 sample)"),
            "{reason}"
        );
        let pss = get(&st, "by-pss.1");
        let uss = get(&st, "by-uss.1");
        assert_eq!((pss.recycles, uss.recycles), (0, 0), "{st:#?}");
        let pss_bytes = pss.usage.as_ref().unwrap().bytes;
        let uss_bytes = uss.usage.as_ref().unwrap().bytes;
        assert!((120 * MIB..250 * MIB).contains(&pss_bytes), "{st:#?}");
        assert!(uss_bytes < pss_bytes, "{st:#?}");
    });
}

#[test]
fn tasks_done_recycles_at_n_exactly_per_incarnation() {
    let s = setup(
        r#"
[processes.tasks]
backend = "command"
command = ["python3", "child.py", "tasks"]
max_tasks_per_child = 3
health = { notify = true }
"#,
    );
    let dir = s.path().to_path_buf();
    let done = |dir: &Path| -> Vec<(u32, i32)> {
        std::fs::read_to_string(dir.join("done.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[1].parse().unwrap(), f[2].parse().unwrap())
            })
            .collect()
    };
    let (_, out) = s.run(async |control, _| {
        let mut pids = Vec::new();
        for round in 0..2u32 {
            let st = engine::wait_status(&control, "tasks.1 ready", |st| {
                let t = get(st, "tasks.1");
                t.state == "ready" && t.recycles == round
            })
            .await;
            pids.push(get(&st, "tasks.1").pid.unwrap());
            // One task at a time, each done before the next is queued.
            for k in 1..=3 {
                let n = round * 3 + k;
                mark(&dir, &format!("task-{n}"));
                tokio::time::timeout(engine::T, async {
                    while !done(&dir).iter().any(|d| d.0 == n) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
                .await
                .expect("task done");
            }
        }
        let st = engine::wait_status(&control, "tasks.1 recycled twice", |st| {
            get(st, "tasks.1").recycles == 2
        })
        .await;
        let t = get(&st, "tasks.1");
        assert_eq!(t.tasks_total, 6, "{st:#?}");
        assert_eq!(t.last_recycle.as_deref(), Some("recycled after 3 tasks"));
        // Each incarnation did its three tasks.
        let by_pid = |pid: i32| done(&dir).iter().filter(|d| d.1 == pid).count();
        assert_eq!((by_pid(pids[0]), by_pid(pids[1])), (3, 3));
    });
    assert_eq!(out.matches("| recycled after 3 tasks").count(), 2, "{out}");
    // The exit summary keeps the counts.
    assert!(
        out.contains("tasks.1: stopped, 2 restarts (last: recycled after 3 tasks), 6 tasks done, 2 recycles, "),
        "{out}"
    );
}

#[test]
fn three_instances_recycle_one_at_a_time_and_two_stay_ready_throughout() {
    let s = setup(
        r#"
[processes.w]
backend = "command"
command = ["python3", "child.py", "rolling"]
instances = 3
max_tasks_per_child = 1
health = { notify = true }
"#,
    );
    let dir = s.path().to_path_buf();
    let (_, out) = s.run(async |control, _| {
        let ready = |st: &[InstanceStatus]| st.iter().filter(|i| i.state == "ready").count();
        let before = engine::wait_status(&control, "all ready", |st| ready(st) == 3).await;
        mark(&dir, "go");
        // Sample readiness all through the rollout.
        let mut lowest = 3;
        let after = engine::wait_status(&control, "every instance recycled and ready", |st| {
            lowest = lowest.min(ready(st));
            st.iter().all(|i| i.recycles == 1) && ready(st) == 3
        })
        .await;
        assert!(lowest >= 2, "capacity fell to {lowest}");
        for n in ["w.1", "w.2", "w.3"] {
            assert_ne!(engine::pid_of(&after, n), engine::pid_of(&before, n), "{n}");
        }
    });
    // One at a time: each instance's replacement was ready before the next
    // one was told to stop.
    let events: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("| recycled after") || l.ends_with("| ready"))
        .collect();
    let order: Vec<String> = events
        .iter()
        .map(|l| {
            let who = l.split_whitespace().next().unwrap();
            let what = if l.contains("recycled") {
                "recycle"
            } else {
                "ready"
            };
            format!("{who} {what}")
        })
        .collect();
    let recycles: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|(_, e)| e.ends_with("recycle"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(recycles.len(), 3, "{out}");
    for pair in recycles.windows(2) {
        let who = order[pair[0]].split(' ').next().unwrap().to_string();
        assert!(
            order[pair[0]..pair[1]].contains(&format!("{who} ready")),
            "the next recycle began before {who} was ready again: {order:?}"
        );
    }
}

#[test]
fn a_process_over_its_limit_at_every_start_backs_off_and_ends_failed() {
    let s = setup(
        r#"
[processes.fat]
backend = "command"
command = ["python3", "child.py", "fat", "150"]
max_memory_per_child = "100MiB"
memory_metric = "rss"
memory_interval = "50ms"
memory_samples = 1
max_restarts = 2
backoff = "100ms"

[processes.other]
backend = "command"
command = ["sleep", "1000"]
"#,
    );
    let (code, out) = s.run(async |control, _| {
        let st = engine::wait_status(&control, "fat.1 failed", |st| {
            get(st, "fat.1").state == "failed"
        })
        .await;
        // The rest of the stack runs on.
        assert_eq!(get(&st, "other.1").state, "ready");
        let reply = engine::ask(
            &control,
            Request::Restart {
                process: "other".into(),
                instance: None,
                reason: None,
            },
        )
        .await;
        assert_eq!(reply, prodserver::supervisor::core::Reply::Done);
    });
    assert_ne!(code, 0, "a FAILED process makes the exit code non-zero");
    // Backed off between the recycles, then gave up, saying why.
    assert!(out.matches("| restarting in ").count() >= 2, "{out}");
    let failed = out
        .lines()
        .find(|l| l.contains("fat.1") && l.contains("FAILED"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        failed.contains("max_restarts = 2") && failed.contains("the last one recycled: "),
        "{failed}"
    );
}
