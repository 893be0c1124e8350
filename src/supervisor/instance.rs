//! One supervised instance as a pure state machine: events in, actions out.
//!
//! Theory of operation:
//!
//! ```text
//! Pending ─Start─▶ Spawning ─Spawned─▶ Running ─Exited─▶ restart per policy? ─yes─▶ Backoff
//!                   │  │                  │                     │ no, or flapping      │
//!                   │  │ LockHeld         │ Stop / Restart /    ▼                      │ TimerFired
//!                   │  ▼                  │ Unhealthy       Completed (exit 0)         ▼
//!                   │ WaitingLock         ▼                 | Failed               Spawning
//!                   │  TimerFired ▶ TryLock       Stopping ─Exited─▶ Stopped  (then = Stay)
//!                   │  LockAcquired ▶ Spawning       │     └─Exited─▶ Spawning (then = Restart)
//!                   │                                ├ deadline, with an escalate_signal: signal it,
//!                   │                                │   wait kill_timeout more (Escalated)
//!                   │                                └ (next) deadline / StopNow: KillGroup, keep waiting
//!                   └ SpawnFailed: permanent ▶ Failed, else like a crash
//! ```
//!
//! - The caller owns one timer per instance: [`Action::SetTimer`] replaces
//!   it, [`Action::ClearTimer`] disarms it, and it comes back as
//!   [`Event::TimerFired`]. A timer that fires early or late (a race with
//!   another event) is tolerated: each phase checks its own deadline.
//! - Crash restarts always go through `Backoff` (even with a zero delay), so
//!   a process that dies at once can never spin in a tight loop. A restart
//!   the supervisor *asked for* (liveness failure, recycling, `restart`
//!   command) stops gracefully and spawns again at once without counting
//!   toward `max_restarts`.
//! - The process group of an instance is killed after its main process has
//!   exited, whatever the reason (KillMode=mixed): grandchildren that
//!   outlived the main process would otherwise keep ports and locks and race
//!   the replacement: restart only after the old instance has exited.
//!   Each instance runs in its own group, so `pgid == pid`.
//! - Events that do not apply to the current phase (a stale `Ready` after an
//!   exit, a second `Stop`) are ignored: they return no actions.

use std::time::{Duration, Instant};

use super::backoff::{restart_delay, RestartWindow};
use crate::plan::{Backoff, ProcessSpec, RestartPolicy};

/// How long a singleton waits before trying the host-wide lock again.
pub const LOCK_RETRY: Duration = Duration::from_secs(1);

/// What an instance needs to know of its process spec.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceConfig {
    pub oneshot: bool,
    pub restart: RestartPolicy,
    pub backoff: Backoff,
    /// 0 = unlimited.
    pub max_restarts: u32,
    pub restart_window: Duration,
    pub stop_signal: i32,
    pub stop_timeout: Duration,
    /// Sent to the main pid once `stop_timeout` has passed; `None` kills
    /// the group then.
    pub escalate_signal: Option<i32>,
    /// From the escalation signal to SIGKILL.
    pub kill_timeout: Duration,
    /// What the escalation signal does, for the log line.
    pub escalate_meaning: Option<&'static str>,
    /// Delay between attempts at a singleton's lock.
    pub lock_retry: Duration,
    /// Exit codes of the main process that mean the app failed to boot,
    /// with what each means (see `backend::boot_failures`).
    pub boot_failures: &'static [(i32, &'static str)],
}

impl From<&ProcessSpec> for InstanceConfig {
    fn from(p: &ProcessSpec) -> Self {
        InstanceConfig {
            oneshot: p.oneshot,
            restart: p.restart,
            backoff: p.backoff,
            max_restarts: p.max_restarts,
            restart_window: p.restart_window,
            stop_signal: p.stop_signal,
            stop_timeout: p.stop_timeout,
            escalate_signal: p.escalate_signal,
            kill_timeout: p.kill_timeout,
            escalate_meaning: p
                .escalate_signal
                .and_then(|sig| crate::backend::escalation_meaning(p.backend, sig)),
            lock_retry: LOCK_RETRY,
            boot_failures: crate::backend::boot_failures(p.backend),
        }
    }
}

/// How a process ended, as `waitpid` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    /// Killed by this signal number.
    Signal(i32),
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }

    /// `exited with code 3`, `killed by SIGKILL`.
    pub fn describe(self) -> String {
        match self {
            ExitStatus::Code(c) => format!("exited with code {c}"),
            ExitStatus::Signal(s) => format!("killed by {}", crate::os::signal_name(s)),
        }
    }
}

/// What to do once a stopping instance has exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    /// Stay stopped (shutdown, `stop` command).
    Stay,
    /// Spawn again at once, without backoff and without counting as a crash
    /// (liveness failure, recycling, `restart` command).
    Restart,
    /// Restart as after a crash: counted, through backoff, subject to
    /// `max_restarts` (readiness never arrived within `start_timeout`).
    Backoff,
    /// Recycled (memory, task count): spawn again at once. With
    /// `guarded` (a memory limit, which a process can breach at every
    /// start), an instance that did not stay up for `backoff.reset` is
    /// restarted as after a crash: counted, through backoff, so a limit it
    /// can never live within ends in FAILED instead of a tight loop. A
    /// task-count recycle is never guarded: each incarnation finished its
    /// tasks, which is no failure.
    Recycle { guarded: bool },
}

/// A stop requested while the spawn was still in flight; carried out as soon
/// as the pid is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingStop {
    pub then: AfterStop,
    /// `StopNow`: kill instead of signalling gracefully.
    pub urgent: bool,
}

/// How far a stop has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopStage {
    /// The stop signal was sent; `stop_timeout` runs.
    Signalled,
    /// `stop_timeout` passed and the escalation signal was sent;
    /// `kill_timeout` runs.
    Escalated,
    /// The group has been sent SIGKILL.
    Killed,
}

/// Why an instance gave up for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailReason {
    /// The program could not be executed (not found, not executable):
    /// retrying cannot help.
    ExecFailed { message: String },
    /// Spawning failed and the restart policy forbids retrying.
    SpawnFailed { message: String },
    /// The process exited unsuccessfully and the restart policy forbids a
    /// restart.
    Exited { status: ExitStatus },
    /// Flapping: `max` restarts already happened within `window`.
    TooManyRestarts { max: u32, window: Duration },
    /// A dependency ended in a way that means this can never start.
    Blocked { reason: String },
    /// Never became ready and the restart policy forbids another try.
    NotReady { reason: String },
    /// The program's exit code says the app failed to boot (a broken
    /// import, a bad setting): starting it again would fail the same way.
    BootFailed {
        status: ExitStatus,
        /// `gunicorn exit 4: app load error`.
        meaning: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Not started yet (waiting for its turn or its dependencies).
    Pending,
    /// `Spawn` was requested; waiting for `Spawned`/`SpawnFailed`/`LockHeld`.
    Spawning { stop: Option<PendingStop> },
    Running {
        pid: i32,
        since: Instant,
        ready: bool,
    },
    Stopping {
        pid: i32,
        /// When the process was spawned: decides the backoff reset at exit.
        since: Instant,
        /// When the next step is due (escalation or SIGKILL) if the
        /// process has not exited.
        deadline: Instant,
        then: AfterStop,
        stage: StopStage,
    },
    /// Waiting out the restart delay.
    Backoff { until: Instant },
    /// A singleton whose host-wide lock is held by someone else.
    WaitingLock { holder: Option<i32> },
    /// Done, successfully: a oneshot exited 0, or a process exited 0 and its
    /// policy does not restart it.
    Completed,
    /// Stopped on request.
    Stopped,
    /// Gave up.
    Failed { reason: FailReason },
}

impl Phase {
    /// Short name for `status` output and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Spawning { .. } => "starting",
            Phase::Running { ready: false, .. } => "running",
            Phase::Running { ready: true, .. } => "ready",
            Phase::Stopping { .. } => "stopping",
            Phase::Backoff { .. } => "backoff",
            Phase::WaitingLock { .. } => "waiting-lock",
            Phase::Completed => "completed",
            Phase::Stopped => "stopped",
            Phase::Failed { .. } => "failed",
        }
    }

    /// Completed, Stopped or Failed: nothing happens until a new `Start`.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Phase::Completed | Phase::Stopped | Phase::Failed { .. }
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start (or, from a terminal phase, start afresh).
    Start,
    Spawned {
        pid: i32,
    },
    SpawnFailed {
        /// Not found / not executable: retrying cannot help.
        permanent: bool,
        message: String,
    },
    /// The main process was reaped.
    Exited {
        status: ExitStatus,
    },
    /// Passed its readiness check.
    Ready,
    /// Failed its liveness check: restart it.
    Unhealthy {
        reason: String,
    },
    /// Readiness did not arrive within `start_timeout`: stop it and restart
    /// with backoff, as after a crash.
    StartTimeout {
        reason: String,
    },
    /// This instance's timer fired.
    TimerFired,
    /// Graceful stop.
    Stop,
    /// Stop without waiting (second Ctrl-C): kill the group.
    StopNow,
    /// The supervisor is stopping: never spawn again (a crash before this
    /// instance's stop wave ends it), but don't stop it yet either.
    Hold,
    /// Graceful stop then immediate respawn (`restart` command).
    Restart {
        reason: String,
    },
    /// Graceful stop then a fresh start, because a limit was reached
    /// (`max_memory_per_child`, `max_tasks_per_child`); see
    /// [`AfterStop::Recycle`].
    Recycle {
        reason: String,
        guarded: bool,
    },
    /// A singleton's lock is held by another process.
    LockHeld {
        pid: Option<i32>,
    },
    LockAcquired,
    /// A dependency can never be satisfied: give up without starting.
    Blocked {
        reason: String,
    },
}

/// Structured log events, for the caller to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Spawned {
        pid: i32,
    },
    /// `clean`: exit 0, or the exit our stop signal asked for.
    Exited {
        status: ExitStatus,
        clean: bool,
    },
    Ready,
    /// Crash restart scheduled.
    Restarting {
        after: Duration,
        /// Consecutive failures so far (1 = first).
        attempt: u32,
    },
    /// Supervisor-initiated restart (liveness, command).
    RestartRequested {
        reason: String,
    },
    /// Recycling: `reason` is the whole phrase, `recycled after 5 tasks`.
    Recycling {
        reason: String,
    },
    Completed,
    /// Gave up: log loudly. `restarts` = crash restarts performed so far.
    Failed {
        reason: FailReason,
        restarts: u32,
    },
    Stopping {
        signal: i32,
    },
    Stopped,
    KilledAfterTimeout {
        timeout: Duration,
    },
    /// Still running `after` the stop signal: the escalation signal is sent.
    Escalating {
        signal: i32,
        after: Duration,
        /// What the signal does (`Celery cold shutdown: ...`), when known.
        meaning: Option<&'static str>,
    },
    /// `StopNow`.
    KilledOnRequest,
    ExecFailed {
        message: String,
        permanent: bool,
    },
    Unhealthy {
        reason: String,
    },
    WaitingForLock {
        pid: Option<i32>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Spawn the process (in a new process group). For a singleton, take the
    /// host-wide lock first (or keep it, if already held after `TryLock`) and
    /// answer `LockHeld` if it is taken.
    Spawn,
    /// Send `signal` to the main pid only (the program decides how to
    /// stop its own workers).
    Signal {
        pid: i32,
        signal: i32,
    },
    /// SIGKILL the whole process group.
    KillGroup {
        pgid: i32,
    },
    /// Arm this instance's timer, replacing any previous one.
    SetTimer(Instant),
    ClearTimer,
    /// Try a singleton's lock; answer `LockAcquired` or `LockHeld`.
    TryLock,
    Note(Note),
}

