//! The core with exact command lists: no processes, no clock.

use std::time::{Duration, Instant};

use super::*;
pub(crate) use crate::supervisor::reload::tests::plan;

const J: f64 = 0.5;

fn core(text: &str) -> Core {
    let p = plan(text);
    let all: Vec<ProcessId> = (0..p.processes.len()).collect();
    Core::new(p, &all, Goal::UntilStopped)
}

fn id(s: &str) -> InstanceId {
    let (p, n) = s.rsplit_once('.').unwrap();
    InstanceId::new(p, n.parse().unwrap())
}

fn spawn(s: &str, generation: u64) -> Command {
    Command::Spawn {
        id: id(s),
        generation,
    }
}

fn note(s: &str, note: Note) -> Command {
    Command::Note { id: id(s), note }
}

/// Only the commands that act on processes (spawn, signal, kill) and
/// replies/exits: notes and timers are checked where they matter.
fn acts(cmds: &[Command]) -> Vec<Command> {
    cmds.iter()
        .filter(|c| {
            matches!(
                c,
                Command::Spawn { .. }
                    | Command::Signal { .. }
                    | Command::KillGroup { .. }
                    | Command::Reply { .. }
                    | Command::Exit(_)
            )
        })
        .cloned()
        .collect()
}

/// Reports the spawn of `s` (its current generation) as pid `pid`.
fn spawned(c: &mut Core, t: Instant, s: &str, pid: i32) -> Vec<Command> {
    let generation = c.generation(&id(s)).unwrap();
    c.handle(
        t,
        Input::Spawned {
            id: id(s),
            generation,
            pid,
        },
        J,
    )
}

fn exited(c: &mut Core, t: Instant, s: &str, status: ExitStatus) -> Vec<Command> {
    let generation = c.generation(&id(s)).unwrap();
    c.handle(
        t,
        Input::Exited {
            id: id(s),
            generation,
            status,
        },
        J,
    )
}

fn ready(c: &mut Core, t: Instant, s: &str) -> Vec<Command> {
    let generation = c.generation(&id(s)).unwrap();
    c.handle(
        t,
        Input::Health {
            id: id(s),
            generation,
            event: Event::Ready,
        },
        J,
    )
}

fn request(c: &mut Core, t: Instant, ticket: Ticket, request: Request) -> Vec<Command> {
    c.handle(t, Input::Request { ticket, request }, J)
}

fn term() -> Input {
    Input::Signal(SignalMeaning::Stop {
        cause: StopCause::Terminate(libc::SIGTERM),
    })
}

const STACK: &str = r#"
[processes.migrate]
backend = "command"
command = ["true"]
oneshot = true

[processes.worker]
backend = "command"
command = ["sleep", "100"]
depends_on = { migrate = "completed" }

[processes.web]
backend = "command"
command = ["sleep", "100"]
depends_on = { worker = "started" }
"#;

#[test]
fn gates_open_in_order() {
    let t = Instant::now();
    let mut c = core(STACK);
    assert_eq!(acts(&c.begin(t, J)), vec![spawn("migrate.1", 1)]);
    assert_eq!(acts(&spawned(&mut c, t, "migrate.1", 10)), vec![]);
    let out = exited(&mut c, t, "migrate.1", ExitStatus::Code(0));
    assert_eq!(
        acts(&out),
        vec![
            Command::KillGroup {
                id: id("migrate.1"),
                pgid: 10
            },
            spawn("worker.1", 1)
        ]
    );
    assert!(out.contains(&note("migrate.1", Note::Completed)));
    assert!(out.contains(&Command::Release {
        id: id("migrate.1")
    }));
    assert_eq!(
        acts(&spawned(&mut c, t, "worker.1", 11)),
        vec![spawn("web.1", 1)]
    );
}

fn running_stack(t: Instant) -> Core {
    let mut c = core(STACK);
    c.begin(t, J);
    spawned(&mut c, t, "migrate.1", 10);
    exited(&mut c, t, "migrate.1", ExitStatus::Code(0));
    spawned(&mut c, t, "worker.1", 11);
    spawned(&mut c, t, "web.1", 12);
    c
}

