//! `prodserver smoke`, end to end: the real binary, real children (python3
//! stdlib and sh), real exit codes.

mod support;

use std::time::{Duration, Instant};

use support::{ports, Project};

/// Ample for a smoke run whose processes are ready at once.
const RUN: Duration = Duration::from_secs(60);

/// A process that prints `words` and then sleeps; ready once it printed
/// them (a `log` health check).
fn printer(name: &str, words: &str) -> String {
    format!(
        r#"
[processes.{name}]
backend = "command"
command = ["python3", "-c", "import time; print('{words}', flush=True); time.sleep(1000)"]
health = {{ log = "{words}" }}
"#
    )
}

/// Prints `words`, never becomes ready (its log check waits for a line it
/// never writes). sh, not python: it must have spoken within a short
/// timeout on a loaded machine.
fn never_ready(name: &str, words: &str) -> String {
    format!(
        r#"
[processes.{name}]
backend = "command"
command = ["sh", "-c", "echo '{words}'; exec sleep 1000"]
health = {{ log = "never printed" }}
"#
    )
}

/// Ready once spawned (no health check).
fn sleeper(name: &str) -> String {
    format!(
        r#"
[processes.{name}]
backend = "command"
command = ["sleep", "1000"]
"#
    )
}

/// The lines after the report's `smoke: last N lines of LABEL:` header.
fn report_of(output: &str, label: &str) -> Vec<String> {
    let lines: Vec<&str> = output.lines().collect();
    let header = format!("lines of {label}:");
    let Some(start) = lines
        .iter()
        .position(|l| l.starts_with("smoke: last ") && l.ends_with(&header))
    else {
        panic!("no report of {label}'s last lines in:\n{output}");
    };
    lines[start + 1..]
        .iter()
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim().to_string())
        .collect()
}

/// Parses a JUnit file with python3's own XML parser (a malformed file
/// fails here) and returns, per testcase, `name|time|outcome|text`.
fn junit_cases(path: &std::path::Path) -> Vec<String> {
    let script = r#"
import json, sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
for suite in root:
    assert int(suite.get("tests")) == len(suite), "tests count"
    assert int(suite.get("failures")) == len(suite.findall("testcase/failure")), "failures count"
    for case in suite:
        float(case.get("time"))
        f, s = case.find("failure"), case.find("skipped")
        if f is not None:
            outcome, text = "failure:" + f.get("message"), f.text or ""
        elif s is not None:
            outcome, text = "skipped:" + s.get("message"), ""
        else:
            outcome, text = "passed", ""
        print(json.dumps(case.get("name") + "|" + outcome + "|" + text))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "the JUnit file does not parse: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<String>(l).expect("a JSON string"))
        .collect()
}

