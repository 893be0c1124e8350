//! The event loop: the one impure part of the supervisor.
//!
//! Theory of operation. Every instance is a pure state machine
//! ([`Instance`]) that turns events into actions. This loop owns all of
//! them, waits for the next thing to happen (a child exit, a timer, a
//! signal), feeds it to the instance concerned and carries out the actions
//! it returns: spawning through `os::spawn`, signalling, arming timers,
//! logging. Decisions (restart or not, how long to wait, in which order to
//! stop) never happen here; this file only connects the state machines to
//! the world, so the `select!` stays small.
//!
//! Children are watched by one small task each, which awaits the exit and
//! then reports it over a channel. An exit report needs no generation: an
//! instance spawns again only after its exit was reported, so no report
//! can outlive its incarnation. Probe and log-match reports can (a probe
//! in flight when the process restarts), and carry the spawn's generation.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use super::signal_policy::{self, SignalMeaning, StopCause};

use super::gate::{self, Gate, ProcessView};
use super::instance::{
    Action, Event, ExitStatus, FailReason, Instance, InstanceConfig, Note, Phase,
};
use super::observe::SlotHealth;
use super::order;
use super::orphans::OrphanTally;
use super::summary::{self, Ending, InstanceEnd};
use crate::config::units::format_duration;
use crate::exit;
use crate::health::probe::ExecPids;
use crate::health::HealthPlan;
use crate::logs::{Logs, Stream};
use crate::notify::{Message, Sender};
use crate::os::{self, Credentials, Keeper, LockOutcome, SingletonLock, SpawnRequest};
use crate::plan::{Plan, ProcessId};
use crate::resolve::ResolvedPlan;

/// How often records for a keeper that does not read are retried.
const KEEPER_RETRY: Duration = Duration::from_millis(100);

/// How `prodserver start` was asked to run.
pub struct RunOptions {
    /// Processes to run: the named ones plus what they depend on.
    pub selected: Vec<ProcessId>,
    /// prodserver's own environment, already scrubbed of systemd variables.
    pub base_env: Vec<(String, String)>,
    pub runtime_dir: std::path::PathBuf,
    /// Per process its credentials, per instance its launch and health
    /// plan (`crate::resolve`).
    pub resolved: ResolvedPlan,
    /// Where instances' notify sockets live; `None`: no NOTIFY_SOCKET.
    pub notify_dir: Option<crate::notify::RunDir>,
}

/// Reports from the tasks that watch children, probes and sockets; each
/// names its slot (and, where a late report could mislead, the spawn's
/// generation).
pub(super) enum Msg {
    Exited {
        slot: usize,
        status: ExitStatus,
    },
    Probe {
        slot: usize,
        generation: u64,
        result: crate::health::Outcome,
    },
    /// Checked against the sender's process tree instead of a generation.
    Notify {
        slot: usize,
        messages: Vec<Message>,
        sender: Sender,
    },
    LogMatch {
        slot: usize,
        generation: u64,
    },
}

pub(super) struct Slot {
    pub process: ProcessId,
    /// 1-based instance number.
    pub number: u32,
    pub fsm: Instance,
    pub timer: Option<Instant>,
    pub pid: Option<i32>,
    /// Bumped at every spawn; reports about a spawn carry it.
    pub generation: u64,
    pub lock: Option<SingletonLock>,
    pub last_exit: Option<ExitStatus>,
    pub health: SlotHealth,
}

struct Shutdown {
    waves: Vec<Vec<ProcessId>>,
    /// Index of the wave being stopped.
    current: usize,
    ending: Ending,
    /// Slots that were FAILED when the stop was requested.
    failed_before: Vec<bool>,
}

pub struct Engine {
    pub(super) plan: Plan,
    pub(super) opts: RunOptions,
    pub(super) slots: Vec<Slot>,
    /// Per process: whether its instances were told to start.
    started: Vec<bool>,
    selected: Vec<bool>,
    keeper: Keeper,
    logs: Logs,
    pub(super) tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    pub(super) queue: VecDeque<(usize, Event)>,
    shutdown: Option<Shutdown>,
    /// Exec probes in flight: children of ours that orphan reaping must
    /// leave to tokio.
    pub(super) exec_pids: ExecPids,
    /// Our controlling terminal, to tell a hangup from `kill -HUP`.
    terminal: Option<os::Terminal>,
    orphans: OrphanTally,
}

