//! `prodserver start` with real child processes: restarts, backoff, oneshots,
//! stop order, KillMode=mixed, no orphans, the singleton lock, exec failure.
//! Every wait is on a condition with a deadline.

mod support;

use std::time::Duration;

use support::{alive, descendants, wait_until, Project};

const T: Duration = Duration::from_secs(20);

fn read_pids(path: &std::path::Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Numbers of `restarting in Nms` lines, in order.
fn restart_delays(output: &str) -> Vec<f64> {
    output
        .lines()
        .filter_map(|l| l.split("restarting in ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|d| match d.strip_suffix("ms") {
            Some(ms) => ms.parse::<f64>().ok().map(|ms| ms / 1000.0),
            None => d.strip_suffix('s')?.parse().ok(),
        })
        .collect()
}

#[test]
fn crash_respawns_with_growing_backoff() {
    let p = Project::new(
        r#"
[processes.crash]
backend = "command"
command = ["sh", "-c", "echo crashing; exit 1"]
backoff = "100ms"
backoff_max = "800ms"
max_restarts = 0
"#,
    );
    let run = p.spawn(&["start"]);
    run.wait_for_count("restarting in", 5, T);
    let delays = restart_delays(&run.output());
    assert!(delays.len() >= 5, "{delays:?}");
    let expected = [0.1, 0.2, 0.4, 0.8, 0.8];
    for (got, want) in delays.iter().zip(expected) {
        assert!(
            (got - want).abs() <= want * 0.11,
            "delays {delays:?} should follow {expected:?} within jitter"
        );
    }
    assert!(run.count("crash.1 | crashing") >= 5);
    assert!(run.output().contains("exited with code 1"));
}

#[test]
fn flapping_instance_fails_and_prodserver_exits_1() {
    let p = Project::new(
        r#"
[processes.flap]
backend = "command"
command = ["false"]
backoff = "10ms"
max_restarts = 3
restart_window = "1m"
"#,
    );
    let (code, out) = p.run(&["start"], T);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.matches("restarting in").count(), 3, "{out}");
    assert!(out.contains("FAILED after 3 restarts"), "{out}");
}

#[test]
fn exec_failure_is_reported_once() {
    let p = Project::new(
        r#"
[processes.ghost]
backend = "command"
command = ["/nonexistent/ghost-program", "--flag"]
"#,
    );
    let (code, out) = p.run(&["start"], T);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.matches("cannot execute").count(), 1, "{out}");
    assert!(out.contains("/nonexistent/ghost-program"), "{out}");
    assert!(!out.contains("restarting"), "{out}");
}

#[test]
fn oneshot_gates_its_dependents() {
    let p = Project::new(
        r#"
[processes.web]
backend = "command"
command = ["sh", "-c", "test -f migrated && echo web sees migration && exec sleep 60"]
restart = "never"
depends_on = { migrate = "completed" }

[processes.migrate]
backend = "command"
command = ["sh", "-c", "sleep 0.3; touch migrated; echo migrated"]
oneshot = true
"#,
    );
    let mut run = p.spawn(&["start"]);
    run.wait_for("web sees migration", T);
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
}

#[test]
fn failed_oneshot_stops_everything_and_shows_its_last_lines() {
    let p = Project::new(
        r#"
[processes.sidecar]
backend = "command"
command = ["sleep", "60"]

[processes.migrate]
backend = "command"
command = ["sh", "-c", "echo applying 0001; echo 'boom: table exists' >&2; exit 3"]
oneshot = true

[processes.web]
backend = "command"
command = ["sleep", "60"]
depends_on = { migrate = "completed" }
"#,
    );
    let (code, out) = p.run(&["start"], T);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("oneshot migrate.1 failed"), "{out}");
    assert!(
        out.contains("  boom: table exists"),
        "last lines are shown: {out}"
    );
    assert!(!out.contains("web.1 | "), "web must never start: {out}");
    assert!(out.contains("web.1: not started"), "{out}");
}

#[test]
fn everything_ending_on_its_own_exits_0() {
    let p = Project::new(
        r#"
[processes.a]
backend = "command"
command = ["echo", "a done"]
oneshot = true

[processes.b]
backend = "command"
command = ["echo", "b done"]
restart = "never"
"#,
    );
    let (code, out) = p.run(&["start"], T);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("a.1 | a done") && out.contains("b.1 | b done"),
        "{out}"
    );
}

