//! Held sockets, end to end: prodserver binds a web process's socket once
//! and every generation inherits it (LISTEN_FDS for `command` and
//! gunicorn), so restarts never close the port; a reload that removes the
//! process closes it; `check` says how each socket is passed.

mod support;

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{ports, python, wait_until, Project};

const T: Duration = Duration::from_secs(30);

/// A stdlib HTTP-ish server for a `command` process: it takes fd 3 from
/// LISTEN_FDS (refusing to run if LISTEN_PID is not its own pid), loads
/// for a moment, says READY=1, and writes markers (atomically) with the
/// monotonic time it became ready and got TERM, and its socket's inode.
const SERVER: &str = r#"
import os, signal, socket, sys, threading, time

def mark(name, text):
    tmp = name + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, name)

pid = os.getpid()
if os.environ.get("LISTEN_PID") != str(pid) or os.environ.get("LISTEN_FDS") != "1":
    print("bad activation env", os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS"), pid, flush=True)
    sys.exit(7)
sock = socket.socket(fileno=3)
ino = os.fstat(3).st_ino
stop = threading.Event()

def on_term(*_):
    mark("term-%d" % pid, str(time.monotonic_ns()))
    stop.set()
signal.signal(signal.SIGTERM, on_term)

time.sleep(0.3)  # loading the app
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
# The marker first: prodserver may stop the old generation as soon as the
# datagram arrives.
mark("ready-%d" % pid, "%d %d" % (time.monotonic_ns(), ino))
n.sendto(b"READY=1", addr)
print("serving", pid, flush=True)

sock.settimeout(0.05)
while not stop.is_set():
    try:
        c, _ = sock.accept()
    except socket.timeout:
        continue
    c.sendall(b"HTTP/1.0 200 OK\r\n\r\nok")
    c.close()
sys.exit(0)
"#;

fn command_config(processes: &[(&str, u16)]) -> String {
    let mut out = String::new();
    for (name, port) in processes {
        out.push_str(&format!(
            "[processes.{name}]\nbackend = \"command\"\ncommand = [\"python3\", \"server.py\"]\n\
             listen = [\"127.0.0.1:{port}\"]\nhealth = {{ notify = true }}\nstop_timeout = \"10s\"\n\n"
        ));
    }
    out
}

/// Markers `prefix-PID` in the project folder: pid -> contents.
fn markers(dir: &Path, prefix: &str) -> Vec<(i32, String)> {
    let mut out: Vec<(i32, String)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let pid = name.strip_prefix(prefix)?.strip_prefix('-')?.parse().ok()?;
            let text = std::fs::read_to_string(dir.join(&name)).ok()?;
            Some((pid, text))
        })
        .collect();
    out.sort();
    out
}