#[derive(Debug, Clone)]
pub struct Instance {
    cfg: InstanceConfig,
    phase: Phase,
    /// Failures in a row, for the backoff delay. Reset after `backoff.reset`
    /// of uptime.
    consecutive: u32,
    /// Crash restarts performed since the last `Start`.
    restarts: u32,
    /// Supervisor-initiated restarts (not counted as crashes).
    requested_restarts: u32,
    /// Recycles (memory, task count) since the last `Start`, and why the
    /// last one happened.
    recycles: u32,
    last_recycle: Option<String>,
    /// Why the last restart of either kind happened, for the exit summary.
    last_restart: Option<String>,
    /// How the last stop on request ended; `None` until one has.
    stop_outcome: Option<StopOutcome>,
    /// Set when the current stop had to escalate or SIGKILL the group.
    kill_cause: Option<StopOutcome>,
    /// The supervisor is stopping: whatever ends now stays down, even if
    /// its own stop wave has not come yet.
    holding: bool,
    /// The pid of the latest spawn, kept after it exited (reports about
    /// its end name it).
    last_pid: Option<i32>,
    window: RestartWindow,
}

/// How a stop on request ended: the exit code depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// Exited 0, or as our stop signal asked, within `stop_timeout`.
    Clean,
    /// Did not exit within `stop_timeout` and exited after the escalation
    /// signal: no SIGKILL was needed, but the signal typically cut work
    /// short (Celery's cold shutdown cancels the running tasks, whose
    /// `acks_late` messages go back to the broker). Whatever the exit
    /// status: a clean-looking exit may be the program's answer to it.
    Escalated { signal: i32 },
    /// Did not exit within its timeouts: its group was SIGKILLed.
    KilledAfterTimeout,
    /// A second stop request killed it at once.
    KilledOnRequest,
    /// Exited by itself during the stop, with a failure status.
    Exited(ExitStatus),
}

impl Instance {
    pub fn new(cfg: InstanceConfig) -> Self {
        let window = RestartWindow::new(cfg.max_restarts, cfg.restart_window);
        Instance {
            cfg,
            phase: Phase::Pending,
            consecutive: 0,
            restarts: 0,
            requested_restarts: 0,
            recycles: 0,
            last_recycle: None,
            last_restart: None,
            stop_outcome: None,
            kill_cause: None,
            holding: false,
            last_pid: None,
            window,
        }
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    pub fn config(&self) -> &InstanceConfig {
        &self.cfg
    }

    /// A reload changed the process: the new settings apply from now on
    /// (the restart window starts afresh with its new limits).
    pub fn reconfigure(&mut self, cfg: InstanceConfig) {
        self.window = RestartWindow::new(cfg.max_restarts, cfg.restart_window);
        self.cfg = cfg;
    }

    pub fn is_terminal(&self) -> bool {
        self.phase.is_terminal()
    }

    /// Crash restarts since the last `Start`.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Every restart since the last `Start`: crashes and those the
    /// supervisor asked for (liveness, watchdog, requests, recycles).
    pub fn all_restarts(&self) -> u32 {
        self.restarts
            .saturating_add(self.requested_restarts)
            .saturating_add(self.recycles)
    }

    /// Recycles since the last `Start`, and the last one's reason.
    pub fn recycles(&self) -> (u32, Option<&str>) {
        (self.recycles, self.last_recycle.as_deref())
    }

    /// Why the last restart happened.
    pub fn last_restart(&self) -> Option<&str> {
        self.last_restart.as_deref()
    }

    /// How the last stop on request ended.
    pub fn stop_outcome(&self) -> Option<StopOutcome> {
        self.stop_outcome
    }

    /// Restarts the supervisor asked for (recycling, liveness, command).
    pub fn requested_restarts(&self) -> u32 {
        self.requested_restarts
    }

    /// Failures in a row (drives the backoff delay).
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    /// The main pid, while there is a live process.
    pub fn pid(&self) -> Option<i32> {
        match self.phase {
            Phase::Running { pid, .. } | Phase::Stopping { pid, .. } => Some(pid),
            _ => None,
        }
    }

    /// The pid of the latest spawn, running or not.
    pub fn last_pid(&self) -> Option<i32> {
        self.pid().or(self.last_pid)
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Running { ready: true, .. })
    }

    /// Feeds one event; returns what the caller must do, in order.
    /// `jitter01` (in `[0, 1)`) is only used when a restart delay is drawn.
    pub fn handle(&mut self, now: Instant, ev: Event, jitter01: f64) -> Vec<Action> {
        let mut out = Vec::new();
        // Take the phase out so each arm can move its data; every arm
        // yields the next phase (the final catch-all returns the old one).
        let phase = std::mem::replace(&mut self.phase, Phase::Pending);
        self.phase = match (phase, ev) {
            // ---- starting -------------------------------------------------
            (Phase::Pending, Event::Start) => spawn(&mut out),
            (p, Event::Start) if p.is_terminal() => {
                // A manual start after the end: a fresh run, fresh counters.
                self.consecutive = 0;
                self.restarts = 0;
                self.requested_restarts = 0;
                self.stop_outcome = None;
                self.holding = false;
                self.window.clear();
                spawn(&mut out)
            }
            (Phase::Pending, Event::Blocked { reason }) => {
                self.fail(FailReason::Blocked { reason }, &mut out)
            }

            (Phase::Spawning { stop }, Event::Spawned { pid }) => {
                self.last_pid = Some(pid);
                out.push(Action::Note(Note::Spawned { pid }));
                match stop {
                    None => Phase::Running {
                        pid,
                        since: now,
                        ready: false,
                    },
                    Some(PendingStop { then, urgent }) => {
                        self.begin_stop(now, pid, now, then, urgent, &mut out)
                    }
                }
            }
            (Phase::Spawning { stop }, Event::SpawnFailed { permanent, message }) => {
                out.push(Action::Note(Note::ExecFailed {
                    message: message.clone(),
                    permanent,
                }));
                match stop {
                    // It was being stopped anyway: the failure just saves us
                    // the trouble (for a restart, treat it as a failure).
                    Some(PendingStop {
                        then: AfterStop::Stay,
                        ..
                    }) => stopped(&mut out),
                    _ if self.holding => stopped(&mut out),
                    _ if permanent => self.fail(FailReason::ExecFailed { message }, &mut out),
                    _ if self.cfg.restart == RestartPolicy::Never => {
                        self.fail(FailReason::SpawnFailed { message }, &mut out)
                    }
                    _ => {
                        self.last_restart = Some(format!("could not start: {message}"));
                        self.schedule_restart(now, jitter01, &mut out)
                    }
                }
            }
            (Phase::Spawning { stop }, Event::LockHeld { pid }) => match stop {
                // Stopped before it ever ran.
                Some(PendingStop {
                    then: AfterStop::Stay,
                    ..
                }) => stopped(&mut out),
                _ => {
                    out.push(Action::Note(Note::WaitingForLock { pid }));
                    out.push(Action::SetTimer(later(now, self.cfg.lock_retry)));
                    Phase::WaitingLock { holder: pid }
                }
            },
            (Phase::WaitingLock { holder }, Event::LockHeld { pid }) => {
                // Only log when the holder changes: a retry every second
                // would otherwise flood the log.
                if holder != pid {
                    out.push(Action::Note(Note::WaitingForLock { pid }));
                }
                out.push(Action::SetTimer(later(now, self.cfg.lock_retry)));
                Phase::WaitingLock { holder: pid }
            }
            (Phase::WaitingLock { holder }, Event::TimerFired) => {
                out.push(Action::TryLock);
                Phase::WaitingLock { holder }
            }
            (Phase::WaitingLock { .. }, Event::LockAcquired) => spawn(&mut out),

            // ---- running --------------------------------------------------
            (
                Phase::Running {
                    pid,
                    since,
                    ready: false,
                },
                Event::Ready,
            ) => {
                out.push(Action::Note(Note::Ready));
                Phase::Running {
                    pid,
                    since,
                    ready: true,
                }
            }
            (Phase::Running { pid, since, .. }, Event::Exited { status }) => {
                self.reset_if_stayed_up(now, since);
                out.push(Action::Note(Note::Exited {
                    status,
                    clean: status.success(),
                }));
                out.push(Action::KillGroup { pgid: pid });
                self.after_exit(now, status, jitter01, &mut out)
            }
            (Phase::Running { pid, since, .. }, Event::Unhealthy { reason }) => {
                self.requested_restarts = self.requested_restarts.saturating_add(1);
                self.last_restart = Some(format!("unhealthy: {reason}"));
                out.push(Action::Note(Note::Unhealthy { reason }));
                self.begin_stop(now, pid, since, AfterStop::Restart, false, &mut out)
            }
            (
                Phase::Running {
                    pid,
                    since,
                    ready: false,
                },
                Event::StartTimeout { reason },
            ) => {
                self.last_restart = Some(format!("not ready: {reason}"));
                out.push(Action::Note(Note::Unhealthy { reason }));
                self.begin_stop(now, pid, since, AfterStop::Backoff, false, &mut out)
            }
            (Phase::Running { pid, since, .. }, Event::Restart { reason }) => {
                self.last_restart = Some(reason.clone());
                out.push(Action::Note(Note::RestartRequested { reason }));
                self.requested_restarts = self.requested_restarts.saturating_add(1);
                self.begin_stop(now, pid, since, AfterStop::Restart, false, &mut out)
            }
            (Phase::Running { pid, since, .. }, Event::Recycle { reason, guarded }) => {
                self.recycles = self.recycles.saturating_add(1);
                self.last_recycle = Some(reason.clone());
                self.last_restart = Some(reason.clone());
                out.push(Action::Note(Note::Recycling { reason }));
                let then = AfterStop::Recycle { guarded };
                self.begin_stop(now, pid, since, then, false, &mut out)
            }
            (Phase::Running { pid, since, .. }, Event::Stop) => {
                self.begin_stop(now, pid, since, AfterStop::Stay, false, &mut out)
            }
            (Phase::Running { pid, since, .. }, Event::StopNow) => {
                self.begin_stop(now, pid, since, AfterStop::Stay, true, &mut out)
            }

            // ---- stopping -------------------------------------------------
            (
                Phase::Stopping {
                    pid,
                    since,
                    then,
                    stage,
                    ..
                },
                Event::Exited { status },
            ) => {
                self.reset_if_stayed_up(now, since);
                let clean = status.success()
                    || match stage {
                        StopStage::Signalled => self.is_our_stop(status),
                        StopStage::Escalated => {
                            self.is_our_stop(status) || self.is_our_escalation(status)
                        }
                        StopStage::Killed => false,
                    };
                out.push(Action::Note(Note::Exited { status, clean }));
                out.push(Action::KillGroup { pgid: pid });
                out.push(Action::ClearTimer);
                let then = if self.holding { AfterStop::Stay } else { then };
                match then {
                    AfterStop::Stay => {
                        self.stop_outcome = Some(match (clean, self.kill_cause) {
                            (_, Some(escalated @ StopOutcome::Escalated { .. })) => escalated,
                            (true, _) => StopOutcome::Clean,
                            (false, Some(cause)) => cause,
                            (false, None) => StopOutcome::Exited(status),
                        });
                        stopped(&mut out)
                    }
                    AfterStop::Restart => spawn(&mut out),
                    AfterStop::Recycle { guarded: true }
                        if now.saturating_duration_since(since) < self.cfg.backoff.reset =>
                    {
                        self.schedule_restart(now, jitter01, &mut out)
                    }
                    AfterStop::Recycle { .. } => spawn(&mut out),
                    AfterStop::Backoff if self.cfg.restart == RestartPolicy::Never => {
                        let reason = "it never became ready".to_string();
                        self.fail(FailReason::NotReady { reason }, &mut out)
                    }
                    AfterStop::Backoff => self.schedule_restart(now, jitter01, &mut out),
                }
            }
            (
                Phase::Stopping {
                    pid,
                    since,
                    deadline,
                    then,
                    stage: stage @ (StopStage::Signalled | StopStage::Escalated),
                },
                Event::TimerFired,
            ) => {
                if now < deadline {
                    // Early or stale delivery: re-arm, don't act yet.
                    out.push(Action::SetTimer(deadline));
                    Phase::Stopping {
                        pid,
                        since,
                        deadline,
                        then,
                        stage,
                    }
                } else if let (StopStage::Signalled, Some(signal)) =
                    (stage, self.cfg.escalate_signal)
                {
                    out.push(Action::Note(Note::Escalating {
                        signal,
                        after: self.cfg.stop_timeout,
                        meaning: self.cfg.escalate_meaning,
                    }));
                    self.kill_cause = Some(StopOutcome::Escalated { signal });
                    out.push(Action::Signal { pid, signal });
                    // From now, not from the old deadline: a late timer
                    // must not eat into the program's time to act on it.
                    let deadline = later(now, self.cfg.kill_timeout);
                    out.push(Action::SetTimer(deadline));
                    Phase::Stopping {
                        pid,
                        since,
                        deadline,
                        then,
                        stage: StopStage::Escalated,
                    }
                } else {
                    let timeout = match stage {
                        StopStage::Escalated => self.cfg.kill_timeout,
                        _ => self.cfg.stop_timeout,
                    };
                    out.push(Action::Note(Note::KilledAfterTimeout { timeout }));
                    self.kill_cause = Some(StopOutcome::KilledAfterTimeout);
                    out.push(Action::KillGroup { pgid: pid });
                    Phase::Stopping {
                        pid,
                        since,
                        deadline,
                        then,
                        stage: StopStage::Killed,
                    }
                }
            }
            (
                Phase::Stopping {
                    pid,
                    since,
                    deadline,
                    stage: StopStage::Signalled | StopStage::Escalated,
                    ..
                },
                Event::StopNow,
            ) => {
                out.push(Action::Note(Note::KilledOnRequest));
                self.kill_cause = Some(StopOutcome::KilledOnRequest);
                out.push(Action::KillGroup { pgid: pid });
                out.push(Action::ClearTimer);
                Phase::Stopping {
                    pid,
                    since,
                    deadline,
                    then: AfterStop::Stay,
                    stage: StopStage::Killed,
                }
            }
            (
                Phase::Stopping {
                    pid,
                    since,
                    deadline,
                    then: AfterStop::Stay,
                    stage,
                },
                Event::Start,
            ) => {
                // `stop` then `start` before the old process is gone: spawn
                // again once it has exited, never alongside it.
                Phase::Stopping {
                    pid,
                    since,
                    deadline,
                    then: AfterStop::Restart,
                    stage,
                }
            }
            (
                Phase::Stopping {
                    pid,
                    since,
                    deadline,
                    stage,
                    ..
                },
                Event::Stop | Event::StopNow,
            ) => {
                // Already stopping (or killed): a stop request only cancels
                // a pending respawn.
                Phase::Stopping {
                    pid,
                    since,
                    deadline,
                    then: AfterStop::Stay,
                    stage,
                }
            }

            // ---- backoff ----------------------------------------------------
            (Phase::Backoff { .. }, Event::TimerFired) if self.holding => stopped(&mut out),
            (Phase::Backoff { until }, Event::TimerFired) => {
                if now < until {
                    out.push(Action::SetTimer(until));
                    Phase::Backoff { until }
                } else {
                    spawn(&mut out)
                }
            }
            (Phase::Backoff { .. }, Event::Restart { reason }) => {
                // Someone asked for it now: skip the rest of the wait.
                self.last_restart = Some(reason.clone());
                out.push(Action::Note(Note::RestartRequested { reason }));
                out.push(Action::ClearTimer);
                self.requested_restarts = self.requested_restarts.saturating_add(1);
                spawn(&mut out)
            }

            // ---- the supervisor is stopping ---------------------------------
            (Phase::Backoff { .. }, Event::Hold) => {
                self.holding = true;
                out.push(Action::ClearTimer);
                stopped(&mut out)
            }
            (p, Event::Hold) => {
                self.holding = true;
                p
            }

            // ---- stop requests where no process runs ------------------------
            (Phase::Pending, Event::Stop | Event::StopNow) => stopped(&mut out),
            (Phase::Backoff { .. } | Phase::WaitingLock { .. }, Event::Stop | Event::StopNow) => {
                out.push(Action::ClearTimer);
                stopped(&mut out)
            }
            (Phase::Spawning { stop }, Event::Stop) => Phase::Spawning {
                stop: Some(PendingStop {
                    then: AfterStop::Stay,
                    urgent: stop.is_some_and(|s| s.urgent),
                }),
            },
            (Phase::Spawning { .. }, Event::StopNow) => Phase::Spawning {
                stop: Some(PendingStop {
                    then: AfterStop::Stay,
                    urgent: true,
                }),
            },
            (Phase::Spawning { stop: None }, Event::Restart { reason }) => {
                self.last_restart = Some(reason);
                self.requested_restarts = self.requested_restarts.saturating_add(1);
                Phase::Spawning {
                    stop: Some(PendingStop {
                        then: AfterStop::Restart,
                        urgent: false,
                    }),
                }
            }

            // Anything else is stale or meaningless here: ignore it.
            (p, _) => p,
        };
        out
    }

