//! The control socket and the CLI verbs against a real supervisor: status,
//! restart, stop/up, scale, reload (socket and SIGHUP), logs, access,
//! the one-supervisor-per-project lock and bad requests. Every wait is on
//! a condition with a deadline.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{alive, wait_until, Project, Running, BIN};

const T: Duration = Duration::from_secs(20);

/// Runs a CLI verb to completion: (exit code, combined output).
fn ctl(p: &Project, args: &[&str]) -> (i32, String) {
    p.run(args, T)
}

fn status(p: &Project) -> (i32, Value) {
    let (code, out) = ctl(p, &["status", "--json"]);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    (code, v)
}

fn instances(v: &Value) -> Vec<Value> {
    v["instances"].as_array().cloned().unwrap_or_default()
}

fn find(v: &Value, process: &str, n: u64) -> Option<Value> {
    instances(v)
        .into_iter()
        .find(|i| i["process"] == process && i["instance"] == n)
}

fn pid(v: &Value, process: &str, n: u64) -> Option<i64> {
    find(v, process, n).and_then(|i| i["pid"].as_i64())
}

fn state(v: &Value, process: &str, n: u64) -> String {
    find(v, process, n)
        .and_then(|i| i["state"].as_str().map(str::to_string))
        .unwrap_or_else(|| "absent".into())
}

/// Polls `status --json` until `pred` holds; returns that status.
fn wait_status(p: &Project, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let ok = wait_until(T, || {
        let (code, out) = ctl(p, &["status", "--json"]);
        if code == 4 {
            return false; // not listening yet
        }
        last = serde_json::from_str(&out).unwrap_or(Value::Null);
        pred(&last)
    });
    assert!(ok, "status never showed {what}; last:\n{last:#}");
    last
}

fn all_ready(v: &Value) -> bool {
    let list = instances(v);
    !list.is_empty() && list.iter().all(|i| i["state"] == "ready")
}

fn socket_path(p: &Project) -> PathBuf {
    let name = p.path().file_name().unwrap().to_str().unwrap().to_string();
    p.runtime_dir()
        .join("prodserver/ctl")
        .join(format!("{name}.sock"))
}

const SLEEPERS: &str = r#"
[processes.a]
backend = "command"
command = ["sleep", "1000"]

[processes.b]
backend = "command"
command = ["sleep", "1000"]
instances = 2
"#;

#[test]
fn status_reports_every_field_and_fails_on_a_failed_process() {
    let p = Project::new(
        r#"
[processes.ok]
backend = "command"
command = ["sh", "-c", "echo hello; exec sleep 1000"]

[processes.bad]
backend = "command"
command = ["sh", "-c", "exit 3"]
backoff = "10ms"
max_restarts = 1
"#,
    );
    let _run = p.spawn(&["start"]);
    let v = wait_status(&p, "bad failed", |v| state(v, "bad", 1) == "failed");
    let (code, v2) = status(&p);
    assert_eq!(code, 1, "a FAILED instance makes status exit 1: {v2:#}");
    assert_eq!(v["v"], 1);
    assert_eq!(v["ok"], true);
    let ok = find(&v, "ok", 1).expect("ok.1");
    for field in [
        "process",
        "instance",
        "pid",
        "state",
        "health",
        "uptime_secs",
        "restarts",
        "last_restart",
        "memory_bytes",
        "memory_metric",
        "tree",
        "cpu_percent",
        "tasks",
        "tasks_total",
        "recycles",
        "last_recycle",
        "last_exit",
    ] {
        assert!(ok.get(field).is_some(), "{field} missing in {ok:#}");
    }
    assert_eq!(ok["state"], "ready");
    assert_eq!(ok["health"], "healthy");
    assert!(ok["pid"].as_i64().is_some_and(|p| alive(p as i32)));
    assert!(ok["uptime_secs"].as_f64().is_some());
    let bad = find(&v, "bad", 1).expect("bad.1");
    assert_eq!(bad["health"], "unhealthy");
    assert_eq!(bad["last_exit"], "exited with code 3");
    assert_eq!(bad["pid"], Value::Null);
    // The table says the same, with the same exit code.
    let (code, table) = ctl(&p, &["status"]);
    assert_eq!(code, 1, "{table}");
    assert!(table.starts_with("PROCESS"), "{table}");
    assert!(table.contains("exited with code 3"), "{table}");
}

