//! The child protocol with real processes: a Python child using the
//! `sdnotify` package talks to a NotifySocket; its descendants are
//! accepted, strangers are refused by the credential check.

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use prodserver::notify::{self, sender_belongs, Message, NotifySocket};
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

/// Receives `n` datagrams (30 s at most), judging each sender on arrival.
async fn receive(sock: &NotifySocket, instance: i32, n: usize) -> Vec<Got> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < n {
        let (messages, sender) = tokio::time::timeout_at(deadline, sock.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} datagrams arrived: {got:?}", got.len()))
            .expect("recv");
        got.push(Got {
            messages,
            pid: sender.pid,
            belongs: sender_belongs(sender.pid, instance),
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
