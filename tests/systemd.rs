//! prodserver as a systemd service: a datagram socket of the test stands in
//! for systemd's NOTIFY_SOCKET and records what prodserver tells it.
//! Every wait is on a condition with a deadline.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prodserver::supervisor::core::{Goal, Reply, Request};
use prodserver::supervisor::engine::{Engine, RunOptions};
use support::{wait_until, Project, BIN};

const T: Duration = Duration::from_secs(20);

/// systemd's end of NOTIFY_SOCKET: every datagram received, in order.
struct FakeSystemd {
    value: String,
    got: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl FakeSystemd {
    fn bind(path: &Path) -> FakeSystemd {
        let sock = UnixDatagram::bind(path).unwrap();
        FakeSystemd::serve(sock, path.to_str().unwrap().to_owned())
    }

    fn bind_abstract(name: &str) -> FakeSystemd {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        FakeSystemd::serve(UnixDatagram::bind_addr(&addr).unwrap(), format!("@{name}"))
    }

    fn serve(sock: UnixDatagram, value: String) -> FakeSystemd {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().unwrap().push((Instant::now(), text));
            }
        });
        FakeSystemd { value, got }
    }

    fn datagrams(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, d)| d.clone())
            .collect()
    }

    /// When each `WATCHDOG=1` arrived.
    fn pings(&self) -> Vec<Instant> {
        let got = self.got.lock().unwrap();
        got.iter()
            .filter(|(_, d)| d.lines().any(|l| l == "WATCHDOG=1"))
            .map(|(at, _)| *at)
            .collect()
    }

    /// Every line of every datagram, in order.
    fn lines(&self) -> Vec<String> {
        self.datagrams()
            .iter()
            .flat_map(|d| d.lines().map(str::to_owned).collect::<Vec<_>>())
            .collect()
    }

    fn wait_line(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let found = wait_until(T, || self.lines().iter().any(|l| pred(l)));
        assert!(found, "no {what} within {T:?}: {:#?}", self.datagrams());
    }

    /// [`FakeSystemd::wait_line`] for a test on the engine's own runtime,
    /// which must keep running while the test waits.
    async fn wait_line_async(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let found = tokio::time::timeout(T, async {
            while !self.lines().iter().any(|l| pred(l)) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            found.is_ok(),
            "no {what} within {T:?}: {:#?}",
            self.datagrams()
        );
    }

    fn position(&self, line: &str) -> usize {
        let lines = self.lines();
        lines
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("no {line:?} in {lines:#?}"))
    }
}

/// A child that records its environment, and on TERM writes a marker and
/// waits for `release` before it exits: a graceful stop as long as the
/// test wants.
const SLOW_STOP: &str = r#"
[processes.web]
backend = "command"
command = ["sh", "-c", "env > env.$PRODSERVER_INSTANCE.tmp && mv env.$PRODSERVER_INSTANCE.tmp env.$PRODSERVER_INSTANCE; trap 'exit 0' TERM; while :; do sleep 0.05; done"]
instances = 2

[processes.slow]
backend = "command"
command = ["sh", "-c", "trap 'touch got-term.tmp && mv got-term.tmp got-term; until [ -e release ]; do sleep 0.05; done; exit 0' TERM; while :; do sleep 0.05; done"]
stop_timeout = "1m"
"#;