    fn fail(&mut self, reason: FailReason, out: &mut Vec<Action>) -> Phase {
        out.push(Action::Note(Note::Failed {
            reason: reason.clone(),
            restarts: self.restarts,
        }));
        Phase::Failed { reason }
    }

    /// The exit our own stop signal asked for: killed by it, or exited with
    /// the shell convention `128 + signal` (uvicorn exits 143 after TERM).
    fn is_our_stop(&self, status: ExitStatus) -> bool {
        asked_by(self.cfg.stop_signal, status)
    }

    /// Likewise for the escalation signal.
    fn is_our_escalation(&self, status: ExitStatus) -> bool {
        self.cfg
            .escalate_signal
            .is_some_and(|sig| asked_by(sig, status))
    }

    /// An instance that stayed up long enough proved the fault was
    /// transient: its next crash starts the backoff from `initial` again.
    fn reset_if_stayed_up(&mut self, now: Instant, since: Instant) {
        if now.saturating_duration_since(since) >= self.cfg.backoff.reset {
            self.consecutive = 0;
        }
    }

    fn begin_stop(
        &mut self,
        now: Instant,
        pid: i32,
        since: Instant,
        then: AfterStop,
        urgent: bool,
        out: &mut Vec<Action>,
    ) -> Phase {
        let deadline = later(now, self.cfg.stop_timeout);
        self.kill_cause = urgent.then_some(StopOutcome::KilledOnRequest);
        if urgent {
            out.push(Action::Note(Note::KilledOnRequest));
            out.push(Action::KillGroup { pgid: pid });
            out.push(Action::ClearTimer);
        } else {
            out.push(Action::Note(Note::Stopping {
                signal: self.cfg.stop_signal,
            }));
            out.push(Action::Signal {
                pid,
                signal: self.cfg.stop_signal,
            });
            out.push(Action::SetTimer(deadline));
        }
        Phase::Stopping {
            pid,
            since,
            deadline,
            then,
            stage: if urgent {
                StopStage::Killed
            } else {
                StopStage::Signalled
            },
        }
    }

    /// The main process exited on its own while running: complete, fail or
    /// schedule a restart according to the policy.
    fn after_exit(
        &mut self,
        now: Instant,
        status: ExitStatus,
        jitter01: f64,
        out: &mut Vec<Action>,
    ) -> Phase {
        let success = status.success();
        if self.cfg.oneshot && success {
            out.push(Action::Note(Note::Completed));
            return Phase::Completed;
        }
        if self.holding {
            // Ended on its own while the supervisor stops: stays down, and
            // the exit code hears of a failure.
            self.stop_outcome = Some(if success {
                StopOutcome::Clean
            } else {
                StopOutcome::Exited(status)
            });
            return stopped(out);
        }
        if let Some(meaning) = boot_failure(self.cfg.boot_failures, status) {
            return self.fail(FailReason::BootFailed { status, meaning }, out);
        }
        let restart = match self.cfg.restart {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !success,
            RestartPolicy::Never => false,
        };
        if restart {
            self.last_restart = Some(status.describe());
            self.schedule_restart(now, jitter01, out)
        } else if success {
            out.push(Action::Note(Note::Completed));
            Phase::Completed
        } else {
            self.fail(FailReason::Exited { status }, out)
        }
    }

    /// A crash restart: count it, give up if flapping, else wait out the
    /// backoff delay (always through `Backoff`, even for a zero delay).
    fn schedule_restart(&mut self, now: Instant, jitter01: f64, out: &mut Vec<Action>) -> Phase {
        if !self.window.try_record(now) {
            return self.fail(
                FailReason::TooManyRestarts {
                    max: self.cfg.max_restarts,
                    window: self.cfg.restart_window,
                },
                out,
            );
        }
        self.consecutive = self.consecutive.saturating_add(1);
        self.restarts = self.restarts.saturating_add(1);
        let after = restart_delay(&self.cfg.backoff, self.consecutive, jitter01);
        let until = later(now, after);
        out.push(Action::Note(Note::Restarting {
            after,
            attempt: self.consecutive,
        }));
        out.push(Action::SetTimer(until));
        Phase::Backoff { until }
    }
}

/// `now + d` without the overflow panic of `Instant + Duration`: absurd
/// durations (a validated config should not have them) saturate to a
/// century, which is "never" for a timer yet cannot fire early.
fn later(now: Instant, d: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(d)
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now)
}