impl Engine {
    pub fn new(plan: Plan, opts: RunOptions, keeper: Keeper, logs: Logs) -> Engine {
        let mut selected = vec![false; plan.processes.len()];
        for id in &opts.selected {
            selected[*id] = true;
        }
        let mut slots = Vec::new();
        for (id, spec) in plan.processes.iter().enumerate() {
            if !selected[id] {
                continue;
            }
            for number in 1..=spec.instances {
                slots.push(Slot {
                    process: id,
                    number,
                    fsm: Instance::new(InstanceConfig::from(spec)),
                    timer: None,
                    pid: None,
                    generation: 0,
                    lock: None,
                    last_exit: None,
                    health: SlotHealth::default(),
                });
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let exec_pids = ExecPids::with_keeper(keeper.clone());
        Engine {
            started: vec![false; plan.processes.len()],
            selected,
            plan,
            opts,
            slots,
            keeper,
            logs,
            tx,
            rx,
            queue: VecDeque::new(),
            shutdown: None,
            exec_pids,
            terminal: os::Terminal::controlling(),
            orphans: OrphanTally::default(),
        }
    }

    /// Runs until every process has ended or everything was stopped;
    /// returns prodserver's exit code.
    pub async fn run(mut self) -> i32 {
        let (mut signals, mut sigchld) = match (listen_to_signals(), signal(SignalKind::child())) {
            (Ok(s), Ok(c)) => (s, c),
            (Err(e), _) | (_, Err(e)) => {
                self.logs
                    .project_event(&format!("cannot install signal handlers: {e}"));
                return exit::INTERNAL;
            }
        };
        loop {
            // A failure that stops everything must be seen before any
            // dependent is scheduled; and starting one process can open
            // another's gate: settle fully before waiting for the world.
            self.drain();
            self.settle();
            while self.schedule() {
                self.drain();
                self.settle();
            }
            self.advance_shutdown();
            self.drain();
            self.settle();
            if self.finished() {
                break;
            }
            // A keeper that does not read (stopped) gets its records later:
            // the loop never blocks on it.
            let keeper_retry = self
                .keeper
                .has_pending()
                .then(|| Instant::now() + KEEPER_RETRY);
            let next = self
                .slots
                .iter()
                .flat_map(|s| [s.timer, s.health.timer])
                .chain([keeper_retry, self.orphans.due()])
                .flatten()
                .min();
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                Some(sig) = signals.recv() => self.on_signal(sig),
                Some(msg) = self.rx.recv() => self.on_msg(msg),
                _ = sigchld.recv() => {
                    self.check_keeper();
                    self.reap_orphans();
                }
                _ = sleep => self.on_timers(),
            }
        }
        self.finish()
    }

    fn finished(&self) -> bool {
        let all_terminal = self
            .slots
            .iter()
            .all(|s| s.fsm.is_terminal() || !self.started[s.process]);
        match &self.shutdown {
            Some(_) => all_terminal,
            None => {
                // Everything ended on its own: nothing runs and nothing can
                // start any more.
                all_terminal && self.slots.iter().all(|s| self.started[s.process])
            }
        }
    }

    /// Starts every process whose dependencies are met; true if it
    /// started (or gave up on) any.
    fn schedule(&mut self) -> bool {
        if self.shutdown.is_some() {
            return false;
        }
        let mut progressed = false;
        for id in 0..self.plan.processes.len() {
            if !self.selected[id] || self.started[id] {
                continue;
            }
            let deps = self.plan.processes[id].depends_on.clone();
            match gate::dependencies_met(&deps, |p| self.view(p)) {
                Gate::Open => {
                    progressed = true;
                    self.started[id] = true;
                    for slot in self.slot_range(id) {
                        self.start_slot(slot);
                    }
                }
                Gate::Wait { .. } => {}
                Gate::Blocked { dependency, reason } => {
                    // It can never start: fail its instances, so prodserver
                    // does not wait forever (and exits 1 once all ended).
                    progressed = true;
                    self.started[id] = true;
                    let reason = format!(
                        "dependency {} {reason}",
                        self.plan.processes[dependency].name
                    );
                    for slot in self.slot_range(id) {
                        self.queue.push_back((
                            slot,
                            Event::Blocked {
                                reason: reason.clone(),
                            },
                        ));
                    }
                }
            }
        }
        progressed
    }

    fn view(&self, process: ProcessId) -> ProcessView {
        ProcessView::of(
            self.slots
                .iter()
                .filter(|s| s.process == process)
                .map(|s| s.fsm.phase()),
        )
    }

    fn slot_range(&self, process: ProcessId) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|i| self.slots[*i].process == process)
            .collect()
    }

    fn start_slot(&mut self, slot: usize) {
        self.queue.push_back((slot, Event::Start));
    }

    /// Takes (or keeps) a singleton's host-wide lock; `Err` carries the
    /// event to feed when someone else holds it.
    fn lock_singleton(&mut self, slot: usize) -> Result<(), Event> {
        if self.slots[slot].lock.is_some() {
            return Ok(());
        }
        let spec = &self.plan.processes[self.slots[slot].process];
        match os::try_lock(&self.opts.runtime_dir, &self.plan.name, &spec.name) {
            Ok(LockOutcome::Acquired(lock)) => {
                self.slots[slot].lock = Some(lock);
                Ok(())
            }
            Ok(LockOutcome::Held { pid }) => Err(Event::LockHeld { pid }),
            Err(e) => {
                let name = spec.name.clone();
                let number = self.slots[slot].number;
                self.logs.event(
                    &name,
                    number,
                    None,
                    &format!("cannot take the singleton lock: {e}"),
                );
                Err(Event::LockHeld { pid: None })
            }
        }
    }

    /// Feeds queued events to their instances and applies the actions,
    /// until nothing is left: an action may produce further events (a
    /// spawn reports Spawned or SpawnFailed).
    fn drain(&mut self) {
        while let Some((slot, event)) = self.queue.pop_front() {
            let jitter = jitter01();
            let actions = self.slots[slot].fsm.handle(Instant::now(), event, jitter);
            for action in actions {
                self.apply(slot, action);
            }
        }
    }

    fn apply(&mut self, slot: usize, action: Action) {
        match action {
            Action::Spawn => self.spawn(slot),
            Action::Signal { pid, signal } => {
                if let Err(e) = os::send(pid, signal) {
                    self.note_text(slot, format!("cannot signal pid {pid}: {e}"));
                }
            }
            Action::KillGroup { pgid } => {
                if let Err(e) = os::kill_group(pgid) {
                    self.note_text(slot, format!("cannot kill group {pgid}: {e}"));
                }
            }
            Action::SetTimer(at) => self.slots[slot].timer = Some(at),
            Action::ClearTimer => self.slots[slot].timer = None,
            Action::TryLock => {
                let event = match self.lock_singleton(slot) {
                    Ok(()) => Event::LockAcquired,
                    Err(held) => held,
                };
                self.queue.push_back((slot, event));
            }
            Action::Note(note) => self.note(slot, note),
        }
    }

    fn spawn(&mut self, slot: usize) {
        if self.plan.processes[self.slots[slot].process].singleton {
            if let Err(held) = self.lock_singleton(slot) {
                self.queue.push_back((slot, held));
                return;
            }
        }
        let mut env = self.child_env(slot);
        env.extend(self.notify_env(slot));
        let s = &self.slots[slot];
        let spec = &self.plan.processes[s.process];
        let request = SpawnRequest {
            argv: self
                .launch(slot)
                .map(|l| l.argv.clone())
                .unwrap_or_default(),
            env,
            cwd: spec.cwd.clone(),
            creds: self.credentials(s.process),
        };
        match os::spawn(&request) {
            Ok(spawned) => {
                let pid = spawned.pid;
                let mut child = spawned.child;
                Self::keeper_result(&self.logs, self.keeper.register(pid));
                let slot_ref = &mut self.slots[slot];
                slot_ref.pid = Some(pid);
                slot_ref.generation += 1;
                let generation = slot_ref.generation;
                let name = spec.name.clone();
                let number = slot_ref.number;
                let hook = self.log_hook(slot, generation);
                let mut pumps = Vec::with_capacity(2);
                if let Some(out) = child.stdout.take() {
                    pumps.push(tokio::spawn(self.logs.pump_with_hook(
                        name.clone(),
                        number,
                        pid as u32,
                        Stream::Stdout,
                        out,
                        hook.clone(),
                    )));
                }
                if let Some(err) = child.stderr.take() {
                    pumps.push(tokio::spawn(self.logs.pump_with_hook(
                        name.clone(),
                        number,
                        pid as u32,
                        Stream::Stderr,
                        err,
                        hook,
                    )));
                }
                let tx = self.tx.clone();
                let logs = self.logs.clone();
                tokio::spawn(async move {
                    let status = match child.wait().await {
                        Ok(status) => exit_status(status),
                        Err(_) => ExitStatus::Signal(libc::SIGKILL),
                    };
                    // Let the last lines be written before the exit is
                    // reported (events overtake queued output otherwise),
                    // but never wait long on a grandchild that keeps the
                    // pipe open, or on a slow reader of our stdout: the
                    // group is killed after the report.
                    let drained = async {
                        for p in pumps {
                            let _ = p.await;
                        }
                        logs.barrier().await;
                    };
                    let _ = tokio::time::timeout(Duration::from_millis(300), drained).await;
                    let _ = tx.send(Msg::Exited { slot, status });
                });
                self.queue.push_back((slot, Event::Spawned { pid }));
                self.start_health(slot, Instant::now());
            }
            Err(e) => {
                let event = Event::SpawnFailed {
                    permanent: e.is_permanent(),
                    message: e.to_string(),
                };
                self.queue.push_back((slot, event));
            }
        }
    }

    /// The environment of a slot's child (and of its exec probes), in the
    /// documented precedence; `{instance}` expanded.
    pub(super) fn child_env(&self, slot: usize) -> Vec<(String, String)> {
        let s = &self.slots[slot];
        let spec = &self.plan.processes[s.process];
        let mut env: BTreeMap<String, String> = self.opts.base_env.iter().cloned().collect();
        if let Some(launch) = self.launch(slot) {
            env.extend(launch.env.clone());
        }
        env.insert("PRODSERVER_PROCESS".into(), spec.name.clone());
        env.insert("PRODSERVER_INSTANCE".into(), s.number.to_string());
        env.into_iter().collect()
    }

    /// The slot's health plan, if it has one.
    pub(super) fn health_plan(&self, slot: usize) -> Option<&HealthPlan> {
        let s = &self.slots[slot];
        self.opts
            .resolved
            .instance(s.process, s.number)
            .and_then(|i| i.health.plan.as_ref())
    }

    /// The slot's launch: argv and env, `{instance}` expanded.
    fn launch(&self, slot: usize) -> Option<&crate::backend::Launch> {
        let s = &self.slots[slot];
        let instance = self.opts.resolved.instance(s.process, s.number)?;
        Some(&instance.launch)
    }

    /// A process's resolved `user`/`group`.
    pub(super) fn credentials(&self, process: ProcessId) -> Option<Credentials> {
        self.opts
            .resolved
            .processes
            .get(process)?
            .credentials
            .clone()
    }

    fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Probe {
                slot,
                generation,
                result,
            } => self.on_probe(slot, generation, result),
            Msg::Notify {
                slot,
                messages,
                sender,
            } => self.on_notify(slot, messages, sender),
            Msg::LogMatch { slot, generation } => self.on_log_match(slot, generation),
            Msg::Exited { slot, status } => {
                let s = &mut self.slots[slot];
                let pid = s.pid;
                s.last_exit = Some(status);
                self.stop_health(slot, true);
                // The pid stays known while the exit is reported, so the
                // event carries it; a restart may replace it meanwhile.
                self.queue.push_back((slot, Event::Exited { status }));
                self.drain();
                if let Some(pid) = pid {
                    if self.slots[slot].pid == Some(pid) {
                        self.slots[slot].pid = None;
                    }
                    Self::keeper_result(&self.logs, self.keeper.unregister(pid));
                }
            }
        }
    }

    /// Whole-supervisor consequences of instances' fates, whatever made
    /// them final: an exit, a program that cannot be executed, a dependency
    /// that failed. A failed oneshot or critical process stops everything;
    /// a finished singleton releases its lock.
    fn settle(&mut self) {
        for slot in 0..self.slots.len() {
            if !self.slots[slot].fsm.is_terminal() {
                continue;
            }
            self.slots[slot].lock = None;
            let s = &self.slots[slot];
            let spec = &self.plan.processes[s.process];
            let fatal =
                matches!(s.fsm.phase(), Phase::Failed { .. }) && (spec.oneshot || spec.critical);
            if !fatal || self.shutdown.is_some() {
                continue;
            }
            let name = format!("{}.{}", spec.name, s.number);
            let what = if spec.oneshot {
                "oneshot"
            } else {
                "critical process"
            };
            let lines = self.logs.last_lines(&spec.name, s.number);
            if !lines.is_empty() {
                self.logs.event(
                    &spec.name,
                    s.number,
                    None,
                    &format!("last {} lines of output:", lines.len()),
                );
                for line in lines {
                    self.logs
                        .event(&spec.name, s.number, None, &format!("  {line}"));
                }
            }
            let why = format!("{what} {name} failed");
            self.begin_shutdown(
                Ending::Fatal(why.clone()),
                &format!("{why}: stopping everything"),
            );
        }
    }

    /// Logs the first failure to reach the keeper; [`Engine::check_keeper`]
    /// replaces it once its exit is seen.
    fn keeper_result(logs: &Logs, result: Result<(), os::KeeperGone>) {
        if let Err(e) = result {
            if e.first_report {
                logs.project_event(&e.to_string());
            }
        }
    }

    /// A dead keeper leaves every child unprotected against a SIGKILL of
    /// prodserver: start a new one at once and hand it every group.
    fn check_keeper(&mut self) {
        let Some(exit) = self.keeper.check_exit() else {
            return;
        };
        let text = match self.keeper.respawn() {
            Ok(pid) => format!(
                "the keeper process (pid {}) {}: started a new one (pid {pid}) guarding {} process groups",
                exit.pid,
                exit.how,
                self.keeper.groups()
            ),
            Err(e) => format!(
                "the keeper process (pid {}) {} and cannot be replaced ({e}): children would outlive a kill -9 of prodserver",
                exit.pid, exit.how
            ),
        };
        self.logs.project_event(&text);
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        if let Some(line) = self.orphans.flush(now, false) {
            self.logs.project_event(&line);
        }
        if self.keeper.has_pending() {
            let flushed = self.keeper.flush().map(|_| ());
            Self::keeper_result(&self.logs, flushed);
        }
        self.health_timers_due(now);
        for slot in 0..self.slots.len() {
            if self.slots[slot].timer.is_some_and(|t| t <= now) {
                self.slots[slot].timer = None;
                self.queue.push_back((slot, Event::TimerFired));
            }
        }
        self.drain();
    }

    fn on_signal(&mut self, sig: i32) {
        let hung_up = self.terminal.as_ref().is_some_and(|t| t.hung_up());
        match signal_policy::meaning(sig, hung_up) {
            SignalMeaning::Stop { cause } => self.on_stop_request(cause),
            SignalMeaning::Reload => self.logs.project_event(
                "SIGHUP received: reload is not available yet, carrying on with the running configuration",
            ),
            SignalMeaning::Status => self.log_status(),
            SignalMeaning::Ignore => self.logs.project_event(&format!(
                "{} received: ignored (it has no meaning for prodserver)",
                os::signal_name(sig)
            )),
        }
    }

    fn on_stop_request(&mut self, cause: StopCause) {
        if self.shutdown.is_some() {
            let what = match cause {
                StopCause::Interrupt => "SIGINT again".to_string(),
                StopCause::Terminate(sig) => format!("{} again", os::signal_name(sig)),
                // The terminal is gone: nobody is asking twice, keep waiting.
                StopCause::Hangup => return,
            };
            self.logs
                .project_event(&format!("{what}: killing what is left without waiting"));
            for slot in 0..self.slots.len() {
                if !self.slots[slot].fsm.is_terminal() {
                    self.queue.push_back((slot, Event::StopNow));
                }
            }
            self.drain();
            return;
        }
        self.begin_shutdown(Ending::Requested, &cause.describe());
    }

    /// SIGUSR1: every instance's state, in the log stream.
    fn log_status(&mut self) {
        self.logs.project_event("status (SIGUSR1):");
        let now = Instant::now();
        for s in &self.slots {
            let spec = &self.plan.processes[s.process];
            let state = if !self.started[s.process] {
                "not started".to_string()
            } else {
                match s.fsm.phase() {
                    Phase::Running { pid, since, .. } => format!(
                        "{} (pid {pid}, up {})",
                        s.fsm.phase().name(),
                        format_duration(Duration::from_secs(
                            now.saturating_duration_since(*since).as_secs()
                        ))
                    ),
                    phase => phase.name().to_string(),
                }
            };
            self.logs.project_event(&format!(
                "  {}.{}: {state}, {}",
                spec.name,
                s.number,
                restarts_text(&s.fsm)
            ));
        }
    }

    /// `announce` says what happened and that everything stops.
    fn begin_shutdown(&mut self, ending: Ending, announce: &str) {
        if let Some(sd) = &mut self.shutdown {
            // A failure during a requested stop still makes the exit a failure.
            if matches!(ending, Ending::Fatal(_)) && !matches!(sd.ending, Ending::Fatal(_)) {
                sd.ending = ending;
            }
            return;
        }
        self.logs.project_event(announce);
        let failed_before = self
            .slots
            .iter()
            .map(|s| matches!(s.fsm.phase(), Phase::Failed { .. }))
            .collect();
        let waves: Vec<Vec<ProcessId>> = order::stop_waves(&self.plan)
            .into_iter()
            .map(|w| {
                w.into_iter()
                    .filter(|p| self.selected[*p])
                    .collect::<Vec<_>>()
            })
            .filter(|w| !w.is_empty())
            .collect();
        // Instances that never started, or wait in backoff, have nothing to
        // stop: settle them now so they don't hold up the waves. The others
        // are held: one that crashes before its wave stays down.
        for slot in 0..self.slots.len() {
            if !self.started[self.slots[slot].process] {
                continue;
            }
            self.queue.push_back((slot, Event::Hold));
            if !matches!(
                self.slots[slot].fsm.phase(),
                Phase::Running { .. } | Phase::Stopping { .. } | Phase::Spawning { .. }
            ) {
                self.queue.push_back((slot, Event::Stop));
            }
        }
        self.shutdown = Some(Shutdown {
            waves,
            current: 0,
            ending,
            failed_before,
        });
        self.stop_wave(0);
        self.drain();
    }

    fn stop_wave(&mut self, wave: usize) {
        let Some(sd) = &self.shutdown else { return };
        let Some(processes) = sd.waves.get(wave).cloned() else {
            return;
        };
        for slot in 0..self.slots.len() {
            let s = &self.slots[slot];
            if processes.contains(&s.process) && self.started[s.process] && !s.fsm.is_terminal() {
                self.queue.push_back((slot, Event::Stop));
            }
        }
    }

    /// Moves to the next stop wave once the current one has fully stopped.
    fn advance_shutdown(&mut self) {
        loop {
            let Some(sd) = &self.shutdown else { return };
            let Some(wave) = sd.waves.get(sd.current) else {
                return;
            };
            let done = self
                .slots
                .iter()
                .filter(|s| wave.contains(&s.process))
                .all(|s| s.fsm.is_terminal() || !self.started[s.process]);
            if !done {
                return;
            }
            let next = sd.current + 1;
            if let Some(sd) = &mut self.shutdown {
                sd.current = next;
            }
            self.stop_wave(next);
        }
    }

    fn reap_orphans(&mut self) {
        let known: Vec<i32> = self.slots.iter().filter_map(|s| s.pid).collect();
        let exec = self.exec_pids.clone();
        let now = Instant::now();
        for (pid, status) in os::reap_orphans(&|pid| known.contains(&pid) || exec.contains(pid)) {
            if let Some(line) = self.orphans.reaped(now, pid, status.to_string()) {
                self.logs.project_event(&line);
            }
        }
    }

    fn note(&mut self, slot: usize, note: Note) {
        let tone = tone_of(&note);
        let has_health = self.health_plan(slot).is_some();
        if matches!(note, Note::Stopping { .. } | Note::KilledOnRequest) {
            self.stop_health(slot, false);
        }
        let text = match note {
            // Without a health check, readiness is the spawn: don't say it twice.
            Note::Ready if !has_health => return,
            Note::Spawned { pid } => format!("spawned (pid {pid})"),
            Note::Exited { status, clean } => match (status, clean) {
                (ExitStatus::Code(c), _) => format!("exited with code {c}"),
                (ExitStatus::Signal(s), true) => format!("stopped by {}", os::signal_name(s)),
                (ExitStatus::Signal(s), false) => format!("killed by {}", os::signal_name(s)),
            },
            Note::Restarting { after, attempt } => {
                format!("restarting in {} (restart {attempt})", human_delay(after))
            }
            Note::Failed { reason, restarts } => match reason {
                // The message was logged by ExecFailed just before.
                FailReason::ExecFailed { .. } => {
                    "FAILED: not retrying, the program cannot be executed".into()
                }
                FailReason::SpawnFailed { message } => format!("FAILED: {message}"),
                FailReason::Exited { status } => {
                    let how = match status {
                        ExitStatus::Code(c) => format!("exited with code {c}"),
                        ExitStatus::Signal(sig) => format!("killed by {}", os::signal_name(sig)),
                    };
                    let policy = self.plan.processes[self.slots[slot].process].restart.name();
                    format!("FAILED: {how} and restart is \"{policy}\"")
                }
                FailReason::TooManyRestarts { max, window } => {
                    format!("FAILED after {restarts} restarts (max_restarts = {max} within {}): staying down", format_duration(window))
                }
                FailReason::Blocked { reason } => format!("FAILED: cannot start: {reason}"),
                FailReason::NotReady { reason } => format!("FAILED: {reason}"),
            },
            Note::Stopping { signal } => format!("stopping ({})", os::signal_name(signal)),
            Note::Stopped => "stopped".into(),
            Note::Completed => "completed".into(),
            Note::Ready => "ready".into(),
            Note::KilledOnRequest => "killed its process group (asked to stop now)".into(),
            Note::RestartRequested { reason } => format!("restarting: {reason}"),
            Note::KilledAfterTimeout { timeout } => {
                format!(
                    "did not stop within {}: killed its process group",
                    format_duration(timeout)
                )
            }
            Note::ExecFailed { message, .. } => message,
            Note::Unhealthy { reason } => format!("unhealthy: {reason}"),
            Note::WaitingForLock { pid } => match pid {
                Some(pid) => format!("waiting for lock held by pid {pid}"),
                None => "waiting for the singleton lock".into(),
            },
        };
        self.note_toned(slot, text, tone);
    }

    pub(super) fn note_text(&mut self, slot: usize, text: String) {
        self.note_toned(slot, text, crate::logs::Tone::Plain);
    }

    fn note_toned(&mut self, slot: usize, text: String, tone: crate::logs::Tone) {
        let s = &self.slots[slot];
        let name = self.plan.processes[s.process].name.clone();
        self.logs
            .toned_event(&name, s.number, s.pid.map(|p| p as u32), &text, tone);
    }

    /// Kills whatever is left, prints the exit summary, returns the code.
    fn finish(mut self) -> i32 {
        let known: Vec<i32> = self.slots.iter().filter_map(|s| s.pid).collect();
        for pid in os::live_orphans(&|pid| known.contains(&pid)) {
            let _ = os::kill_group(pid);
            let _ = os::send(pid, libc::SIGKILL);
        }
        self.reap_orphans();
        if let Some(line) = self.orphans.flush(Instant::now(), true) {
            self.logs.project_event(&line);
        }
        let ending = match &self.shutdown {
            Some(sd) => sd.ending.clone(),
            None => Ending::OnItsOwn,
        };
        let ends: Vec<InstanceEnd<'_>> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| InstanceEnd {
                name: format!("{}.{}", self.plan.processes[s.process].name, s.number),
                phase: s.fsm.phase(),
                started: self.started[s.process],
                failed_before_stop: self.shutdown.as_ref().is_some_and(|sd| sd.failed_before[i]),
                stop: s.fsm.stop_outcome(),
            })
            .collect();
        let verdict = summary::verdict(&ending, &ends);
        let mut lines = vec![("exit summary:".to_string(), crate::logs::Tone::Plain)];
        for s in &self.slots {
            let spec = &self.plan.processes[s.process];
            let state = if self.started[s.process] {
                s.fsm.phase().name()
            } else {
                "not started"
            };
            let last = match s.last_exit {
                Some(status) => format!(", last {}", status.describe()),
                None => String::new(),
            };
            let tasks = match s.health.tasks_done {
                0 => String::new(),
                1 => ", 1 task done".to_string(),
                n => format!(", {n} tasks done"),
            };
            let tone = if state == "failed" {
                crate::logs::Tone::Bad
            } else {
                crate::logs::Tone::Plain
            };
            lines.push((
                format!(
                    "  {}.{}: {state}, {}{tasks}{last}",
                    spec.name,
                    s.number,
                    restarts_text(&s.fsm)
                ),
                tone,
            ));
        }
        let tone = if verdict.code == exit::OK {
            crate::logs::Tone::Plain
        } else {
            crate::logs::Tone::Bad
        };
        lines.push((
            format!("exiting with code {}: {}", verdict.code, verdict.reason),
            tone,
        ));
        for (line, tone) in &lines {
            self.logs.toned_project_event(line, *tone);
        }
        let code = verdict.code;
        let _ = self.keeper.shutdown();
        code
    }
}