/// Fake programs record the moment they receive TERM and the moment they
/// exit, so the test can check the order of the stop waves.
const FAKE: &str = r#"#!/bin/sh
name=$1
trap 'echo "$name term $(date +%s%N)" >> events; sleep 0.2; echo "$name exit $(date +%s%N)" >> events; exit 0' TERM
echo "$name up"
while :; do sleep 0.05; done
"#;

fn events(p: &Project) -> Vec<(String, String, u128)> {
    std::fs::read_to_string(p.path().join("events"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((
                it.next()?.to_string(),
                it.next()?.to_string(),
                it.next()?.parse().ok()?,
            ))
        })
        .collect()
}

fn at(ev: &[(String, String, u128)], name: &str, what: &str) -> u128 {
    ev.iter()
        .find(|e| e.0 == name && e.1 == what)
        .map(|e| e.2)
        .unwrap_or_else(|| panic!("no {name} {what} in {ev:?}"))
}

#[test]
fn stop_order_producers_first_then_workers_then_dependencies() {
    let p = Project::new(
        r#"
[processes.db]
backend = "command"
command = ["./fake", "db"]

[processes.worker]
backend = "celery-worker"
app = "shop.celery.app"
program = "./fake"
depends_on = { db = "started" }

[processes.web]
backend = "gunicorn"
app = "shop.wsgi:application"
program = "./fake"
# The fake binds nothing: don't hold gunicorn's default 127.0.0.1:8000.
hold_socket = false

[processes.beat]
backend = "celery-beat"
app = "shop.celery.app"
program = "./fake"
"#,
    );
    // The fakes get the backend's argv; make $1 the process name instead.
    let script = FAKE.replace("name=$1", "name=$PRODSERVER_PROCESS");
    let fake = p.write("fake", &script);
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let mut run = p.spawn(&["start"]);
    for name in ["db", "worker", "web", "beat"] {
        run.wait_for(&format!("{name} up"), T);
    }
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
    let ev = events(&p);
    // beat and web stop first, in parallel; the worker only after both
    // exited; db, which the worker depends on, last.
    let worker_term = at(&ev, "worker", "term");
    assert!(at(&ev, "beat", "exit") <= worker_term, "{ev:?}");
    assert!(at(&ev, "web", "exit") <= worker_term, "{ev:?}");
    assert!(at(&ev, "worker", "exit") <= at(&ev, "db", "term"), "{ev:?}");
    // In parallel: each was told to stop before the other had exited (a
    // fake takes 200 ms to exit after TERM), whatever the machine's load.
    assert!(at(&ev, "web", "term") < at(&ev, "beat", "exit"), "{ev:?}");
    assert!(at(&ev, "beat", "term") < at(&ev, "web", "exit"), "{ev:?}");
    assert!(run.output().contains("exit summary"), "{}", run.output());
}

#[test]
fn term_ignoring_child_is_killed_with_its_whole_group_after_stop_timeout() {
    let p = Project::new(
        r#"
[processes.stubborn]
backend = "command"
command = ["sh", "-c", "trap '' TERM; sleep 600 & echo $! >> pids; sleep 600 & echo $! >> pids; echo $$ >> pids; echo ready; wait"]
stop_timeout = "500ms"
"#,
    );
    let mut run = p.spawn(&["start"]);
    run.wait_for("stubborn.1 | ready", T);
    let pids = read_pids(&p.path().join("pids"));
    assert_eq!(pids.len(), 3);
    run.signal(libc::SIGTERM);
    // Killed, not stopped: the exit code says so, and why.
    assert_eq!(run.wait_exit(T), 1, "{}", run.output());
    assert!(
        run.output()
            .contains("did not stop within 500ms: killed its process group"),
        "{}",
        run.output()
    );
    assert!(
        run.output().contains(
            "exiting with code 1: stubborn.1 did not stop within its stop_timeout and was killed"
        ),
        "{}",
        run.output()
    );
    for pid in pids {
        assert!(!alive(pid), "pid {pid} survived");
    }
}

#[test]
fn sigkill_of_prodserver_leaves_no_descendant() {
    let p = Project::new(
        r#"
[processes.tree]
backend = "command"
command = ["sh", "-c", "sleep 600 & sleep 600 & echo ready; wait"]
instances = 2

[processes.plain]
backend = "command"
command = ["sleep", "600"]
"#,
    );
    let mut run = p.spawn(&["start"]);
    run.wait_for_count("| ready", 2, T);
    wait_until(T, || descendants(run.pid()).len() >= 8);
    let family = descendants(run.pid());
    assert!(
        family.len() >= 8,
        "2×(sh + 2 sleeps) + sleep + keeper: {family:?}"
    );
    run.signal(libc::SIGKILL);
    run.wait_exit(T);
    let gone = wait_until(Duration::from_secs(2), || {
        family.iter().all(|pid| !alive(*pid))
    });
    let left: Vec<i32> = family.iter().copied().filter(|pid| alive(*pid)).collect();
    assert!(gone, "survivors after 2 s: {left:?}");
}