/// What `status` means when it is one of the program's boot failure codes:
/// whatever the restart policy, that exit is final.
fn boot_failure(table: &[(i32, &'static str)], status: ExitStatus) -> Option<&'static str> {
    match status {
        ExitStatus::Code(code) => table.iter().find(|(c, _)| *c == code).map(|(_, m)| *m),
        ExitStatus::Signal(_) => None,
    }
}

/// Killed by `sig`, or exited `128 + sig` as a shell reports it.
fn asked_by(sig: i32, status: ExitStatus) -> bool {
    status == ExitStatus::Signal(sig) || status == ExitStatus::Code(128_i32.saturating_add(sig))
}

fn spawn(out: &mut Vec<Action>) -> Phase {
    out.push(Action::Spawn);
    Phase::Spawning { stop: None }
}

fn stopped(out: &mut Vec<Action>) -> Phase {
    out.push(Action::Note(Note::Stopped));
    Phase::Stopped
}

#[cfg(test)]
mod start_timeout_tests {
    use super::*;

    fn cfg(restart: RestartPolicy) -> InstanceConfig {
        InstanceConfig {
            oneshot: false,
            restart,
            backoff: Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(8),
                reset: Duration::from_secs(60),
            },
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            stop_signal: libc::SIGTERM,
            stop_timeout: Duration::from_secs(10),
            escalate_signal: None,
            kill_timeout: Duration::from_secs(10),
            escalate_meaning: None,
            lock_retry: Duration::from_secs(1),
            boot_failures: &[],
        }
    }

    fn running(restart: RestartPolicy, t0: Instant) -> Instance {
        let mut i = Instance::new(cfg(restart));
        i.handle(t0, Event::Start, 0.5);
        i.handle(t0, Event::Spawned { pid: 77 }, 0.5);
        i
    }

    #[test]
    fn start_timeout_stops_gracefully_then_restarts_with_backoff() {
        let t0 = Instant::now();
        let mut i = running(RestartPolicy::Always, t0);
        let reason = "not ready within 60s".to_string();
        let a = i.handle(
            t0,
            Event::StartTimeout {
                reason: reason.clone(),
            },
            0.5,
        );
        assert_eq!(a[0], Action::Note(Note::Unhealthy { reason }));
        assert!(
            a.contains(&Action::Signal {
                pid: 77,
                signal: libc::SIGTERM
            }),
            "{a:?}"
        );
        let a = i.handle(
            t0,
            Event::Exited {
                status: ExitStatus::Signal(libc::SIGTERM),
            },
            0.5,
        );
        assert!(
            matches!(i.phase(), Phase::Backoff { .. }),
            "{:?}",
            i.phase()
        );
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::Note(Note::Restarting { attempt: 1, .. }))),
            "{a:?}"
        );
        assert_eq!(i.restarts(), 1, "counts as a failure");
    }

    #[test]
    fn start_timeout_with_restart_never_fails() {
        let t0 = Instant::now();
        let mut i = running(RestartPolicy::Never, t0);
        i.handle(t0, Event::StartTimeout { reason: "x".into() }, 0.5);
        i.handle(
            t0,
            Event::Exited {
                status: ExitStatus::Signal(libc::SIGTERM),
            },
            0.5,
        );
        assert!(
            matches!(
                i.phase(),
                Phase::Failed {
                    reason: FailReason::NotReady { .. }
                }
            ),
            "{:?}",
            i.phase()
        );
    }

    #[test]
    fn start_timeout_is_ignored_once_ready() {
        let t0 = Instant::now();
        let mut i = running(RestartPolicy::Always, t0);
        i.handle(t0, Event::Ready, 0.5);
        assert!(i
            .handle(
                t0,
                Event::StartTimeout {
                    reason: "late".into()
                },
                0.5
            )
            .is_empty());
        assert!(matches!(i.phase(), Phase::Running { ready: true, .. }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_JITTER: f64 = 0.5;
    const PID: i32 = 4242;

    pub(super) fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    pub(super) fn cfg() -> InstanceConfig {
        InstanceConfig {
            oneshot: false,
            restart: RestartPolicy::Always,
            backoff: Backoff {
                initial: s(1),
                max: s(30),
                reset: s(60),
            },
            max_restarts: 0,
            restart_window: s(60),
            stop_signal: 15,
            stop_timeout: s(10),
            escalate_signal: None,
            kill_timeout: s(5),
            escalate_meaning: None,
            lock_retry: s(1),
            boot_failures: &[],
        }
    }

    fn note(n: Note) -> Action {
        Action::Note(n)
    }

    fn exited(status: ExitStatus, clean: bool) -> Action {
        note(Note::Exited { status, clean })
    }

    /// Drives a fresh (or restartable) instance to Running at `t`.
    fn run(i: &mut Instance, t: Instant) {
        let ev = if matches!(i.phase(), Phase::Spawning { .. }) {
            vec![]
        } else if matches!(i.phase(), Phase::Backoff { .. }) {
            i.handle(t, Event::TimerFired, NO_JITTER)
        } else {
            i.handle(t, Event::Start, NO_JITTER)
        };
        if !matches!(i.phase(), Phase::Spawning { .. }) {
            panic!("not spawning after {ev:?}: {:?}", i.phase());
        }
        assert_eq!(
            i.handle(t, Event::Spawned { pid: PID }, NO_JITTER),
            vec![note(Note::Spawned { pid: PID })]
        );
        assert_eq!(
            i.phase(),
            &Phase::Running {
                pid: PID,
                since: t,
                ready: false
            }
        );
    }

    /// Crash at `t` with exit 1; returns the restart delay drawn.
    fn crash(i: &mut Instance, t: Instant) -> Duration {
        let acts = i.handle(
            t,
            Event::Exited {
                status: ExitStatus::Code(1),
            },
            NO_JITTER,
        );
        match &acts[..] {
            [a, Action::KillGroup { pgid: PID }, Action::Note(Note::Restarting { after, .. }), Action::SetTimer(at)]
                if *a == exited(ExitStatus::Code(1), false) =>
            {
                assert_eq!(*at, t + *after);
                assert_eq!(i.phase(), &Phase::Backoff { until: t + *after });
                *after
            }
            other => panic!("unexpected actions {other:?}"),
        }
    }

    #[test]
    fn holding_a_crash_stays_down_and_counts_as_a_failed_stop() {
        let t = Instant::now();
        let mut i = Instance::new(cfg());
        run(&mut i, t);
        assert_eq!(i.handle(t, Event::Hold, NO_JITTER), vec![]);
        assert!(
            matches!(i.phase(), Phase::Running { .. }),
            "not stopped yet"
        );
        let acts = i.handle(
            t + s(1),
            Event::Exited {
                status: ExitStatus::Code(1),
            },
            NO_JITTER,
        );
        assert_eq!(
            acts,
            vec![
                exited(ExitStatus::Code(1), false),
                Action::KillGroup { pgid: PID },
                note(Note::Stopped),
            ]
        );
        assert_eq!(i.phase(), &Phase::Stopped);
        assert_eq!(
            i.stop_outcome(),
            Some(StopOutcome::Exited(ExitStatus::Code(1)))
        );
        // A fresh start lifts the hold.
        assert_eq!(
            i.handle(t + s(2), Event::Start, NO_JITTER),
            vec![Action::Spawn]
        );
    }

    #[test]
    fn holding_cancels_a_backoff_and_a_restart_in_progress() {
        let t = Instant::now();
        let mut i = Instance::new(cfg());
        run(&mut i, t);
        crash(&mut i, t);
        assert_eq!(
            i.handle(t, Event::Hold, NO_JITTER),
            vec![Action::ClearTimer, note(Note::Stopped)]
        );
        assert_eq!(i.phase(), &Phase::Stopped);

        let mut i = Instance::new(cfg());
        run(&mut i, t);
        i.handle(t, Event::Unhealthy { reason: "x".into() }, NO_JITTER);
        i.handle(t, Event::Hold, NO_JITTER);
        let acts = i.handle(
            t + s(1),
            Event::Exited {
                status: ExitStatus::Signal(15),
            },
            NO_JITTER,
        );
        assert_eq!(
            acts,
            vec![
                exited(ExitStatus::Signal(15), true),
                Action::KillGroup { pgid: PID },
                Action::ClearTimer,
                note(Note::Stopped),
            ]
        );
        assert_eq!(i.stop_outcome(), Some(StopOutcome::Clean));
        assert_eq!(i.all_restarts(), 1);
        assert_eq!(i.last_restart(), Some("unhealthy: x"));
    }

    #[test]
    fn stop_outcomes_name_how_a_stop_ended() {
        let t = Instant::now();
        let mut i = Instance::new(cfg());
        run(&mut i, t);
        i.handle(t, Event::Stop, NO_JITTER);
        i.handle(t + s(10), Event::TimerFired, NO_JITTER);
        i.handle(
            t + s(11),
            Event::Exited {
                status: ExitStatus::Signal(9),
            },
            NO_JITTER,
        );
        assert_eq!(i.stop_outcome(), Some(StopOutcome::KilledAfterTimeout));

        let mut i = Instance::new(cfg());
        run(&mut i, t);
        i.handle(t, Event::Stop, NO_JITTER);
        i.handle(t, Event::StopNow, NO_JITTER);
        i.handle(
            t,
            Event::Exited {
                status: ExitStatus::Signal(9),
            },
            NO_JITTER,
        );
        assert_eq!(i.stop_outcome(), Some(StopOutcome::KilledOnRequest));

        let mut i = Instance::new(cfg());
        run(&mut i, t);
        i.handle(t, Event::Stop, NO_JITTER);
        i.handle(
            t,
            Event::Exited {
                status: ExitStatus::Code(0),
            },
            NO_JITTER,
        );
        assert_eq!(i.stop_outcome(), Some(StopOutcome::Clean));
    }

    #[test]
    fn start_spawn_ready() {
        let t = Instant::now();
        let mut i = Instance::new(cfg());
        assert_eq!(i.phase(), &Phase::Pending);
        assert_eq!(i.handle(t, Event::Start, NO_JITTER), vec![Action::Spawn]);
        assert_eq!(i.phase(), &Phase::Spawning { stop: None });
        // a second Start while spawning does nothing
        assert_eq!(i.handle(t, Event::Start, NO_JITTER), vec![]);
        assert_eq!(
            i.handle(t, Event::Spawned { pid: 7 }, NO_JITTER),
            vec![note(Note::Spawned { pid: 7 })]
        );
        assert_eq!(i.pid(), Some(7));
        assert!(!i.is_ready());
        assert_eq!(
            i.handle(t, Event::Ready, NO_JITTER),
            vec![note(Note::Ready)]
        );
        assert!(i.is_ready());
        assert_eq!(i.phase().name(), "ready");
        assert_eq!(i.handle(t, Event::Ready, NO_JITTER), vec![]);
    }

    #[test]
    fn crash_backoff_doubles_and_caps() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        let mut t = t0;
        let mut delays = vec![];
        for attempt in 1..=8u32 {
            run(&mut i, t);
            let d = crash(&mut i, t + s(1));
            delays.push(d);
            assert_eq!(i.consecutive_failures(), attempt);
            t = t + s(1) + d;
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30].map(s));
        assert_eq!(i.restarts(), 8);
    }

    #[test]
    fn crash_exact_actions_and_timer_handling() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        run(&mut i, t0);
        assert_eq!(
            i.handle(
                t0 + s(2),
                Event::Exited {
                    status: ExitStatus::Code(3)
                },
                NO_JITTER
            ),
            vec![
                exited(ExitStatus::Code(3), false),
                Action::KillGroup { pgid: PID },
                note(Note::Restarting {
                    after: s(1),
                    attempt: 1
                }),
                Action::SetTimer(t0 + s(3)),
            ]
        );
        // early (stale) timer: re-armed, no spawn
        assert_eq!(
            i.handle(t0 + s(2), Event::TimerFired, NO_JITTER),
            vec![Action::SetTimer(t0 + s(3))]
        );
        // stale events in backoff are ignored
        assert_eq!(i.handle(t0 + s(2), Event::Ready, NO_JITTER), vec![]);
        assert_eq!(
            i.handle(
                t0 + s(2),
                Event::Exited {
                    status: ExitStatus::Code(1)
                },
                NO_JITTER
            ),
            vec![]
        );
        assert_eq!(
            i.handle(t0 + s(3), Event::TimerFired, NO_JITTER),
            vec![Action::Spawn]
        );
    }

    #[test]
    fn jitter_is_applied_within_bounds() {
        let t0 = Instant::now();
        for (j, want_ms) in [(0.0, 900), (0.5, 1000), (0.75, 1050)] {
            let mut i = Instance::new(cfg());
            run(&mut i, t0);
            let acts = i.handle(
                t0,
                Event::Exited {
                    status: ExitStatus::Code(1),
                },
                j,
            );
            assert_eq!(
                acts[2],
                note(Note::Restarting {
                    after: Duration::from_millis(want_ms),
                    attempt: 1
                })
            );
        }
    }

    #[test]
    fn zero_backoff_still_goes_through_timer() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.backoff.initial = Duration::ZERO;
        let mut i = Instance::new(c);
        run(&mut i, t0);
        assert_eq!(crash(&mut i, t0), Duration::ZERO);
        assert_eq!(i.phase(), &Phase::Backoff { until: t0 });
    }

    #[test]
    fn counter_resets_after_staying_up() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        let mut t = t0;
        for _ in 0..3 {
            run(&mut i, t);
            t += crash(&mut i, t);
        }
        // up 59 s: not long enough (reset = 60 s)
        run(&mut i, t);
        assert_eq!(crash(&mut i, t + s(59)), s(8));
        t += s(59 + 8);
        // up exactly 60 s: back to the first delay
        run(&mut i, t);
        assert_eq!(crash(&mut i, t + s(60)), s(1));
        assert_eq!(i.consecutive_failures(), 1);
        // total restarts are not reset
        assert_eq!(i.restarts(), 5);
    }

    #[test]
    fn flapping_fails_after_max_restarts_in_window() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.max_restarts = 3;
        c.restart_window = s(60);
        let mut i = Instance::new(c);
        let mut t = t0;
        for _ in 0..3 {
            run(&mut i, t);
            t += crash(&mut i, t);
        }
        run(&mut i, t);
        assert_eq!(t, t0 + s(7));
        let reason = FailReason::TooManyRestarts {
            max: 3,
            window: s(60),
        };
        assert_eq!(
            i.handle(
                t,
                Event::Exited {
                    status: ExitStatus::Code(1)
                },
                NO_JITTER
            ),
            vec![
                exited(ExitStatus::Code(1), false),
                Action::KillGroup { pgid: PID },
                note(Note::Failed {
                    reason: reason.clone(),
                    restarts: 3
                }),
            ]
        );
        assert_eq!(i.phase(), &Phase::Failed { reason });
        assert!(i.is_terminal());
        // nothing revives it but an explicit Start
        assert_eq!(i.handle(t + s(100), Event::TimerFired, NO_JITTER), vec![]);
        assert_eq!(i.handle(t + s(100), Event::Stop, NO_JITTER), vec![]);
        assert_eq!(
            i.handle(t + s(100), Event::Restart { reason: "x".into() }, NO_JITTER),
            vec![]
        );
        assert_eq!(
            i.handle(t + s(100), Event::Start, NO_JITTER),
            vec![Action::Spawn]
        );
        assert_eq!(i.restarts(), 0);
        assert_eq!(i.consecutive_failures(), 0);
        // the window was cleared too: three more restarts are allowed
        let mut t = t + s(100);
        for _ in 0..3 {
            run(&mut i, t);
            t += crash(&mut i, t);
        }
    }

    #[test]
    fn restarts_spread_beyond_window_never_fail() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.max_restarts = 2;
        c.restart_window = s(30);
        let mut i = Instance::new(c);
        let mut t = t0;
        for _ in 0..50 {
            run(&mut i, t);
            // up 20 s each time, delay 1..16 s: never 3 restarts within 30 s
            t += s(20);
            t += crash(&mut i, t);
        }
        assert_eq!(i.restarts(), 50);
        assert!(!i.is_terminal());
    }

    #[test]
    fn unlimited_restarts() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg()); // max_restarts = 0
        let mut t = t0;
        for _ in 0..1000 {
            run(&mut i, t);
            t += crash(&mut i, t);
        }
        assert_eq!(i.restarts(), 1000);
        assert_eq!(i.consecutive_failures(), 1000);
        assert!(matches!(i.phase(), Phase::Backoff { .. }));
    }

    #[test]
    fn permanent_exec_failure_reported_once() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        assert_eq!(i.handle(t0, Event::Start, NO_JITTER), vec![Action::Spawn]);
        let message = "gunicorn: not found on PATH".to_string();
        let reason = FailReason::ExecFailed {
            message: message.clone(),
        };
        assert_eq!(
            i.handle(
                t0,
                Event::SpawnFailed {
                    permanent: true,
                    message: message.clone()
                },
                NO_JITTER
            ),
            vec![
                note(Note::ExecFailed {
                    message,
                    permanent: true
                }),
                note(Note::Failed {
                    reason: reason.clone(),
                    restarts: 0
                }),
            ]
        );
        assert_eq!(i.phase(), &Phase::Failed { reason });
        assert_eq!(i.handle(t0 + s(5), Event::TimerFired, NO_JITTER), vec![]);
    }

    #[test]
    fn transient_spawn_failure_backs_off() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        i.handle(t0, Event::Start, NO_JITTER);
        let ev = || Event::SpawnFailed {
            permanent: false,
            message: "fork: EAGAIN".into(),
        };
        assert_eq!(
            i.handle(t0, ev(), NO_JITTER),
            vec![
                note(Note::ExecFailed {
                    message: "fork: EAGAIN".into(),
                    permanent: false
                }),
                note(Note::Restarting {
                    after: s(1),
                    attempt: 1
                }),
                Action::SetTimer(t0 + s(1)),
            ]
        );
        assert_eq!(
            i.handle(t0 + s(1), Event::TimerFired, NO_JITTER),
            vec![Action::Spawn]
        );
        assert_eq!(
            i.handle(t0 + s(1), ev(), NO_JITTER)[1],
            note(Note::Restarting {
                after: s(2),
                attempt: 2
            })
        );

        // with restart = never, it is a failure
        let mut c = cfg();
        c.restart = RestartPolicy::Never;
        let mut i = Instance::new(c);
        i.handle(t0, Event::Start, NO_JITTER);
        i.handle(t0, ev(), NO_JITTER);
        assert_eq!(
            i.phase(),
            &Phase::Failed {
                reason: FailReason::SpawnFailed {
                    message: "fork: EAGAIN".into()
                }
            }
        );
    }

    fn oneshot(restart: RestartPolicy) -> Instance {
        let mut c = cfg();
        c.oneshot = true;
        c.restart = restart;
        Instance::new(c)
    }

    #[test]
    fn oneshot_success_completes_whatever_the_policy() {
        let t0 = Instant::now();
        for policy in [
            RestartPolicy::Always,
            RestartPolicy::OnFailure,
            RestartPolicy::Never,
        ] {
            let mut i = oneshot(policy);
            run(&mut i, t0);
            assert_eq!(
                i.handle(
                    t0 + s(3),
                    Event::Exited {
                        status: ExitStatus::Code(0)
                    },
                    NO_JITTER
                ),
                vec![
                    exited(ExitStatus::Code(0), true),
                    Action::KillGroup { pgid: PID },
                    note(Note::Completed),
                ]
            );
            assert_eq!(i.phase(), &Phase::Completed);
            assert!(i.is_terminal());
        }
    }

    #[test]
    fn oneshot_failure_retries_on_failure_then_completes() {
        let t0 = Instant::now();
        let mut i = oneshot(RestartPolicy::OnFailure);
        run(&mut i, t0);
        let d = crash(&mut i, t0);
        run(&mut i, t0 + d);
        i.handle(
            t0 + d,
            Event::Exited {
                status: ExitStatus::Code(0),
            },
            NO_JITTER,
        );
        assert_eq!(i.phase(), &Phase::Completed);
        assert_eq!(i.restarts(), 1);
    }

    #[test]
    fn oneshot_failure_with_never_fails() {
        let t0 = Instant::now();
        let mut i = oneshot(RestartPolicy::Never);
        run(&mut i, t0);
        let status = ExitStatus::Code(2);
        let reason = FailReason::Exited { status };
        assert_eq!(
            i.handle(t0, Event::Exited { status }, NO_JITTER),
            vec![
                exited(status, false),
                Action::KillGroup { pgid: PID },
                note(Note::Failed {
                    reason: reason.clone(),
                    restarts: 0
                }),
            ]
        );
        assert_eq!(i.phase(), &Phase::Failed { reason });
    }

    const GUNICORN: &[(i32, &str)] = &[(3, "worker boot error"), (4, "app load error")];

    #[test]
    fn a_boot_failure_exit_fails_at_once_whatever_the_policy() {
        let t0 = Instant::now();
        for policy in [RestartPolicy::Always, RestartPolicy::OnFailure] {
            let mut c = cfg();
            c.restart = policy;
            c.boot_failures = GUNICORN;
            let mut i = Instance::new(c);
            run(&mut i, t0);
            let status = ExitStatus::Code(4);
            let reason = FailReason::BootFailed {
                status,
                meaning: "app load error",
            };
            assert_eq!(
                i.handle(t0, Event::Exited { status }, NO_JITTER),
                vec![
                    exited(status, false),
                    Action::KillGroup { pgid: PID },
                    note(Note::Failed {
                        reason: reason.clone(),
                        restarts: 0
                    }),
                ]
            );
            assert_eq!(i.phase(), &Phase::Failed { reason });
            assert_eq!(i.handle(t0 + s(60), Event::TimerFired, NO_JITTER), vec![]);
        }
    }

    #[test]
    fn other_exits_of_a_server_with_boot_codes_still_restart() {
        let t0 = Instant::now();
        for status in [
            ExitStatus::Code(1),
            ExitStatus::Code(0),
            ExitStatus::Signal(3),
            ExitStatus::Signal(4),
        ] {
            let mut c = cfg();
            c.boot_failures = GUNICORN;
            let mut i = Instance::new(c);
            run(&mut i, t0);
            i.handle(t0, Event::Exited { status }, NO_JITTER);
            assert_eq!(i.phase().name(), "backoff", "{status:?}");
        }
        // Without the backend's table, 4 is an ordinary crash.
        let mut i = Instance::new(cfg());
        run(&mut i, t0);
        let status = ExitStatus::Code(4);
        i.handle(t0, Event::Exited { status }, NO_JITTER);
        assert_eq!(i.phase().name(), "backoff");
    }

    #[test]
    fn long_running_policies() {
        let t0 = Instant::now();
        let ok = ExitStatus::Code(0);
        let bad = ExitStatus::Code(1);
        let cases = [
            (RestartPolicy::Always, ok, "backoff"),
            (RestartPolicy::Always, bad, "backoff"),
            (RestartPolicy::OnFailure, ok, "completed"),
            (RestartPolicy::OnFailure, bad, "backoff"),
            (RestartPolicy::Never, ok, "completed"),
            (RestartPolicy::Never, bad, "failed"),
        ];
        for (policy, status, want) in cases {
            let mut c = cfg();
            c.restart = policy;
            let mut i = Instance::new(c);
            run(&mut i, t0);
            i.handle(t0, Event::Exited { status }, NO_JITTER);
            assert_eq!(i.phase().name(), want, "{policy:?} {status:?}");
        }
    }

    #[test]
    fn killed_by_signal_on_its_own_is_a_failure() {
        let t0 = Instant::now();
        for sig in [9, 15, 11] {
            let mut c = cfg();
            c.restart = RestartPolicy::OnFailure;
            let mut i = Instance::new(c);
            run(&mut i, t0);
            let status = ExitStatus::Signal(sig);
            let acts = i.handle(t0, Event::Exited { status }, NO_JITTER);
            // even our own stop signal is not "clean" when we did not send it
            assert_eq!(acts[0], exited(status, false));
            assert!(matches!(i.phase(), Phase::Backoff { .. }));
            // and with never, reported as a failure
            let mut c = cfg();
            c.restart = RestartPolicy::Never;
            let mut i = Instance::new(c);
            run(&mut i, t0);
            i.handle(t0, Event::Exited { status }, NO_JITTER);
            assert_eq!(
                i.phase(),
                &Phase::Failed {
                    reason: FailReason::Exited { status }
                }
            );
        }
    }

    fn stop_actions(t: Instant) -> Vec<Action> {
        vec![
            note(Note::Stopping { signal: 15 }),
            Action::Signal {
                pid: PID,
                signal: 15,
            },
            Action::SetTimer(t + s(10)),
        ]
    }

    #[test]
    fn graceful_stop_clean_exit() {
        let t0 = Instant::now();
        for status in [
            ExitStatus::Signal(15),
            ExitStatus::Code(143),
            ExitStatus::Code(0),
        ] {
            let mut i = Instance::new(cfg());
            run(&mut i, t0);
            assert_eq!(
                i.handle(t0 + s(1), Event::Stop, NO_JITTER),
                stop_actions(t0 + s(1))
            );
            assert_eq!(i.phase().name(), "stopping");
            // a second Stop changes nothing
            assert_eq!(i.handle(t0 + s(1), Event::Stop, NO_JITTER), vec![]);
            assert_eq!(
                i.handle(t0 + s(2), Event::Exited { status }, NO_JITTER),
                vec![
                    exited(status, true),
                    Action::KillGroup { pgid: PID },
                    Action::ClearTimer,
                    note(Note::Stopped),
                ]
            );
            assert_eq!(i.phase(), &Phase::Stopped);
            assert!(i.is_terminal());
        }
    }

    #[test]
    fn stop_with_unclean_exit_is_still_stopped_but_says_so() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        run(&mut i, t0);
        i.handle(t0, Event::Stop, NO_JITTER);
        let acts = i.handle(
            t0,
            Event::Exited {
                status: ExitStatus::Code(1),
            },
            NO_JITTER,
        );
        assert_eq!(acts[0], exited(ExitStatus::Code(1), false));
        assert_eq!(i.phase(), &Phase::Stopped);
    }

    #[test]
    fn clean_stop_follows_the_configured_signal() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.stop_signal = 2; // SIGINT
        for (status, clean) in [
            (ExitStatus::Code(130), true),
            (ExitStatus::Signal(2), true),
            (ExitStatus::Code(143), false),
            (ExitStatus::Signal(15), false),
        ] {
            let mut i = Instance::new(c.clone());
            run(&mut i, t0);
            assert_eq!(
                i.handle(t0, Event::Stop, NO_JITTER)[1],
                Action::Signal {
                    pid: PID,
                    signal: 2
                }
            );
            assert_eq!(
                i.handle(t0, Event::Exited { status }, NO_JITTER)[0],
                exited(status, clean)
            );
        }
    }

    #[test]
    fn stop_timeout_kills_the_group() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        run(&mut i, t0);
        i.handle(t0, Event::Stop, NO_JITTER);
        // early delivery: re-armed, not killed
        assert_eq!(
            i.handle(t0 + s(5), Event::TimerFired, NO_JITTER),
            vec![Action::SetTimer(t0 + s(10))]
        );
        assert_eq!(
            i.handle(t0 + s(10), Event::TimerFired, NO_JITTER),
            vec![
                note(Note::KilledAfterTimeout { timeout: s(10) }),
                Action::KillGroup { pgid: PID },
            ]
        );
        assert!(matches!(
            i.phase(),
            Phase::Stopping {
                stage: StopStage::Killed,
                ..
            }
        ));
        // still waiting for the exit: nothing more to do meanwhile
        assert_eq!(i.handle(t0 + s(11), Event::TimerFired, NO_JITTER), vec![]);
        assert_eq!(i.handle(t0 + s(11), Event::StopNow, NO_JITTER), vec![]);
        let killed = ExitStatus::Signal(9);
        assert_eq!(
            i.handle(t0 + s(11), Event::Exited { status: killed }, NO_JITTER),
            vec![
                exited(killed, false),
                Action::KillGroup { pgid: PID },
                Action::ClearTimer,
                note(Note::Stopped),
            ]
        );
    }

    #[test]
    fn stop_now_while_stopping_kills_at_once() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        run(&mut i, t0);
        i.handle(t0, Event::Stop, NO_JITTER);
        assert_eq!(
            i.handle(t0 + s(1), Event::StopNow, NO_JITTER),
            vec![
                note(Note::KilledOnRequest),
                Action::KillGroup { pgid: PID },
                Action::ClearTimer,
            ]
        );
        assert!(matches!(
            i.phase(),
            Phase::Stopping {
                stage: StopStage::Killed,
                ..
            }
        ));
        i.handle(
            t0 + s(1),
            Event::Exited {
                status: ExitStatus::Signal(9),
            },
            NO_JITTER,
        );
        assert_eq!(i.phase(), &Phase::Stopped);
    }

    #[test]
    fn stop_now_while_running_skips_the_grace_period() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        run(&mut i, t0);
        assert_eq!(
            i.handle(t0, Event::StopNow, NO_JITTER),
            vec![
                note(Note::KilledOnRequest),
                Action::KillGroup { pgid: PID },
                Action::ClearTimer,
            ]
        );
        assert!(matches!(
            i.phase(),
            Phase::Stopping {
                stage: StopStage::Killed,
                then: AfterStop::Stay,
                ..
            }
        ));
    }

    #[test]
    fn stop_where_nothing_runs() {
        let t0 = Instant::now();
        // pending
        let mut i = Instance::new(cfg());
        assert_eq!(
            i.handle(t0, Event::Stop, NO_JITTER),
            vec![note(Note::Stopped)]
        );
        assert_eq!(i.phase(), &Phase::Stopped);
        // backoff
        let mut i = Instance::new(cfg());
        run(&mut i, t0);
        crash(&mut i, t0);
        assert_eq!(
            i.handle(t0, Event::Stop, NO_JITTER),
            vec![Action::ClearTimer, note(Note::Stopped)]
        );
        assert_eq!(i.phase(), &Phase::Stopped);
        assert_eq!(i.handle(t0 + s(5), Event::TimerFired, NO_JITTER), vec![]);
        // waiting for a lock
        let mut i = Instance::new(cfg());
        i.handle(t0, Event::Start, NO_JITTER);
        i.handle(t0, Event::LockHeld { pid: None }, NO_JITTER);
        assert_eq!(
            i.handle(t0, Event::StopNow, NO_JITTER),
            vec![Action::ClearTimer, note(Note::Stopped)]
        );
    }

    #[test]
    fn stop_while_spawning_signals_as_soon_as_spawned() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        i.handle(t0, Event::Start, NO_JITTER);
        assert_eq!(i.handle(t0, Event::Stop, NO_JITTER), vec![]);
        // not terminal: a process may be about to exist
        assert!(!i.is_terminal());
        let mut want = vec![note(Note::Spawned { pid: PID })];
        want.extend(stop_actions(t0 + s(1)));
        assert_eq!(
            i.handle(t0 + s(1), Event::Spawned { pid: PID }, NO_JITTER),
            want
        );
        i.handle(
            t0 + s(2),
            Event::Exited {
                status: ExitStatus::Signal(15),
            },
            NO_JITTER,
        );
        assert_eq!(i.phase(), &Phase::Stopped);
    }

    #[test]
    fn stop_now_while_spawning_kills_as_soon_as_spawned() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        i.handle(t0, Event::Start, NO_JITTER);
        i.handle(t0, Event::Stop, NO_JITTER);
        i.handle(t0, Event::StopNow, NO_JITTER);
        assert_eq!(
            i.handle(t0, Event::Spawned { pid: PID }, NO_JITTER),
            vec![
                note(Note::Spawned { pid: PID }),
                note(Note::KilledOnRequest),
                Action::KillGroup { pgid: PID },
                Action::ClearTimer,
            ]
        );
    }

    #[test]
    fn stop_while_spawning_then_spawn_fails() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        i.handle(t0, Event::Start, NO_JITTER);
        i.handle(t0, Event::Stop, NO_JITTER);
        let acts = i.handle(
            t0,
            Event::SpawnFailed {
                permanent: false,
                message: "m".into(),
            },
            NO_JITTER,
        );
        assert_eq!(acts[1..], [note(Note::Stopped)]);
        assert_eq!(i.phase(), &Phase::Stopped);
    }

    /// Recycles `i` at `t` and lets its stop finish cleanly at `t`.
    fn recycle(i: &mut Instance, t: Instant, reason: &str, guarded: bool) -> Vec<Action> {
        let acts = i.handle(
            t,
            Event::Recycle {
                reason: reason.into(),
                guarded,
            },
            NO_JITTER,
        );
        assert_eq!(
            acts[0],
            note(Note::Recycling {
                reason: reason.into()
            })
        );
        assert!(matches!(
            i.phase(),
            Phase::Stopping {
                then: AfterStop::Recycle { .. },
                ..
            }
        ));
        i.handle(
            t,
            Event::Exited {
                status: ExitStatus::Code(0),
            },
            NO_JITTER,
        )
    }

    #[test]
    fn a_recycle_after_a_long_life_respawns_at_once_uncounted() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.max_restarts = 1;
        let mut i = Instance::new(c);
        run(&mut i, t0);
        for k in 1..=5u64 {
            // Each incarnation lived for backoff.reset (60 s).
            let t = t0 + s(60 * k);
            let acts = recycle(&mut i, t, "recycled after 5 tasks", true);
            assert_eq!(acts.last(), Some(&Action::Spawn), "{acts:?}");
            run(&mut i, t);
        }
        assert_eq!(i.restarts(), 0, "recycles are not crashes");
        assert_eq!(i.recycles(), (5, Some("recycled after 5 tasks")));
        assert_eq!(i.all_restarts(), 5);
    }

    #[test]
    fn a_limit_breached_right_after_every_start_backs_off_then_fails() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.max_restarts = 2;
        let mut i = Instance::new(c);
        run(&mut i, t0);
        let mut t = t0;
        let reason = "recycled: 400 MiB > 300 MiB (pss, tree of 1, 3 samples)";
        // Two short lives: each recycle goes through backoff, growing.
        let mut delays = Vec::new();
        for _ in 0..2 {
            t += s(1);
            let acts = recycle(&mut i, t, reason, true);
            match acts.as_slice() {
                [.., Action::Note(Note::Restarting { after, .. }), Action::SetTimer(_)] => {
                    delays.push(*after)
                }
                other => panic!("no backoff: {other:?}"),
            }
            let Phase::Backoff { until } = *i.phase() else {
                panic!("{:?}", i.phase())
            };
            t = until;
            run(&mut i, t);
        }
        assert!(delays[1] > delays[0], "{delays:?}");
        // The third is one too many within the window: FAILED, with why.
        t += s(1);
        let acts = recycle(&mut i, t, reason, true);
        assert!(
            acts.iter().any(|a| matches!(
                a,
                Action::Note(Note::Failed {
                    reason: FailReason::TooManyRestarts { max: 2, .. },
                    ..
                })
            )),
            "{acts:?}"
        );
        assert_eq!(i.last_restart(), Some(reason));
    }

    #[test]
    fn a_task_count_recycle_is_never_counted_however_short_the_life() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.max_restarts = 1;
        let mut i = Instance::new(c);
        run(&mut i, t0);
        for k in 1..=5u64 {
            let t = t0 + s(k);
            let acts = recycle(&mut i, t, "recycled after 1 tasks", false);
            assert_eq!(acts.last(), Some(&Action::Spawn), "{acts:?}");
            run(&mut i, t);
        }
        assert_eq!(i.restarts(), 0);
    }

    #[test]
    fn recycle_applies_to_a_running_process_only() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        let ev = || Event::Recycle {
            reason: "r".into(),
            guarded: true,
        };
        assert_eq!(i.handle(t0, ev(), NO_JITTER), vec![]);
        i.handle(t0, Event::Start, NO_JITTER);
        // A spawn in flight is already a fresh incarnation.
        assert_eq!(i.handle(t0, ev(), NO_JITTER), vec![]);
        i.handle(t0, Event::Spawned { pid: PID }, NO_JITTER);
        i.handle(t0, Event::Stop, NO_JITTER);
        assert_eq!(i.handle(t0, ev(), NO_JITTER), vec![], "already stopping");
        assert_eq!(i.recycles(), (0, None));
    }

    #[test]
    fn requested_restart_does_not_count() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.max_restarts = 1;
        let mut i = Instance::new(c);
        run(&mut i, t0);
        for k in 0..5u32 {
            let t = t0 + s(u64::from(k));
            let mut want = vec![note(Note::RestartRequested {
                reason: "max_tasks_per_child".into(),
            })];
            want.extend(stop_actions(t));
            assert_eq!(
                i.handle(
                    t,
                    Event::Restart {
                        reason: "max_tasks_per_child".into()
                    },
                    NO_JITTER
                ),
                want
            );
            // no respawn before the old one has exited
            assert!(matches!(
                i.phase(),
                Phase::Stopping {
                    then: AfterStop::Restart,
                    ..
                }
            ));
            assert_eq!(
                i.handle(
                    t,
                    Event::Exited {
                        status: ExitStatus::Code(143)
                    },
                    NO_JITTER
                ),
                vec![
                    exited(ExitStatus::Code(143), true),
                    Action::KillGroup { pgid: PID },
                    Action::ClearTimer,
                    Action::Spawn,
                ]
            );
            run(&mut i, t);
        }
        assert_eq!(i.restarts(), 0);
        assert_eq!(i.requested_restarts(), 5);
        assert_eq!(i.consecutive_failures(), 0);
        // the one allowed crash restart is still available
        crash(&mut i, t0 + s(10));
    }

    #[test]
    fn unhealthy_restarts_gracefully() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        run(&mut i, t0);
        i.handle(t0, Event::Ready, NO_JITTER);
        let mut want = vec![note(Note::Unhealthy {
            reason: "watchdog timeout".into(),
        })];
        want.extend(stop_actions(t0));
        assert_eq!(
            i.handle(
                t0,
                Event::Unhealthy {
                    reason: "watchdog timeout".into()
                },
                NO_JITTER
            ),
            want
        );
        // stop timeout applies on the restart path too
        assert_eq!(
            i.handle(t0 + s(10), Event::TimerFired, NO_JITTER)[1],
            Action::KillGroup { pgid: PID }
        );
        assert_eq!(
            i.handle(
                t0 + s(10),
                Event::Exited {
                    status: ExitStatus::Signal(9)
                },
                NO_JITTER
            )[3],
            Action::Spawn
        );
        // a late Unhealthy for the old process is ignored while spawning
        assert_eq!(
            i.handle(
                t0 + s(10),
                Event::Unhealthy {
                    reason: "late".into()
                },
                NO_JITTER
            ),
            vec![]
        );
    }

    #[test]
    fn stop_cancels_pending_respawn() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        run(&mut i, t0);
        i.handle(t0, Event::Restart { reason: "r".into() }, NO_JITTER);
        assert_eq!(i.handle(t0, Event::Stop, NO_JITTER), vec![]);
        // and a Restart does not override a stop
        assert_eq!(
            i.handle(t0, Event::Restart { reason: "r".into() }, NO_JITTER),
            vec![]
        );
        let acts = i.handle(
            t0,
            Event::Exited {
                status: ExitStatus::Code(0),
            },
            NO_JITTER,
        );
        assert_eq!(acts.last(), Some(&note(Note::Stopped)));
        assert_eq!(i.phase(), &Phase::Stopped);
    }

    #[test]
    fn start_while_stopping_respawns_after_exit() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        run(&mut i, t0);
        i.handle(t0, Event::Stop, NO_JITTER);
        assert_eq!(i.handle(t0, Event::Start, NO_JITTER), vec![]);
        let acts = i.handle(
            t0,
            Event::Exited {
                status: ExitStatus::Code(0),
            },
            NO_JITTER,
        );
        assert_eq!(acts.last(), Some(&Action::Spawn));
    }

    #[test]
    fn restart_during_backoff_skips_the_wait() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        run(&mut i, t0);
        crash(&mut i, t0);
        assert_eq!(
            i.handle(
                t0,
                Event::Restart {
                    reason: "cmd".into()
                },
                NO_JITTER
            ),
            vec![
                note(Note::RestartRequested {
                    reason: "cmd".into()
                }),
                Action::ClearTimer,
                Action::Spawn,
            ]
        );
    }

    #[test]
    fn restart_while_spawning_restarts_once_up() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        i.handle(t0, Event::Start, NO_JITTER);
        assert_eq!(
            i.handle(t0, Event::Restart { reason: "r".into() }, NO_JITTER),
            vec![]
        );
        let acts = i.handle(t0, Event::Spawned { pid: PID }, NO_JITTER);
        assert_eq!(
            acts[2],
            Action::Signal {
                pid: PID,
                signal: 15
            }
        );
        let acts = i.handle(
            t0,
            Event::Exited {
                status: ExitStatus::Signal(15),
            },
            NO_JITTER,
        );
        assert_eq!(acts.last(), Some(&Action::Spawn));
    }

    #[test]
    fn backoff_resets_across_a_requested_restart() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        let mut t = t0;
        for _ in 0..3 {
            run(&mut i, t);
            t += crash(&mut i, t);
        }
        run(&mut i, t);
        // up two minutes, then recycled: the crash streak is over
        t += s(120);
        i.handle(
            t,
            Event::Restart {
                reason: "mem".into(),
            },
            NO_JITTER,
        );
        i.handle(
            t,
            Event::Exited {
                status: ExitStatus::Code(0),
            },
            NO_JITTER,
        );
        run(&mut i, t);
        assert_eq!(crash(&mut i, t), s(1));
    }

    #[test]
    fn singleton_lock_wait() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        assert_eq!(i.handle(t0, Event::Start, NO_JITTER), vec![Action::Spawn]);
        assert_eq!(
            i.handle(t0, Event::LockHeld { pid: Some(42) }, NO_JITTER),
            vec![
                note(Note::WaitingForLock { pid: Some(42) }),
                Action::SetTimer(t0 + s(1)),
            ]
        );
        assert_eq!(i.phase(), &Phase::WaitingLock { holder: Some(42) });
        assert_eq!(
            i.handle(t0 + s(1), Event::TimerFired, NO_JITTER),
            vec![Action::TryLock]
        );
        // same holder: no log spam
        assert_eq!(
            i.handle(t0 + s(1), Event::LockHeld { pid: Some(42) }, NO_JITTER),
            vec![Action::SetTimer(t0 + s(2))]
        );
        assert_eq!(
            i.handle(t0 + s(2), Event::TimerFired, NO_JITTER),
            vec![Action::TryLock]
        );
        assert_eq!(
            i.handle(t0 + s(2), Event::LockHeld { pid: Some(43) }, NO_JITTER),
            vec![
                note(Note::WaitingForLock { pid: Some(43) }),
                Action::SetTimer(t0 + s(3)),
            ]
        );
        assert_eq!(
            i.handle(t0 + s(3), Event::TimerFired, NO_JITTER),
            vec![Action::TryLock]
        );
        assert_eq!(
            i.handle(t0 + s(3), Event::LockAcquired, NO_JITTER),
            vec![Action::Spawn]
        );
        run(&mut i, t0 + s(3));
        assert_eq!(i.restarts(), 0);
    }

    #[test]
    fn stop_while_spawning_then_lock_held() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        i.handle(t0, Event::Start, NO_JITTER);
        i.handle(t0, Event::Stop, NO_JITTER);
        assert_eq!(
            i.handle(t0, Event::LockHeld { pid: None }, NO_JITTER),
            vec![note(Note::Stopped)]
        );
    }

    #[test]
    fn blocked_pending_fails_without_starting() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        let reason = FailReason::Blocked {
            reason: "dependency migrate failed".into(),
        };
        assert_eq!(
            i.handle(
                t0,
                Event::Blocked {
                    reason: "dependency migrate failed".into()
                },
                NO_JITTER
            ),
            vec![note(Note::Failed {
                reason: reason.clone(),
                restarts: 0
            })]
        );
        assert_eq!(i.phase(), &Phase::Failed { reason });
        // only meaningful before starting
        let mut i = Instance::new(cfg());
        run(&mut i, t0);
        assert_eq!(
            i.handle(t0, Event::Blocked { reason: "x".into() }, NO_JITTER),
            vec![]
        );
    }

    #[test]
    fn stale_events_are_ignored() {
        let t0 = Instant::now();
        let mut i = Instance::new(cfg());
        for ev in [
            Event::Ready,
            Event::TimerFired,
            Event::Exited {
                status: ExitStatus::Code(0),
            },
            Event::Spawned { pid: 1 },
            Event::LockAcquired,
            Event::Unhealthy { reason: "x".into() },
            Event::Restart { reason: "x".into() },
        ] {
            assert_eq!(i.handle(t0, ev.clone(), NO_JITTER), vec![], "{ev:?}");
            assert_eq!(i.phase(), &Phase::Pending);
        }
        run(&mut i, t0);
        assert_eq!(i.handle(t0, Event::Spawned { pid: 9 }, NO_JITTER), vec![]);
        assert_eq!(i.handle(t0, Event::TimerFired, NO_JITTER), vec![]);
        assert_eq!(i.handle(t0, Event::Start, NO_JITTER), vec![]);
        assert_eq!(i.pid(), Some(PID));
    }

    #[test]
    fn absurd_durations_do_not_panic() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.stop_timeout = Duration::MAX;
        c.backoff.max = Duration::MAX;
        c.backoff.initial = Duration::MAX;
        c.lock_retry = Duration::MAX;
        let mut i = Instance::new(c);
        run(&mut i, t0);
        let acts = i.handle(t0, Event::Stop, NO_JITTER);
        assert!(matches!(acts[2], Action::SetTimer(at) if at > t0));
        let mut i = Instance::new(i.config().clone());
        run(&mut i, t0);
        let acts = i.handle(
            t0,
            Event::Exited {
                status: ExitStatus::Code(1),
            },
            NO_JITTER,
        );
        assert!(matches!(acts[3], Action::SetTimer(at) if at > t0));
        i.handle(t0, Event::Stop, NO_JITTER);
        i.handle(t0, Event::Start, NO_JITTER);
        let acts = i.handle(t0, Event::LockHeld { pid: None }, NO_JITTER);
        assert!(matches!(acts[1], Action::SetTimer(at) if at > t0));
    }

    #[test]
    fn config_from_spec() {
        let spec =
            crate::supervisor::order::tests::spec("web", crate::plan::BackendKind::Gunicorn, &[]);
        let c = InstanceConfig::from(&spec);
        assert_eq!(c.stop_signal, spec.stop_signal);
        assert_eq!(c.stop_timeout, spec.stop_timeout);
        assert_eq!(c.backoff, spec.backoff);
        assert_eq!(c.restart, spec.restart);
        assert_eq!(c.lock_retry, LOCK_RETRY);
    }
}