#[test]
fn a_late_report_about_a_previous_incarnation_is_ignored() {
    let t = Instant::now();
    let mut c = running_stack(t);
    // worker.1 crashes and is respawned (generation 2) ...
    exited(&mut c, t, "worker.1", ExitStatus::Code(1));
    let at = t + Duration::from_secs(5);
    let out = c.handle(at, Input::Timer { id: id("worker.1") }, J);
    assert_eq!(acts(&out), vec![spawn("worker.1", 2)]);
    spawned(&mut c, at, "worker.1", 21);
    // ... then an exit report of generation 1 arrives: nothing happens.
    let late = c.handle(
        at,
        Input::Exited {
            id: id("worker.1"),
            generation: 1,
            status: ExitStatus::Code(1),
        },
        J,
    );
    assert_eq!(late, vec![]);
    assert!(matches!(
        c.phase(&id("worker.1")),
        Some(Phase::Running { pid: 21, .. })
    ));
}

#[test]
fn no_respawn_after_a_stop_request_and_waves_in_order() {
    let t = Instant::now();
    let mut c = running_stack(t);
    let out = c.handle(t, term(), J);
    // web (the dependent) stops first; the worker waits for its wave.
    assert_eq!(
        acts(&out),
        vec![Command::Signal {
            id: id("web.1"),
            pid: 12,
            signal: libc::SIGTERM
        }]
    );
    // The worker crashes before its wave: it stays down.
    let out = exited(&mut c, t, "worker.1", ExitStatus::Code(1));
    assert_eq!(
        acts(&out),
        vec![Command::KillGroup {
            id: id("worker.1"),
            pgid: 11
        }]
    );
    assert!(out.contains(&note("worker.1", Note::Stopped)));
    let out = exited(&mut c, t, "web.1", ExitStatus::Signal(libc::SIGTERM));
    let Some(Command::Exit(v)) = out.last() else {
        panic!("{out:?}")
    };
    assert_eq!(v.code, 1);
    assert_eq!(v.reason, "worker.1 exited with code 1 while stopping");
}

#[test]
fn a_failed_oneshot_stops_everything_with_exit_one() {
    let t = Instant::now();
    let mut c = core(STACK);
    c.begin(t, J);
    spawned(&mut c, t, "migrate.1", 10);
    let out = exited(&mut c, t, "migrate.1", ExitStatus::Code(2));
    assert!(out.contains(&Command::Log(
        "oneshot migrate.1 failed: stopping everything".into()
    )));
    let Some(Command::Exit(v)) = out.last() else {
        panic!("{out:?}")
    };
    assert_eq!((v.code, v.reason.as_str()), (1, "oneshot migrate.1 failed"));
}

const PAIR: &str = r#"
[processes.db]
backend = "command"
command = ["sleep", "100"]
health = { notify = true }

[processes.app]
backend = "command"
command = ["sleep", "100"]
depends_on = { db = "healthy" }
"#;

#[test]
fn gates_run_again_when_an_operator_starts_a_dependency() {
    let t = Instant::now();
    let mut c = core(PAIR);
    assert_eq!(acts(&c.begin(t, J)), vec![spawn("db.1", 1)]);
    spawned(&mut c, t, "db.1", 10);
    // Stopped by an operator before it was ready: app waits, not fails.
    let out = request(
        &mut c,
        t,
        7,
        Request::Stop {
            process: "db".into(),
        },
    );
    assert_eq!(
        acts(&out),
        vec![Command::Signal {
            id: id("db.1"),
            pid: 10,
            signal: libc::SIGTERM
        }]
    );
    let out = exited(&mut c, t, "db.1", ExitStatus::Signal(libc::SIGTERM));
    assert_eq!(
        acts(&out),
        vec![
            Command::KillGroup {
                id: id("db.1"),
                pgid: 10
            },
            Command::Reply {
                ticket: 7,
                reply: Reply::Done
            }
        ]
    );
    assert_eq!(c.phase(&id("app.1")), Some(&Phase::Pending));
    // Started again: db spawns; once ready, app's gate opens.
    assert_eq!(
        acts(&request(
            &mut c,
            t,
            8,
            Request::Start {
                process: "db".into()
            }
        )),
        vec![spawn("db.1", 2)]
    );
    spawned(&mut c, t, "db.1", 20);
    assert_eq!(
        acts(&ready(&mut c, t, "db.1")),
        vec![
            spawn("app.1", 1),
            Command::Reply {
                ticket: 8,
                reply: Reply::Done
            }
        ]
    );
}