/// `0 restarts`, `1 restart`, `3 restarts (last: unhealthy: ...)`: every
/// restart, whatever its cause, with the last reason.
fn restarts_text(fsm: &Instance) -> String {
    let n = fsm.all_restarts();
    let count = if n == 1 {
        "1 restart".to_string()
    } else {
        format!("{n} restarts")
    };
    match fsm.last_restart() {
        Some(reason) if n > 0 => format!("{count} (last: {reason})"),
        _ => count,
    }
}

/// Every signal of [`signal_policy::handled`], forwarded into one channel:
/// none keeps its default action, which for most would kill prodserver.
fn listen_to_signals() -> std::io::Result<mpsc::UnboundedReceiver<i32>> {
    let (tx, rx) = mpsc::unbounded_channel();
    for sig in signal_policy::handled() {
        let mut stream = signal(SignalKind::from_raw(sig))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(sig).is_err() {
                    break;
                }
            }
        });
    }
    Ok(rx)
}

/// How a note stands out on a colour terminal: failures red, trouble on
/// the way to recovery yellow, readiness green.
fn tone_of(note: &Note) -> crate::logs::Tone {
    use crate::logs::Tone;
    match note {
        Note::Failed { .. } => Tone::Bad,
        Note::Restarting { .. }
        | Note::Unhealthy { .. }
        | Note::RestartRequested { .. }
        | Note::KilledAfterTimeout { .. } => Tone::Warn,
        Note::Ready => Tone::Good,
        _ => Tone::Plain,
    }
}