#[cfg(test)]
mod escalation_tests {
    use super::*;

    const PID: i32 = 77;
    const QUIT: i32 = libc::SIGQUIT;
    const MEANING: &str = "cold shutdown";

    use super::tests::s;

    /// stop_timeout 10 s, then QUIT, then kill_timeout 5 s.
    fn cfg() -> InstanceConfig {
        InstanceConfig {
            stop_signal: libc::SIGTERM,
            escalate_signal: Some(QUIT),
            escalate_meaning: Some(MEANING),
            ..super::tests::cfg()
        }
    }

    fn running(t0: Instant) -> Instance {
        let mut i = Instance::new(cfg());
        i.handle(t0, Event::Start, 0.5);
        i.handle(t0, Event::Spawned { pid: PID }, 0.5);
        i
    }

    fn stage(i: &Instance) -> Option<(StopStage, Instant)> {
        match i.phase() {
            Phase::Stopping {
                stage, deadline, ..
            } => Some((*stage, *deadline)),
            _ => None,
        }
    }

    fn escalation(after: Duration) -> Action {
        Action::Note(Note::Escalating {
            signal: QUIT,
            after,
            meaning: Some(MEANING),
        })
    }

    fn exit_actions(status: ExitStatus, clean: bool) -> Vec<Action> {
        vec![
            Action::Note(Note::Exited { status, clean }),
            Action::KillGroup { pgid: PID },
            Action::ClearTimer,
            Action::Note(Note::Stopped),
        ]
    }