#[test]
fn all_ready_then_a_passing_command_exits_0_with_a_clean_report() {
    let config = format!(
        r#"{}{}
[processes.migrate]
backend = "command"
command = ["python3", "-c", "print('migrated')"]
oneshot = true
"#,
        printer("web", "serving"),
        printer("worker", "consuming")
    );
    let p = Project::new(&config);
    let (code, out) = p.run(&["smoke", "--junit", "report.xml", "--", "true"], RUN);
    assert_eq!(code, 0, "{out}");
    for line in [
        "smoke: web ready in",
        "smoke: worker ready in",
        "smoke: migrate completed in",
        "smoke: every process is ready in",
        "smoke: the command passed in",
        "smoke: passed in",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
    let cases = junit_cases(&p.path().join("report.xml"));
    assert_eq!(
        cases,
        vec![
            "web|passed|",
            "worker|passed|",
            "migrate|passed|",
            "command: true|passed|",
            "stop|passed|"
        ]
    );
}

#[test]
fn a_never_ready_process_fails_within_the_timeout_showing_its_state_and_lines() {
    let config = format!(
        "{}{}",
        sleeper("web"),
        never_ready("stuck", "stuck says hello")
    );
    let p = Project::new(&config);
    let began = Instant::now();
    let (code, out) = p.run(
        &[
            "smoke",
            "--timeout",
            "2s",
            "--junit",
            "out.xml",
            "--",
            "true",
        ],
        RUN,
    );
    let took = began.elapsed();
    assert_eq!(code, 1, "{out}");
    // The timeout is honoured: no sooner, and no later than a quick stop
    // (the children stop at SIGTERM) with a generous margin.
    assert!(took >= Duration::from_secs(2), "{took:?}\n{out}");
    assert!(took < Duration::from_secs(2 + 8), "{took:?}\n{out}");
    assert!(
        out.contains("smoke: stuck not ready within 2s: running"),
        "{out}"
    );
    assert!(out.contains("smoke: stuck.1: running, 0 restarts"), "{out}");
    let lines = report_of(&out, "stuck.1");
    assert!(
        lines.iter().any(|l| l == "stuck says hello"),
        "{lines:?}\n{out}"
    );
    assert!(
        !out.contains("smoke: running true"),
        "the command must not run:\n{out}"
    );
    assert!(!out.contains("smoke: web not ready"), "{out}");
    let cases = junit_cases(&p.path().join("out.xml"));
    assert_eq!(cases[0], "web|passed|");
    assert!(
        cases[1].starts_with("stuck|failure:not ready within 2s: running|stuck.1: running"),
        "{cases:?}"
    );
    assert!(
        cases[1].contains("stuck.1 | stuck says hello\n"),
        "{cases:?}"
    );
    assert_eq!(
        cases[2],
        "command: true|skipped:not run: the processes were not all ready|"
    );
    assert_eq!(cases[3], "stop|passed|");
}

#[test]
fn a_failing_oneshot_fails_at_once_and_the_report_escapes_its_words() {
    let config = format!(
        r#"{}
[processes.migrate]
backend = "command"
command = ["python3", "-c", "import sys; print('boom <&> \"quoted\" \x1b[31mred', flush=True); sys.exit(3)"]
oneshot = true
"#,
        printer("web", "serving")
    );
    let p = Project::new(&config);
    let (code, out) = p.run(
        &[
            "smoke",
            "--timeout",
            "60s",
            "--junit",
            "out.xml",
            "--",
            "true",
        ],
        RUN,
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("smoke: migrate FAILED after"), "{out}");
    let lines = report_of(&out, "migrate.1");
    assert!(
        lines.iter().any(|l| l.starts_with("boom <&> \"quoted\"")),
        "{lines:?}"
    );
    let cases = junit_cases(&p.path().join("out.xml"));
    let migrate = cases
        .iter()
        .find(|c| c.starts_with("migrate|"))
        .expect("migrate case");
    assert!(
        migrate.starts_with("migrate|failure:FAILED (migrate.1 failed)|"),
        "{migrate}"
    );
    assert!(
        migrate.contains("migrate.1 | boom <&> \"quoted\" \\x1b[31mred"),
        "{migrate}"
    );
}

#[test]
fn the_commands_exit_code_propagates() {
    let p = Project::new(&printer("web", "serving"));
    let (code, out) = p.run(&["smoke", "--", "sh", "-c", "exit 7"], RUN);
    assert_eq!(code, 7, "{out}");
    assert!(
        out.contains("smoke: the command FAILED with exit code 7"),
        "{out}"
    );
    // A command killed by a signal: 128 + N, as a shell reports it.
    let (code, out) = p.run(&["smoke", "--", "sh", "-c", "kill -TERM $$"], RUN);
    assert_eq!(code, 128 + libc::SIGTERM, "{out}");
    let (code, out) = p.run(&["smoke", "--", "./no-such-program"], RUN);
    assert_eq!(code, 127, "{out}");
}

#[test]
fn the_command_sees_the_project_env_and_where_the_processes_are() {
    let ports = ports::reserve();
    let port = ports.port(0);
    let config = format!(
        r#"
[prodserver]
name = "shop"
env = {{ GREETING = "hello" }}

[processes.web-api]
backend = "command"
command = ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
health = {{ http = "http://127.0.0.1:{port}/", interval = "100ms" }}
"#
    );
    let p = Project::new(&config);
    let script = "printf '%s\\n' \"$GREETING\" \"$PRODSERVER_PROJECT\" \"$PRODSERVER_PROCESSES\" \"$PRODSERVER_WEB_API_URL\" > env.tmp && mv env.tmp env.txt";
    let (code, out) = p.run(&["smoke", "--", "sh", "-c", script], RUN);
    assert_eq!(code, 0, "{out}");
    let seen = std::fs::read_to_string(p.path().join("env.txt")).expect("env.txt");
    assert_eq!(
        seen,
        format!("hello\nshop\nweb-api\nhttp://127.0.0.1:{port}/\n")
    );
}

#[test]
fn names_select_processes_and_what_they_depend_on() {
    let config = format!(
        r#"{}{}{}
[processes.web.depends_on]
db = "healthy"
"#,
        printer("db", "db up"),
        printer("web", "web up"),
        printer("other", "other up")
    );
    let p = Project::new(&config);
    let script = "echo \"processes=$PRODSERVER_PROCESSES\"";
    let (code, out) = p.run(&["smoke", "web", "--", "sh", "-c", script], RUN);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("processes=db,web"), "{out}");
    assert!(out.contains("smoke: db ready in"), "{out}");
    assert!(!out.contains("other.1"), "other must not run:\n{out}");
    let (code, out) = p.run(&["smoke", "nope"], RUN);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no process named `nope`"), "{out}");
}

#[test]
fn a_config_error_exits_2_with_a_located_message() {
    let p =
        Project::new("[processes.web]\nbackend = \"command\"\ncommand = [\"true\"]\nbogus = 1\n");
    let (code, out) = p.run(&["smoke", "--", "true"], RUN);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("prodserver.toml:4:1"), "{out}");
    let p = Project::new(&printer("web", "serving"));
    let (code, out) = p.run(&["smoke", "--timeout", "soon"], RUN);
    assert_eq!(code, 2, "{out}");
}

#[test]
fn a_stop_that_is_not_clean_does_not_pass() {
    let config = r#"
[processes.stubborn]
backend = "command"
command = ["python3", "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(1000)"]
health = { log = "up" }
stop_timeout = "300ms"
"#;
    let p = Project::new(config);
    let (code, out) = p.run(&["smoke", "--junit", "out.xml", "--", "true"], RUN);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("smoke: the command passed"), "{out}");
    assert!(
        out.contains("smoke: the stop was not clean (exit code 1)"),
        "{out}"
    );
    let cases = junit_cases(&p.path().join("out.xml"));
    assert!(
        cases
            .last()
            .is_some_and(|c| c.starts_with("stop|failure:not clean")),
        "{cases:?}"
    );
}

#[test]
fn sigterm_during_the_wait_stops_everything() {
    let p = Project::new(&never_ready("stuck", "stuck says hello"));
    let mut run = p.spawn(&["smoke", "--timeout", "120s"]);
    run.wait_for("stuck.1 | stuck says hello", RUN);
    run.signal(libc::SIGTERM);
    let code = run.wait_exit(RUN);
    let out = run.output();
    assert_eq!(code, 128 + libc::SIGTERM, "{out}");
    assert!(out.contains("smoke: SIGTERM received: stopping"), "{out}");
    assert!(out.contains("stuck.1 | stopped"), "{out}");
}