#[test]
fn stopping_every_process_keeps_the_supervisor_alive() {
    let t = Instant::now();
    let mut c = core(PAIR);
    c.begin(t, J);
    spawned(&mut c, t, "db.1", 10);
    ready(&mut c, t, "db.1");
    spawned(&mut c, t, "app.1", 11);
    request(
        &mut c,
        t,
        1,
        Request::Stop {
            process: "app".into(),
        },
    );
    request(
        &mut c,
        t,
        2,
        Request::Stop {
            process: "db".into(),
        },
    );
    let a = exited(&mut c, t, "app.1", ExitStatus::Signal(libc::SIGTERM));
    let b = exited(&mut c, t, "db.1", ExitStatus::Signal(libc::SIGTERM));
    assert!(!a.iter().chain(&b).any(|c| matches!(c, Command::Exit(_))));
    assert!(!c.is_stopping());
}

const WEB2: &str = r#"
[processes.web]
backend = "command"
command = ["sleep", "100"]
instances = 2
health = { notify = true }
"#;

fn running_web2(t: Instant) -> Core {
    let mut c = core(WEB2);
    c.begin(t, J);
    spawned(&mut c, t, "web.1", 11);
    spawned(&mut c, t, "web.2", 12);
    ready(&mut c, t, "web.1");
    ready(&mut c, t, "web.2");
    c
}

#[test]
fn a_rollout_restarts_one_instance_at_a_time_after_readiness() {
    let t = Instant::now();
    let mut c = running_web2(t);
    let restart = Request::Restart {
        process: "web".into(),
        instance: None,
        reason: None,
    };
    let out = request(&mut c, t, 5, restart.clone());
    assert_eq!(
        acts(&out),
        vec![Command::Signal {
            id: id("web.1"),
            pid: 11,
            signal: libc::SIGTERM
        }]
    );
    // A second restart of the same process is refused while one runs.
    assert_eq!(
        acts(&request(&mut c, t, 6, restart)),
        vec![Command::Reply {
            ticket: 6,
            reply: Reply::Failed("web is already being restarted".into())
        }]
    );
    let out = exited(&mut c, t, "web.1", ExitStatus::Signal(libc::SIGTERM));
    assert_eq!(
        acts(&out),
        vec![
            Command::KillGroup {
                id: id("web.1"),
                pgid: 11
            },
            spawn("web.1", 2)
        ]
    );
    // web.2 keeps serving until web.1's replacement is ready.
    assert_eq!(acts(&spawned(&mut c, t, "web.1", 21)), vec![]);
    assert_eq!(
        acts(&ready(&mut c, t, "web.1")),
        vec![Command::Signal {
            id: id("web.2"),
            pid: 12,
            signal: libc::SIGTERM
        }]
    );
    exited(&mut c, t, "web.2", ExitStatus::Signal(libc::SIGTERM));
    spawned(&mut c, t, "web.2", 22);
    assert_eq!(
        acts(&ready(&mut c, t, "web.2")),
        vec![Command::Reply {
            ticket: 5,
            reply: Reply::Done
        }]
    );
    // Requested restarts are not crashes.
    assert_eq!(c.instance(&id("web.1")).unwrap().restarts(), 0);
    assert_eq!(c.instance(&id("web.1")).unwrap().all_restarts(), 1);
}