#[test]
fn the_sd_notify_sequence_from_ready_to_a_long_stop() {
    // The library test's engine kills children of this process it does not know.
    let _turn = support::engine::exclusive();
    let p = Project::new(SLOW_STOP);
    let systemd = FakeSystemd::bind(&p.path().join("notify.sock"));
    let mut cmd = p.command(&["start"]);
    cmd.env("NOTIFY_SOCKET", &systemd.value)
        .env("WATCHDOG_USEC", "3000000")
        .env_remove("WATCHDOG_PID")
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDNAMES", "web");
    let mut run = support::Running::spawn(cmd);

    systemd.wait_line("READY=1", |l| l == "READY=1");
    let ready = systemd.datagrams();
    let first_ready = ready.iter().position(|d| d.starts_with("READY=1")).unwrap();
    assert_eq!(
        ready[first_ready], "READY=1\nSTATUS=3/3 ready",
        "READY with the status, once all 3 instances run: {ready:#?}"
    );
    assert!(
        ready[..first_ready]
            .iter()
            .all(|d| d.starts_with("STATUS=") && d.contains(" ready") || d == "WATCHDOG=1"),
        "only progress before READY: {ready:#?}"
    );
    // The watchdog is pinged every 1.5 s (half of WATCHDOG_USEC) by the
    // loop's own timer, though nothing else wakes the loop: never 3 s
    // apart, after which systemd would kill the service.
    let pings = |s: &FakeSystemd| s.pings().len();
    assert!(
        wait_until(T, || pings(&systemd) >= 3),
        "{:#?}",
        systemd.datagrams()
    );
    for pair in systemd.pings().windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap < Duration::from_secs(3), "pings {gap:?} apart");
    }

    // Children never see prodserver's own NOTIFY_SOCKET, WATCHDOG_* or LISTEN_*.
    let env_file = p.path().join("env.1");
    assert!(wait_until(T, || env_file.exists()));
    let env = std::fs::read_to_string(&env_file).unwrap();
    for line in env.lines() {
        assert!(
            !line.starts_with("LISTEN_") && !line.starts_with("WATCHDOG_"),
            "{line}"
        );
        if let Some(value) = line.strip_prefix("NOTIFY_SOCKET=") {
            assert_ne!(value, systemd.value, "the child got ours");
        }
    }

    // A stop that waits for slow.1: STOPPING, the status says why, and the
    // timeout is extended while it lasts.
    run.signal(libc::SIGTERM);
    let got_term = p.path().join("got-term");
    assert!(wait_until(T, || got_term.exists()));
    systemd.wait_line("the stopping status", |l| {
        l == "STATUS=stopping: waiting for slow.1 (SIGTERM sent)"
    });
    let stopping = systemd.position("STOPPING=1");
    let extend = systemd.position("EXTEND_TIMEOUT_USEC=20000000");
    assert!(systemd.position("READY=1") < stopping && stopping < extend);
    // Still pinging while the stop runs.
    let before = pings(&systemd);
    assert!(wait_until(T, || pings(&systemd) > before));
    p.write_atomic("release", "");
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
    assert_eq!(
        systemd.lines().iter().filter(|l| *l == "READY=1").count(),
        1,
        "{:#?}",
        systemd.datagrams()
    );
    // Not in a unit here (the cgroup names none): said, not guessed.
    let out = run.output();
    assert!(
        out.contains("running under systemd, but its unit cannot be found in /proc/self/cgroup: cannot check its KillMode"),
        "{out}"
    );
}

#[test]
fn an_abstract_notify_socket_and_a_watchdog_meant_for_another_process() {
    // The library test's engine kills children of this process it does not know.
    let _turn = support::engine::exclusive();
    let p = Project::new(
        r#"
[processes.web]
backend = "command"
command = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"]
"#,
    );
    let name = format!("prodserver-test-systemd-{}", std::process::id());
    let systemd = FakeSystemd::bind_abstract(&name);
    let mut cmd = p.command(&["start"]);
    cmd.env("NOTIFY_SOCKET", &systemd.value)
        .env("WATCHDOG_USEC", "20000")
        .env("WATCHDOG_PID", "1");
    let mut run = support::Running::spawn(cmd);
    systemd.wait_line("READY=1", |l| l == "READY=1");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
    let lines = systemd.lines();
    assert!(lines.contains(&"STOPPING=1".to_owned()), "{lines:#?}");
    assert!(
        !lines.contains(&"WATCHDOG=1".to_owned()),
        "WATCHDOG_PID names another process: {lines:#?}"
    );
}

