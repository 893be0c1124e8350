//! The keeper through the binary: a dead keeper is replaced at once, a
//! stopped one never blocks the event loop, and after a SIGKILL of
//! prodserver it kills exactly the groups that were still alive.

mod support;

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::{alive, descendants, stat, wait_until, Project};

const T: Duration = Duration::from_secs(20);

fn keeper_of(supervisor: i32) -> Option<i32> {
    descendants(supervisor)
        .into_iter()
        .find(|&pid| stat(pid).is_some_and(|s| s.comm == "prodserver-keep" && s.ppid == supervisor))
}

/// A main process whose grandchild stays in its group: PDEATHSIG only
/// reaches the main process, so only the keeper can kill the grandchild.
const WITH_GRANDCHILD: &str = r#"
[processes.app]
backend = "command"
command = ["sh", "-c", "sleep 600 & echo $! > gc.tmp && mv gc.tmp gc; echo ready; wait"]
"#;

fn grandchild(p: &Project) -> i32 {
    let path = p.path().join("gc");
    assert!(wait_until(T, || path.exists()));
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_dead_keeper_is_replaced_and_still_protects_every_group() {
    let p = Project::new(WITH_GRANDCHILD);
    let mut run = p.spawn(&["start"]);
    run.wait_for("app.1 | ready", T);
    let gc = grandchild(&p);
    let first = keeper_of(run.pid()).expect("a keeper");
    kill(Pid::from_raw(first), Signal::SIGKILL).unwrap();
    let line = run.wait_for("started a new one", T);
    assert!(line.contains("killed by SIGKILL"), "{line}");
    assert!(line.contains("guarding 1 process groups"), "{line}");
    // It names itself right after the fork: wait for the name.
    assert!(
        wait_until(T, || keeper_of(run.pid()).is_some_and(|k| k != first)),
        "no new keeper"
    );

    kill(Pid::from_raw(run.pid()), Signal::SIGKILL).unwrap();
    run.wait_exit(T);
    assert!(
        wait_until(T, || !alive(gc)),
        "the grandchild outlived prodserver: {}",
        run.output()
    );
}

#[test]
fn a_stopped_keeper_never_blocks_the_loop_or_the_exit() {
    let p = Project::new(
        r#"
[processes.flap]
backend = "command"
command = ["sh", "-c", "exit 1"]
backoff = "1ms"
backoff_max = "5ms"
max_restarts = 0
"#,
    );
    let mut run = p.spawn(&["start"]);
    run.wait_for("flap.1 | restarting", T);
    let keeper = keeper_of(run.pid()).expect("a keeper");
    kill(Pid::from_raw(keeper), Signal::SIGSTOP).unwrap();
    // Every restart registers and unregisters a group: far more records
    // than the keeper's socket holds unread.
    run.wait_for("(restart 200)", T);
    run.signal(libc::SIGTERM);
    run.wait_exit(T);
    assert!(run.output().contains("exit summary"), "{}", run.output());
    assert!(wait_until(T, || stat(keeper).is_none_or(|s| s.state == 'Z')));
}

#[test]
fn after_a_sigkill_the_keeper_kills_only_the_groups_still_alive() {
    let p = Project::new(
        r#"
[processes.once]
backend = "command"
command = ["sh", "-c", "echo done"]
oneshot = true

[processes.app]
backend = "command"
command = ["sh", "-c", "sleep 600 & echo $! > gc.tmp && mv gc.tmp gc; echo ready; wait"]
depends_on = { once = "completed" }
"#,
    );
    let mut run = p.spawn(&["start"]);
    run.wait_for("app.1 | ready", T);
    let gc = grandchild(&p);
    kill(Pid::from_raw(run.pid()), Signal::SIGKILL).unwrap();
    run.wait_exit(T);
    // The oneshot's group is gone and was unregistered: only app's is left.
    run.wait_for(
        "prodserver-keeper: prodserver is gone: killing 1 process group",
        T,
    );
    assert!(wait_until(T, || !alive(gc)));
}

#[test]
fn an_exec_probes_children_die_with_a_sigkilled_prodserver() {
    let p = Project::new(
        r#"
[processes.app]
backend = "command"
command = ["sh", "-c", "echo up; while :; do sleep 1; done"]
health = { exec = ["sh", "-c", "sleep 600 & echo $! > pgc.tmp && mv pgc.tmp pgc; wait"], timeout = "60s", interval = "200ms" }
"#,
    );
    let mut run = p.spawn(&["start"]);
    run.wait_for("app.1 | up", T);
    let path = p.path().join("pgc");
    assert!(wait_until(T, || path.exists()), "{}", run.output());
    let gc: i32 = std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(gc));
    kill(Pid::from_raw(run.pid()), Signal::SIGKILL).unwrap();
    run.wait_exit(T);
    assert!(
        wait_until(T, || !alive(gc)),
        "the probe's child outlived prodserver"
    );
}
