//! Health checks through the built binary, with real children: readiness
//! gates dependents (checked by timestamps), liveness restarts exactly the
//! failing process, watchdogs expire, readiness that never comes restarts
//! with backoff, a child using the `sdnotify` package is heard and a
//! stranger is not.

mod support;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::ports::reserve;
use support::{python, Project, Running};

const T: Duration = Duration::from_secs(30);

/// A stdlib HTTP server: binds after `DELAY` seconds, answers /healthz/
/// with the status in the file `STATUS_FILE` (200 if absent), and stamps
/// `bound-PORT` with the time it started listening. Marker files here and
/// in every child below are written whole (temporary file, then rename), so
/// a test that sees one can read it.
const SERVER: &str = r#"
import http.server, os, sys, time
def mark(name, text):
    with open(name + ".tmp", "w") as f:
        f.write(text)
    os.rename(name + ".tmp", name)
port, delay, status_file = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
time.sleep(delay)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            code = int(open(status_file).read())
        except OSError:
            code = 200
        self.send_response(code); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", port), H)
mark("bound-%d" % port, str(time.time()))
print("listening", flush=True)
s.serve_forever()
"#;

/// Writes its start time into `started-NAME` (whole, by rename).
const STAMP: &str = r#"["python3", "-c", "import os, sys, time\nname = 'started-' + sys.argv[1]\nwith open(name + '.tmp', 'w') as f:\n    f.write(str(time.time()))\nos.rename(name + '.tmp', name)\ntime.sleep(600)", "NAME"]"#;

