//! The real gunicorn, behind an address prodserver cannot probe (a bind in
//! the user's own config file): readiness is the embedded hook's READY=1
//! once a worker has loaded the app, the user's own hooks still run, and an
//! app that fails to boot is a fatal configuration error, not a crash to
//! retry: during a surge restart the old generation keeps serving and the
//! restart reports why.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use support::http::request;
use support::ports::reserve;
use support::{python, Project};

const T: Duration = Duration::from_secs(60);

/// Waits at import until `go` exists (so a test can hold the app
/// unloaded), refuses to import while `broken` exists, then answers with
/// the pid of the worker that served.
const APP: &str = "import os, time\n\
deadline = time.monotonic() + 60\n\
while not os.path.exists('go') and time.monotonic() < deadline:\n    \
time.sleep(0.01)\n\
if os.path.exists('broken'):\n    \
raise ImportError('the app is broken on purpose')\n\
def application(environ, start_response):\n    \
start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
return [str(os.getpid()).encode()]\n";

/// The user's config: the bind only it knows (SO_REUSEPORT, so two
/// generations can listen at once), and a post_worker_init of its own
/// that leaves a marker (written atomically).
fn config(port: u16) -> String {
    format!(
        "bind = '127.0.0.1:{port}'\n\
reuse_port = True\n\
workers = 2\n\
def post_worker_init(worker):\n    \
import os\n    \
tmp = '.user-hook.%d.tmp' % os.getpid()\n    \
open(tmp, 'w').write(str(os.getpid()))\n    \
os.replace(tmp, 'user-hook.%d' % os.getpid())\n"
    )
}

fn project(port: u16) -> Project {
    let gunicorn = python::bin("gunicorn");
    let p = Project::new(&format!(
        r#"
[processes.web]
backend = "gunicorn"
app = "pidapp:application"
program = "{gunicorn}"
args = {{ c = "gconf.py", chdir = "." }}
rollout = "surge"
stop_timeout = "10s"
"#
    ));
    p.write("pidapp.py", APP);
    p.write("gconf.py", &config(port));
    p
}

#[test]
fn gunicorn_is_ready_once_a_worker_loaded_the_app_and_a_broken_app_fails_the_surge() {
    let ports = reserve();
    let port = ports.port(0);
    let p = project(port);
    let mut run = p.spawn(&["start"]);
    // The arbiter has bound (and would have sent its own READY=1) before
    // it boots a worker; the app is held unloaded.
    run.wait_for("Booting worker", T);
    let (_, status) = p.run(&["status", "web"], T);
    assert!(!status.contains("ready"), "{status}\n{}", run.output());
    assert!(!run.output().contains("web.1 | ready"), "{}", run.output());
    p.write_atomic("go", "");
    run.wait_for("web.1 | ready", T);
    // The user's post_worker_init runs in both workers. Wait for the
    // second one too: gunicorn halts a whole server whose worker fails to
    // boot, so one still importing when the app breaks would take the old
    // generation down with it.
    let hooks = || {
        std::fs::read_dir(p.path())
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("user-hook."))
                    .count()
            })
            .unwrap_or(0)
    };
    assert!(
        support::wait_until(T, || hooks() == 2),
        "the user's post_worker_init ran in each worker: {}",
        run.output()
    );
    let (code, old) = request("GET", port, "/").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code, 200);
    let old_master = support::descendants(run.pid())
        .into_iter()
        .next()
        .expect("gunicorn master");

    p.write_atomic("broken", "");
    let (code, out) = p.run(&["restart", "web"], T);
    assert_ne!(code, 0, "{out}\n{}", run.output());
    // Both workers fail to boot at once: gunicorn's halt raises a second
    // HaltServer, which the integration turns back into exit 3.
    assert!(
        out.contains("the app failed to boot (gunicorn exit 3: worker boot error)"),
        "{out}\n{}",
        run.output()
    );
    run.wait_for(
        "web.2 | FAILED: the app failed to boot (gunicorn exit 3: worker boot error)",
        T,
    );
    assert!(
        !run.output().contains("web.2 | restarting in"),
        "{}",
        run.output()
    );
    // The old generation still serves, from the same master.
    for _ in 0..20 {
        let (code, _) = request("GET", port, "/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(code, 200);
    }
    assert!(support::alive(old_master));
    assert!(!old.is_empty());
    assert!(!run.output().contains("web.1 | exited"), "{}", run.output());
    run.signal(libc::SIGTERM);
    run.wait_exit(T);
}

/// An ASGI app whose lifespan startup succeeds, or fails while `broken`
/// exists (uvicorn then exits 3).
const ASGI: &str = "import os\n\
async def app(scope, receive, send):\n    \
if scope['type'] == 'lifespan':\n        \
while True:\n            \
m = await receive()\n            \
if m['type'] == 'lifespan.startup':\n                \
if os.path.exists('broken'):\n                    \
await send({'type': 'lifespan.startup.failed', 'message': 'broken on purpose'})\n                    \
return\n                \
await send({'type': 'lifespan.startup.complete'})\n            \
elif m['type'] == 'lifespan.shutdown':\n                \
await send({'type': 'lifespan.shutdown.complete'})\n                \
return\n    \
else:\n        \
await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n        \
await send({'type': 'http.response.body', 'body': b'ok'})\n";

#[test]
fn uvicorn_on_a_unix_socket_is_ready_at_its_startup_line_and_exit_3_is_final() {
    let uvicorn = python::bin("uvicorn");
    let p = Project::new(&format!(
        r#"
[processes.web]
backend = "uvicorn"
app = "asgiapp:app"
program = "{uvicorn}"
args = {{ uds = "web.sock" }}
stop_timeout = "10s"
"#
    ));
    p.write("asgiapp.py", ASGI);
    let mut run = p.spawn(&["start"]);
    run.wait_for("Application startup complete", T);
    run.wait_for("web.1 | ready", T);
    assert!(
        run.output()
            .contains("readiness: its own output line matching"),
        "{}",
        run.output()
    );
    p.write_atomic("broken", "");
    let (code, out) = p.run(&["restart", "web"], T);
    assert_ne!(code, 0, "{out}\n{}", run.output());
    // The socket is held: the new generation started beside the old one
    // (surge), failed to boot, and is not retried; the old one serves on.
    run.wait_for(
        "web.2 | FAILED: the app failed to boot (uvicorn exit 3: startup failure)",
        T,
    );
    assert!(
        !run.output().contains("web.2 | restarting in"),
        "{}",
        run.output()
    );
    let mut conn = std::os::unix::net::UnixStream::connect(p.path().join("web.sock"))
        .expect("the held unix socket still accepts");
    conn.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
}
