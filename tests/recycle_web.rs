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

/// Answers with the pid of the worker that served the request.
const APP: &str = "import os\n\
def application(environ, start_response):\n    \
start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
return [str(os.getpid()).encode()]\n";

#[test]
fn gunicorn_replaces_a_worker_after_max_tasks_per_child_requests() {
    let ports = reserve();
    let port = ports.port(0);
    let gunicorn = python::bin("gunicorn");
    let p = Project::new(&format!(
        r#"
[processes.web]
backend = "gunicorn"
app = "pidapp:application"
program = "{gunicorn}"
args = {{ bind = "127.0.0.1:{port}", workers = 1, chdir = "." }}
max_tasks_per_child = 3
stop_timeout = "10s"
"#
    ));
    p.write("pidapp.py", APP);
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