#[test]
fn singleton_lock_held_elsewhere_makes_the_singleton_wait() {
    let config = r#"
[prodserver]
name = "locktest"

[processes.beat]
backend = "command"
command = ["sh", "-c", "echo beat running; exec sleep 600"]
singleton = true

[processes.other]
backend = "command"
command = ["sh", "-c", "echo other running; exec sleep 600"]
"#;
    let p = Project::new(config);
    // A second supervisor of the same project is refused outright (see
    // tests/control.rs), so the other holder is this test.
    let dir = p.runtime_dir().join("prodserver");
    prodserver::os::ensure_runtime_dir(&dir).unwrap();
    let held = match prodserver::os::try_lock(&dir, "locktest", "beat").unwrap() {
        prodserver::os::LockOutcome::Acquired(lock) => lock,
        other => panic!("{other:?}"),
    };
    let run = p.spawn(&["start"]);
    run.wait_for("other running", T);
    let line = run.wait_for("waiting for lock held by pid", T);
    assert!(
        line.contains(&format!("pid {}", std::process::id())),
        "{line}"
    );
    assert_eq!(run.count("beat running"), 0, "{}", run.output());
    drop(held);
    run.wait_for("beat running", T);
}

#[test]
fn start_names_only_what_is_asked_plus_dependencies() {
    let p = Project::new(
        r#"
[processes.setup]
backend = "command"
command = ["echo", "setup ran"]
oneshot = true

[processes.web]
backend = "command"
command = ["echo", "web ran"]
restart = "never"
depends_on = { setup = "completed" }

[processes.worker]
backend = "command"
command = ["echo", "worker ran"]
restart = "never"
"#,
    );
    let (code, out) = p.run(&["start", "web"], T);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("setup ran") && out.contains("web ran"),
        "{out}"
    );
    assert!(!out.contains("worker ran"), "{out}");
    let (code, out) = p.run(&["start", "wbe"], T);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("did you mean `web`?"), "{out}");
}

#[test]
fn child_environment_is_layered_and_scrubbed() {
    let p = Project::new(
        r#"
[prodserver]
env = { LAYER = "global", ONLY_GLOBAL = "g" }
env_file = "global.env"

[processes.show]
backend = "command"
command = ["sh", "-c", "echo LAYER=$LAYER ONLY_GLOBAL=$ONLY_GLOBAL FILE=$FILE P=$PRODSERVER_PROCESS I=$PRODSERVER_INSTANCE N=$${NOTIFY_SOCKET-unset} L=$${LISTEN_FDS-unset} W=$${WATCHDOG_USEC-unset} INHERITED=$INHERITED"]
restart = "never"
env = { LAYER = "process" }
"#,
    );
    p.write("global.env", "FILE=from-file\nLAYER=file\n");
    let mut cmd = p.command(&["start"]);
    cmd.env("NOTIFY_SOCKET", "/run/systemd/notify")
        .env("LISTEN_FDS", "2")
        .env("WATCHDOG_USEC", "1")
        .env("INHERITED", "yes");
    let mut run = support::Running::spawn(cmd);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
    let out = run.output();
    assert!(
        out.contains("LAYER=process ONLY_GLOBAL=g FILE=from-file P=show I=1 N="),
        "{out}"
    );
    assert!(out.contains(" L=unset W=unset INHERITED=yes"), "{out}");
    // systemd's socket never leaks; the child gets its own, from prodserver.
    assert!(!out.contains("N=/run/systemd/notify"), "{out}");
    let runtime = p.runtime_dir().display().to_string();
    assert!(out.contains(&format!("N={runtime}/prodserver/n/")), "{out}");
}