    /// Stopped at `t0`, escalated by a timer fired at `fired`.
    fn escalated(t0: Instant, fired: Instant) -> Instance {
        let mut i = running(t0);
        i.handle(t0, Event::Stop, 0.5);
        assert_eq!(
            i.handle(fired, Event::TimerFired, 0.5),
            vec![
                escalation(s(10)),
                Action::Signal {
                    pid: PID,
                    signal: QUIT
                },
                Action::SetTimer(fired + s(5)),
            ]
        );
        assert_eq!(stage(&i), Some((StopStage::Escalated, fired + s(5))));
        i
    }

    #[test]
    fn an_early_timer_neither_escalates_nor_kills() {
        let t0 = Instant::now();
        let mut i = running(t0);
        assert_eq!(
            i.handle(t0, Event::Stop, 0.5),
            vec![
                Action::Note(Note::Stopping {
                    signal: libc::SIGTERM
                }),
                Action::Signal {
                    pid: PID,
                    signal: libc::SIGTERM
                },
                Action::SetTimer(t0 + s(10)),
            ]
        );
        assert_eq!(
            i.handle(t0 + s(9), Event::TimerFired, 0.5),
            vec![Action::SetTimer(t0 + s(10))]
        );
        assert_eq!(stage(&i), Some((StopStage::Signalled, t0 + s(10))));
    }

