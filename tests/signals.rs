//! Every signal has a meaning, and none kills prodserver without stopping
//! its children properly: the stop signals stop gracefully (the child gets
//! its own stop signal and exits in its own time), the others are logged
//! and prodserver carries on. A terminal hangup is a stop; `kill -HUP`
//! without one is a reload request.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::{alive, wait_until, Project, Running};

const T: Duration = Duration::from_secs(20);

/// A child that reports its pid, then writes `stopped-by-term` atomically
/// when its stop signal arrives and exits 0.
const GRACEFUL: &str = r#"
[processes.app]
backend = "command"
command = ["sh", "-c", "trap 'echo term > t.tmp && mv t.tmp stopped-by-term; exit 0' TERM; echo $$ > pid.tmp && mv pid.tmp pid; echo ready; while :; do sleep 0.05; done"]
stop_timeout = "20s"
"#;

fn child_pid(p: &Project) -> i32 {
    let path = p.path().join("pid");
    assert!(wait_until(T, || path.exists()), "no pid file");
    std::fs::read_to_string(path)
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid")
}

fn send(pid: i32, name: &str) {
    // `kill` names real-time signals too, which nix's Signal cannot.
    let ok = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -s {name} {pid}");
}

#[test]
fn signals_without_a_stop_meaning_are_logged_and_change_nothing() {
    let p = Project::new(GRACEFUL);
    let mut run = p.spawn(&["start"]);
    run.wait_for("app.1 | ready", T);
    let child = child_pid(&p);
    send(run.pid(), "HUP");
    // `kill -HUP` reloads the unchanged file: nothing changes.
    run.wait_for("SIGHUP received: reloading the configuration", T);
    run.wait_for("reload: changed none; added none; removed none;", T);
    send(run.pid(), "USR1");
    run.wait_for("status (SIGUSR1):", T);
    run.wait_for_line(T, |l| {
        l.contains("app.1: ready (pid ") && l.contains("0 restarts")
    });
    let rtmin = libc::SIGRTMIN().to_string();
    let rtmax = libc::SIGRTMAX().to_string();
    for sig in [
        "USR2", "ALRM", "VTALRM", "PROF", "IO", "PWR", "STKFLT", "XFSZ", &rtmin, &rtmax,
    ] {
        send(run.pid(), sig);
    }
    run.wait_for("SIGRTMIN received: ignored", T);
    run.wait_for(
        &format!(
            "SIGRTMIN+{} received: ignored",
            libc::SIGRTMAX() - libc::SIGRTMIN()
        ),
        T,
    );
    for name in ["SIGUSR2", "SIGALRM", "SIGPWR", "SIGXFSZ"] {
        run.wait_for(&format!("{name} received: ignored"), T);
    }
    assert!(alive(run.pid()), "prodserver survived: {}", run.output());
    assert!(alive(child), "its child too");
    assert!(!p.path().join("stopped-by-term").exists());
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
}

#[test]
fn quit_and_xcpu_stop_gracefully_and_only_ctrl_c_mentions_ctrl_c() {
    for (sig, name) in [(libc::SIGQUIT, "SIGQUIT"), (libc::SIGXCPU, "SIGXCPU")] {
        let p = Project::new(GRACEFUL);
        let mut run = p.spawn(&["start"]);
        run.wait_for("app.1 | ready", T);
        run.signal(sig);
        assert_eq!(run.wait_exit(T), 0, "{}", run.output());
        let out = run.output();
        assert!(
            out.contains(&format!(
                "{name} received: stopping everything (a second {name} kills at once)"
            )),
            "{out}"
        );
        assert!(!out.contains("Ctrl-C"), "{out}");
        assert!(p.path().join("stopped-by-term").exists(), "{out}");
        assert!(
            out.contains("exiting with code 0: every process stopped cleanly"),
            "{out}"
        );
    }
    let p = Project::new(GRACEFUL);
    let mut run = p.spawn(&["start"]);
    run.wait_for("app.1 | ready", T);
    run.signal(libc::SIGINT);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
    assert!(run.output().contains("a second Ctrl-C kills at once"));
}

#[test]
fn a_terminal_hangup_stops_everything_gracefully() {
    let p = Project::new(GRACEFUL);
    let pty = nix::pty::openpty(None, None).expect("openpty");
    // openpty's descriptors are inherited across exec: prodserver (or a
    // parallel test's child) holding the master would keep the terminal up.
    for fd in [&pty.master, &pty.slave] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .expect("FD_CLOEXEC");
    }
    // setsid --ctty: prodserver leads a new session whose controlling
    // terminal is the pty, as in a terminal window or an SSH session.
    let mut cmd = p.command(&["start"]);
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut setsid = Command::new("setsid");
    setsid.arg("--ctty").arg(program).args(args);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => setsid.env(k, v),
            None => setsid.env_remove(k),
        };
    }
    setsid.current_dir(p.path());
    cmd = setsid;
    let mut run = Running::spawn_with_stdin(cmd, Stdio::from(pty.slave));
    run.wait_for("app.1 | ready", T);
    let child = child_pid(&p);
    // Closing the terminal's master side is what closing the window does.
    drop(pty.master);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
    let out = run.output();
    assert!(
        out.contains("the terminal hung up (SIGHUP): stopping everything"),
        "{out}"
    );
    assert!(!out.contains("reload"), "{out}");
    assert!(p.path().join("stopped-by-term").exists(), "graceful: {out}");
    assert!(out.contains("exit summary"), "{out}");
    assert!(wait_until(T, || !alive(child)), "child gone");
}