#[test]
fn partial_lines_and_invalid_utf8_reach_the_log() {
    let p = Project::new(
        r#"
[processes.odd]
backend = "command"
command = ["sh", "-c", "printf 'no newline at end'; printf 'bad \\377 byte\\n' >&2"]
restart = "never"
"#,
    );
    let (code, out) = p.run(&["start"], T);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("odd.1 | no newline at end"), "{out}");
    assert!(out.contains("odd.1 | bad \u{FFFD} byte"), "{out}");
    // The exit is reported after the child's last lines, not before them.
    let exited = out.find("odd.1 | exited").expect("exit event");
    assert!(
        out.find("odd.1 | no newline at end")
            .is_some_and(|i| i < exited),
        "{out}"
    );
    assert!(out.find("odd.1 | bad").is_some_and(|i| i < exited), "{out}");
}

#[test]
fn json_log_format_has_every_field() {
    let p = Project::new(
        r#"
[processes.say]
backend = "command"
command = ["echo", "hello json"]
restart = "never"
"#,
    );
    let (code, out) = p.run(&["start", "--log-format", "json"], T);
    assert_eq!(code, 0, "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("hello json"))
        .expect("the line");
    let v: serde_json::Value = serde_json::from_str(line).expect("json");
    assert_eq!(v["process"], "say");
    assert_eq!(v["instance"], 1);
    assert_eq!(v["stream"], "stdout");
    assert_eq!(v["message"], "hello json");
    assert!(
        v["pid"].as_u64().is_some() && v["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{v}"
    );
}

#[test]
fn user_and_group_drop_privileges_or_fail_clearly() {
    let p = Project::new(
        r#"
[processes.who]
backend = "command"
command = ["sh", "-c", "echo uid=$(id -u) gid=$(id -g) groups=$(id -G)"]
restart = "never"
user = "nobody"
group = "nogroup"
"#,
    );
    let (code, out) = p.run(&["start"], T);
    let root = nix::unistd::getuid().is_root();
    if root {
        assert_eq!(code, 0, "{out}");
        let line = out
            .lines()
            .find(|l| l.contains("who.1 | uid="))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(line.contains("uid=65534"), "{line}");
        assert!(
            !line.contains("groups=0") && !line.contains(" 0 "),
            "root's groups were dropped: {line}"
        );
    } else {
        assert_eq!(code, 2, "{out}");
        assert!(out.contains("root"), "the error says why: {out}");
    }
}

#[test]
fn a_second_signal_skips_the_wait() {
    let p = Project::new(
        r#"
[processes.slow]
backend = "command"
command = ["sh", "-c", "trap 'echo got term' TERM; echo ready; while :; do sleep 0.05; done"]
stop_timeout = "1h"
"#,
    );
    let mut run = p.spawn(&["start"]);
    run.wait_for("slow.1 | ready", T);
    run.signal(libc::SIGTERM);
    run.wait_for("slow.1 | got term", T);
    run.signal(libc::SIGINT);
    assert_eq!(run.wait_exit(T), 1, "{}", run.output());
    let out = run.output();
    assert!(out.contains("SIGINT again: killing what is left"), "{out}");
    assert!(out.contains("asked to stop now"), "{out}");
    assert!(
        out.contains("exiting with code 1: slow.1 was killed at once on request"),
        "{out}"
    );
}

#[test]
fn orphans_reparented_to_prodserver_are_killed_on_stop() {
    // `setsid` puts the orphan in a session and group of its own, out of
    // reach of the group kill; it is re-parented to prodserver (the child
    // subreaper) when its parent dies, and killed when prodserver stops.
    let p = Project::new(
        r#"
[processes.parent]
backend = "command"
command = ["sh", "-c", "setsid sleep 600 & echo $! > orphan; echo ready; exec sleep 600"]
"#,
    );
    let mut run = p.spawn(&["start"]);
    run.wait_for("parent.1 | ready", T);
    let orphan = read_pids(&p.path().join("orphan"))[0];
    assert!(alive(orphan));
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
    assert!(
        wait_until(Duration::from_secs(2), || !alive(orphan)),
        "orphan {orphan} survived prodserver's stop"
    );
}

#[test]
fn a_oneshot_or_critical_process_that_cannot_even_start_stops_everything() {
    for (what, table) in [
        ("oneshot", "oneshot = true"),
        ("critical process", "critical = true"),
    ] {
        let p = Project::new(&format!(
            r#"
[processes.sidecar]
backend = "command"
command = ["sleep", "600"]

[processes.setup]
backend = "command"
command = ["/nonexistent/setup"]
{table}
"#
        ));
        let (code, out) = p.run(&["start"], T);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(&format!("{what} setup.1 failed")), "{out}");
        assert!(out.contains("sidecar.1 | stopping"), "{out}");
    }
}

/// As a container's PID 1 (a new PID namespace, as `docker run` makes):
/// orphans anywhere below are re-parented to prodserver and reaped, and a
/// SIGTERM from outside stops it cleanly.
#[test]
fn as_pid_1_it_reaps_orphans_and_stops_on_sigterm() {
    let p = Project::new(
        r#"
[processes.quitter]
backend = "command"
# The orphan leaves the process group (as daemons do), so the group kill
# that follows the parent's exit does not reach it: only reaping does.
command = ["sh", "-c", "setsid sh -c 'sleep 0.5; echo orphan exiting' & echo parent exiting"]
restart = "never"

[processes.sleeper]
backend = "command"
command = ["sh", "-c", "echo my parent is pid $PPID; exec sleep 600"]
"#,
    );
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", support::BIN, "start"])
        .current_dir(p.path())
        .env("XDG_RUNTIME_DIR", p.runtime_dir())
        .env("NO_COLOR", "1");
    let mut run = support::Running::spawn(cmd);
    run.wait_for("sleeper.1 | my parent is pid 1", T);
    run.wait_for("quitter.1 | orphan exiting", T);
    let reaped = run.wait_for("reaped orphan pid", T);
    assert!(reaped.contains("exit status: 0"), "{reaped}");
    // prodserver is unshare's child; signal it from outside the namespace.
    let prodserver = support::descendants(run.pid())[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(prodserver),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
    assert!(
        run.output().contains("SIGTERM received"),
        "{}",
        run.output()
    );
}

#[test]
fn a_process_failed_before_the_stop_makes_the_exit_code_one_with_the_reason() {
    let p = Project::new(
        r#"
[processes.web]
backend = "command"
command = ["sh", "-c", "echo bad; exit 3"]
restart = "on-failure"
max_restarts = 1
backoff = "10ms"

[processes.worker]
backend = "command"
command = ["sh", "-c", "echo ready; while :; do sleep 0.05; done"]
"#,
    );
    let mut run = p.spawn(&["start"]);
    run.wait_for("worker.1 | ready", T);
    run.wait_for("web.1 | FAILED", T);
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 1, "{}", run.output());
    let out = run.output();
    assert!(
        out.contains("exiting with code 1: web.1 had FAILED before the stop"),
        "{out}"
    );
    // Every restart counts, singular and plural read right.
    assert!(
        out.contains("web.1: failed, 1 restart (last: exited with code 3)"),
        "{out}"
    );
    assert!(out.contains("worker.1: stopped, 0 restarts"), "{out}");
}

#[test]
fn json_exit_events_carry_the_pid() {
    let p = Project::new(
        r#"
[processes.once]
backend = "command"
command = ["sh", "-c", "echo hi"]
oneshot = true
"#,
    );
    let (code, out) = p.run(&["start", "--log-format", "json"], T);
    assert_eq!(code, 0, "{out}");
    let spawned: serde_json::Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("spawned"))
        })
        .unwrap_or_else(|| panic!("{out}"));
    let exited: serde_json::Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "exited with code 0")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(exited["pid"].as_u64().is_some(), "{exited}");
    assert_eq!(exited["pid"], spawned["pid"], "{out}");
}