    #[test]
    fn stop_timeout_sends_the_escalation_signal_to_the_main_pid() {
        let t0 = Instant::now();
        let mut i = escalated(t0, t0 + s(10));
        // An early timer after the escalation re-arms for kill_timeout.
        assert_eq!(
            i.handle(t0 + s(14), Event::TimerFired, 0.5),
            vec![Action::SetTimer(t0 + s(15))]
        );
        assert_eq!(stage(&i), Some((StopStage::Escalated, t0 + s(15))));
    }

    #[test]
    fn a_late_timer_gives_the_escalation_its_whole_kill_timeout() {
        let t0 = Instant::now();
        let i = escalated(t0, t0 + s(13));
        assert_eq!(stage(&i), Some((StopStage::Escalated, t0 + s(18))));
    }

    #[test]
    fn an_exit_after_the_escalation_is_an_escalated_stop() {
        let t0 = Instant::now();
        let mut i = escalated(t0, t0 + s(10));
        // Celery's cold shutdown exits 1.
        let status = ExitStatus::Code(1);
        assert_eq!(
            i.handle(t0 + s(11), Event::Exited { status }, 0.5),
            exit_actions(status, false)
        );
        assert_eq!(
            i.stop_outcome(),
            Some(StopOutcome::Escalated { signal: QUIT })
        );
    }

