//! The supervisor core: every supervisor-wide decision, as a pure state
//! machine.
//!
//! Theory of operation. The core owns one record per instance, keyed by a
//! stable [`InstanceId`] (process name + instance number, never a position
//! in a vector), and decides everything that concerns more than one
//! instance: dependency gates (re-evaluated whenever something changes,
//! including an operator's start), stop waves, the shutdown goal, fatality
//! (a failed oneshot or critical process), rollouts, operator requests and
//! the exit code. Its one entry point is [`Core::handle`]: an [`Input`]
//! (child exited, spawned, probe verdict, timer, signal, request) at a
//! given time in, a list of [`Command`]s (spawn, signal, kill group, arm
//! timer, note, log, reply, exit) out. The event loop only carries out the
//! commands and feeds back what happened; it decides nothing.
//!
//! Reports about a spawn carry the generation the core handed out with the
//! `Spawn` command, so a late report about a previous incarnation is
//! recognised and dropped here, where a test can see it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Instant;

use super::gate::{self, Gate, ProcessView};
use super::instance::{
    Action, Event, ExitStatus, FailReason, Instance, InstanceConfig, Note, Phase,
};
use super::order;
use super::recycle::{Decision, Sample, Watch};
use super::rollout::{self, Mode, Rollout, Step, Waiting};
use super::signal_policy::{SignalMeaning, StopCause};
use super::summary::{self, Ending, InstanceEnd, Verdict};
use crate::plan::{MemoryMetric, Plan, ProcessId, RolloutMode};

/// One instance, by name: `web.2`. Survives scale and reload.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId {
    pub process: String,
    pub number: u32,
}

impl InstanceId {
    pub fn new(process: &str, number: u32) -> InstanceId {
        InstanceId {
            process: process.to_string(),
            number,
        }
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.process, self.number)
    }
}

/// What the run is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// `start`: run until stopped (or until everything ended by itself).
    UntilStopped,
    /// Until every selected process is ready (or done), then stop: what
    /// `smoke` needs.
    UntilReady,
}

/// Identifies a request, so its reply finds its way back.
pub type Ticket = u64;

/// What an operator can ask of a running supervisor.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Rolling restart of a process, or of one of its instances.
    Restart {
        process: String,
        instance: Option<u32>,
        /// Why, for the log line (`restarting: orders/tasks.py changed`);
        /// `None` is an operator's request.
        reason: Option<String>,
    },
    /// Stop a process; the supervisor keeps running.
    Stop { process: String },
    /// Start a stopped (or never started) process, once its gate opens.
    Start { process: String },
    /// Run `instances` copies, keeping the others' ids and pids.
    Scale { process: String, instances: u32 },
    /// A snapshot of every instance.
    Status,
    /// Stop everything and end the run (answered once the stop began).
    Shutdown,
    /// Apply a new plan: unchanged processes keep running untouched,
    /// changed ones roll (or only rescale), added ones start, removed
    /// ones stop. Answered once the rollouts are done and the added
    /// processes are ready.
    Reload { plan: Box<Plan> },
}

/// The answer to a request, sent once it is *done*.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Done,
    Failed(String),
    Status(Vec<InstanceStatus>),
}

/// One line of `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    pub id: InstanceId,
    pub state: &'static str,
    pub pid: Option<i32>,
    pub restarts: u32,
    pub last_restart: Option<String>,
    pub last_exit: Option<ExitStatus>,
    /// The latest measurement of the current incarnation.
    pub usage: Option<Usage>,
    /// Tasks finished by the current incarnation, and by all of them.
    pub tasks: u64,
    pub tasks_total: u64,
    /// Recycles (of the instance or of one of its children), and why the
    /// last one happened.
    pub recycles: u32,
    pub last_recycle: Option<String>,
    /// When the current process was spawned (uptime).
    pub since: Option<Instant>,
}

