//! `max_tasks_per_child` on gunicorn becomes its own `--max-requests`: run
//! the real gunicorn and see a worker replaced after N requests while the
//! server keeps answering.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::http::request;
use support::ports::reserve;
use support::{python, Project};

const T: Duration = Duration::from_secs(60);

/// Answers with the pid of the worker that served the request; `/hog`
/// also makes that worker hold 150 MiB for the rest of its life.
const APP: &str = "import os\n\
HELD = []\n\
def application(environ, start_response):\n    \
if environ['PATH_INFO'] == '/hog':\n        \
HELD.append(b'\\x01' * (150 * 1024 * 1024))\n    \
start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
return [str(os.getpid()).encode()]\n";

/// gunicorn serving [`APP`] on `port` with `workers`, and `limits`.
fn gunicorn(port: u16, workers: u32, limits: &str) -> Project {
    let gunicorn = python::bin("gunicorn");
    let p = Project::new(&format!(
        r#"
[processes.web]
backend = "gunicorn"
app = "pidapp:application"
program = "{gunicorn}"
args = {{ bind = "127.0.0.1:{port}", workers = {workers}, chdir = "." }}
stop_timeout = "10s"
{limits}
"#
    ));
    p.write("pidapp.py", APP);
    p
}

#[test]
fn gunicorn_replaces_a_worker_after_max_tasks_per_child_requests() {
    let ports = reserve();
    let port = ports.port(0);
    let p = gunicorn(port, 1, "max_tasks_per_child = 3");
    let run = p.spawn(&["start"]);
    run.wait_for("web.1 | ready", T);
    // Every request must be answered: the master keeps listening while it
    // replaces the worker, so a request waits in the backlog, never fails.
    let mut served: BTreeMap<String, usize> = BTreeMap::new();
    let mut order = Vec::new();
    for i in 0..16 {
        let (status, pid) = request("GET", port, "/")
            .unwrap_or_else(|e| panic!("request {i}: {e}\n{}", run.output()));
        assert_eq!(status, 200, "request {i}: {}", run.output());
        *served.entry(pid.clone()).or_default() += 1;
        if order.last() != Some(&pid) {
            order.push(pid);
        }
    }
    // N = 3 with a jitter of 1: each worker serves 3 or 4 requests. The
    // first also answered the readiness probe, the last is still serving:
    // the ones in between were watched whole.
    assert!(order.len() >= 4, "{served:?}\n{}", run.output());
    for pid in &order[1..order.len() - 1] {
        let n = served[pid];
        assert!((3..=4).contains(&n), "worker {pid} served {n}: {served:?}");
    }
    let mut run = run;
    run.signal(libc::SIGTERM);
    let code = run.wait_exit(T);
    assert_eq!(code, 0, "{}", run.output());
}

#[test]
fn one_fat_gunicorn_worker_is_replaced_alone_while_every_request_succeeds() {
    let ports = reserve();
    let port = ports.port(0);
    // memory_scope is "child" by default for gunicorn: each worker is held
    // to the limit, and only a fat one goes.
    let p = gunicorn(
        port,
        2,
        "max_memory_per_child = \"100MiB\"\nmemory_interval = \"50ms\"\nmemory_samples = 2",
    );
    let run = p.spawn(&["start"]);
    let line = run.wait_for("web.1 | spawned (pid ", T);
    let master: i32 = line
        .rsplit("(pid ")
        .next()
        .and_then(|s| s.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    run.wait_for("web.1 | ready", T);
    support::wait_until(T, || support::descendants(master).len() == 2);
    let workers_before = support::descendants(master);

    // Requests all through the recycle, on another thread.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut results = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                results.push(request("GET", port, "/"));
            }
            results
        })
    };
    let (status, fat) = request("GET", port, "/hog").expect("hog");
    assert_eq!(status, 200);
    let fat: i32 = fat.parse().unwrap();
    run.wait_for(&format!("| recycling child pid {fat}: "), T);
    assert!(
        support::wait_until(T, || !support::alive(fat)),
        "{}",
        run.output()
    );
    // gunicorn replaced it; the other worker and the master are untouched.
    assert!(
        support::wait_until(T, || {
            let now = support::descendants(master);
            now.len() == 2 && !now.contains(&fat)
        }),
        "{}",
        run.output()
    );
    let other: Vec<i32> = workers_before
        .iter()
        .copied()
        .filter(|w| *w != fat)
        .collect();
    assert!(other.iter().all(|w| support::alive(*w)), "{other:?}");
    assert!(support::alive(master));
    assert_eq!(run.count("web.1 | spawned"), 1, "{}", run.output());

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let results = client.join().unwrap();
    let failed: Vec<_> = results
        .iter()
        .filter(|r| !matches!(r, Ok((200, _))))
        .collect();
    assert!(results.len() >= 10, "only {} requests", results.len());
    assert!(failed.is_empty(), "{failed:?}\n{}", run.output());
    let mut run = run;
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
}