/// Connects to `port` every millisecond on a thread until dropped,
/// counting refusals and successes.
struct Poller {
    stop: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
    ok: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Poller {
    fn start(port: u16) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        let ok = Arc::new(AtomicUsize::new(0));
        let (s, r, o) = (stop.clone(), refused.clone(), ok.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match std::net::TcpStream::connect(("127.0.0.1", port)) {
                    Ok(_) => o.fetch_add(1, Ordering::Relaxed),
                    Err(_) => r.fetch_add(1, Ordering::Relaxed),
                };
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Poller {
            stop,
            refused,
            ok,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            self.refused.load(Ordering::Relaxed),
            self.ok.load(Ordering::Relaxed),
        )
    }
}

#[test]
fn a_held_socket_survives_restarts_and_the_new_generation_is_ready_first() {
    let ports = ports::reserve();
    let port = ports.port(0);
    let p = Project::new(&command_config(&[("web", port)]));
    p.write("server.py", SERVER);
    let mut run = p.spawn(&["start"]);
    assert!(
        wait_until(T, || markers(p.path(), "ready").len() == 1),
        "never ready:\n{}",
        run.output()
    );
    let poller = Poller::start(port);
    for round in 1..=3 {
        let (code, out) = p.run(&["restart", "web"], T);
        assert_eq!(code, 0, "restart {round}: {out}\n{}", run.output());
        assert!(
            wait_until(T, || markers(p.path(), "term").len() == round),
            "the old generation never got TERM:\n{}",
            run.output()
        );
    }
    let (refused, ok) = poller.finish();
    assert_eq!(
        refused, 0,
        "connect() was refused {refused} times ({ok} ok)"
    );
    assert!(ok > 0);

    let ready = markers(p.path(), "ready");
    let term = markers(p.path(), "term");
    assert_eq!(ready.len(), 4, "{ready:?}\n{}", run.output());
    // One listening socket throughout: every generation saw one inode.
    let inodes: std::collections::BTreeSet<&str> = ready
        .iter()
        .map(|(_, t)| t.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(inodes.len(), 1, "{ready:?}");
    // Generation k+1 was ready before generation k got its stop signal.
    let at = |s: &str| s.split_whitespace().next().unwrap().parse::<u64>().unwrap();
    let mut by_start = ready.clone();
    by_start.sort_by_key(|(_, t)| at(t));
    for pair in by_start.windows(2) {
        let (old, new) = (&pair[0], &pair[1]);
        let stopped = term
            .iter()
            .find(|(pid, _)| *pid == old.0)
            .unwrap_or_else(|| panic!("{} never got TERM: {term:?}", old.0));
        assert!(
            at(&new.1) < at(&stopped.1),
            "pid {} was ready at {} but pid {} got TERM at {}",
            new.0,
            at(&new.1),
            old.0,
            at(&stopped.1)
        );
    }
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the socket must close when prodserver stops"
    );
}

#[test]
fn a_removed_process_closes_its_socket_after_a_reload() {
    let ports = ports::reserve();
    let (web, api) = (ports.port(0), ports.port(1));
    let p = Project::new(&command_config(&[("web", web), ("api", api)]));
    p.write("server.py", SERVER);
    let run = p.spawn(&["start"]);
    assert!(
        wait_until(T, || markers(p.path(), "ready").len() == 2),
        "never ready:\n{}",
        run.output()
    );
    p.write_atomic("prodserver.toml", &command_config(&[("web", web)]));
    let (code, out) = p.run(&["reload"], T);
    assert_eq!(code, 0, "{out}\n{}", run.output());
    run.wait_for("closed the held socket of api: 127.0.0.1", T);
    assert!(
        wait_until(T, || std::net::TcpStream::connect(("127.0.0.1", api))
            .is_err()),
        "api's port still accepts after the reload removed it:\n{}",
        run.output()
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", web)).is_ok());
}

fn http_over_unix(path: &Path) -> Result<String, String> {
    let mut s = UnixStream::connect(path).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(T)).map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

const WSGI: &str = r#"
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]
"#;

#[test]
fn gunicorn_takes_a_unix_socket_through_listen_fds_and_leaves_its_file() {
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("web.sock");
    let p = Project::new(&format!(
        "[processes.web]\nbackend = \"gunicorn\"\napp = \"app:application\"\nprogram = \"{}\"\n\
         args = {{ bind = \"unix:{}\", workers = 1 }}\nstop_timeout = \"10s\"\n",
        python::bin("gunicorn"),
        sock.display()
    ));
    p.write("app.py", WSGI);
    let mut run = p.spawn(&["start"]);
    assert!(
        wait_until(T, || http_over_unix(&sock)
            .is_ok_and(|r| r.contains("hello"))),
        "gunicorn never served on {}:\n{}",
        sock.display(),
        run.output()
    );
    let inode = std::fs::metadata(&sock).unwrap().ino();
    let first = run.wait_for("Listening at:", T);
    assert!(first.contains("unix:"), "{first}");
    let (code, out) = p.run(&["restart", "web"], T);
    assert_eq!(code, 0, "{out}\n{}", run.output());
    // The old gunicorn has been stopped: it did not unlink the file, and
    // the new one serves on the very same socket.
    run.wait_for_count("Listening at:", 2, T);
    assert!(
        wait_until(T, || run.count("Shutting down: Master") >= 1),
        "the old gunicorn never stopped:\n{}",
        run.output()
    );
    assert_eq!(std::fs::metadata(&sock).unwrap().ino(), inode);
    let answer = http_over_unix(&sock).unwrap();
    assert!(answer.contains("hello"), "{answer}");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
    assert!(
        !sock.exists(),
        "prodserver removes the socket file it created"
    );
}

#[test]
fn check_shows_whether_each_socket_is_held_and_how_it_is_passed() {
    let p = Project::new(
        "[processes.web]\nbackend = \"gunicorn\"\napp = \"a:b\"\nargs = { bind = \"127.0.0.1:8000\" }\n\n\
         [processes.api]\nbackend = \"uvicorn\"\napp = \"a.asgi:app\"\nargs = { port = 8001 }\n\n\
         [processes.ws]\nbackend = \"daphne\"\napp = \"a.asgi:app\"\nargs = { u = \"/run/ws.sock\" }\n\n\
         [processes.fast]\nbackend = \"granian\"\napp = \"a:b\"\nargs = { interface = \"wsgi\", port = 8002 }\n\n\
         [processes.plain]\nbackend = \"gunicorn\"\napp = \"a:b\"\nargs = { bind = \"127.0.0.1:8003\" }\nhold_socket = false\n\n\
         [processes.tool]\nbackend = \"command\"\ncommand = [\"srv\"]\nlisten = [\"[::1]:8004\"]\nbacklog = 64\nreuse_port = true\n",
    );
    let (code, out) = p.run(&["check"], T);
    assert_eq!(code, 0, "{out}");
    let socket_of = |name: &str| -> String {
        let section = out
            .split(&format!("[{name}]"))
            .nth(1)
            .unwrap_or_else(|| panic!("no [{name}] in:\n{out}"));
        section
            .lines()
            .find(|l| l.trim_start().starts_with("socket"))
            .unwrap_or_else(|| panic!("no socket line for {name}:\n{out}"))
            .to_owned()
    };
    let web = socket_of("web");
    assert!(web.contains("held by prodserver: 127.0.0.1:8000"), "{web}");
    assert!(web.contains("LISTEN_FDS"), "{web}");
    assert!(web.contains("restarts surge"), "{web}");
    let api = socket_of("api");
    assert!(
        api.contains("--fd=3") && api.contains("uvicorn#295"),
        "{api}"
    );
    assert!(socket_of("ws").contains("--endpoint=fd:fileno=3"));
    let fast = socket_of("fast");
    assert!(
        fast.contains("not held") && fast.contains("granian#786"),
        "{fast}"
    );
    assert!(socket_of("plain").contains("hold_socket = false"));
    let tool = socket_of("tool");
    assert!(
        tool.contains("[::1]:8004") && tool.contains("backlog 64") && tool.contains("SO_REUSEPORT"),
        "{tool}"
    );
    // The argv shows what the server is told.
    assert!(out.contains("'--fd=3' a.asgi:app"), "{out}");
}
