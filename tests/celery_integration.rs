//! The embedded Celery integration with real Python: harmless without
//! Celery, and with Celery 5.7 (in-memory broker) a worker reports READY,
//! WATCHDOG, STATUS, TASKS_DONE from its pool child and STOPPING, and a
//! beat reports READY and ticks.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prodserver::backend;
use prodserver::celery;
use prodserver::notify::{self, sender_belongs, Message, NotifySocket};
use prodserver::os::{self, SpawnRequest};
use prodserver::plan::BackendKind;
use support::python::venv;
use tokio::io::AsyncReadExt;

/// Sends a sentinel after importing the module: if the import had sent
/// anything, it would arrive first.
const IMPORT_THEN_SENTINEL: &str = r#"
import os, socket
import prodserver_celery
a = os.environ["NOTIFY_SOCKET"]
a = "\0" + a[1:] if a[0] == "@" else a
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"SENTINEL=1", a)
"#;

async fn import_without_celery(sock: &NotifySocket, module_dir: &Path) {
    // -S: no site-packages, so Celery is certainly absent.
    let out = Command::new("python3")
        .args(["-S", "-c", IMPORT_THEN_SENTINEL])
        .env("PYTHONPATH", module_dir)
        .env("NOTIFY_SOCKET", sock.env_value())
        .env("WATCHDOG_USEC", "3000000")
        .output()
        .expect("python3");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let (messages, _) = tokio::time::timeout(Duration::from_secs(10), sock.recv())
        .await
        .expect("the sentinel")
        .unwrap();
    assert_eq!(messages, vec![Message::Other("SENTINEL".into())]);
}

#[tokio::test]
async fn module_without_celery_does_nothing() {
    let runtime = tempfile::tempdir().unwrap();
    let module_dir = celery::install(runtime.path()).unwrap();
    let path = NotifySocket::bind(&runtime.path().join("n.sock")).unwrap();
    import_without_celery(&path, &module_dir).await;
    let name = format!("prodserver-test-celery.{}", std::process::id());
    let abstract_sock = NotifySocket::bind_abstract(&name).unwrap();
    import_without_celery(&abstract_sock, &module_dir).await;

    // And without NOTIFY_SOCKET at all.
    let out = Command::new("python3")
        .args(["-S", "-c", "import prodserver_celery"])
        .env("PYTHONPATH", &module_dir)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The liveness rules of the module, on fake Celery objects: no broker
/// needed to see a stalled event loop or a stuck beat judged as such.
const LIVENESS_RULES: &str = r#"
import time
import prodserver_celery as m

class Heart:
    interval = 0.1

class Consumer:
    connection = object()
    heart = Heart()
    hub = object()

c = Consumer()
m._state["consumer"] = c
m._state["last_beat"] = time.monotonic()
assert m._worker_alive(), "heartbeats flowing"
m._state["last_beat"] = time.monotonic() - 1000
assert not m._worker_alive(), "event loop stalled"
c.connection = None
assert m._worker_alive(), "reconnecting to the broker is not a stall"
c.connection = object()
c.hub = None
assert m._worker_alive(), "no event loop to judge"

class Scheduler:
    max_interval = 1.0
    ticks = 0
    def tick(self):
        Scheduler.ticks += 1
        return 1.0

class Service:
    scheduler = Scheduler()

svc = Service()
m._on_beat_init(sender=svc)
assert m._beat_alive()
m._state["tick_started"] = m._state["tick_ended"] = time.monotonic() - 1000
assert not m._beat_alive(), "no tick for too long"
assert svc.scheduler.tick() == 1.0 and Scheduler.ticks == 1, "the wrapper calls through"
assert m._beat_alive(), "a tick was observed"

class Slotted:
    __slots__ = ("max_interval",)
    def __init__(self):
        self.max_interval = 1.0
    def tick(self):
        return 1.0

class Service2:
    scheduler = Slotted()

m._on_beat_init(sender=Service2())  # cannot wrap tick: still announces
print("ok")
"#;

#[tokio::test]
async fn module_liveness_rules() {
    let runtime = tempfile::tempdir().unwrap();
    let module_dir = celery::install(runtime.path()).unwrap();
    let sock = NotifySocket::bind(&runtime.path().join("n.sock")).unwrap();
    let out = Command::new("python3")
        .args(["-S", "-c", LIVENESS_RULES])
        .env("PYTHONPATH", &module_dir)
        .env("NOTIFY_SOCKET", sock.env_value())
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout == b"ok\n",
        "{:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Both beat_init calls announced readiness.
    for _ in 0..2 {
        let (messages, _) = sock.recv().await.unwrap();
        assert_eq!(messages[0], Message::Ready, "{messages:?}");
    }
}

const TESTAPP: &str = r#"
from celery import Celery
from celery.signals import worker_ready

app = Celery("testapp", broker="memory://")
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False)