fn exit_status(status: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitStatus::Code(code),
        (None, Some(sig)) => ExitStatus::Signal(sig),
        (None, None) => ExitStatus::Code(-1),
    }
}

/// `250ms` below a second, `1.25s` above: jittered delays have no round
/// value, and `5s59ms` reads badly.
fn human_delay(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// A random number in [0, 1) for backoff jitter; quality hardly matters,
/// only that supervisors restarted together don't retry in lockstep.
fn jitter01() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tone_tests {
    use super::*;
    use crate::logs::Tone;

    #[test]
    fn notes_map_to_tones() {
        let cases = [
            (
                Note::Failed {
                    reason: FailReason::SpawnFailed {
                        message: "x".into(),
                    },
                    restarts: 0,
                },
                Tone::Bad,
            ),
            (
                Note::Restarting {
                    after: Duration::from_secs(1),
                    attempt: 1,
                },
                Tone::Warn,
            ),
            (Note::Unhealthy { reason: "x".into() }, Tone::Warn),
            (Note::RestartRequested { reason: "x".into() }, Tone::Warn),
            (
                Note::KilledAfterTimeout {
                    timeout: Duration::from_secs(1),
                },
                Tone::Warn,
            ),
            (Note::Ready, Tone::Good),
            (Note::Spawned { pid: 1 }, Tone::Plain),
            (Note::Stopped, Tone::Plain),
            (Note::Completed, Tone::Plain),
        ];
        for (note, tone) in cases {
            assert_eq!(tone_of(&note), tone, "{note:?}");
        }
    }
}