/// The engine through the library (the reload path that exists), with a
/// fake systemd: a reload is framed by RELOADING=1 and READY=1.
#[test]
fn a_reload_is_reloading_then_ready() {
    let _turn = support::engine::exclusive();
    let old = r#"
[processes.web]
backend = "command"
command = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"]
"#;
    let setup = support::engine::Setup::new(old);
    let systemd = FakeSystemd::bind(&setup.path().join("notify.sock"));
    let opts = setup.load_options();
    let (loaded, resolved) = prodserver::resolve::load(&setup.config, &opts).unwrap();
    let plan = loaded.plan;
    let (logs, writer) = prodserver::logs::Logs::start(
        prodserver::logs::Format::Text { color: false },
        12,
        Box::new(std::io::sink()),
    )
    .unwrap();
    let keeper = prodserver::os::start_keeper_among_threads().unwrap();
    let run_opts = RunOptions {
        selected: (0..plan.processes.len()).collect(),
        base_env: std::env::vars().collect(),
        runtime_dir: setup.runtime.path().to_path_buf(),
        resolved,
        notify_dir: None,
        goal: Goal::UntilStopped,
    };
    let env: BTreeMap<String, String> = [("NOTIFY_SOCKET".to_owned(), systemd.value.clone())]
        .into_iter()
        .collect();
    let link = match prodserver::systemd::Link::from_env(&env, std::time::Instant::now()) {
        prodserver::systemd::Setup::Link(link, Ok(None)) => link,
        _ => panic!("no link"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (before, after) = rt.block_on(async {
        let engine = Engine::new(plan, run_opts, keeper, logs.clone()).with_systemd(link);
        let control = engine.control();
        let run = tokio::spawn(engine.run());
        systemd
            .wait_line_async("READY=1", |l| l == "READY=1")
            .await;
        std::fs::write(
            &setup.config,
            format!(
                "{old}\n[processes.other]\nbackend = \"command\"\ncommand = [\"sh\", \"-c\", \"trap 'exit 0' TERM; while :; do sleep 0.05; done\"]\n"
            ),
        )
        .unwrap();
        let (loaded, resolved) = prodserver::resolve::load(&setup.config, &opts).unwrap();
        let before = prodserver::systemd::monotonic_usec();
        let reply = tokio::time::timeout(T, control.reload(loaded.plan, resolved))
            .await
            .unwrap();
        let after = prodserver::systemd::monotonic_usec();
        assert_eq!(reply, Some(Reply::Done));
        let _ = control.request(Request::Shutdown).await;
        let code = tokio::time::timeout(T, run).await.unwrap().unwrap();
        assert_eq!(code, 0);
        (before, after)
    });
    let _ = writer.flush_and_stop();
    systemd.wait_line("STOPPING=1", |l| l == "STOPPING=1");
    let d = systemd.datagrams();
    let at = d
        .iter()
        .position(|d| d.starts_with("RELOADING=1"))
        .unwrap_or_else(|| panic!("{d:#?}"));
    let usec: u64 = d[at]
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{d:#?}"));
    assert!(before <= usec && usec <= after, "{before} {usec} {after}");
    assert_eq!(
        d[at..at + 3],
        [
            format!("RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading"),
            "READY=1".to_owned(),
            "STATUS=2/2 ready".to_owned(),
        ],
        "{d:#?}"
    );
    assert_eq!(d.iter().filter(|d| d.contains("READY=1")).count(), 2);
}

/// `prodserver start` with stdout on a pipe whose device and inode are
/// named (or not) by JOURNAL_STREAM.
fn run_with_journal_stream(p: &Project, matching: bool) -> String {
    // The library test's engine kills children of this process it does not know.
    let _turn = support::engine::exclusive();
    let (read, write) = nix::unistd::pipe().unwrap();
    let st = nix::sys::stat::fstat(&write).unwrap();
    let value = if matching {
        format!("{}:{}", st.st_dev, st.st_ino)
    } else {
        format!("{}:{}", st.st_dev, st.st_ino + 1)
    };
    let mut child = Command::new(BIN)
        .args(["start", "--timestamps"])
        .current_dir(p.path())
        .env("XDG_RUNTIME_DIR", p.runtime_dir())
        .env_remove("NO_COLOR")
        .env_remove("NOTIFY_SOCKET")
        // Inherited from a unit that ran the test (a CI runner's job): not
        // prodserver's own unit, so no KillMode check.
        .env("INVOCATION_ID", "0123456789abcdef")
        .env("JOURNAL_STREAM", value)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = String::new();
    std::fs::File::from(read).read_to_string(&mut out).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{out}");
    out
}

const FAILING: &str = r#"
[processes.flap]
backend = "command"
command = ["sh", "-c", "echo '<3>not ours'; exit 1"]
backoff = "10ms"
max_restarts = 1
"#;

#[test]
fn under_journald_warnings_and_errors_carry_priorities() {
    let p = Project::new(FAILING);
    let out = run_with_journal_stream(&p, true);
    assert!(!out.contains('\x1b'), "no colour: {out}");
    let restarting = out
        .lines()
        .find(|l| l.contains("restarting in"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(restarting.starts_with("<4>flap.1"), "{out}");
    let failed = out
        .lines()
        .find(|l| l.contains("FAILED after 1 restarts"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(failed.starts_with("<3>flap.1"), "{out}");
    let exiting = out.lines().last().unwrap();
    assert!(
        exiting.starts_with("<3>prodserver | exiting with code 1"),
        "{out}"
    );
    assert!(
        out.contains("\nflap.1     | <3>not ours\n"),
        "a child's text is its own: {out}"
    );
    // journald stamps lines itself: --timestamps is dropped.
    assert!(out.lines().all(|l| !l.starts_with("20")), "{out}");
    assert!(!out.contains("KillMode"), "{out}");
}

#[test]
fn another_processs_journal_stream_changes_nothing() {
    let p = Project::new(FAILING);
    let out = run_with_journal_stream(&p, false);
    assert!(!out.contains("<4>") && !out.contains("<3>flap"), "{out}");
    assert!(
        out.lines().all(|l| l.starts_with("20")),
        "--timestamps kept: {out}"
    );
}