#[test]
fn status_exits_zero_when_all_is_well_and_4_when_nothing_runs() {
    let p = Project::new(SLEEPERS);
    let (code, out) = ctl(&p, &["status"]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("no prodserver runs for") && out.contains("prodserver.toml"),
        "{out}"
    );
    for verb in [
        &["restart", "a"][..],
        &["stop", "a"],
        &["up", "a"],
        &["scale", "a=2"],
        &["reload"],
        &["logs"],
    ] {
        let (code, out) = ctl(&p, verb);
        assert_eq!(code, 4, "{verb:?}: {out}");
        assert!(out.contains("no prodserver runs for"), "{out}");
    }
    let _run = p.spawn(&["start"]);
    wait_status(&p, "all ready", all_ready);
    let (code, out) = ctl(&p, &["status"]);
    assert_eq!(code, 0, "{out}");
}

/// A process that becomes ready (log probe) only while the file `gate`
/// exists, so that a test decides when a restart's replacement is ready.
const GATED: &str = r#"
[processes.web]
backend = "command"
command = ["sh", "-c", "while [ ! -e gate ]; do sleep 0.02; done; echo up; exec sleep 1000"]
instances = 2
health = { log = "^up$" }
"#;

#[test]
fn restart_one_instance_returns_once_ready_without_backoff() {
    let p = Project::new(GATED);
    p.write_atomic("gate", "");
    let run = p.spawn(&["start"]);
    let before = wait_status(&p, "web ready", all_ready);
    std::fs::remove_file(p.path().join("gate")).unwrap();
    let mut restart = p
        .command(&["restart", "web.2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let old = pid(&before, "web", 2).unwrap();
    // The replacement runs but is not ready: the command still waits.
    wait_status(&p, "a new web.2, not ready", |v| {
        pid(v, "web", 2).is_some_and(|p| p != old) && state(v, "web", 2) == "running"
    });
    assert!(
        restart.try_wait().unwrap().is_none(),
        "restart returned before readiness"
    );
    p.write_atomic("gate", "");
    let out = restart.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let (_, after) = status(&p);
    assert_eq!(state(&after, "web", 2), "ready", "returned after readiness");
    assert_eq!(
        pid(&after, "web", 1),
        pid(&before, "web", 1),
        "web.1 untouched"
    );
    assert_ne!(pid(&after, "web", 2), Some(old));
    assert!(
        !run.output().contains("restarting in"),
        "no backoff:\n{}",
        run.output()
    );
    assert_eq!(
        find(&after, "web", 2).unwrap()["last_restart"],
        "restart requested"
    );
    // An unknown name fails with the reason.
    let (code, out) = ctl(&p, &["restart", "nope"]);
    assert_eq!(code, 1);
    assert!(out.contains("no process named nope"), "{out}");
}

#[test]
fn stop_and_up_one_process_its_dependent_waits_then_resumes() {
    let p = Project::new(
        r#"
[processes.db]
backend = "command"
command = ["sleep", "1000"]

[processes.app]
backend = "command"
command = ["sleep", "1000"]
depends_on = { db = "healthy" }
"#,
    );
    let _run = p.spawn(&["start"]);
    let before = wait_status(&p, "all ready", all_ready);
    let (code, out) = ctl(&p, &["stop", "db"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = ctl(&p, &["stop", "app"]);
    assert_eq!(code, 0, "{out}");
    let (_, v) = status(&p);
    assert_eq!(state(&v, "db", 1), "stopped");
    assert_eq!(state(&v, "app", 1), "stopped");
    assert!(!alive(pid(&before, "db", 1).unwrap() as i32));
    // `up app` waits on its gate: db is down.
    let mut up_app = p
        .command(&["up", "app"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_status(&p, "app waiting", |v| {
        state(v, "app", 1) != "stopped" && pid(v, "app", 1).is_none()
    });
    assert!(
        up_app.try_wait().unwrap().is_none(),
        "app started without db"
    );
    let (code, out) = ctl(&p, &["up", "db"]);
    assert_eq!(code, 0, "{out}");
    assert!(up_app.wait().unwrap().success());
    let v = wait_status(&p, "all ready again", all_ready);
    assert_ne!(pid(&v, "db", 1), pid(&before, "db", 1));
    assert_ne!(pid(&v, "app", 1), pid(&before, "app", 1));
}

#[test]
fn scale_up_and_down_keeps_the_other_pids() {
    let p = Project::new(SLEEPERS);
    let _run = p.spawn(&["start"]);
    let before = wait_status(&p, "all ready", all_ready);
    let (code, out) = ctl(&p, &["scale", "b=4"]);
    assert_eq!(code, 0, "{out}");
    let (_, v) = status(&p);
    for n in 1..=4 {
        assert_eq!(state(&v, "b", n), "ready", "{v:#}");
    }
    assert_eq!(pid(&v, "b", 1), pid(&before, "b", 1));
    assert_eq!(pid(&v, "b", 2), pid(&before, "b", 2));
    let (code, out) = ctl(&p, &["scale", "b=1"]);
    assert_eq!(code, 0, "{out}");
    // Dropped instances may still be finishing their stop.
    let v2 = wait_status(&p, "b.2..4 gone", |v| {
        (2..=4).all(|n| find(v, "b", n).is_none())
    });
    assert_eq!(pid(&v2, "b", 1), pid(&before, "b", 1));
    assert!(
        find(&v2, "b", 2).is_none() && find(&v2, "b", 3).is_none(),
        "{v2:#}"
    );
    assert!(wait_until(T, || !alive(pid(&v, "b", 4).unwrap() as i32)));
    assert_eq!(pid(&v2, "a", 1), pid(&before, "a", 1));
    let (code, out) = ctl(&p, &["scale", "b"]);
    assert_eq!(code, 2, "usage error: {out}");
}

const RELOAD_BEFORE: &str = r#"
[processes.keep]
backend = "command"
command = ["sleep", "1000"]

[processes.change]
backend = "command"
command = ["sleep", "1000"]

[processes.gone]
backend = "command"
command = ["sleep", "1000"]
"#;

const RELOAD_AFTER: &str = r#"
[processes.keep]
backend = "command"
command = ["sleep", "1000"]

[processes.change]
backend = "command"
command = ["sleep", "1001"]

[processes.new]
backend = "command"
command = ["sleep", "1000"]
"#;

fn check_reloaded(before: &Value, after: &Value) {
    assert_eq!(
        pid(after, "keep", 1),
        pid(before, "keep", 1),
        "unchanged keeps its pid"
    );
    assert!(pid(after, "change", 1).is_some());
    assert_ne!(
        pid(after, "change", 1),
        pid(before, "change", 1),
        "changed restarted"
    );
    assert_eq!(state(after, "new", 1), "ready", "added started");
    assert!(find(after, "gone", 1).is_none(), "removed: {after:#}");
    assert!(wait_until(T, || !alive(
        pid(before, "gone", 1).unwrap() as i32
    )));
}

#[test]
fn reload_applies_the_difference_and_rejects_a_bad_file() {
    let p = Project::new(RELOAD_BEFORE);
    let run = p.spawn(&["start"]);
    let before = wait_status(&p, "all ready", all_ready);
    // A bad file: located errors, nothing changes.
    p.write_atomic(
        "prodserver.toml",
        &format!("{RELOAD_AFTER}\n[processes.broken]\nbackend = \"nope\"\n"),
    );
    let (code, out) = ctl(&p, &["reload"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("prodserver.toml:"), "located: {out}");
    assert!(out.contains("nothing was changed"), "{out}");
    let (_, same) = status(&p);
    for name in ["keep", "change", "gone"] {
        assert_eq!(pid(&same, name, 1), pid(&before, name, 1), "{name}");
    }
    assert!(find(&same, "new", 1).is_none());
    run.wait_for("reload refused", T);

    p.write_atomic("prodserver.toml", RELOAD_AFTER);
    let (code, out) = ctl(&p, &["reload"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("reload: changed change; added new; removed gone; unchanged keep"),
        "{out}"
    );
    run.wait_for(
        "reload: changed change; added new; removed gone; unchanged keep",
        T,
    );
    // The reply comes once the rollout is done and the added process is
    // ready; a removed process may still be stopping.
    let after = wait_status(&p, "gone removed", |v| find(v, "gone", 1).is_none());
    check_reloaded(&before, &after);
}

#[test]
fn sighup_reloads_like_the_command() {
    let p = Project::new(RELOAD_BEFORE);
    let run = p.spawn(&["start"]);
    let before = wait_status(&p, "all ready", all_ready);
    p.write_atomic("prodserver.toml", "[processes.keep]\nbackend = \"nope\"\n");
    run.signal(libc::SIGHUP);
    run.wait_for("reload refused", T);
    let (_, same) = status(&p);
    let who = |v: &Value| -> Vec<(Value, Value, Value, Value)> {
        instances(v)
            .into_iter()
            .map(|i| {
                let at = |f: &str| i[f].clone();
                (at("process"), at("instance"), at("pid"), at("state"))
            })
            .collect()
    };
    assert_eq!(who(&same), who(&before), "a bad file changes nothing");

    p.write_atomic("prodserver.toml", RELOAD_AFTER);
    run.signal(libc::SIGHUP);
    run.wait_for(
        "reload: changed change; added new; removed gone; unchanged keep",
        T,
    );
    let after = wait_status(&p, "reload done", |v| {
        state(v, "new", 1) == "ready"
            && state(v, "change", 1) == "ready"
            && find(v, "gone", 1).is_none()
    });
    check_reloaded(&before, &after);
    assert!(!run.output().contains("not available"), "{}", run.output());
}

#[test]
fn logs_shows_recent_lines_then_follows_one_process() {
    let p = Project::new(
        r#"
[processes.talk]
backend = "command"
command = ["sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; while [ ! -e more ]; do sleep 0.02; done; echo later; exec sleep 1000"]

[processes.other]
backend = "command"
command = ["sh", "-c", "echo noise; exec sleep 1000"]
"#,
    );
    let run = p.spawn(&["start"]);
    run.wait_for("talk.1 | line5", T);
    run.wait_for("other.1 | noise", T);
    let (code, out) = ctl(&p, &["logs", "talk", "-n", "2"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "talk.1 | line4\ntalk.1 | line5", "{out}");
    let (_, all) = ctl(&p, &["logs"]);
    assert!(
        all.contains("other.1 | noise") && all.contains("talk.1 | line1"),
        "{all}"
    );
    let (code, out) = ctl(&p, &["logs", "nope"]);
    assert_eq!(code, 1, "{out}");

    let follow = Running::spawn(p.command(&["logs", "talk", "-f", "-n", "1"]));
    follow.wait_for("talk.1 | line5", T);
    p.write_atomic("more", "");
    follow.wait_for("later", T);
    run.wait_for("talk.1 | later", T);
    assert!(!follow.output().contains("noise"), "{}", follow.output());
}

#[test]
fn the_socket_is_0600_and_another_uid_is_refused() {
    let p = Project::new(SLEEPERS);
    let _run = p.spawn(&["start"]);
    wait_status(&p, "all ready", all_ready);
    let sock = socket_path(&p);
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{sock:?}");
    // Let uid 65534 read the config and reach the folder.
    let open = |path: &std::path::Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    open(p.path(), 0o755);
    open(&p.path().join("prodserver.toml"), 0o644);
    let nobody = |args: &[&str]| {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
            .args(args)
            .current_dir(p.path())
            .env("XDG_RUNTIME_DIR", p.runtime_dir())
            .env("NO_COLOR", "1")
            .env_remove("PRODSERVER_CONFIG")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The file system keeps it out.
    let (code, err) = nobody(&["status"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("runs as another user"), "{err}");
    // With the folders and the socket opened up, the peer check does.
    open(&p.runtime_dir(), 0o755);
    open(&p.runtime_dir().join("prodserver"), 0o755);
    open(&p.runtime_dir().join("prodserver/ctl"), 0o755);
    open(&sock, 0o666);
    let (code, err) = nobody(&["stop", "a"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("refused: this supervisor serves only uid 0 (and root); you are uid 65534"),
        "{err}"
    );
    let (_, v) = status(&p);
    assert_eq!(
        state(&v, "a", 1),
        "ready",
        "nothing was done for the stranger"
    );
}

#[test]
fn a_second_supervisor_is_refused_and_a_stale_socket_replaced() {
    let p = Project::new(SLEEPERS);
    let mut first = p.spawn(&["start"]);
    wait_status(&p, "all ready", all_ready);
    let (code, out) = ctl(&p, &["start"]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains(&format!("already running as pid {}", first.pid())),
        "{out}"
    );
    // SIGKILL leaves the socket file behind.
    first.signal(libc::SIGKILL);
    first.wait_exit(T);
    assert!(socket_path(&p).exists());
    let (code, out) = ctl(&p, &["status"]);
    assert_eq!(code, 4, "a dead socket means nothing runs: {out}");
    let second = p.spawn(&["start"]);
    let v = wait_status(&p, "the new supervisor", all_ready);
    assert_eq!(v["pid"], second.pid());
}

#[test]
fn malformed_and_oversized_requests_are_answered_and_harmless() {
    let p = Project::new(SLEEPERS);
    let _run = p.spawn(&["start"]);
    let before = wait_status(&p, "all ready", all_ready);
    let sock = socket_path(&p);
    let conn = UnixStream::connect(&sock).unwrap();
    // An unanswered request fails the test instead of hanging it.
    conn.set_read_timeout(Some(T)).unwrap();
    let mut read = BufReader::new(conn.try_clone().unwrap());
    let mut write = conn;
    let mut ask = |line: &[u8]| -> Value {
        write.write_all(line).unwrap();
        let mut reply = String::new();
        read.read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap()
    };
    for (bad, why) in [
        (&b"garbage\n"[..], "not JSON"),
        (b"{\"v\":1,\"cmd\":\"dance\"}\n", "unknown variant"),
        (
            b"{\"v\":9,\"cmd\":\"status\"}\n",
            "version 9 is not supported",
        ),
        (b"{\"cmd\":\"status\"}\n", "no protocol version"),
        (b"\xff\xfe\n", "not JSON"),
    ] {
        let r = ask(bad);
        assert_eq!(r["ok"], false, "{r}");
        assert!(r["error"].as_str().unwrap().contains(why), "{r}");
    }
    // The same connection still works.
    let r = ask(b"{\"v\":1,\"cmd\":\"status\"}\n");
    assert_eq!(r["ok"], true);
    // An endless line: an error, then the connection is closed.
    let mut conn = UnixStream::connect(&sock).unwrap();
    conn.set_read_timeout(Some(T)).unwrap();
    let big = vec![b'x'; 70 * 1024];
    let _ = conn.write_all(&big);
    // The reply is read as one line: the unread rest of the request may
    // make the kernel report a reset after it.
    let mut reply = String::new();
    BufReader::new(&conn).read_line(&mut reply).unwrap();
    assert!(reply.contains("request too long"), "{reply}");
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest);
    assert!(rest.is_empty(), "the connection ends after the error");
    // The supervisor is undisturbed.
    let (code, v) = status(&p);
    assert_eq!(code, 0);
    assert_eq!(pid(&v, "a", 1), pid(&before, "a", 1));
}

#[test]
fn the_reload_reply_says_what_the_log_says_after_a_scale() {
    let p = Project::new(SLEEPERS);
    let run = p.spawn(&["start"]);
    wait_status(&p, "all ready", all_ready);
    let (code, out) = ctl(&p, &["scale", "b=3"]);
    assert_eq!(code, 0, "{out}");
    // The file still says 2: the reload scales b back, and says so.
    let (code, out) = ctl(&p, &["reload"]);
    assert_eq!(code, 0, "{out}");
    let logged = run.wait_for("prodserver | reload: ", T);
    assert_eq!(
        out,
        logged.trim_start_matches("prodserver | "),
        "{}",
        run.output()
    );
    assert!(out.contains("changed b;"), "{out}");
    let (_, v) = status(&p);
    assert!(find(&v, "b", 3).is_none(), "{v:#}");
}