#[test]
fn a_rollout_whose_replacement_fails_replies_with_the_reason() {
    let t = Instant::now();
    let mut c = running_web2(t);
    request(
        &mut c,
        t,
        5,
        Request::Restart {
            process: "web".into(),
            instance: None,
            reason: None,
        },
    );
    exited(&mut c, t, "web.1", ExitStatus::Signal(libc::SIGTERM));
    spawned(&mut c, t, "web.1", 21);
    let out = exited(&mut c, t, "web.1", ExitStatus::Code(3));
    assert!(out.contains(&Command::Reply {
        ticket: 5,
        reply: Reply::Failed("web.1 exited with code 3".into())
    }));
    // web.2 was never touched.
    assert!(matches!(
        c.phase(&id("web.2")),
        Some(Phase::Running { pid: 12, .. })
    ));
}

#[test]
fn scaling_keeps_the_other_instances_ids_and_pids() {
    let t = Instant::now();
    let mut c = running_web2(t);
    let out = request(
        &mut c,
        t,
        1,
        Request::Scale {
            process: "web".into(),
            instances: 3,
        },
    );
    assert_eq!(acts(&out), vec![spawn("web.3", 1)]);
    spawned(&mut c, t, "web.3", 13);
    assert_eq!(
        acts(&ready(&mut c, t, "web.3")),
        vec![Command::Reply {
            ticket: 1,
            reply: Reply::Done
        }]
    );
    let out = request(
        &mut c,
        t,
        2,
        Request::Scale {
            process: "web".into(),
            instances: 1,
        },
    );
    assert_eq!(
        acts(&out),
        vec![
            Command::Signal {
                id: id("web.2"),
                pid: 12,
                signal: libc::SIGTERM
            },
            Command::Signal {
                id: id("web.3"),
                pid: 13,
                signal: libc::SIGTERM
            }
        ]
    );
    exited(&mut c, t, "web.2", ExitStatus::Signal(libc::SIGTERM));
    let out = exited(&mut c, t, "web.3", ExitStatus::Signal(libc::SIGTERM));
    assert!(out.contains(&Command::Reply {
        ticket: 2,
        reply: Reply::Done
    }));
    assert_eq!(c.ids().cloned().collect::<Vec<_>>(), vec![id("web.1")]);
    assert!(matches!(
        c.phase(&id("web.1")),
        Some(Phase::Running { pid: 11, .. })
    ));
}

#[test]
fn until_ready_stops_once_everything_is_ready() {
    let t = Instant::now();
    let p = plan(PAIR);
    let mut c = Core::new(p, &[0, 1], Goal::UntilReady);
    c.begin(t, J);
    spawned(&mut c, t, "db.1", 10);
    ready(&mut c, t, "db.1");
    spawned(&mut c, t, "app.1", 11);
    // Without a health check the loop reports readiness at the spawn.
    let out = ready(&mut c, t, "app.1");
    assert!(
        out.contains(&Command::Log("every process is ready: stopping".into())),
        "{out:?}"
    );
    assert!(acts(&out).contains(&Command::Signal {
        id: id("app.1"),
        pid: 11,
        signal: libc::SIGTERM
    }));
}

