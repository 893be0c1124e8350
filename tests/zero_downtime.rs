//! Zero-downtime restarts under load, through the built binary: the real
//! Django example under the real gunicorn, its socket held by prodserver,
//! a client sending requests without pause (one connection per request,
//! so every accept during the switch is exercised) while `prodserver
//! restart web` runs three times. No request may fail or answer non-200,
//! and each restart must take the surge path: the new generation ready
//! before the old one is told to stop.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use support::http::request;
use support::ports::reserve;
use support::{python, Project};

const T: Duration = Duration::from_secs(90);
const CLIENTS: usize = 4;
const RESTARTS: usize = 3;

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: Vec<String>,
}

#[test]
fn gunicorn_restarts_under_load_without_a_failed_request() {
    let ports = reserve();
    let port = ports.port(0);
    let gunicorn = python::bin("gunicorn");
    let example = python::project();
    let p = Project::new("");
    let var = p.path().join("var");
    std::fs::create_dir_all(&var).expect("var dir");
    p.write_atomic(
        "prodserver.toml",
        &format!(
            r#"
[processes.web]
backend = "gunicorn"
app = "shop.wsgi:application"
program = "{gunicorn}"
cwd = "{example}"
args = {{ bind = "127.0.0.1:{port}", workers = 2 }}
env = {{ SHOP_VAR_DIR = "{var}", SHOP_LOG_LEVEL = "WARNING" }}
health = {{ http = "http://127.0.0.1:{port}/healthz/", start_timeout = "60s" }}
stop_timeout = "20s"
"#,
            example = example.display(),
            var = var.display(),
        ),
    );
    let mut run = p.spawn(&["start"]);
    run.wait_for("web.1 | ready", T);
    let (code, body) = request("GET", port, "/healthz/").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((code, body.as_str()), (200, r#"{"status": "ok"}"#));

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, tally) = (stop.clone(), tally.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let outcome = request("GET", port, "/healthz/");
                    let mut t = tally.lock().expect("tally");
                    match outcome {
                        Ok((200, _)) => t.ok += 1,
                        Ok((code, body)) => t.failed.push(format!("{code}: {body}")),
                        Err(e) => t.failed.push(e),
                    }
                }
            })
        })
        .collect();
    let served = |tally: &Mutex<Tally>| tally.lock().expect("tally").ok;

    for i in 1..=RESTARTS {
        // Load is flowing before each restart begins.
        let before = served(&tally);
        assert!(
            support::wait_until(T, || served(&tally) >= before + 20),
            "no load: {}",
            run.output()
        );
        let (code, out) = p.run(&["restart", "web"], T);
        assert_eq!(code, 0, "restart {i}: {out}\n{}", run.output());
        let lines = run.lines();
        // The i-th surge line: "web.1 | restarting: starting web.2 beside
        // it (surge)" (the two slots alternate).
        let Some((at, old, new)) = lines
            .iter()
            .enumerate()
            .filter_map(|(n, l)| {
                let (old, rest) = l.split_once(" | restarting: starting ")?;
                let new = rest.strip_suffix(" beside it (surge)")?;
                Some((n, old.to_owned(), new.to_owned()))
            })
            .nth(i - 1)
        else {
            panic!("restart {i} took no surge\n{}", run.output())
        };
        let after = |needle: String| {
            lines[at..]
                .iter()
                .position(|l| l.starts_with(&needle))
                .unwrap_or(usize::MAX)
        };
        let ready = after(format!("{new} | ready"));
        let stopping = after(format!("{old} | stopping"));
        // The old generation got no stop before its successor was ready,
        // so it served alone until then.
        assert!(
            ready < stopping && stopping < usize::MAX,
            "restart {i}: {old} stopped before {new} was ready\n{}",
            run.output()
        );
    }
    // Load still flows after the last switch.
    let before = served(&tally);
    assert!(support::wait_until(T, || served(&tally) >= before + 20));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client thread");
    }
    let t = tally.lock().expect("tally");
    assert!(
        t.failed.is_empty(),
        "{} of {} requests failed: {:?}\n{}",
        t.failed.len(),
        t.ok + t.failed.len() as u64,
        &t.failed[..t.failed.len().min(10)],
        run.output()
    );
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
}