/// The time stamped in `file`; markers are renamed into place once
/// written, so an existing one is complete.
fn time_in(p: &Project, file: &str) -> f64 {
    std::fs::read_to_string(p.path().join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn stop(mut run: Running) -> String {
    run.signal(libc::SIGTERM);
    let code = run.wait_exit(T);
    assert_eq!(code, 0, "{}", run.output());
    run.output()
}

#[test]
fn healthy_dependency_waits_for_the_http_probe() {
    let ports = reserve();
    let port = ports.port(0);
    let p = Project::new(&format!(
        r#"
[processes.web]
backend = "command"
command = ["python3", "server.py", "{port}", "1.0", "web-status"]
health = {{ http = "http://127.0.0.1:{port}/healthz/", interval = "200ms" }}

[processes.after]
backend = "command"
command = {stamp}
depends_on = {{ web = "healthy" }}
"#,
        stamp = STAMP.replace("NAME", "after")
    ));
    p.write("server.py", SERVER);
    let run = p.spawn(&["start"]);
    run.wait_for("web.1 | ready", T);
    run.wait_for("after.1 | spawned", T);
    support::wait_until(T, || p.path().join("started-after").exists());
    let bound = time_in(&p, &format!("bound-{port}"));
    let after = time_in(&p, "started-after");
    assert!(
        after >= bound,
        "the dependent started at {after}, before web listened at {bound}"
    );
    stop(run);
}

#[test]
fn tcp_exec_and_log_readiness_gate_their_dependents() {
    let ports = reserve();
    let port = ports.port(0);
    let p = Project::new(&format!(
        r#"
[processes.tcp]
backend = "command"
command = ["python3", "server.py", "{port}", "0.5", "tcp-status"]
health = {{ tcp = "127.0.0.1:{port}", interval = "200ms" }}

[processes.exec]
backend = "command"
command = ["sh", "-c", "sleep 0.5; date +%s.%N > exec-flag.tmp; mv exec-flag.tmp exec-flag; exec sleep 600"]
health = {{ exec = ["test", "-f", "exec-flag"], interval = "100ms" }}

[processes.log]
backend = "command"
command = ["sh", "-c", "echo booting; sleep 0.5; python3 -c 'import time; print(time.time())' > log-ready.tmp; mv log-ready.tmp log-ready; echo Listening at http://x; exec sleep 600"]
health = {{ log = "^Listening at" }}

[processes.after]
backend = "command"
command = {stamp}
depends_on = {{ tcp = "healthy", exec = "healthy", log = "healthy" }}
"#,
        stamp = STAMP.replace("NAME", "after")
    ));
    p.write("server.py", SERVER);
    let run = p.spawn(&["start"]);
    for name in ["tcp", "exec", "log"] {
        run.wait_for(&format!("{name}.1 | ready"), T);
    }
    support::wait_until(T, || p.path().join("started-after").exists());
    let after = time_in(&p, "started-after");
    for file in [
        format!("bound-{port}"),
        "exec-flag".into(),
        "log-ready".into(),
    ] {
        let ready = time_in(&p, &file);
        assert!(
            after >= ready,
            "the dependent started at {after}, before {file} at {ready}"
        );
    }
    stop(run);
}

#[test]
fn a_liveness_failure_restarts_exactly_the_failing_process() {
    let ports = reserve();
    let (good, bad) = (ports.port(0), ports.port(1));
    let p = Project::new(&format!(
        r#"
[processes.good]
backend = "command"
command = ["python3", "server.py", "{good}", "0", "good-status"]
health = {{ http = "http://127.0.0.1:{good}/healthz/", interval = "100ms", retries = 2 }}

[processes.bad]
backend = "command"
command = ["python3", "server.py", "{bad}", "0", "bad-status"]
health = {{ http = "http://127.0.0.1:{bad}/healthz/", interval = "100ms", retries = 2 }}
stop_timeout = "2s"
"#
    ));
    p.write("server.py", SERVER);
    let run = p.spawn(&["start"]);
    run.wait_for("good.1 | ready", T);
    run.wait_for("bad.1 | ready", T);
    p.write_atomic("bad-status", "503");
    let line = run.wait_for("bad.1 | unhealthy:", T);
    assert!(
        line.ends_with("unhealthy: GET /healthz/ -> 503 (2/2)"),
        "{line}"
    );
    run.wait_for_count("bad.1 | spawned", 2, T);
    // Let it come back healthy, then check the good one was never touched.
    std::fs::remove_file(p.path().join("bad-status")).expect("rm");
    run.wait_for_count("bad.1 | ready", 2, T);
    let out = stop(run);
    assert_eq!(out.matches("good.1 | spawned").count(), 1, "{out}");
    assert!(!out.contains("good.1 | unhealthy"), "{out}");
    assert!(
        !out.contains("bad.1 | restarting in"),
        "a liveness restart skips the backoff: {out}"
    );
}

#[test]
fn a_missed_watchdog_restarts_the_instance() {
    let p = Project::new(
        r#"
[processes.pinger]
backend = "command"
# Pings three times, then hangs.
command = ["python3", "-c", "import os, socket, time\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.connect(os.environ['NOTIFY_SOCKET'])\ns.send(b'READY=1')\nfor _ in range(3):\n    s.send(b'WATCHDOG=1'); time.sleep(0.1)\nprint('hanging', flush=True)\ntime.sleep(600)"]
health = { notify = true, watchdog = "500ms" }
stop_timeout = "1s"
"#,
    );
    let run = p.spawn(&["start"]);
    run.wait_for("pinger.1 | hanging", T);
    let line = run.wait_for("pinger.1 | unhealthy:", T);
    assert!(line.contains("no WATCHDOG=1 within 500ms"), "{line}");
    run.wait_for_count("pinger.1 | spawned", 2, T);
    let out = stop(run);
    // Health restarts count in the exit summary, with their reason.
    let summary = out
        .lines()
        .find(|l| l.contains("  pinger.1: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(!summary.contains(" 0 restarts"), "{summary}");
    assert!(
        summary.contains("(last: unhealthy: no WATCHDOG=1 within 500ms)"),
        "{summary}"
    );
}

#[test]
fn readiness_that_never_comes_restarts_with_backoff() {
    let p = Project::new(
        r#"
[processes.mute]
backend = "command"
command = ["sleep", "600"]
health = { notify = true, start_timeout = "300ms" }
backoff = "100ms"
"#,
    );
    let run = p.spawn(&["start"]);
    let line = run.wait_for("mute.1 | unhealthy:", T);
    assert!(line.contains("no READY=1 within 300ms"), "{line}");
    run.wait_for("mute.1 | restarting in", T);
    run.wait_for_count("mute.1 | spawned", 2, T);
    stop(run);
}

#[test]
fn a_child_using_sdnotify_is_heard() {
    let venv_python = python::bin("python");
    let p = Project::new(&format!(
        r#"
[processes.app]
backend = "command"
command = ["{venv_python}", "-c", "import os, sdnotify, time\nn = sdnotify.SystemdNotifier()\ntime.sleep(0.3)\nopen('app-ready.tmp', 'w').write(str(time.time()))\nos.rename('app-ready.tmp', 'app-ready')\nn.notify('READY=1')\nn.notify('STATUS=serving 3 sites')\nn.notify('TASKS_DONE=2')\nn.notify('TASKS_DONE=3')\ntime.sleep(600)"]
health = {{ notify = true }}

[processes.after]
backend = "command"
command = {stamp}
depends_on = {{ app = "healthy" }}
"#,
        stamp = STAMP.replace("NAME", "after")
    ));
    let run = p.spawn(&["start"]);
    run.wait_for("app.1 | ready", T);
    run.wait_for("app.1 | status: serving 3 sites", T);
    support::wait_until(T, || p.path().join("started-after").exists());
    assert!(time_in(&p, "started-after") >= time_in(&p, "app-ready"));
    let out = stop(run);
    assert!(
        out.contains("app.1: stopped, 0 restarts, 5 tasks done"),
        "{out}"
    );
}

#[test]
fn a_notification_from_outside_the_process_tree_is_ignored() {
    let p = Project::new(
        r#"
[processes.quiet]
backend = "command"
command = ["sh", "-c", "echo \"$NOTIFY_SOCKET\" > socket-path.tmp; mv socket-path.tmp socket-path; echo waiting; exec sleep 600"]
health = { notify = true, start_timeout = "1h" }
"#,
    );
    let run = p.spawn(&["start"]);
    run.wait_for("quiet.1 | waiting", T);
    let socket = std::fs::read_to_string(p.path().join("socket-path")).expect("socket path");
    // A process that is not a descendant of the instance claims it is ready.
    let status = std::process::Command::new("python3")
        .args(["-c", "import socket, sys\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.connect(sys.argv[1])\ns.send(b'READY=1')", socket.trim()])
        .status()
        .expect("stranger");
    assert!(status.success());
    let line = run.wait_for("quiet.1 | ignored a notification from pid", T);
    assert!(line.contains("not in its process tree"), "{line}");
    let out = stop(run);
    assert!(
        !out.contains("quiet.1 | ready"),
        "a stranger made it ready: {out}"
    );
}

/// Stands in for gunicorn: takes the argv the gunicorn backend builds,
/// listens on `--bind=` (on the socket prodserver holds, through
/// LISTEN_FDS, as gunicorn does), answers `/` with 404 (like a Django project with
/// no root view) and `/healthz/` with the status in `healthz-status`.
const FAKE_GUNICORN: &str = r#"#!/usr/bin/env python3
import http.server, os, socket, sys
bind = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--bind="))
host, port = bind.rsplit(":", 1)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 404
        if self.path == "/healthz/":
            try:
                code = int(open("healthz-status").read())
            except OSError:
                code = 200
        self.send_response(code); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
print("fake gunicorn on", bind, flush=True)
if os.environ.get("LISTEN_PID") == str(os.getpid()):
    server = http.server.HTTPServer((host, int(port)), H, bind_and_activate=False)
    server.socket = socket.socket(fileno=3)
else:
    server = http.server.HTTPServer((host, int(port)), H)
server.serve_forever()
"#;

fn fake_gunicorn(p: &Project) {
    let path = p.write("fake-gunicorn", FAKE_GUNICORN);
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
}

#[test]
fn a_web_backend_is_ready_on_any_answer_by_default_and_on_its_health_path_when_given() {
    let ports = reserve();
    let (plain, pathed) = (ports.port(0), ports.port(1));
    let p = Project::new(&format!(
        r#"
# No health block: GET / on the bind address; its 404 still proves the app serves.
[processes.plain]
backend = "gunicorn"
app = "shop.wsgi:application"
program = "./fake-gunicorn"
args = {{ bind = "127.0.0.1:{plain}" }}
# A stand-in, not gunicorn: probed on its own port, not through a held socket.
hold_socket = false

# `path`: the same address, this path, 2xx/3xx required, with liveness.
[processes.pathed]
backend = "gunicorn"
app = "shop.wsgi:application"
program = "./fake-gunicorn"
args = {{ bind = "127.0.0.1:{pathed}" }}
health = {{ path = "/healthz/", interval = "100ms", retries = 2 }}
stop_timeout = "2s"
# A stand-in sends no READY=1, which a held socket's probe waits for.
hold_socket = false
"#
    ));
    fake_gunicorn(&p);
    let run = p.spawn(&["start"]);
    run.wait_for("plain.1 | ready", T);
    run.wait_for("pathed.1 | ready", T);
    p.write_atomic("healthz-status", "500");
    let line = run.wait_for("pathed.1 | unhealthy:", T);
    assert!(line.ends_with("GET /healthz/ -> 500 (2/2)"), "{line}");
    std::fs::remove_file(p.path().join("healthz-status")).expect("rm");
    run.wait_for_count("pathed.1 | ready", 2, T);
    let out = stop(run);
    assert!(
        !out.contains("plain.1 | unhealthy"),
        "no default liveness: {out}"
    );
    assert!(
        out.contains(&format!("plain: readiness: GET http://127.0.0.1:{plain}/")),
        "{out}"
    );
}

#[test]
fn instances_on_their_own_ports_are_each_probed_there() {
    // Instance N binds `{prefix}N`: ports base + 1 and base + 2 of a
    // reserved block that starts at a multiple of ten.
    let ports = reserve();
    let base = ports.first;
    let p = Project::new(&format!(
        r#"
[processes.web]
backend = "gunicorn"
app = "shop.wsgi:application"
program = "./fake-gunicorn"
instances = 2
args = {{ bind = "127.0.0.1:{prefix}{{instance}}" }}
health = {{ path = "/healthz/", interval = "100ms", retries = 2 }}
stop_timeout = "2s"
# A stand-in sends no READY=1, which a held socket's probe waits for.
hold_socket = false
"#,
        prefix = base / 10
    ));
    fake_gunicorn(&p);
    let run = p.spawn(&["start"]);
    run.wait_for("web.1 | ready", T);
    run.wait_for("web.2 | ready", T);
    let out = stop(run);
    for n in 1..=2 {
        assert!(
            out.contains(&format!(
                "web.{n} | fake gunicorn on 127.0.0.1:{}{n}",
                base / 10
            )),
            "{out}"
        );
    }
}

/// An HTTP server of the test's own (a stranger to prodserver's
/// instances) on `port`, answering 200 to everything; counts its answers.
struct Foreign {
    port: u16,
    answers: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Foreign {
    fn serve(port: u16) -> Foreign {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind");
        let answers = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, done) = (answers.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if done.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        Foreign {
            port,
            answers,
            stop,
            thread: Some(thread),
        }
    }

    fn answers(&self) -> usize {
        self.answers.load(Ordering::SeqCst)
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_foreign_server_on_the_address_never_makes_the_instance_ready() {
    let ports = reserve();
    let port = ports.port(0);
    let foreign = Foreign::serve(port);
    // A gunicorn that could not bind ("Connection in use") and never
    // listens; its default readiness probe is GET / on its --bind address.
    let p = Project::new(&format!(
        r#"
[processes.web]
backend = "gunicorn"
app = "shop.wsgi:application"
program = "./mute-gunicorn"
args = {{ bind = "127.0.0.1:{port}" }}
# A stand-in, not gunicorn: probed on its own port, not through a held socket.
hold_socket = false

[processes.after]
backend = "command"
command = {stamp}
depends_on = {{ web = "healthy" }}
"#,
        stamp = STAMP.replace("NAME", "after")
    ));
    let mute = p.write(
        "mute-gunicorn",
        "#!/bin/sh\necho \"Connection in use: ('127.0.0.1', PORT)\"\nexec sleep 600\n",
    );
    std::fs::set_permissions(&mute, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let run = p.spawn(&["start"]);
    let me = std::process::id();
    let comm = std::fs::read_to_string("/proc/self/comm").expect("comm");
    let held = format!(
        "web.1 | 127.0.0.1:{port} is held by pid {me} ({}), not by web.1",
        comm.trim_end()
    );
    run.wait_for(&held, T);
    // Three more probes answered by the stranger: still not ready, and the
    // line is not repeated.
    let seen = foreign.answers();
    assert!(support::wait_until(T, || foreign.answers() >= seen + 3));
    let out = stop(run);
    assert!(!out.contains("web.1 | ready"), "{out}");
    assert!(!out.contains("after.1 | spawned"), "{out}");
    assert!(!p.path().join("started-after").exists());
    assert_eq!(out.matches(&held).count(), 1, "said once: {out}");
}

#[test]
fn a_sibling_answering_on_the_probed_port_does_not_make_an_instance_ready() {
    let ports = reserve();
    let port = ports.port(0);
    // web-admin's probe (a copy-paste slip) targets web's port.
    let p = Project::new(&format!(
        r#"
[processes.web]
backend = "command"
command = ["python3", "server.py", "{port}", "0", "web-status"]
health = {{ http = "http://127.0.0.1:{port}/healthz/", interval = "100ms" }}

[processes.web-admin]
backend = "command"
command = ["sh", "-c", "echo admin never listens; exec sleep 600"]
health = {{ http = "http://127.0.0.1:{port}/healthz/", interval = "100ms" }}
"#
    ));
    p.write("server.py", SERVER);
    let run = p.spawn(&["start"]);
    run.wait_for("web.1 | ready", T);
    let spawned = run.wait_for("web.1 | spawned (pid ", T);
    let web_pid = spawned
        .rsplit_once("(pid ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .expect("a pid");
    run.wait_for(
        &format!(
            "web-admin.1 | 127.0.0.1:{port} is held by pid {web_pid} (python3), not by web-admin.1"
        ),
        T,
    );
    let out = stop(run);
    assert!(!out.contains("web-admin.1 | ready"), "{out}");
}

/// Serves /healthz/ with 200, then 503 once SIGTERMed: it drains for as
/// long as the file `finish` is absent, telling prodserver
/// `STATUS=draining` on its notify socket first.
const DRAINER: &str = r#"
import http.server, os, signal, socket, sys, threading, time
def mark(name, text):
    with open(name + ".tmp", "w") as f:
        f.write(text)
    os.rename(name + ".tmp", name)
port = int(sys.argv[1])
draining = threading.Event()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503 if draining.is_set() else 200)
        self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
signal.signal(signal.SIGTERM, lambda *a: draining.set())
s = http.server.HTTPServer(("127.0.0.1", port), H)
threading.Thread(target=s.serve_forever, daemon=True).start()
print("serving", flush=True)
while not draining.wait(0.05):
    pass
n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
n.connect(os.environ["NOTIFY_SOCKET"])
n.send(b"STATUS=draining")
mark("draining", "1")
while not os.path.exists("finish"):
    time.sleep(0.05)
os._exit(0)
"#;

#[test]
fn health_is_not_judged_while_an_instance_drains_on_its_way_out() {
    let ports = reserve();
    let port = ports.port(0);
    let p = Project::new(&format!(
        r#"
[processes.drainer]
backend = "command"
command = ["python3", "drainer.py", "{port}"]
health = {{ http = "http://127.0.0.1:{port}/healthz/", interval = "100ms", retries = 1000 }}
stop_timeout = "1m"
"#
    ));
    p.write("drainer.py", DRAINER);
    let mut run = p.spawn(&["start"]);
    run.wait_for("drainer.1 | ready", T);
    run.signal(libc::SIGTERM);
    // The message makes the engine re-arm the instance's health timer: a
    // tracker not told about the stop would now probe the draining server.
    run.wait_for("drainer.1 | status: draining", T);
    assert!(support::wait_until(T, || p
        .path()
        .join("draining")
        .exists()));
    // Probes come every 100 ms: a second is ten chances to be judged.
    let judged = support::wait_until(Duration::from_secs(1), || {
        run.count("drainer.1 | health check failed") > 0
    });
    p.write_atomic("finish", "");
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
    let out = run.output();
    assert!(!judged, "probed while stopping: {out}");
    assert!(!out.contains("drainer.1 | unhealthy"), "{out}");
}