/// An instance's resources, as last measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub metric: MemoryMetric,
    /// Processes in its tree.
    pub processes: u32,
    /// CPU use since the previous sample, in tenths of a percent of one
    /// core; `None` for the first sample.
    pub cpu_tenths: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The spawn of `generation` produced a process.
    Spawned {
        id: InstanceId,
        generation: u64,
        pid: i32,
    },
    SpawnFailed {
        id: InstanceId,
        generation: u64,
        permanent: bool,
        message: String,
    },
    Exited {
        id: InstanceId,
        generation: u64,
        status: ExitStatus,
    },
    /// A health verdict about the incarnation of `generation`.
    Health {
        id: InstanceId,
        generation: u64,
        event: Event,
    },
    /// The instance's timer fired.
    Timer {
        id: InstanceId,
    },
    /// The answer to a `TryLock`/`Spawn` of a singleton.
    Lock {
        id: InstanceId,
        event: Event,
    },
    Signal(SignalMeaning),
    Request {
        ticket: Ticket,
        request: Request,
    },
    /// A measurement of the incarnation of `generation`'s process tree.
    Usage {
        id: InstanceId,
        generation: u64,
        sample: Sample,
        cpu_tenths: Option<u32>,
    },
    /// The incarnation of `generation` finished `count` more tasks.
    TasksDone {
        id: InstanceId,
        generation: u64,
        count: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Spawn the instance (a singleton takes its lock first and answers
    /// with `Input::Lock` if it is held); report with this generation.
    Spawn {
        id: InstanceId,
        generation: u64,
    },
    Signal {
        id: InstanceId,
        pid: i32,
        signal: i32,
    },
    /// Signal `pid` if it is still a child of `parent` (a pool child seen
    /// in a sample may have exited, and its pid been reused, since).
    SignalChild {
        id: InstanceId,
        parent: i32,
        pid: i32,
        signal: i32,
    },
    KillGroup {
        id: InstanceId,
        pgid: i32,
    },
    SetTimer {
        id: InstanceId,
        at: Instant,
    },
    ClearTimer {
        id: InstanceId,
    },
    TryLock {
        id: InstanceId,
    },
    /// The instance ended: drop its singleton lock and health state.
    Release {
        id: InstanceId,
    },
    /// Something happened to one instance (the loop words it).
    Note {
        id: InstanceId,
        note: Note,
    },
    /// A supervisor-wide line.
    Log(String),
    Reply {
        ticket: Ticket,
        reply: Reply,
    },
    /// Everything is done: exit with this verdict.
    Exit(Verdict),
}

#[derive(Debug)]
struct Record {
    instance: Instance,
    generation: u64,
    last_exit: Option<ExitStatus>,
    /// Being removed by a scale-down, a reload or a surge: dropped once
    /// terminal.
    retiring: bool,
    /// The current incarnation's recycling state.
    watch: Watch,
    usage: Option<Usage>,
    tasks_total: u64,
    /// Pool children told to go, and (with the instance's own recycles)
    /// why the last recycle happened.
    child_recycles: u32,
    last_recycle: Option<String>,
    /// Recycles of the instances this one succeeded in a surge.
    inherited_recycles: u32,
}

#[derive(Debug)]
struct Shutdown {
    waves: Vec<Vec<ProcessId>>,
    current: usize,
    ending: Ending,
    failed_before: BTreeSet<InstanceId>,
}

/// A request that is answered once a condition holds.
#[derive(Debug)]
enum Waiter {
    /// Every instance of the process is terminal.
    Stopped { ticket: Ticket, process: ProcessId },
    /// Every instance of the process is ready or completed (or one failed).
    Ready { ticket: Ticket, process: ProcessId },
    /// A reload: its rollouts are done and its added processes ready.
    Reload {
        ticket: Ticket,
        rolling: Vec<ProcessId>,
        added: Vec<ProcessId>,
    },
}

#[derive(Debug)]
struct Rolling {
    rollout: Rollout,
    ticket: Option<Ticket>,
    /// Generation of the instance being rolled when its step began.
    since_generation: u64,
    /// Surge: the number of the current instance's successor.
    successor: Option<u32>,
    /// What the requester gave as the restart's cause.
    reason: Option<String>,
}

pub struct Core {
    plan: Plan,
    selected: Vec<bool>,
    /// Told to run (by the schedule or an operator).
    started: Vec<bool>,
    /// Stopped by an operator: its dependents wait instead of failing, and
    /// its stop does not end the run.
    held_down: Vec<bool>,
    records: BTreeMap<InstanceId, Record>,
    rollouts: BTreeMap<ProcessId, Rolling>,
    /// Instances queued for a recycle, with its reason.
    recycle_reasons: BTreeMap<InstanceId, (String, bool)>,
    /// The last generation of dropped instances, by name.
    generation_floors: BTreeMap<InstanceId, u64>,
    waiters: Vec<Waiter>,
    shutdown: Option<Shutdown>,
    goal: Goal,
    exited: bool,
}

impl Core {
    /// A core for `plan`, running the `selected` processes.
    pub fn new(plan: Plan, selected: &[ProcessId], goal: Goal) -> Core {
        let n = plan.processes.len();
        let mut sel = vec![false; n];
        for &id in selected {
            sel[id] = true;
        }
        let mut records = BTreeMap::new();
        for (pid, spec) in plan.processes.iter().enumerate() {
            if !sel[pid] {
                continue;
            }
            for number in 1..=spec.instances {
                records.insert(InstanceId::new(&spec.name, number), Record::new(spec));
            }
        }
        Core {
            plan,
            selected: sel,
            started: vec![false; n],
            held_down: vec![false; n],
            records,
            rollouts: BTreeMap::new(),
            recycle_reasons: BTreeMap::new(),
            generation_floors: BTreeMap::new(),
            waiters: Vec::new(),
            shutdown: None,
            goal,
            exited: false,
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The instances, in a stable order.
    pub fn ids(&self) -> impl Iterator<Item = &InstanceId> {
        self.records.keys()
    }

    pub fn phase(&self, id: &InstanceId) -> Option<&Phase> {
        self.records.get(id).map(|r| r.instance.phase())
    }

    pub fn instance(&self, id: &InstanceId) -> Option<&Instance> {
        self.records.get(id).map(|r| &r.instance)
    }

    /// How many instances there are.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn generation(&self, id: &InstanceId) -> Option<u64> {
        self.records.get(id).map(|r| r.generation)
    }

    pub fn is_stopping(&self) -> bool {
        self.shutdown.is_some()
    }

    /// Its process was told to run; an instance of a process a reload
    /// removed counts as started until it has ended.
    fn started_process_of(&self, id: &InstanceId) -> bool {
        self.process_id(&id.process).is_none_or(|p| self.started[p])
    }

    /// Ended, or never started: nothing of it is left to stop.
    fn settled(&self, id: &InstanceId) -> bool {
        !self.started_process_of(id) || self.records[id].instance.is_terminal()
    }

    /// The process of that name in the current plan.
    pub fn process_id(&self, name: &str) -> Option<ProcessId> {
        self.plan.processes.iter().position(|p| p.name == name)
    }

    fn ids_of(&self, process: ProcessId) -> Vec<InstanceId> {
        let name = &self.plan.processes[process].name;
        self.records
            .keys()
            .filter(|id| &id.process == name)
            .cloned()
            .collect()
    }

    /// Starts the run: every process whose gate is open starts.
    pub fn begin(&mut self, now: Instant, jitter: f64) -> Vec<Command> {
        let mut out = Vec::new();
        self.settle(now, jitter, &mut out);
        out
    }

    /// Feeds one input; returns what the loop must do, in order.
    /// `jitter` in `[0, 1)` is used when a restart delay is drawn.
    pub fn handle(&mut self, now: Instant, input: Input, jitter: f64) -> Vec<Command> {
        let mut out = Vec::new();
        if self.exited {
            return out;
        }
        let measured = matches!(input, Input::Usage { .. } | Input::TasksDone { .. });
        match input {
            Input::Spawned {
                id,
                generation,
                pid,
            } => {
                if self.current(&id, generation) {
                    let limits = self
                        .process_id(&id.process)
                        .map(|p| self.plan.processes[p].limits.clone());
                    if let (Some(r), Some(limits)) = (self.records.get_mut(&id), limits) {
                        r.watch = Watch::new(&limits);
                        r.usage = None;
                    }
                    self.feed(now, &id, Event::Spawned { pid }, jitter, &mut out);
                }
            }
            Input::SpawnFailed {
                id,
                generation,
                permanent,
                message,
            } => {
                if self.current(&id, generation) {
                    let event = Event::SpawnFailed { permanent, message };
                    self.feed(now, &id, event, jitter, &mut out);
                }
            }
            Input::Exited {
                id,
                generation,
                status,
            } => {
                if self.current(&id, generation) {
                    if let Some(r) = self.records.get_mut(&id) {
                        r.last_exit = Some(status);
                    }
                    self.feed(now, &id, Event::Exited { status }, jitter, &mut out);
                }
            }
            Input::Health {
                id,
                generation,
                event,
            } => {
                if self.current(&id, generation) {
                    self.feed(now, &id, event, jitter, &mut out);
                }
            }
            Input::Timer { id } => self.feed(now, &id, Event::TimerFired, jitter, &mut out),
            Input::Lock { id, event } => self.feed(now, &id, event, jitter, &mut out),
            Input::Signal(meaning) => self.on_signal(now, meaning, jitter, &mut out),
            Input::Request { ticket, request } => {
                self.on_request(now, ticket, request, jitter, &mut out)
            }
            Input::Usage {
                id,
                generation,
                sample,
                cpu_tenths,
            } => {
                if self.current(&id, generation) {
                    self.on_usage(now, &id, sample, cpu_tenths, jitter, &mut out);
                }
            }
            Input::TasksDone {
                id,
                generation,
                count,
            } => {
                if self.current(&id, generation) {
                    let decision = self.records.get_mut(&id).and_then(|r| {
                        r.tasks_total = r.tasks_total.saturating_add(count);
                        r.watch.tasks_done(count)
                    });
                    self.decided(now, &id, decision, jitter, &mut out);
                }
            }
        }
        // A measurement that decided nothing changed no phase: the
        // supervisor-wide pass (linear in the instances) would find
        // nothing, and a sweep brings one input per instance.
        if out.is_empty() && measured {
            return out;
        }
        self.settle(now, jitter, &mut out);
        out
    }

    fn on_usage(
        &mut self,
        now: Instant,
        id: &InstanceId,
        sample: Sample,
        cpu_tenths: Option<u32>,
        jitter: f64,
        out: &mut Vec<Command>,
    ) {
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        r.usage = Some(Usage {
            bytes: sample.bytes,
            metric: sample.metric,
            processes: sample.processes,
            cpu_tenths,
        });
        let decision = r.watch.sample(&sample);
        self.decided(now, id, decision, jitter, out);
    }

    /// Carries out a recycling decision about a running instance: the
    /// whole instance joins its process's rollout (one at a time, the
    /// replacement ready before the next); a pool child is told to go.
    fn decided(
        &mut self,
        now: Instant,
        id: &InstanceId,
        decision: Option<Decision>,
        jitter: f64,
        out: &mut Vec<Command>,
    ) {
        let Some(decision) = decision else { return };
        let Some(process) = self.process_id(&id.process) else {
            return;
        };
        let Some(Phase::Running { pid: parent, .. }) = self.phase(id).cloned() else {
            return;
        };
        if self.shutdown.is_some() || self.records[id].retiring {
            return;
        }
        match decision {
            Decision::RecycleChild { pid, reason } => {
                if let Some(r) = self.records.get_mut(id) {
                    r.child_recycles = r.child_recycles.saturating_add(1);
                    r.last_recycle = Some(reason.clone());
                }
                out.push(Command::Note {
                    id: id.clone(),
                    note: Note::Recycling { reason },
                });
                out.push(Command::SignalChild {
                    id: id.clone(),
                    parent,
                    pid,
                    signal: libc::SIGTERM,
                });
            }
            Decision::Recycle { reason, guarded } => {
                if let Some(rolling) = self.rollouts.get_mut(&process) {
                    if !rolling.rollout.includes(id.number) {
                        rolling.rollout.enqueue(id.number);
                        self.recycle_reasons.insert(id.clone(), (reason, guarded));
                    }
                    return;
                }
                self.recycle_reasons.insert(id.clone(), (reason, guarded));
                self.start_rollout(now, process, vec![id.number], None, jitter, out);
            }
        }
    }

    fn start_rollout(
        &mut self,
        now: Instant,
        process: ProcessId,
        numbers: Vec<u32>,
        // An operator's request: answered when done, and its reason.
        requested: Option<(Ticket, Option<String>)>,
        jitter: f64,
        out: &mut Vec<Command>,
    ) {
        let mode = match self.plan.processes[process].restart_mode() {
            RolloutMode::Replace => Mode::Replace,
            RolloutMode::Surge => Mode::Surge,
        };
        let (rollout, step) = Rollout::start(mode, numbers);
        let (ticket, reason) = match requested {
            Some((ticket, reason)) => (Some(ticket), reason),
            None => (None, None),
        };
        self.rollouts.insert(
            process,
            Rolling {
                rollout,
                ticket,
                since_generation: 0,
                successor: None,
                reason,
            },
        );
        self.take_step(now, process, step, jitter, out);
    }

    /// A report about the current incarnation (not a late one).
    fn current(&self, id: &InstanceId, generation: u64) -> bool {
        self.records
            .get(id)
            .is_some_and(|r| r.generation == generation)
    }

    /// Feeds `event` to one instance and turns its actions into commands.
    fn feed(
        &mut self,
        now: Instant,
        id: &InstanceId,
        event: Event,
        jitter: f64,
        out: &mut Vec<Command>,
    ) {
        let Some(r) = self.records.get_mut(id) else {
            return;
        };
        let was_terminal = r.instance.is_terminal();
        for action in r.instance.handle(now, event, jitter) {
            out.push(match action {
                Action::Spawn => {
                    r.generation += 1;
                    Command::Spawn {
                        id: id.clone(),
                        generation: r.generation,
                    }
                }
                Action::Signal { pid, signal } => Command::Signal {
                    id: id.clone(),
                    pid,
                    signal,
                },
                Action::KillGroup { pgid } => Command::KillGroup {
                    id: id.clone(),
                    pgid,
                },
                Action::SetTimer(at) => Command::SetTimer { id: id.clone(), at },
                Action::ClearTimer => Command::ClearTimer { id: id.clone() },
                Action::TryLock => Command::TryLock { id: id.clone() },
                Action::Note(note) => Command::Note {
                    id: id.clone(),
                    note,
                },
            });
        }
        if !was_terminal && r.instance.is_terminal() {
            out.push(Command::Release { id: id.clone() });
        }
    }

    fn on_signal(
        &mut self,
        now: Instant,
        meaning: SignalMeaning,
        jitter: f64,
        out: &mut Vec<Command>,
    ) {
        match meaning {
            SignalMeaning::Stop { cause } => {
                if self.shutdown.is_some() {
                    let what = match cause {
                        StopCause::Interrupt => "SIGINT again".to_string(),
                        StopCause::Terminate(sig) => {
                            format!("{} again", crate::os::signal_name(sig))
                        }
                        // The terminal is gone: nobody asks twice.
                        StopCause::Hangup => return,
                    };
                    out.push(Command::Log(format!(
                        "{what}: killing what is left without waiting"
                    )));
                    let ids: Vec<InstanceId> = self.records.keys().cloned().collect();
                    for id in ids {
                        self.feed(now, &id, Event::StopNow, jitter, out);
                    }
                } else {
                    self.begin_shutdown(now, Ending::Requested, &cause.describe(), jitter, out);
                }
            }
            SignalMeaning::Reload => out.push(Command::Log(
                "SIGHUP received: reload is not available (no control socket), carrying on with the running configuration"
                    .into(),
            )),
            SignalMeaning::Status => {
                out.push(Command::Log("status (SIGUSR1):".into()));
                for s in self.status() {
                    let pid = s.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
                    let restarts = summary::restarts_count(s.restarts);
                    let memory = s
                        .usage
                        .map(|u| format!(", {} (tree of {})", summary::memory_text(&u), u.processes))
                        .unwrap_or_default();
                    let tasks = match s.tasks_total {
                        0 => String::new(),
                        n => format!(", {} tasks ({n} in all)", s.tasks),
                    };
                    let recycles = match s.recycles {
                        0 => String::new(),
                        n => format!(", {}", summary::recycles_count(n)),
                    };
                    out.push(Command::Log(format!(
                        "  {}: {}{pid}, {restarts}{memory}{tasks}{recycles}",
                        s.id, s.state
                    )));
                }
            }
            SignalMeaning::Ignore => {}
        }
    }

    /// Every instance's state, for `status`.
    pub fn status(&self) -> Vec<InstanceStatus> {
        self.records
            .iter()
            .map(|(id, r)| {
                let process = self.process_id(&id.process).unwrap_or(0);
                InstanceStatus {
                    id: id.clone(),
                    state: if self.started[process] {
                        r.instance.phase().name()
                    } else {
                        "not started"
                    },
                    pid: r.instance.pid(),
                    restarts: r.instance.all_restarts(),
                    last_restart: r.instance.last_restart().map(str::to_string),
                    last_exit: r.last_exit,
                    usage: r.usage.clone(),
                    tasks: r.watch.tasks(),
                    tasks_total: r.tasks_total,
                    recycles: r.recycles_so_far(),
                    last_recycle: r.last_recycle.clone(),
                    since: match r.instance.phase() {
                        Phase::Running { since, .. } | Phase::Stopping { since, .. } => {
                            Some(*since)
                        }
                        _ => None,
                    },
                }
            })
            .collect()
    }

    fn on_request(
        &mut self,
        now: Instant,
        ticket: Ticket,
        request: Request,
        jitter: f64,
        out: &mut Vec<Command>,
    ) {
        let reply = |out: &mut Vec<Command>, reply| out.push(Command::Reply { ticket, reply });
        if let Request::Status = request {
            return reply(out, Reply::Status(self.status()));
        }
        if let Request::Shutdown = request {
            self.begin_shutdown(
                now,
                Ending::Requested,
                "stop requested: stopping everything",
                jitter,
                out,
            );
            return reply(out, Reply::Done);
        }
        if self.shutdown.is_some() {
            return reply(out, Reply::Failed("prodserver is stopping".into()));
        }
        if let Request::Reload { plan } = request {
            return self.reload(now, ticket, *plan, jitter, out);
        }
        let name = match &request {
            Request::Restart { process, .. }
            | Request::Stop { process }
            | Request::Start { process }
            | Request::Scale { process, .. } => process.clone(),
            // Answered above.
            Request::Status | Request::Shutdown | Request::Reload { .. } => return,
        };
        let Some(process) = self.process_id(&name).filter(|p| self.selected[*p]) else {
            return reply(
                out,
                Reply::Failed(format!("no process named {name} runs here")),
            );
        };
        match request {
            Request::Restart {
                instance, reason, ..
            } => {
                if self
                    .rollouts
                    .get(&process)
                    .is_some_and(|r| r.ticket.is_some())
                {
                    return reply(
                        out,
                        Reply::Failed(format!("{name} is already being restarted")),
                    );
                }
                let numbers: Vec<u32> = match instance {
                    Some(n) if self.records.contains_key(&InstanceId::new(&name, n)) => vec![n],
                    Some(n) => {
                        return reply(out, Reply::Failed(format!("{name} has no instance {n}")))
                    }
                    None => self.ids_of(process).iter().map(|id| id.number).collect(),
                };
                self.started[process] = true;
                self.held_down[process] = false;
                if let Some(rolling) = self.rollouts.get_mut(&process) {
                    // A recycle is rolling: the restart joins it, and is
                    // answered when everything queued is done.
                    for n in numbers {
                        rolling.rollout.enqueue(n);
                    }
                    rolling.ticket = Some(ticket);
                    rolling.reason = reason;
                    return;
                }
                self.start_rollout(now, process, numbers, Some((ticket, reason)), jitter, out);
            }
            Request::Stop { .. } => {
                self.held_down[process] = true;
                self.end_rollout(process, Reply::Failed(format!("{name} was stopped")), out);
                for id in self.ids_of(process) {
                    self.feed(now, &id, Event::Stop, jitter, out);
                }
                self.waiters.push(Waiter::Stopped { ticket, process });
            }
            Request::Start { .. } => {
                self.held_down[process] = false;
                // The schedule starts it once its gate opens.
                self.started[process] = false;
                self.waiters.push(Waiter::Ready { ticket, process });
            }
            Request::Scale { instances, .. } => {
                if self.rollouts.contains_key(&process) {
                    return reply(
                        out,
                        Reply::Failed(format!(
                            "{name} is being restarted or recycled: scale once that is done"
                        )),
                    );
                }
                if instances == 0 || instances > crate::config::MAX_INSTANCES {
                    return reply(
                        out,
                        Reply::Failed(format!(
                            "instances must be between 1 and {}",
                            crate::config::MAX_INSTANCES
                        )),
                    );
                }
                self.scale(now, process, instances, jitter, out);
                self.waiters.push(Waiter::Ready { ticket, process });
            }
            Request::Status | Request::Shutdown | Request::Reload { .. } => {}
        }
    }

    /// Runs `instances` copies of `process`: new numbers start (if the
    /// process runs), the highest ones stop and are dropped once ended.
    fn scale(
        &mut self,
        now: Instant,
        process: ProcessId,
        instances: u32,
        jitter: f64,
        out: &mut Vec<Command>,
    ) {
        // By count, not by number: after a surge the instances may be
        // numbered 2 and 3 rather than 1 and 2.
        let current: Vec<InstanceId> = self
            .ids_of(process)
            .into_iter()
            .filter(|id| !self.records[id].retiring)
            .collect();
        let wanted = instances as usize;
        for _ in current.len()..wanted {
            let id = self.free_id(process);
            self.insert_record(id.clone(), process);
            if self.started[process] {
                self.feed(now, &id, Event::Start, jitter, out);
            }
        }
        for id in current.iter().skip(wanted) {
            if let Some(r) = self.records.get_mut(id) {
                r.retiring = true;
            }
            if let Some(rolling) = self.rollouts.get_mut(&process) {
                rolling.rollout.forget(id.number);
            }
            self.feed(now, id, Event::Stop, jitter, out);
        }
        self.plan.processes[process].instances = instances;
    }

    /// The lowest instance number of `process` not in use.
    fn free_id(&self, process: ProcessId) -> InstanceId {
        let name = &self.plan.processes[process].name;
        (1..)
            .map(|n| InstanceId::new(name, n))
            .find(|id| !self.records.contains_key(id))
            .expect("fewer than u32::MAX instances")
    }

    fn reload(
        &mut self,
        now: Instant,
        ticket: Ticket,
        new: Plan,
        jitter: f64,
        out: &mut Vec<Command>,
    ) {
        if !self.rollouts.is_empty() || !self.waiters.is_empty() {
            out.push(Command::Reply {
                ticket,
                reply: Reply::Failed(
                    "a restart, recycle, stop, start or scale is still in progress: reload once it is done"
                        .into(),
                ),
            });
            return;
        }
        let diff = super::reload::diff(&self.plan, &new);
        let by_name = |v: &[bool], plan: &Plan, name: &str| {
            plan.processes
                .iter()
                .position(|p| p.name == name)
                .is_some_and(|i| v[i])
        };
        let old = std::mem::replace(&mut self.plan, new);
        let n = self.plan.processes.len();
        let mut selected = vec![false; n];
        let mut started = vec![false; n];
        let mut held_down = vec![false; n];
        for (i, p) in self.plan.processes.iter().enumerate() {
            let kept = old.processes.iter().any(|o| o.name == p.name);
            selected[i] = !kept || by_name(&self.selected, &old, &p.name);
            started[i] = kept && by_name(&self.started, &old, &p.name);
            held_down[i] = kept && by_name(&self.held_down, &old, &p.name);
        }
        // What a selected process depends on runs too.
        let chosen: Vec<ProcessId> = (0..n).filter(|&i| selected[i]).collect();
        for i in order::closure(&self.plan, &chosen) {
            selected[i] = true;
        }
        self.selected = selected;
        self.started = started;
        self.held_down = held_down;

        for name in &diff.removed {
            let ids: Vec<InstanceId> = self
                .records
                .keys()
                .filter(|id| &id.process == name)
                .cloned()
                .collect();
            for id in ids {
                if let Some(r) = self.records.get_mut(&id) {
                    r.retiring = true;
                }
                self.feed(now, &id, Event::Stop, jitter, out);
            }
        }
        let mut added = Vec::new();
        for name in &diff.added {
            let Some(process) = self.process_id(name) else {
                continue;
            };
            for number in 1..=self.plan.processes[process].instances {
                self.insert_record(InstanceId::new(name, number), process);
            }
            added.push(process);
        }
        let mut rolling = Vec::new();
        for change in &diff.changed {
            let Some(process) = self.process_id(&change.process) else {
                continue;
            };
            let wanted = self.plan.processes[process].instances;
            let running = self.ids_of(process).len() as u32;
            // The count the plan had is what the records still have.
            self.plan.processes[process].instances = running;
            if !change.only_instances {
                let cfg = InstanceConfig::from(&self.plan.processes[process]);
                for id in self.ids_of(process) {
                    if let Some(r) = self.records.get_mut(&id) {
                        r.instance.reconfigure(cfg.clone());
                    }
                }
            }
            self.scale(now, process, wanted, jitter, out);
            if !change.only_instances && self.started[process] && !self.held_down[process] {
                let numbers: Vec<u32> = self
                    .ids_of(process)
                    .iter()
                    .filter(|id| !self.records[*id].retiring)
                    .map(|id| id.number)
                    .collect();
                self.start_rollout(now, process, numbers, None, jitter, out);
                rolling.push(process);
            }
        }
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        let changed: Vec<String> = diff.changed.iter().map(|c| c.process.clone()).collect();
        out.push(Command::Log(format!(
            "reload: changed {}; added {}; removed {}; unchanged {}",
            list(&changed),
            list(&diff.added),
            list(&diff.removed),
            list(&diff.unchanged)
        )));
        self.waiters.push(Waiter::Reload {
            ticket,
            rolling,
            added,
        });
    }

    fn take_step(
        &mut self,
        now: Instant,
        process: ProcessId,
        step: Step,
        jitter: f64,
        out: &mut Vec<Command>,
    ) {
        let name = self.plan.processes[process].name.clone();
        match step {
            Step::Restart(n) => {
                let id = InstanceId::new(&name, n);
                let generation = self.records.get(&id).map_or(0, |r| r.generation);
                if let Some(rolling) = self.rollouts.get_mut(&process) {
                    rolling.since_generation = generation;
                }
                let terminal = self
                    .records
                    .get(&id)
                    .is_some_and(|r| r.instance.is_terminal());
                let event = match self.recycle_reasons.remove(&id) {
                    _ if terminal => Event::Start,
                    Some((reason, guarded)) => {
                        self.note_recycle(&id, &reason);
                        Event::Recycle { reason, guarded }
                    }
                    None => Event::Restart {
                        reason: self
                            .rollouts
                            .get(&process)
                            .and_then(|r| r.reason.clone())
                            .unwrap_or_else(|| "restart requested".into()),
                    },
                };
                self.feed(now, &id, event, jitter, out);
            }
            Step::StartSuccessor(n) => {
                // Beside the old one, under the lowest free number (so
                // numbers stay within instances + 1, and a Celery node
                // name never runs twice).
                let old = InstanceId::new(&name, n);
                let successor = self.free_id(process);
                let carried = self
                    .records
                    .get(&old)
                    .map(|r| (r.recycles_so_far(), r.last_recycle.clone()));
                let record = self.insert_record(successor.clone(), process);
                if let Some((count, last)) = carried {
                    record.inherited_recycles = count;
                    record.last_recycle = last;
                }
                if let Some(rolling) = self.rollouts.get_mut(&process) {
                    rolling.successor = Some(successor.number);
                }
                let what = format!("starting {successor} beside it (surge)");
                let note = match self.recycle_reasons.get(&old) {
                    Some((reason, _)) => Note::Recycling {
                        reason: format!("{reason}: {what}"),
                    },
                    None => Note::RestartRequested {
                        reason: match self.rollouts.get(&process).and_then(|r| r.reason.as_ref()) {
                            Some(why) => format!("{why}: {what}"),
                            None => what,
                        },
                    },
                };
                out.push(Command::Note { id: old, note });
                self.feed(now, &successor, Event::Start, jitter, out);
            }
            Step::RetirePredecessor(n) => {
                let id = InstanceId::new(&name, n);
                if let Some(r) = self.records.get_mut(&id) {
                    r.retiring = true;
                }
                // The successor carries the count on.
                let successor = self
                    .rollouts
                    .get(&process)
                    .and_then(|r| r.successor)
                    .map(|m| InstanceId::new(&name, m));
                if let (Some((reason, _)), Some(next)) =
                    (self.recycle_reasons.remove(&id), successor)
                {
                    if let Some(r) = self.records.get_mut(&next) {
                        r.inherited_recycles = r.inherited_recycles.saturating_add(1);
                        r.last_recycle = Some(reason);
                    }
                }
                self.feed(now, &id, Event::Stop, jitter, out);
            }
            Step::Done => self.end_rollout(process, Reply::Done, out),
            Step::Aborted { instance, reason } => {
                // A surge's successor that failed goes; the old one stays.
                let successor = self
                    .rollouts
                    .get(&process)
                    .and_then(|r| r.successor)
                    .map(|m| InstanceId::new(&name, m));
                if let Some(id) = successor {
                    if let Some(r) = self.records.get_mut(&id) {
                        r.retiring = true;
                    }
                    self.feed(now, &id, Event::Stop, jitter, out);
                }
                let reply = Reply::Failed(format!("{name}.{instance} {reason}"));
                self.end_rollout(process, reply, out);
            }
        }
    }

    /// A recycle of the whole instance is happening: counted where
    /// `status` finds it.
    fn note_recycle(&mut self, id: &InstanceId, reason: &str) {
        if let Some(r) = self.records.get_mut(id) {
            r.last_recycle = Some(reason.to_string());
        }
    }

    /// Ends a process's rollout (if any) and answers whoever asked for it.
    fn end_rollout(&mut self, process: ProcessId, reply: Reply, out: &mut Vec<Command>) {
        let name = &self.plan.processes[process].name;
        self.recycle_reasons.retain(|id, _| &id.process != name);
        if let Some(Rolling {
            ticket: Some(ticket),
            ..
        }) = self.rollouts.remove(&process)
        {
            out.push(Command::Reply { ticket, reply });
        }
    }

    /// Supervisor-wide consequences, until nothing changes any more.
    fn settle(&mut self, now: Instant, jitter: f64, out: &mut Vec<Command>) {
        loop {
            let before = out.len();
            self.fatality(now, jitter, out);
            self.progress_rollouts(now, jitter, out);
            self.schedule(now, jitter, out);
            self.drop_retired();
            self.answer_waiters(out);
            self.reach_goal(now, jitter, out);
            self.advance_shutdown(now, jitter, out);
            if out.len() == before {
                break;
            }
        }
        if let Some(verdict) = self.finished() {
            self.exited = true;
            out.push(Command::Exit(verdict));
        }
    }

    /// A failed oneshot or critical process stops everything.
    fn fatality(&mut self, now: Instant, jitter: f64, out: &mut Vec<Command>) {
        if self.shutdown.is_some() {
            return;
        }
        let fatal = self.records.iter().find_map(|(id, r)| {
            let spec = &self.plan.processes[self.process_id(&id.process)?];
            let failed = matches!(r.instance.phase(), Phase::Failed { .. });
            (failed && (spec.oneshot || spec.critical)).then(|| {
                let what = if spec.oneshot {
                    "oneshot"
                } else {
                    "critical process"
                };
                (id.clone(), format!("{what} {id} failed"))
            })
        });
        if let Some((_, why)) = fatal {
            let announce = format!("{why}: stopping everything");
            self.begin_shutdown(now, Ending::Fatal(why), &announce, jitter, out);
        }
    }

    fn view(&self, process: ProcessId) -> ProcessView {
        let mut v = ProcessView::of(self.ids_of(process).iter().filter_map(|id| self.phase(id)));
        if self.held_down[process] {
            // Stopped by an operator: its dependents wait for a start
            // instead of failing.
            v.stopped = 0;
        }
        v
    }

    fn schedule(&mut self, now: Instant, jitter: f64, out: &mut Vec<Command>) {
        if self.shutdown.is_some() {
            return;
        }
        for process in 0..self.plan.processes.len() {
            if !self.selected[process] || self.started[process] || self.held_down[process] {
                continue;
            }
            let deps = self.plan.processes[process].depends_on.clone();
            match gate::dependencies_met(&deps, |p| self.view(p)) {
                Gate::Open => {
                    self.started[process] = true;
                    for id in self.ids_of(process) {
                        self.feed(now, &id, Event::Start, jitter, out);
                    }
                }
                Gate::Wait { .. } => {}
                Gate::Blocked { dependency, reason } => {
                    self.started[process] = true;
                    let reason = format!(
                        "dependency {} {reason}",
                        self.plan.processes[dependency].name
                    );
                    for id in self.ids_of(process) {
                        let event = Event::Blocked {
                            reason: reason.clone(),
                        };
                        self.feed(now, &id, event, jitter, out);
                    }
                }
            }
        }
    }

    fn progress_rollouts(&mut self, now: Instant, jitter: f64, out: &mut Vec<Command>) {
        let processes: Vec<ProcessId> = self.rollouts.keys().copied().collect();
        for process in processes {
            let Some(rolling) = self.rollouts.get(&process) else {
                continue;
            };
            let Some(waiting) = rolling.rollout.waiting_for() else {
                continue;
            };
            let name = &self.plan.processes[process].name;
            let outcome = match waiting {
                Waiting::Replacement(n) => {
                    let id = InstanceId::new(name, n);
                    self.replacement_outcome(n, &id, rolling.since_generation)
                }
                Waiting::Successor(n) => match rolling.successor {
                    Some(m) => self.replacement_outcome(n, &InstanceId::new(name, m), 0),
                    None => Some(rollout::Outcome::Failed(n, "has no successor".into())),
                },
                Waiting::Retirement(n) => {
                    let gone = self
                        .records
                        .get(&InstanceId::new(name, n))
                        .is_none_or(|r| r.instance.is_terminal());
                    gone.then_some(rollout::Outcome::Retired(n))
                }
            };
            let Some(outcome) = outcome else { continue };
            let step = self
                .rollouts
                .get_mut(&process)
                .and_then(|r| r.rollout.on(outcome));
            if let Some(step) = step {
                self.take_step(now, process, step, jitter, out);
            }
        }
    }

    /// How the replacement of instance `n` (the record `id`, spawned after
    /// `since_generation`) is doing.
    fn replacement_outcome(
        &self,
        n: u32,
        id: &InstanceId,
        since_generation: u64,
    ) -> Option<rollout::Outcome> {
        match self.records.get(id) {
            None => Some(rollout::Outcome::Failed(n, "was removed".into())),
            Some(r) if r.generation > since_generation => match r.instance.phase() {
                Phase::Running { ready: true, .. } | Phase::Completed => {
                    Some(rollout::Outcome::Ready(n))
                }
                Phase::Failed {
                    reason: FailReason::BootFailed { meaning, .. },
                } => Some(rollout::Outcome::Failed(
                    n,
                    format!("failed: the app failed to boot ({meaning})"),
                )),
                Phase::Failed { .. } | Phase::Backoff { .. } | Phase::Stopped => {
                    let why = r
                        .last_exit
                        .map(|s| s.describe())
                        .unwrap_or_else(|| "did not start".into());
                    Some(rollout::Outcome::Failed(n, why))
                }
                _ => None,
            },
            Some(r) if matches!(r.instance.phase(), Phase::Failed { .. }) => {
                Some(rollout::Outcome::Failed(n, "failed".into()))
            }
            Some(_) => None,
        }
    }

    fn answer_waiters(&mut self, out: &mut Vec<Command>) {
        let mut keep = Vec::new();
        for w in std::mem::take(&mut self.waiters) {
            let (ticket, reply) = match &w {
                Waiter::Stopped { ticket, process } => (*ticket, self.stopped_reply(*process)),
                Waiter::Ready { ticket, process } => (*ticket, self.ready_reply(*process)),
                Waiter::Reload {
                    ticket,
                    rolling,
                    added,
                } => {
                    let rolled = rolling.iter().all(|p| !self.rollouts.contains_key(p));
                    let replies: Vec<Option<Reply>> =
                        added.iter().map(|p| self.ready_reply(*p)).collect();
                    let reply = if let Some(Some(failed)) =
                        replies.iter().find(|r| matches!(r, Some(Reply::Failed(_))))
                    {
                        Some(failed.clone())
                    } else {
                        (rolled && replies.iter().all(Option::is_some)).then_some(Reply::Done)
                    };
                    (*ticket, reply)
                }
            };
            match reply {
                Some(reply) => out.push(Command::Reply { ticket, reply }),
                None => keep.push(w),
            }
        }
        self.waiters = keep;
    }

    /// Every instance of the process has ended.
    fn stopped_reply(&self, process: ProcessId) -> Option<Reply> {
        self.ids_of(process)
            .iter()
            .filter(|id| !self.records[*id].retiring)
            .all(|id| self.records[id].instance.is_terminal())
            .then_some(Reply::Done)
    }

    /// Every instance is ready (or done), or one failed; scaled-down ones
    /// have ended.
    fn ready_reply(&self, process: ProcessId) -> Option<Reply> {
        let ids = self.ids_of(process);
        let phases: Vec<&Phase> = ids
            .iter()
            .filter(|id| !self.records[*id].retiring)
            .filter_map(|id| self.phase(id))
            .collect();
        if let Some(Phase::Failed { reason }) =
            phases.iter().find(|p| matches!(p, Phase::Failed { .. }))
        {
            return Some(Reply::Failed(format!(
                "{}: {reason:?}",
                self.plan.processes[process].name
            )));
        }
        let ready = phases
            .iter()
            .all(|p| matches!(p, Phase::Running { ready: true, .. } | Phase::Completed));
        let retiring_left = ids.iter().any(|id| self.records[id].retiring);
        (ready && !retiring_left).then_some(Reply::Done)
    }

    fn drop_retired(&mut self) {
        let floors = &mut self.generation_floors;
        self.records.retain(|id, r| {
            let keep = !(r.retiring && r.instance.is_terminal());
            if !keep {
                floors.insert(id.clone(), r.generation);
            }
            keep
        });
    }

    /// A new record for `id`: its generations continue those of an
    /// earlier instance of that name, so a late report about the earlier
    /// one can never pass for news about this one.
    fn insert_record(&mut self, id: InstanceId, process: ProcessId) -> &mut Record {
        let mut record = Record::new(&self.plan.processes[process]);
        record.generation = self.generation_floors.remove(&id).unwrap_or(0);
        self.records.insert(id.clone(), record);
        self.records.get_mut(&id).expect("inserted above")
    }

    fn begin_shutdown(
        &mut self,
        now: Instant,
        ending: Ending,
        announce: &str,
        jitter: f64,
        out: &mut Vec<Command>,
    ) {
        if let Some(sd) = &mut self.shutdown {
            if matches!(ending, Ending::Fatal(_)) && !matches!(sd.ending, Ending::Fatal(_)) {
                sd.ending = ending;
            }
            return;
        }
        out.push(Command::Log(announce.to_string()));
        let failed_before = self
            .records
            .iter()
            .filter(|(_, r)| matches!(r.instance.phase(), Phase::Failed { .. }))
            .map(|(id, _)| id.clone())
            .collect();
        let waves = order::stop_waves(&self.plan)
            .into_iter()
            .map(|w| {
                w.into_iter()
                    .filter(|p| self.selected[*p])
                    .collect::<Vec<_>>()
            })
            .filter(|w| !w.is_empty())
            .collect();
        self.shutdown = Some(Shutdown {
            waves,
            current: 0,
            ending,
            failed_before,
        });
        self.recycle_reasons.clear();
        for rolling in std::mem::take(&mut self.rollouts).into_values() {
            if let Some(ticket) = rolling.ticket {
                out.push(Command::Reply {
                    ticket,
                    reply: Reply::Failed("prodserver is stopping".into()),
                });
            }
        }
        for w in std::mem::take(&mut self.waiters) {
            let ticket = match w {
                Waiter::Stopped { ticket, .. }
                | Waiter::Ready { ticket, .. }
                | Waiter::Reload { ticket, .. } => ticket,
            };
            out.push(Command::Reply {
                ticket,
                reply: Reply::Failed("prodserver is stopping".into()),
            });
        }
        // Held: an instance that ends before its wave stays down. Those with
        // no process (pending, in backoff) have nothing to stop.
        let ids: Vec<InstanceId> = self.records.keys().cloned().collect();
        for id in ids {
            // Never started: nothing to stop, and nothing to say.
            if !self.started_process_of(&id) {
                continue;
            }
            self.feed(now, &id, Event::Hold, jitter, out);
            let running = matches!(
                self.phase(&id),
                Some(Phase::Running { .. } | Phase::Stopping { .. } | Phase::Spawning { .. })
            );
            if !running {
                self.feed(now, &id, Event::Stop, jitter, out);
            }
        }
        self.stop_wave(now, 0, jitter, out);
    }

    fn stop_wave(&mut self, now: Instant, wave: usize, jitter: f64, out: &mut Vec<Command>) {
        let Some(processes) = self
            .shutdown
            .as_ref()
            .and_then(|sd| sd.waves.get(wave).cloned())
        else {
            return;
        };
        for process in processes {
            for id in self.ids_of(process) {
                if !self.settled(&id) {
                    self.feed(now, &id, Event::Stop, jitter, out);
                }
            }
        }
    }

    fn advance_shutdown(&mut self, now: Instant, jitter: f64, out: &mut Vec<Command>) {
        loop {
            let Some(sd) = &self.shutdown else { return };
            let Some(wave) = sd.waves.get(sd.current).cloned() else {
                return;
            };
            let done = wave
                .iter()
                .flat_map(|p| self.ids_of(*p))
                .all(|id| self.settled(&id));
            if !done {
                return;
            }
            let next = sd.current + 1;
            if let Some(sd) = &mut self.shutdown {
                sd.current = next;
            }
            self.stop_wave(now, next, jitter, out);
        }
    }

    /// `UntilReady`: once every selected instance is ready (or done), the
    /// run has proved what it was for, and stops.
    fn reach_goal(&mut self, now: Instant, jitter: f64, out: &mut Vec<Command>) {
        if self.goal != Goal::UntilReady || self.shutdown.is_some() {
            return;
        }
        let ready = self.records.iter().all(|(id, r)| {
            let p = self.process_id(&id.process).unwrap_or(0);
            self.started[p]
                && matches!(
                    r.instance.phase(),
                    Phase::Running { ready: true, .. } | Phase::Completed
                )
        });
        if ready {
            self.begin_shutdown(
                now,
                Ending::Requested,
                "every process is ready: stopping",
                jitter,
                out,
            );
        }
    }

    /// The verdict, once the run is over.
    fn finished(&self) -> Option<Verdict> {
        let all_terminal = self.records.values().all(|r| r.instance.is_terminal());
        let ending = match &self.shutdown {
            Some(sd) if self.records.keys().all(|id| self.settled(id)) => sd.ending.clone(),
            Some(_) => return None,
            None => {
                // Everything ended by itself: nothing runs, nothing can
                // start, and no operator is holding anything down.
                let ended = all_terminal
                    && (0..self.plan.processes.len())
                        .all(|p| !self.selected[p] || (self.started[p] && !self.held_down[p]))
                    && self.rollouts.is_empty()
                    && self.waiters.is_empty();
                if !ended {
                    return None;
                }
                Ending::OnItsOwn
            }
        };
        let failed_before = self.shutdown.as_ref().map(|sd| &sd.failed_before);
        let ends: Vec<InstanceEnd<'_>> = self
            .records
            .iter()
            .map(|(id, r)| InstanceEnd {
                name: id.to_string(),
                phase: r.instance.phase(),
                started: self
                    .process_id(&id.process)
                    .is_some_and(|p| self.started[p]),
                failed_before_stop: failed_before.is_some_and(|f| f.contains(id)),
                stop: r.instance.stop_outcome(),
            })
            .collect();
        Some(summary::verdict(&ending, &ends))
    }
}

impl Record {
    fn new(spec: &crate::plan::ProcessSpec) -> Record {
        Record {
            instance: Instance::new(InstanceConfig::from(spec)),
            generation: 0,
            last_exit: None,
            retiring: false,
            watch: Watch::new(&spec.limits),
            usage: None,
            tasks_total: 0,
            child_recycles: 0,
            last_recycle: None,
            inherited_recycles: 0,
        }
    }

    fn recycles_so_far(&self) -> u32 {
        self.instance
            .recycles()
            .0
            .saturating_add(self.child_recycles)
            .saturating_add(self.inherited_recycles)
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