#[test]
fn requests_for_unknown_processes_fail_and_status_answers_at_once() {
    let t = Instant::now();
    let mut c = running_web2(t);
    assert_eq!(
        acts(&request(
            &mut c,
            t,
            1,
            Request::Stop {
                process: "nope".into()
            }
        )),
        vec![Command::Reply {
            ticket: 1,
            reply: Reply::Failed("no process named nope runs here".into())
        }]
    );
    let out = request(&mut c, t, 2, Request::Status);
    let [Command::Reply {
        ticket: 2,
        reply: Reply::Status(s),
    }] = &out[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(s.len(), 2);
    assert_eq!(
        (s[0].id.to_string(), s[0].state, s[0].pid),
        ("web.1".into(), "ready", Some(11))
    );
}

#[test]
fn a_reload_rolls_the_changed_starts_the_added_stops_the_removed() {
    let t = Instant::now();
    let old = r#"
[processes.web]
backend = "command"
command = ["sleep", "100"]
instances = 2
health = { notify = true }

[processes.worker]
backend = "command"
command = ["sleep", "100"]

[processes.gone]
backend = "command"
command = ["sleep", "100"]
"#;
    let mut c = core(old);
    c.begin(t, J);
    for (s, pid) in [
        ("web.1", 11),
        ("web.2", 12),
        ("worker.1", 13),
        ("gone.1", 14),
    ] {
        spawned(&mut c, t, s, pid);
        ready(&mut c, t, s);
    }
    let new = plan(
        r#"
[processes.worker]
backend = "command"
command = ["sleep", "100"]

[processes.web]
backend = "command"
command = ["sleep", "100"]
instances = 2
health = { notify = true }
env = { NEW = "1" }

[processes.beat]
backend = "command"
command = ["sleep", "100"]
"#,
    );
    let out = request(
        &mut c,
        t,
        9,
        Request::Reload {
            plan: Box::new(new),
        },
    );
    assert!(out.contains(&Command::Log(
        "reload: changed web; added beat; removed gone; unchanged worker".into()
    )));
    // gone stops, web.1 rolls first, beat starts; worker is not touched.
    assert_eq!(
        acts(&out),
        vec![
            Command::Signal {
                id: id("gone.1"),
                pid: 14,
                signal: libc::SIGTERM
            },
            Command::Signal {
                id: id("web.1"),
                pid: 11,
                signal: libc::SIGTERM
            },
            spawn("beat.1", 1),
        ]
    );
    exited(&mut c, t, "gone.1", ExitStatus::Signal(libc::SIGTERM));
    assert!(c.phase(&id("gone.1")).is_none(), "removed once ended");
    spawned(&mut c, t, "beat.1", 15);
    ready(&mut c, t, "beat.1");
    exited(&mut c, t, "web.1", ExitStatus::Signal(libc::SIGTERM));
    spawned(&mut c, t, "web.1", 21);
    assert_eq!(
        acts(&ready(&mut c, t, "web.1")),
        vec![Command::Signal {
            id: id("web.2"),
            pid: 12,
            signal: libc::SIGTERM
        }]
    );
    exited(&mut c, t, "web.2", ExitStatus::Signal(libc::SIGTERM));
    spawned(&mut c, t, "web.2", 22);
    assert_eq!(
        acts(&ready(&mut c, t, "web.2")),
        vec![Command::Reply {
            ticket: 9,
            reply: Reply::Done
        }]
    );
    assert!(matches!(
        c.phase(&id("worker.1")),
        Some(Phase::Running { pid: 13, .. })
    ));
    assert_eq!(
        c.plan().processes[1].env.get("NEW").map(String::as_str),
        Some("1")
    );
}

// ---- recycling -------------------------------------------------------------

const MIB: u64 = 1024 * 1024;

const WORKERS: &str = r#"
[processes.w]
backend = "command"
command = ["sleep", "100"]
instances = 3
max_memory_per_child = "100MiB"
memory_samples = 2
max_tasks_per_child = 3
"#;

fn usage(c: &mut Core, t: Instant, s: &str, bytes: u64) -> Vec<Command> {
    let generation = c.generation(&id(s)).unwrap();
    let sample = Sample {
        metric: crate::plan::MemoryMetric::Pss,
        bytes,
        processes: 2,
        children: vec![(900, bytes)],
    };
    c.handle(
        t,
        Input::Usage {
            id: id(s),
            generation,
            sample,
            cpu_tenths: None,
        },
        J,
    )
}

fn tasks(c: &mut Core, t: Instant, s: &str, count: u64) -> Vec<Command> {
    let generation = c.generation(&id(s)).unwrap();
    c.handle(
        t,
        Input::TasksDone {
            id: id(s),
            generation,
            count,
        },
        J,
    )
}

fn running(text: &str, t: Instant, pids: &[(&str, i32)]) -> Core {
    let mut c = core(text);
    c.begin(t, J);
    for (s, pid) in pids {
        spawned(&mut c, t, s, *pid);
        ready(&mut c, t, s);
    }
    c
}

fn ready_count(c: &Core) -> usize {
    c.ids()
        .filter(|i| c.instance(i).is_some_and(Instance::is_ready))
        .count()
}

fn term_of(s: &str, pid: i32) -> Command {
    Command::Signal {
        id: id(s),
        pid,
        signal: libc::SIGTERM,
    }
}

#[test]
fn memory_recycles_roll_one_instance_at_a_time_never_below_n_minus_one() {
    let t = Instant::now();
    let mut c = running(WORKERS, t, &[("w.1", 11), ("w.2", 12), ("w.3", 13)]);
    // Every instance goes over; one sample is not enough.
    for s in ["w.1", "w.2", "w.3"] {
        assert_eq!(acts(&usage(&mut c, t, s, 150 * MIB)), vec![]);
    }
    // The second consecutive sample recycles w.1 only; the others queue.
    let out = usage(&mut c, t, "w.1", 150 * MIB);
    assert_eq!(acts(&out), vec![term_of("w.1", 11)]);
    assert!(out.contains(&note(
        "w.1",
        Note::Recycling {
            reason: "recycled: 150 MiB > 100 MiB (pss, tree of 2, 2 samples)".into()
        }
    )));
    assert_eq!(acts(&usage(&mut c, t, "w.2", 150 * MIB)), vec![]);
    assert_eq!(acts(&usage(&mut c, t, "w.3", 150 * MIB)), vec![]);
    // Still over, while its turn waits: queued once, never twice.
    assert_eq!(acts(&usage(&mut c, t, "w.2", 150 * MIB)), vec![]);
    assert_eq!(ready_count(&c), 2);
    let later = t + Duration::from_secs(120);
    exited(&mut c, later, "w.1", ExitStatus::Code(0));
    spawned(&mut c, later, "w.1", 21);
    assert_eq!(ready_count(&c), 2, "the replacement is not ready yet");
    // Ready: now w.2's turn.
    assert_eq!(acts(&ready(&mut c, later, "w.1")), vec![term_of("w.2", 12)]);
    assert_eq!(ready_count(&c), 2);
    exited(&mut c, later, "w.2", ExitStatus::Code(0));
    spawned(&mut c, later, "w.2", 22);
    assert_eq!(
        acts(&ready(&mut c, later, "w.1")),
        vec![],
        "stale readiness"
    );
    assert_eq!(acts(&ready(&mut c, later, "w.2")), vec![term_of("w.3", 13)]);
    exited(&mut c, later, "w.3", ExitStatus::Code(0));
    spawned(&mut c, later, "w.3", 23);
    assert_eq!(acts(&ready(&mut c, later, "w.3")), vec![]);
    assert_eq!(ready_count(&c), 3);
    let status = c.status();
    assert!(status.iter().all(|s| s.recycles == 1), "{status:?}");
    // A fresh incarnation starts counting again.
    assert_eq!(acts(&usage(&mut c, later, "w.1", 150 * MIB)), vec![]);
    // Recycles are not crashes.
    assert_eq!(c.instance(&id("w.1")).unwrap().restarts(), 0);
}

#[test]
fn a_sample_of_a_previous_incarnation_is_ignored() {
    let t = Instant::now();
    let mut c = running(WORKERS, t, &[("w.1", 11), ("w.2", 12), ("w.3", 13)]);
    let old = c.generation(&id("w.1")).unwrap();
    usage(&mut c, t, "w.1", 150 * MIB);
    exited(&mut c, t, "w.1", ExitStatus::Code(1));
    let stale = Input::Usage {
        id: id("w.1"),
        generation: old,
        sample: Sample {
            metric: crate::plan::MemoryMetric::Pss,
            bytes: 150 * MIB,
            processes: 1,
            children: vec![],
        },
        cpu_tenths: None,
    };
    assert_eq!(acts(&c.handle(t, stale, J)), vec![]);
}

#[test]
fn tasks_recycle_at_n_exactly_per_incarnation() {
    let t = Instant::now();
    let mut c = running(WORKERS, t, &[("w.1", 11), ("w.2", 12), ("w.3", 13)]);
    assert_eq!(acts(&tasks(&mut c, t, "w.1", 2)), vec![]);
    let out = tasks(&mut c, t, "w.1", 1);
    assert_eq!(acts(&out), vec![term_of("w.1", 11)]);
    assert!(out.contains(&note(
        "w.1",
        Note::Recycling {
            reason: "recycled after 3 tasks".into()
        }
    )));
    let later = t + Duration::from_secs(120);
    exited(&mut c, later, "w.1", ExitStatus::Code(0));
    spawned(&mut c, later, "w.1", 21);
    ready(&mut c, later, "w.1");
    // The new incarnation counts from zero; the lifetime total goes on.
    assert_eq!(acts(&tasks(&mut c, later, "w.1", 2)), vec![]);
    let s = &c.status()[0];
    assert_eq!((s.tasks, s.tasks_total), (2, 5));
    assert_eq!(s.last_recycle.as_deref(), Some("recycled after 3 tasks"));
    assert_eq!(
        acts(&tasks(&mut c, later, "w.1", 1)),
        vec![term_of("w.1", 21)]
    );
}

const SURGE: &str = r#"
[processes.w]
backend = "command"
command = ["sleep", "100"]
max_tasks_per_child = 2
rollout = "surge"
"#;

#[test]
fn a_surge_recycle_starts_the_successor_first_and_retires_the_old_once_ready() {
    let t = Instant::now();
    let mut c = running(SURGE, t, &[("w.1", 11)]);
    // The successor takes the lowest free number, beside w.1.
    assert_eq!(acts(&tasks(&mut c, t, "w.1", 2)), vec![spawn("w.2", 1)]);
    spawned(&mut c, t, "w.2", 12);
    assert!(c.instance(&id("w.1")).unwrap().is_ready(), "still serving");
    // Ready: the old one drains.
    assert_eq!(acts(&ready(&mut c, t, "w.2")), vec![term_of("w.1", 11)]);
    exited(&mut c, t, "w.1", ExitStatus::Code(0));
    assert_eq!(c.ids().cloned().collect::<Vec<_>>(), vec![id("w.2")]);
    let s = &c.status()[0];
    assert_eq!(
        (s.recycles, s.last_recycle.as_deref()),
        (1, Some("recycled after 2 tasks"))
    );
    // Next time the numbers swap back: never more than instances + 1.
    assert_eq!(acts(&tasks(&mut c, t, "w.2", 2)), vec![spawn("w.1", 2)]);
    spawned(&mut c, t, "w.1", 13);
    assert_eq!(acts(&ready(&mut c, t, "w.1")), vec![term_of("w.2", 12)]);
    exited(&mut c, t, "w.2", ExitStatus::Code(0));
    assert_eq!(c.ids().cloned().collect::<Vec<_>>(), vec![id("w.1")]);
    assert_eq!(c.status()[0].recycles, 2);
    // Scale counts instances, not numbers.
    let out = request(
        &mut c,
        t,
        1,
        Request::Scale {
            process: "w".into(),
            instances: 2,
        },
    );
    // Generations go on from the earlier w.2: its late reports are stale.
    assert_eq!(acts(&out), vec![spawn("w.2", 2)]);
}

#[test]
fn a_surge_successor_that_fails_goes_and_the_old_one_keeps_serving() {
    let t = Instant::now();
    let mut c = running(SURGE, t, &[("w.1", 11)]);
    let out = request(
        &mut c,
        t,
        7,
        Request::Restart {
            process: "w".into(),
            instance: None,
            reason: None,
        },
    );
    assert_eq!(acts(&out), vec![spawn("w.2", 1)]);
    spawned(&mut c, t, "w.2", 12);
    let out = exited(&mut c, t, "w.2", ExitStatus::Code(3));
    assert!(out.contains(&Command::Reply {
        ticket: 7,
        reply: Reply::Failed("w.1 exited with code 3".into())
    }));
    assert!(!out
        .iter()
        .any(|c| matches!(c, Command::Signal { pid: 11, .. })));
    assert_eq!(c.ids().cloned().collect::<Vec<_>>(), vec![id("w.1")]);
    assert!(c.instance(&id("w.1")).unwrap().is_ready());
}

#[test]
fn child_scope_tells_the_fat_child_only() {
    let t = Instant::now();
    let mut p = plan(WORKERS);
    p.processes[0].limits.memory_scope = crate::plan::MemoryScope::Child;
    let mut c = Core::new(p, &[0], Goal::UntilStopped);
    c.begin(t, J);
    spawned(&mut c, t, "w.1", 11);
    usage(&mut c, t, "w.1", 150 * MIB);
    let out = usage(&mut c, t, "w.1", 150 * MIB);
    assert!(out.contains(&Command::SignalChild {
        id: id("w.1"),
        parent: 11,
        pid: 900,
        signal: libc::SIGTERM
    }));
    assert!(!out.iter().any(|c| matches!(c, Command::Signal { .. })));
    assert_eq!(c.status()[0].recycles, 1);
}

#[test]
fn a_restart_request_joins_a_rolling_recycle() {
    let t = Instant::now();
    let mut c = running(WORKERS, t, &[("w.1", 11), ("w.2", 12), ("w.3", 13)]);
    tasks(&mut c, t, "w.2", 3);
    let out = request(
        &mut c,
        t,
        4,
        Request::Restart {
            process: "w".into(),
            instance: None,
            reason: None,
        },
    );
    assert_eq!(acts(&out), vec![], "waits for the recycle's turn");
    let later = t + Duration::from_secs(120);
    for (s, pid) in [("w.2", 22), ("w.1", 21), ("w.3", 23)] {
        exited(&mut c, later, s, ExitStatus::Code(0));
        spawned(&mut c, later, s, pid);
        let out = ready(&mut c, later, s);
        if s == "w.3" {
            assert_eq!(
                acts(&out),
                vec![Command::Reply {
                    ticket: 4,
                    reply: Reply::Done
                }]
            );
        }
    }
}

#[test]
fn a_restart_in_progress_is_answered_when_the_supervisor_stops() {
    let t = Instant::now();
    let mut c = running_web2(t);
    request(
        &mut c,
        t,
        9,
        Request::Restart {
            process: "web".into(),
            instance: None,
            reason: None,
        },
    );
    let out = c.handle(t, term(), J);
    assert!(out.contains(&Command::Reply {
        ticket: 9,
        reply: Reply::Failed("prodserver is stopping".into())
    }));
}

#[test]
fn a_restart_with_a_reason_names_it_in_the_note() {
    let t = Instant::now();
    let mut c = running_web2(t);
    let restart = Request::Restart {
        process: "web".into(),
        instance: None,
        reason: Some("orders/tasks.py changed".into()),
    };
    let out = request(&mut c, t, 5, restart);
    assert!(
        out.contains(&note(
            "web.1",
            Note::RestartRequested {
                reason: "orders/tasks.py changed".into()
            }
        )),
        "{out:?}"
    );
    exited(&mut c, t, "web.1", ExitStatus::Signal(libc::SIGTERM));
    spawned(&mut c, t, "web.1", 21);
    let out = ready(&mut c, t, "web.1");
    // Every instance of the rollout says why.
    assert!(
        out.contains(&note(
            "web.2",
            Note::RestartRequested {
                reason: "orders/tasks.py changed".into()
            }
        )),
        "{out:?}"
    );
}