    #[test]
    fn death_by_the_escalation_signal_reads_as_a_stop_yet_counts_as_escalated() {
        for status in [ExitStatus::Signal(QUIT), ExitStatus::Code(128 + QUIT)] {
            let t0 = Instant::now();
            let mut i = escalated(t0, t0 + s(10));
            assert_eq!(
                i.handle(t0 + s(11), Event::Exited { status }, 0.5),
                exit_actions(status, true),
                "{status:?}"
            );
            assert_eq!(
                i.stop_outcome(),
                Some(StopOutcome::Escalated { signal: QUIT })
            );
        }
        // Before the escalation, QUIT is not what was asked for.
        let t0 = Instant::now();
        let mut i = running(t0);
        i.handle(t0, Event::Stop, 0.5);
        let status = ExitStatus::Signal(QUIT);
        assert_eq!(
            i.handle(t0 + s(1), Event::Exited { status }, 0.5),
            exit_actions(status, false)
        );
        assert_eq!(i.stop_outcome(), Some(StopOutcome::Exited(status)));
    }

    #[test]
    fn kill_timeout_after_the_escalation_kills_the_group() {
        let t0 = Instant::now();
        let mut i = escalated(t0, t0 + s(10));
        assert_eq!(
            i.handle(t0 + s(16), Event::TimerFired, 0.5),
            vec![
                Action::Note(Note::KilledAfterTimeout { timeout: s(5) }),
                Action::KillGroup { pgid: PID },
            ]
        );
        assert_eq!(stage(&i).map(|(st, _)| st), Some(StopStage::Killed));
        // Killed: later timers and stop requests change nothing.
        assert_eq!(i.handle(t0 + s(17), Event::TimerFired, 0.5), vec![]);
        assert_eq!(i.handle(t0 + s(17), Event::StopNow, 0.5), vec![]);
        let status = ExitStatus::Signal(libc::SIGKILL);
        assert_eq!(
            i.handle(t0 + s(17), Event::Exited { status }, 0.5),
            exit_actions(status, false)
        );
        assert_eq!(i.stop_outcome(), Some(StopOutcome::KilledAfterTimeout));
    }

    #[test]
    fn a_second_stop_request_after_the_escalation_kills_at_once() {
        let t0 = Instant::now();
        let mut i = escalated(t0, t0 + s(10));
        assert_eq!(
            i.handle(t0 + s(11), Event::StopNow, 0.5),
            vec![
                Action::Note(Note::KilledOnRequest),
                Action::KillGroup { pgid: PID },
                Action::ClearTimer,
            ]
        );
        assert_eq!(stage(&i).map(|(st, _)| st), Some(StopStage::Killed));
        let status = ExitStatus::Signal(libc::SIGKILL);
        i.handle(t0 + s(11), Event::Exited { status }, 0.5);
        assert_eq!(i.stop_outcome(), Some(StopOutcome::KilledOnRequest));
    }

    #[test]
    fn a_graceful_stop_request_after_the_escalation_changes_nothing() {
        let t0 = Instant::now();
        let mut i = escalated(t0, t0 + s(10));
        assert_eq!(i.handle(t0 + s(11), Event::Stop, 0.5), vec![]);
        assert_eq!(stage(&i), Some((StopStage::Escalated, t0 + s(15))));
    }

    #[test]
    fn an_exit_within_stop_timeout_never_escalates() {
        let t0 = Instant::now();
        let mut i = running(t0);
        i.handle(t0, Event::Stop, 0.5);
        let status = ExitStatus::Code(0);
        assert_eq!(
            i.handle(t0 + s(9), Event::Exited { status }, 0.5),
            exit_actions(status, true)
        );
        assert_eq!(i.stop_outcome(), Some(StopOutcome::Clean));
        // The cleared timer, delivered anyway, is stale.
        assert_eq!(i.handle(t0 + s(10), Event::TimerFired, 0.5), vec![]);
    }

    #[test]
    fn without_an_escalation_signal_stop_timeout_kills() {
        let t0 = Instant::now();
        let mut c = cfg();
        c.escalate_signal = None;
        c.escalate_meaning = None;
        let mut i = Instance::new(c);
        i.handle(t0, Event::Start, 0.5);
        i.handle(t0, Event::Spawned { pid: PID }, 0.5);
        i.handle(t0, Event::Stop, 0.5);
        assert_eq!(
            i.handle(t0 + s(10), Event::TimerFired, 0.5),
            vec![
                Action::Note(Note::KilledAfterTimeout { timeout: s(10) }),
                Action::KillGroup { pgid: PID },
            ]
        );
    }

    #[test]
    fn a_restart_that_needed_the_escalation_respawns_and_the_next_stop_starts_afresh() {
        let t0 = Instant::now();
        let mut i = running(t0);
        i.handle(
            t0,
            Event::Restart {
                reason: "recycle".into(),
            },
            0.5,
        );
        let acts = i.handle(t0 + s(10), Event::TimerFired, 0.5);
        assert_eq!(acts[0], escalation(s(10)));
        let status = ExitStatus::Code(1);
        assert_eq!(
            i.handle(t0 + s(11), Event::Exited { status }, 0.5),
            vec![
                Action::Note(Note::Exited {
                    status,
                    clean: false
                }),
                Action::KillGroup { pgid: PID },
                Action::ClearTimer,
                Action::Spawn,
            ]
        );
        i.handle(t0 + s(11), Event::Spawned { pid: PID + 1 }, 0.5);
        i.handle(t0 + s(12), Event::Stop, 0.5);
        i.handle(
            t0 + s(13),
            Event::Exited {
                status: ExitStatus::Code(0),
            },
            0.5,
        );
        assert_eq!(i.stop_outcome(), Some(StopOutcome::Clean));
    }

    #[test]
    fn a_celery_worker_escalates_with_quit_and_says_what_it_does() {
        let spec = crate::supervisor::order::tests::spec(
            "worker",
            crate::plan::BackendKind::CeleryWorker,
            &[],
        );
        let spec = crate::plan::ProcessSpec {
            escalate_signal: Some(QUIT),
            ..spec
        };
        let c = InstanceConfig::from(&spec);
        assert_eq!(c.escalate_signal, Some(QUIT));
        assert_eq!(c.kill_timeout, spec.kill_timeout);
        assert!(c
            .escalate_meaning
            .is_some_and(|m| m.contains("back to the broker")));
        // A signal the user chose has no meaning we could vouch for.
        let c = InstanceConfig::from(&crate::plan::ProcessSpec {
            escalate_signal: Some(libc::SIGINT),
            ..spec
        });
        assert_eq!(c.escalate_meaning, None);
    }
}
