//! The child protocol with real processes: a Python child using the
//! `sdnotify` package talks to a NotifySocket; its descendants are
//! accepted, strangers are refused by the credential check.

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use prodserver::notify::{self, sender_belongs, Message, NotifySocket, SenderView};
use prodserver::os::{self, SpawnRequest};
use support::python::venv;
use support::stat;

/// Kills what a test started, even when it fails half-way.
#[derive(Default)]
struct Cleanup {
    groups: Vec<i32>,
    pids: Vec<i32>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for &g in &self.groups {
            let _ = os::kill_group(g);
        }
        for &p in &self.pids {
            let _ = os::send(p, libc::SIGKILL);
        }
    }
}

#[derive(Debug)]
struct Got {
    messages: Vec<Message>,
    pid: i32,
    belongs: bool,
}

/// Receives `n` datagrams (30 s at most), judging each sender on arrival,
/// by the walk and by the engine's per-instance view, which must agree.
/// Each sender is judged twice by the view: the second time from memory.
async fn receive(sock: &NotifySocket, instance: i32, n: usize) -> Vec<Got> {
    let mut view = SenderView::new(instance);
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < n {
        let (messages, sender) = tokio::time::timeout_at(deadline, sock.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} datagrams arrived: {got:?}", got.len()))
            .expect("recv");
        let belongs = sender_belongs(sender.pid, instance);
        for _ in 0..2 {
            assert_eq!(view.accepts(sender.pid), belongs, "{messages:?}");
        }
        got.push(Got {
            messages,
            pid: sender.pid,
            belongs,
        });
    }
    got
}

/// The instance. Its two children send TASKS_DONE, then stay alive to be
/// checked and leave with the instance (even if the test fails first).
const CHILD: &str = r#"
import os, subprocess, sys, time
import sdnotify
n = sdnotify.SystemdNotifier(debug=True)
n.notify("READY=1")
n.notify("STATUS=warming up")
n.notify("WATCHDOG=1")
code = (
    "import os, sys, time, sdnotify\n"
    "parent = os.getppid()\n"
    "if sys.argv[1] == 'setsid': os.setsid()\n"
    "sdnotify.SystemdNotifier(debug=True).notify('TASKS_DONE=' + sys.argv[2])\n"
    "while os.getppid() == parent: time.sleep(0.2)\n"
)
subprocess.Popen([sys.executable, "-c", code, "group", "2"])
subprocess.Popen([sys.executable, "-c", code, "setsid", "3"])
time.sleep(300)
"#;

fn python(venv: &Path) -> String {
    venv.join("bin/python").to_string_lossy().into_owned()
}

#[tokio::test]
async fn sdnotify_child_and_its_descendants_are_heard_strangers_are_not() {
    let venv = venv();
    let runtime = tempfile::tempdir().unwrap();
    let dir = notify::prepare_dir(runtime.path()).unwrap();
    let sock = NotifySocket::for_instance(&dir, 0, None).unwrap();
    let mut cleanup = Cleanup::default();

    let mut env = vec![("PATH".to_owned(), "/usr/bin:/bin".to_owned())];
    env.extend(notify::child_env(&sock, None));
    let spawned = os::spawn(&SpawnRequest {
        argv: vec![python(venv), "-c".into(), CHILD.into()],
        env: env.clone(),
        cwd: "/".into(),
        creds: None,
    })
    .unwrap();
    let instance = spawned.pid;
    cleanup.groups.push(instance);

    // A process that is not the instance's descendant, though it knows
    // the socket: a child of the test process, in the test's group.
    let mut stranger = Command::new(python(venv))
        .args([
            "-c",
            "import sys, sdnotify; sdnotify.SystemdNotifier(debug=True).notify('TASKS_DONE=9'); sys.stdin.read()",
        ])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    cleanup.pids.push(stranger.id() as i32);
    // And the test process itself.
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"TASKS_DONE=11", sock.path().unwrap())
        .unwrap();

    let got = receive(&sock, instance, 7).await;
    for g in &got {
        if g.messages == [Message::TasksDone(3)] {
            cleanup.pids.push(g.pid); // left the group: kill it by pid
        }
    }
    let find = |m: Message| {
        got.iter()
            .find(|g| g.messages == [m.clone()])
            .unwrap_or_else(|| panic!("no {m:?} in {got:?}"))
    };

    for m in [
        Message::Ready,
        Message::Status("warming up".into()),
        Message::Watchdog,
    ] {
        let g = find(m);
        assert_eq!(g.pid, instance, "{g:?}");
        assert!(g.belongs, "{g:?}");
    }
    let in_group = find(Message::TasksDone(2));
    assert_ne!(in_group.pid, instance);
    assert_eq!(stat(in_group.pid).map(|s| s.pgrp), Some(instance));
    assert!(
        in_group.belongs,
        "a process of the instance's group: {in_group:?}"
    );

    let left = find(Message::TasksDone(3));
    assert_ne!(
        stat(left.pid).map(|s| s.pgrp),
        Some(instance),
        "it called setsid"
    );
    assert!(left.belongs, "a descendant outside the group: {left:?}");

    let g = find(Message::TasksDone(9));
    assert_eq!(g.pid, stranger.id() as i32);
    assert!(!g.belongs, "a stranger: {g:?}");

    let g = find(Message::TasksDone(11));
    assert_eq!(g.pid, std::process::id() as i32);
    assert!(!g.belongs, "the test process: {g:?}");

    drop(stranger.stdin.take());
    let _ = stranger.wait();
}