@app.task
def add(x, y):
    return x + y


@worker_ready.connect
def _kick(sender=None, **kwargs):
    add.delay(1, 2)
    add.delay(3, 4)
"#;

/// A Celery process started like an instance, its output collected.
struct Started {
    pid: i32,
    child: tokio::process::Child,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Started {
    fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = os::kill_group(self.pid);
    }
}

/// Celery `kind` for app `testapp` with `args`, as its backend launches it
/// with the integration loaded.
fn start(
    kind: BackendKind,
    args: &[(&str, &str)],
    project: &Path,
    runtime: &Path,
    sock: &NotifySocket,
) -> Started {
    let venv = venv();
    let program = venv.join("bin/celery").to_string_lossy().into_owned();
    let args: Vec<(String, backend::ArgValue)> = args
        .iter()
        .map(|(k, v)| {
            let value = match *v {
                "true" => backend::ArgValue::Bool(true),
                text => backend::ArgValue::Str(text.to_owned()),
            };
            (k.to_string(), value)
        })
        .collect();
    let env = BTreeMap::new();
    let input = backend::BackendInput {
        process: "celery",
        project: "test",
        app: Some("testapp"),
        command: None,
        program: Some(&program),
        python: None,
        queues: &[],
        concurrency: (kind == BackendKind::CeleryWorker).then_some(1),
        args: &args,
        env: &env,
        runtime_dir: runtime,
        cwd: project,
        file_exists: &|_: &Path| false,
        celery_integration: true,
    };
    let integration = backend::resolve(kind, &input).expect("launch");
    let module_dir = celery::install(runtime).unwrap();
    assert_eq!(
        integration.celery.as_ref().map(|c| c.module_dir.as_path()),
        Some(module_dir.as_path())
    );
    let mut env = vec![(
        "PATH".to_owned(),
        format!("{}:/usr/bin:/bin", venv.join("bin").display()),
    )];
    // WATCHDOG_USEC = 3 s: the module pings every second.
    env.extend(notify::child_env(sock, Some(Duration::from_secs(3))));
    env.extend(integration.env);
    let spawned = os::spawn(&SpawnRequest {
        argv: integration.argv,
        env,
        cwd: project.to_owned(),
        creds: None,
    })
    .expect("spawn celery");
    let mut child = spawned.child;
    let output = Arc::new(Mutex::new(Vec::new()));
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let output = output.clone();
        let mut pipe = pipe;
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                output.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
    }
    Started {
        pid: spawned.pid,
        child,
        output,
    }
}

#[derive(Debug)]
struct Got {
    messages: Vec<Message>,
    pid: i32,
}

/// Receives until `done(all so far)` holds; every sender must belong to
/// the instance.
async fn receive_until(
    sock: &NotifySocket,
    started: &Started,
    within: Duration,
    mut done: impl FnMut(&[Got]) -> bool,
) -> Vec<Got> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got: Vec<Got> = Vec::new();
    while !done(&got) {
        let Ok(received) = tokio::time::timeout_at(deadline, sock.recv()).await else {
            panic!(
                "timed out; received {got:?}\n--- celery output ---\n{}",
                started.output()
            );
        };
        let (messages, sender) = received.unwrap();
        assert!(
            sender_belongs(sender.pid, started.pid),
            "sender {sender:?} is not part of the instance (pid {}): {messages:?}",
            started.pid
        );
        got.push(Got {
            messages,
            pid: sender.pid,
        });
    }
    got
}

fn count(got: &[Got], pred: impl Fn(&Message) -> bool) -> usize {
    got.iter()
        .flat_map(|g| g.messages.iter())
        .filter(|m| pred(m))
        .count()
}

fn project() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("testapp.py"), TESTAPP).unwrap();
    let path = dir.path().to_owned();
    (dir, path)
}

async fn stop(mut started: Started, sock: &NotifySocket, expect_stopping: bool) {
    os::send(started.pid, libc::SIGTERM).unwrap();
    if expect_stopping {
        receive_until(sock, &started, Duration::from_secs(30), |got| {
            count(got, |m| *m == Message::Stopping) > 0
        })
        .await;
    }
    let status = tokio::time::timeout(Duration::from_secs(30), started.child.wait())
        .await
        .expect("exits after TERM")
        .unwrap();
    assert!(status.success(), "{status:?}\n{}", started.output());
}