#[test]
fn the_exit_is_reported_after_the_last_lines() {
    // A burst of output right before the exit: the pipe still holds some of
    // it when the exit is seen, and the report must wait for it.
    let p = Project::new(
        r#"
[processes.burst]
backend = "command"
command = ["sh", "-c", "seq 1 20000; echo last-line"]
oneshot = true
"#,
    );
    let (code, _) = p.run(&["start"], T);
    assert_eq!(code, 0);
    for _ in 0..5 {
        let mut run = p.spawn(&["start"]);
        assert_eq!(run.wait_exit(T), 0);
        let lines = run.lines();
        let last = lines.iter().position(|l| l == "burst.1 | last-line");
        let exited = lines
            .iter()
            .position(|l| l.starts_with("burst.1 | exited with code 0"));
        assert!(
            matches!((last, exited), (Some(l), Some(e)) if l < e),
            "{last:?} {exited:?}"
        );
    }
}

#[test]
fn the_stop_signal_reaches_the_main_pid_only() {
    // KillMode=mixed: TERM to a Celery worker's group would raise inside
    // the tasks its pool children run. Here the "pool child" records any
    // TERM it gets; the main process exits a second after TERM (time
    // enough for a wrongly signalled child to record it), and its group is
    // then SIGKILLed, so the pool child dies without ever seeing a TERM.
    let p = Project::new(
        r#"
[processes.tree]
backend = "command"
command = ["sh", "-c", "sh -c 'trap \"echo got > child-term.tmp && mv child-term.tmp child-term\" TERM; echo $$ > child.tmp && mv child.tmp child; while :; do sleep 0.05; done' & trap 'sleep 1; echo main > main-term.tmp && mv main-term.tmp main-term; exit 0' TERM; echo ready; while :; do sleep 0.05; done"]
stop_timeout = "10s"
"#,
    );
    let mut run = p.spawn(&["start"]);
    run.wait_for("tree.1 | ready", T);
    let child_file = p.path().join("child");
    assert!(wait_until(T, || child_file.exists()));
    let child: i32 = std::fs::read_to_string(&child_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
    assert!(p.path().join("main-term").exists(), "the main pid got TERM");
    assert!(
        wait_until(T, || !alive(child)),
        "the group was killed after"
    );
    assert!(
        !p.path().join("child-term").exists(),
        "TERM reached the group, not just the main pid"
    );
}

#[test]
fn backoff_reset_from_the_file_resets_the_delay() {
    // Up 400 ms each time, longer than backoff_reset: every crash counts as
    // the first, so the delay never doubles (with the 30 s default it would).
    let p = Project::new(
        r#"
[processes.flaky]
backend = "command"
command = ["sh", "-c", "sleep 0.4; exit 1"]
backoff = "100ms"
backoff_max = "10s"
backoff_reset = "200ms"
max_restarts = 0
"#,
    );
    let mut run = p.spawn(&["start"]);
    run.wait_for_count("flaky.1 | restarting in", 4, T);
    run.signal(libc::SIGTERM);
    run.wait_exit(T);
    let delays = restart_delays(&run.output());
    assert!(delays.len() >= 4, "{delays:?}");
    for d in &delays[..4] {
        assert!(*d <= 0.111, "the delay grew: {delays:?}");
    }
}

/// `prodserver ARGS` run through `wrapper` (prlimit, setsid, ...), with the
/// project's environment.
fn wrapped(p: &Project, wrapper: &[&str], args: &[&str]) -> std::process::Command {
    let inner = p.command(args);
    let mut cmd = std::process::Command::new(wrapper[0]);
    cmd.args(&wrapper[1..])
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(p.path());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd
}

#[test]
fn a_low_soft_fd_limit_is_raised_and_children_get_it_back() {
    // systemd's soft limit of 1024 and a few hundred instances, in small:
    // 64 descriptors and 40 instances (two pipes and a socket each).
    let p = Project::new(
        r#"
[processes.many]
backend = "command"
command = ["sh", "-c", "echo limit=$(ulimit -n); while :; do sleep 1; done"]
instances = 40
"#,
    );
    let mut run =
        support::Running::spawn(wrapped(&p, &["prlimit", "--nofile=64:4096"], &["start"]));
    run.wait_for_count("| limit=64", 40, T);
    assert!(!run.output().contains("limit=4096"), "{}", run.output());
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
}

#[test]
fn a_crashing_worker_in_a_later_stop_wave_is_not_respawned_after_the_stop() {
    // web stops first (it depends on the worker) and takes a second to do
    // so; meanwhile the worker keeps crashing. Once SIGTERM arrived, it
    // must stay down.
    let p = Project::new(
        r#"
[processes.web]
backend = "command"
command = ["sh", "-c", "trap 'sleep 1; exit 0' TERM; echo ready; while :; do sleep 0.05; done"]
depends_on = { worker = "started" }

[processes.worker]
backend = "command"
command = ["sh", "-c", "sleep 0.1; exit 1"]
backoff = "10ms"
backoff_max = "20ms"
max_restarts = 0
"#,
    );
    let mut run = p.spawn(&["start"]);
    run.wait_for("web.1 | ready", T);
    run.wait_for_count("worker.1 | spawned", 2, T);
    run.signal(libc::SIGTERM);
    run.wait_exit(T);
    let lines = run.lines();
    let stop = lines
        .iter()
        .position(|l| l.contains("SIGTERM received"))
        .expect("stop line");
    let respawns: Vec<_> = lines[stop..]
        .iter()
        .filter(|l| l.starts_with("worker.1 | spawned") || l.contains("worker.1 | restarting"))
        .collect();
    assert!(respawns.is_empty(), "{respawns:?}\n{}", run.output());
}