/// Sends `READY=1` once the file in argv[1] exists, and says how it went.
const READY_WHEN_TOLD: &str = r#"
import os, socket, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
try:
    s.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
    print("sent READY=1", flush=True)
except OSError as e:
    print("send failed:", e, flush=True)
time.sleep(600)
"#;

/// A project whose one process, `name`, turns ready when told (see
/// [`READY_WHEN_TOLD`]) through `trigger`.
fn told_project(name: &str, trigger: &Path) -> support::Project {
    let p = support::Project::new(&format!(
        r#"
[processes.{name}]
backend = "command"
command = ["{}", "child.py", "{}"]
health = {{ notify = true }}
"#,
        python(venv()),
        trigger.display()
    ));
    p.write("child.py", READY_WHEN_TOLD);
    p
}

/// `prodserver start` in `p`, with `runtime` as its runtime directory; in
/// a PID namespace of its own (as in a container) when `own_pid_ns`.
fn start_in(p: &support::Project, runtime: &Path, own_pid_ns: bool) -> support::Running {
    let mut cmd = if own_pid_ns {
        let mut cmd = Command::new("unshare");
        // --kill-child: prodserver dies with unshare if the test fails.
        cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(support::BIN)
            .arg("start");
        cmd
    } else {
        let mut cmd = Command::new(support::BIN);
        cmd.arg("start");
        cmd
    };
    cmd.current_dir(p.path())
        .env("XDG_RUNTIME_DIR", runtime)
        .env("NO_COLOR", "1")
        .env_remove("PRODSERVER_CONFIG");
    support::Running::spawn(cmd)
}

/// SIGTERM to prodserver (not to unshare, its parent, when `own_ns`), and
/// a clean exit.
fn stop(run: &mut support::Running, own_ns: bool) {
    let pid = if own_ns {
        support::descendants(run.pid())[0]
    } else {
        run.pid()
    };
    os::send(pid, libc::SIGTERM).unwrap();
    assert_eq!(
        run.wait_exit(Duration::from_secs(30)),
        0,
        "{}",
        run.output()
    );
}

fn touch(path: &Path) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, "").unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Two prodservers share a runtime directory, the second one in another
/// PID namespace, where pids mean nothing: either the first one's pid
/// does not exist there (a container next to the host), or both are pid 1
/// (two containers). Starting the second must leave the first one's
/// notify sockets alone: its instance still turns ready afterwards.
#[test]
fn a_second_prodserver_in_another_pid_namespace_leaves_our_sockets_alone() {
    const T: Duration = Duration::from_secs(30);
    for first_in_own_ns in [false, true] {
        let scratch = tempfile::tempdir().unwrap();
        let runtime = tempfile::tempdir().unwrap();
        let first_told = scratch.path().join("first-go");
        let second_told = scratch.path().join("second-go");
        touch(&second_told);
        let first = told_project("first", &first_told);
        let second = told_project("second", &second_told);

        let mut a = start_in(&first, runtime.path(), first_in_own_ns);
        a.wait_for("first.1 | spawned", T);
        let mut b = start_in(&second, runtime.path(), true);
        b.wait_for("second.1 | ready", T);
        // Only now does the first instance speak to its socket.
        touch(&first_told);
        let line = a.wait_for_line(T, |l| {
            l.contains("first.1 | ready") || l.contains("first.1 | send failed")
        });
        assert!(
            line.contains("ready"),
            "first in its own PID namespace: {first_in_own_ns}\n{}\nthe second:\n{}",
            a.output(),
            b.output()
        );
        for (run, own_ns) in [(&mut a, first_in_own_ns), (&mut b, true)] {
            stop(run, own_ns);
        }
        // Both gone: their run folders with them.
        assert!(support::wait_until(Duration::from_secs(10), || {
            std::fs::read_dir(runtime.path().join("n"))
                .map(|d| d.flatten().all(|e| e.file_name() == ".lock"))
                .unwrap_or(true)
        }));
    }
}