#[tokio::test]
async fn worker_reports_ready_status_watchdog_tasks_and_stopping() {
    let (_keep, project) = project();
    let runtime = tempfile::tempdir().unwrap();
    let sock = NotifySocket::bind(&runtime.path().join("w.sock")).unwrap();
    let started = start(
        BackendKind::CeleryWorker,
        &[
            ("hostname", "celery@%h"),
            ("pool", "prefork"),
            ("without-mingle", "true"),
            ("without-gossip", "true"),
            ("loglevel", "info"),
        ],
        &project,
        runtime.path(),
        &sock,
    );
    let got = receive_until(&sock, &started, Duration::from_secs(90), |got| {
        count(got, |m| *m == Message::Ready) == 1
            && count(got, |m| matches!(m, Message::TasksDone(_))) >= 2
            // One with READY=1, then at least two from the timer thread.
            && count(got, |m| *m == Message::Watchdog) >= 3
    })
    .await;
    let ready = got
        .iter()
        .find(|g| g.messages.contains(&Message::Ready))
        .unwrap();
    assert_eq!(ready.pid, started.pid, "READY=1 from the main process");
    assert!(
        ready.messages.iter().any(|m| matches!(m, Message::Status(s) if s.ends_with("active tasks") || s.ends_with("active task"))),
        "{ready:?}"
    );
    let pool_child = got
        .iter()
        .find(|g| {
            g.messages
                .iter()
                .any(|m| matches!(m, Message::TasksDone(1)))
        })
        .unwrap();
    assert_ne!(
        pool_child.pid, started.pid,
        "TASKS_DONE comes from the prefork pool child"
    );
    stop(started, &sock, true).await;
}

#[tokio::test]
async fn beat_reports_ready_and_ticks() {
    let (_keep, project) = project();
    let runtime = tempfile::tempdir().unwrap();
    let sock = NotifySocket::bind(&runtime.path().join("b.sock")).unwrap();
    let schedule = project.join("celerybeat-schedule");
    let started = start(
        BackendKind::CeleryBeat,
        &[
            ("max-interval", "1"),
            ("loglevel", "info"),
            ("schedule", &schedule.display().to_string()),
        ],
        &project,
        runtime.path(),
        &sock,
    );
    let got = receive_until(&sock, &started, Duration::from_secs(90), |got| {
        count(got, |m| *m == Message::Ready) == 1 && count(got, |m| *m == Message::Watchdog) >= 3
    })
    .await;
    assert!(got.iter().all(|g| g.pid == started.pid), "{got:?}");
    assert!(
        started.output().contains("beat: Starting"),
        "{}",
        started.output()
    );
    stop(started, &sock, false).await;
}

const SPINAPP: &str = r#"
import os, time
from celery import Celery
from celery.signals import worker_ready

app = Celery("spinapp", broker="memory://")
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False)


@app.task
def spin(seconds, marker):
    # Holds the CPU and never yields to gevent's hub.
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    with open(marker + ".tmp", "w") as f:
        f.write(str(n))
    os.rename(marker + ".tmp", marker)


@worker_ready.connect
def _kick(sender=None, **kwargs):
    spin.delay(float(os.environ["SPIN_SECONDS"]), os.environ["SPIN_MARKER"])
"#;

/// Under `-P gevent` the module's pinger must be a real thread: a task
/// that holds the CPU for three watchdog periods would starve a greenlet,
/// and the worker would be restarted as unhealthy with its task cut off.
#[test]
fn a_cpu_bound_task_on_a_gevent_pool_does_not_starve_the_watchdog() {
    const T: Duration = Duration::from_secs(90);
    let venv = venv();
    let marker = tempfile::tempdir().unwrap();
    let done = marker.path().join("spun");
    let p = support::Project::new(&format!(
        r#"
[processes.worker]
backend = "celery-worker"
app = "spinapp"
program = "{}/bin/celery"
concurrency = 4
args = {{ pool = "gevent", without-mingle = true, without-gossip = true, loglevel = "info" }}
env = {{ SPIN_SECONDS = "6", SPIN_MARKER = "{}" }}
# The integration pings every second (a third of WATCHDOG_USEC, at least 1 s).
health = {{ notify = true, watchdog = "2s" }}
stop_timeout = "30s"
"#,
        venv.display(),
        done.display()
    ));
    p.write("spinapp.py", SPINAPP);
    let mut run = p.spawn(&["start"]);
    run.wait_for("worker.1 | ready", T);
    let finished =
        support::wait_until(T, || done.exists() || run.count("worker.1 | unhealthy") > 0);
    assert!(finished, "{}", run.output());
    assert_eq!(run.count("worker.1 | unhealthy"), 0, "{}", run.output());
    assert!(done.exists(), "{}", run.output());
    assert_eq!(run.count("worker.1 | spawned"), 1, "{}", run.output());
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
}
