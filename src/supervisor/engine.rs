//! The event loop: the one impure part of the supervisor.
//!
//! Theory of operation. Every decision lives in the pure [`Core`]: this
//! loop waits for the next thing to happen (a signal, an operator's
//! request, a child exit, a probe result, a timer), hands it to the core
//! as an [`Input`] and carries out the [`Command`]s it returns: spawning
//! through `os::spawn`, signalling, arming timers, logging, replying. Its
//! own state is I/O only, one [`Io`] record per instance, keyed by the
//! same stable [`InstanceId`] as the core's records: pid, timer, singleton
//! lock, health tracker, notify socket.
//!
//! Children are watched by one small task each, which awaits the exit and
//! then reports it tagged with the spawn's generation; probe and log-match
//! reports carry it too. The core drops reports about a previous
//! incarnation.
//!
//! Priority: signals, then operator requests, then child events and
//! timers (`biased` select).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot};

use super::core::{Command, Core, Goal, Input, InstanceId, Reply, Request, Ticket};
use super::instance::{Event, ExitStatus, FailReason, Instance, Note};
use super::observe::InstanceHealth;
use super::orphans::OrphanTally;
use super::signal_policy::{self, SignalMeaning};
use super::summary::{self, Verdict};
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
    /// What the run is for.
    pub goal: Goal,
}

/// Reports from the tasks that watch children, probes and sockets.
pub(super) enum Msg {
    Exited {
        id: InstanceId,
        generation: u64,
        pid: i32,
        status: ExitStatus,
    },
    Probe {
        id: InstanceId,
        generation: u64,
        result: crate::health::Outcome,
    },
    /// Checked against the sender's process tree instead of a generation.
    Notify {
        id: InstanceId,
        messages: Vec<Message>,
        sender: Sender,
    },
    LogMatch {
        id: InstanceId,
        generation: u64,
    },
    /// A sweep of measurements from the sampling thread.
    Usage(Vec<Usage>),
}

/// One instance's measurement.
pub(super) struct Usage {
    pub id: InstanceId,
    pub generation: u64,
    pub sample: super::recycle::Sample,
    pub cpu_tenths: Option<u32>,
}

/// The I/O side of one instance.
pub(super) struct Io {
    /// Unique for the run, never reused: names the notify socket.
    pub key: usize,
    pub timer: Option<Instant>,
    pub lock: Option<SingletonLock>,
    pub health: InstanceHealth,
}

/// A handle to steer a running engine: each request is answered once it
/// is done (a restart once the replacements are ready, or with the
/// reason they failed).
/// What the inlet carries: a request, with the new resolved plan when it is
/// a reload (the loop owns launches and health plans; the core owns the
/// plan).
type Envelope = (Request, Option<Box<ResolvedPlan>>, oneshot::Sender<Reply>);

#[derive(Clone)]
pub struct Control {
    tx: mpsc::UnboundedSender<Envelope>,
    logs: Logs,
}

impl Control {
    /// The merged log stream from now on, exactly as written to the output
    /// (a lagging subscriber loses chunks, never slows the output).
    pub fn subscribe_logs(&self) -> mpsc::Receiver<std::sync::Arc<[u8]>> {
        self.logs.subscribe()
    }

    /// Sends `request` and waits for its reply; `None` once the engine
    /// has ended.
    pub async fn request(&self, request: Request) -> Option<Reply> {
        let (tx, rx) = oneshot::channel();
        self.tx.send((request, None, tx)).ok()?;
        rx.await.ok()
    }

    /// Applies a new plan (see [`Request::Reload`]); answered once the
    /// changed processes have rolled and the added ones are ready.
    pub async fn reload(&self, plan: Plan, resolved: ResolvedPlan) -> Option<Reply> {
        let (tx, rx) = oneshot::channel();
        let request = Request::Reload {
            plan: Box::new(plan),
        };
        self.tx.send((request, Some(Box::new(resolved)), tx)).ok()?;
        rx.await.ok()
    }
}

pub struct Engine {
    pub(super) core: Core,
    pub(super) opts: RunOptions,
    pub(super) io: BTreeMap<InstanceId, Io>,
    next_key: usize,
    keeper: Keeper,
    logs: Logs,
    pub(super) tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    control_tx: mpsc::UnboundedSender<Envelope>,
    control_rx: mpsc::UnboundedReceiver<Envelope>,
    replies: HashMap<Ticket, oneshot::Sender<Reply>>,
    next_ticket: Ticket,
    /// Inputs for the core, produced while carrying out its commands.
    pub(super) pending: VecDeque<Input>,
    verdict: Option<Verdict>,
    /// Exec probes in flight: children of ours that orphan reaping must
    /// leave to tokio.
    pub(super) exec_pids: ExecPids,
    /// Our controlling terminal, to tell a hangup from `kill -HUP`.
    terminal: Option<os::Terminal>,
    orphans: OrphanTally,
    /// The thread that measures instances' memory and CPU; `None` if it
    /// could not be started (said once, at the start).
    sampling: Option<super::sampler::Sampling>,
    /// prodserver's own systemd, when run with NOTIFY_SOCKET.
    systemd: Option<Box<crate::systemd::Link>>,
    /// The reload in progress, whose reply ends systemd's RELOADING.
    reload_ticket: Option<Ticket>,
    /// Where SIGHUP goes when a reloader is attached ([`Engine::forward_reloads`]).
    reloads: Option<mpsc::UnboundedSender<()>>,
    /// The listening sockets held for web processes (see [`super::sockets`]).
    sockets: super::sockets::Sockets,
    /// A reload was handed to the core: close the sockets it no longer wants.
    sweep_sockets: bool,
}

impl Engine {
    pub fn new(plan: Plan, opts: RunOptions, keeper: Keeper, logs: Logs) -> Engine {
        let core = Core::new(plan, &opts.selected, opts.goal);
        let (tx, rx) = mpsc::unbounded_channel();
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let exec_pids = ExecPids::with_keeper(keeper.clone());
        let sampling = match super::sampler::Sampling::start(tx.clone()) {
            Ok(s) => Some(s),
            Err(e) => {
                logs.project_event(&format!(
                    "cannot start the memory sampling thread ({e}): max_memory_per_child is not enforced and status shows no memory"
                ));
                None
            }
        };
        let mut engine = Engine {
            core,
            opts,
            io: BTreeMap::new(),
            next_key: 0,
            keeper,
            logs,
            tx,
            rx,
            control_tx,
            control_rx,
            replies: HashMap::new(),
            next_ticket: 0,
            pending: VecDeque::new(),
            verdict: None,
            exec_pids,
            terminal: os::Terminal::controlling(),
            orphans: OrphanTally::default(),
            sampling,
            systemd: None,
            reload_ticket: None,
            reloads: None,
            sockets: super::sockets::Sockets::default(),
            sweep_sockets: false,
        };
        let ids: Vec<InstanceId> = engine.core.ids().cloned().collect();
        for id in ids {
            engine.ensure_io(&id);
        }
        engine
    }

    /// Reports to systemd through `link` (see [`crate::systemd`]).
    pub fn with_systemd(mut self, link: Box<crate::systemd::Link>) -> Engine {
        self.systemd = Some(link);
        self
    }

    /// A reload began (`started`) or was answered: systemd hears
    /// RELOADING=1, then READY=1. A reload sent through [`Control::reload`]
    /// is observed by the loop itself; call this for one started otherwise.
    pub fn note_reload(&mut self, started: bool) {
        if let Some(link) = &mut self.systemd {
            match started {
                true => link.reload_started(),
                false => link.reload_done(),
            }
        }
    }

    /// Tells systemd what changed; called after every turn of the loop,
    /// which is what makes its watchdog ping a proof of a live loop.
    fn notify_systemd(&mut self) {
        if let Some(link) = &mut self.systemd {
            if let Some(error) = link.poll(Instant::now(), &self.core) {
                self.logs
                    .toned_project_event(&error, crate::logs::Tone::Warn);
            }
        }
    }

    /// A handle for requests while the engine runs.
    pub fn control(&self) -> Control {
        Control {
            tx: self.control_tx.clone(),
            logs: self.logs.clone(),
        }
    }

    /// The children spawned beside the engine (a probe, smoke's command)
    /// that its orphan reaping must leave to tokio.
    pub fn exec_pids(&self) -> ExecPids {
        self.exec_pids.clone()
    }

    /// SIGHUP (a reload, not a hangup) is sent here instead of to the core:
    /// reading the file is the control server's job, shared with `reload`.
    pub fn forward_reloads(&mut self) -> mpsc::UnboundedReceiver<()> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.reloads = Some(tx);
        rx
    }

    pub(super) fn ensure_io(&mut self, id: &InstanceId) -> &mut Io {
        if !self.io.contains_key(id) {
            let key = self.next_key;
            self.next_key += 1;
            self.io.insert(
                id.clone(),
                Io {
                    key,
                    timer: None,
                    lock: None,
                    health: InstanceHealth::default(),
                },
            );
        }
        self.io.get_mut(id).expect("inserted above")
    }

    /// Runs until the core says the run is over; returns the exit code.
    pub async fn run(self) -> i32 {
        self.run_to_end().await.0
    }

    /// [`Engine::run`], also returning every instance's final status (how
    /// a run that ended by itself ended, for `smoke`).
    pub async fn run_to_end(mut self) -> (i32, Vec<super::core::InstanceStatus>) {
        let (mut signals, mut sigchld) = match (listen_to_signals(), signal(SignalKind::child())) {
            (Ok(s), Ok(c)) => (s, c),
            (Err(e), _) | (_, Err(e)) => {
                self.logs
                    .project_event(&format!("cannot install signal handlers: {e}"));
                return (exit::INTERNAL, self.core.status());
            }
        };
        let cmds = self.core.begin(Instant::now(), jitter01());
        self.execute_all(cmds);
        self.drain();
        self.notify_systemd();
        while self.verdict.is_none() {
            // A keeper that does not read (stopped) gets its records later:
            // the loop never blocks on it.
            let keeper_retry = self
                .keeper
                .has_pending()
                .then(|| Instant::now() + KEEPER_RETRY);
            let next = self
                .io
                .values()
                .flat_map(|s| [s.timer, s.health.timer])
                .chain([
                    keeper_retry,
                    self.orphans.due(),
                    self.systemd.as_ref().and_then(|l| l.next_due()),
                ])
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
                Some((request, resolved, reply)) = self.control_rx.recv() => {
                    let ticket = self.next_ticket;
                    self.next_ticket += 1;
                    self.replies.insert(ticket, reply);
                    if matches!(request, Request::Reload { .. }) && self.reload_ticket.is_none() {
                        self.reload_ticket = Some(ticket);
                        self.note_reload(true);
                    }
                    if matches!(request, Request::Reload { .. }) {
                        self.sweep_sockets = true;
                    }
                    if let Some(resolved) = resolved {
                        // Launches of what the reload starts come from the
                        // new plan; unchanged processes resolve the same.
                        self.opts.resolved = *resolved;
                    }
                    self.pending.push_back(Input::Request { ticket, request });
                }
                Some(msg) = self.rx.recv() => self.on_msg(msg),
                _ = sigchld.recv() => {
                    self.check_keeper();
                    self.reap_orphans();
                }
                _ = sleep => self.on_timers(),
            }
            self.drain();
            if std::mem::take(&mut self.sweep_sockets) {
                for closed in self.sockets.sweep(self.core.plan()) {
                    self.logs.project_event(&format!(
                        "closed the held socket of {closed} (no longer in the configuration)"
                    ));
                }
            }
            self.notify_systemd();
        }
        self.finish()
    }

    /// Feeds pending inputs to the core and carries out what it says,
    /// until nothing is left (carrying out a spawn produces its report).
    fn drain(&mut self) {
        while let Some(input) = self.pending.pop_front() {
            let cmds = self.core.handle(Instant::now(), input, jitter01());
            self.execute_all(cmds);
        }
        // Instances the core dropped (scaled down, removed by a reload)
        // take their I/O state with them.
        if self.io.len() != self.core.len() {
            let core = &self.core;
            self.io.retain(|id, _| core.phase(id).is_some());
        }
    }

    fn execute_all(&mut self, cmds: Vec<Command>) {
        for c in cmds {
            self.execute(c);
        }
    }

    fn execute(&mut self, command: Command) {
        match command {
            Command::Spawn { id, generation } => self.spawn(&id, generation),
            Command::Signal { id, pid, signal } => {
                if let Err(e) = os::send(pid, signal) {
                    self.note_text(&id, format!("cannot signal pid {pid}: {e}"));
                }
            }
            Command::SignalChild {
                id,
                parent,
                pid,
                signal,
            } => {
                if !os::memory::is_child_of(pid, parent) {
                    self.note_text(&id, format!("pid {pid} has exited already"));
                } else if let Err(e) = os::send(pid, signal) {
                    self.note_text(&id, format!("cannot signal pid {pid}: {e}"));
                }
            }
            Command::KillGroup { id, pgid } => {
                if let Err(e) = os::kill_group(pgid) {
                    self.note_text(&id, format!("cannot kill group {pgid}: {e}"));
                }
            }
            Command::SetTimer { id, at } => self.ensure_io(&id).timer = Some(at),
            Command::ClearTimer { id } => self.ensure_io(&id).timer = None,
            Command::TryLock { id } => {
                let event = match self.lock_singleton(&id) {
                    Ok(()) => Event::LockAcquired,
                    Err(held) => held,
                };
                self.pending.push_back(Input::Lock { id, event });
            }
            Command::Release { id } => {
                if let Some(io) = self.io.get_mut(&id) {
                    io.lock = None;
                }
            }
            Command::Note { id, note } => self.note(&id, note),
            Command::Log(text) => self.logs.project_event(&text),
            Command::Reply { ticket, reply } => {
                if self.reload_ticket == Some(ticket) {
                    self.reload_ticket = None;
                    self.note_reload(false);
                }
                if let Some(tx) = self.replies.remove(&ticket) {
                    let _ = tx.send(reply);
                }
            }
            Command::Exit(verdict) => self.verdict = Some(verdict),
        }
    }

    /// Takes (or keeps) a singleton's host-wide lock; `Err` carries the
    /// event to feed when someone else holds it.
    fn lock_singleton(&mut self, id: &InstanceId) -> Result<(), Event> {
        if self.ensure_io(id).lock.is_some() {
            return Ok(());
        }
        let project = self.core.plan().name.clone();
        match os::try_lock(&self.opts.runtime_dir, &project, &id.process) {
            Ok(LockOutcome::Acquired(lock)) => {
                self.ensure_io(id).lock = Some(lock);
                Ok(())
            }
            Ok(LockOutcome::Held { pid }) => Err(Event::LockHeld { pid }),
            Err(e) => {
                self.note_text(id, format!("cannot take the singleton lock: {e}"));
                Err(Event::LockHeld { pid: None })
            }
        }
    }

    /// The instance's process in the current plan (looked up by name, so a
    /// reload that reorders the file changes nothing); `None` once a reload
    /// removed it.
    pub(super) fn process_of(&self, id: &InstanceId) -> Option<ProcessId> {
        self.core.process_id(&id.process)
    }

    fn spawn(&mut self, id: &InstanceId, generation: u64) {
        self.ensure_io(id);
        let Some(process) = self.process_of(id) else {
            self.pending.push_back(Input::SpawnFailed {
                id: id.clone(),
                generation,
                permanent: true,
                message: "its process was removed by a reload".into(),
            });
            return;
        };
        if self.opts.resolved.instance(process, id.number).is_none() {
            // Scaled up beyond the file's count: resolve it as at load.
            let spec = self.core.plan().processes[process].clone();
            let runtime_dir = self.opts.runtime_dir.clone();
            if let Err(message) =
                self.opts
                    .resolved
                    .ensure_instance(process, &spec, id.number, &runtime_dir)
            {
                self.pending.push_back(Input::SpawnFailed {
                    id: id.clone(),
                    generation,
                    permanent: true,
                    message,
                });
                return;
            }
        }
        if self.core.plan().processes[process].singleton {
            if let Err(held) = self.lock_singleton(id) {
                self.pending.push_back(Input::Lock {
                    id: id.clone(),
                    event: held,
                });
                return;
            }
        }
        let mut env = self.child_env(id);
        env.extend(self.notify_env(id));
        let spec = &self.core.plan().processes[process];
        let request = SpawnRequest {
            argv: self
                .launch(id)
                .map(|l| l.argv.clone())
                .unwrap_or_else(|| spec.for_instance(id.number).argv),
            env,
            cwd: spec.cwd.clone(),
            creds: self.credentials(process),
        };
        let pass = match self.sockets.pass_for(spec, id.number) {
            Ok(pass) => pass,
            Err(message) => {
                // Transient: the address may be freed (another program
                // still holding the port); retried with backoff.
                self.pending.push_back(Input::SpawnFailed {
                    id: id.clone(),
                    generation,
                    permanent: false,
                    message,
                });
                return;
            }
        };
        match os::spawn_with(&request, &pass) {
            Ok(spawned) => {
                let pid = spawned.pid;
                let mut child = spawned.child;
                Self::keeper_result(&self.logs, self.keeper.register(pid));
                let hook = self.log_hook(id, generation);
                let mut pumps = Vec::with_capacity(2);
                if let Some(out) = child.stdout.take() {
                    pumps.push(tokio::spawn(self.logs.pump_with_hook(
                        id.process.clone(),
                        id.number,
                        pid as u32,
                        Stream::Stdout,
                        out,
                        hook.clone(),
                    )));
                }
                if let Some(err) = child.stderr.take() {
                    pumps.push(tokio::spawn(self.logs.pump_with_hook(
                        id.process.clone(),
                        id.number,
                        pid as u32,
                        Stream::Stderr,
                        err,
                        hook,
                    )));
                }
                let tx = self.tx.clone();
                let logs = self.logs.clone();
                let report_id = id.clone();
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
                    let _ = tx.send(Msg::Exited {
                        id: report_id,
                        generation,
                        pid,
                        status,
                    });
                });
                // At once, not queued: health (whose first probe may run
                // right away) asks the core for the pid.
                let cmds = self.core.handle(
                    Instant::now(),
                    Input::Spawned {
                        id: id.clone(),
                        generation,
                        pid,
                    },
                    jitter01(),
                );
                self.execute_all(cmds);
                if let Some(sampling) = &self.sampling {
                    let limits = &self.core.plan().processes[process].limits;
                    sampling.watch(id, generation, pid, limits);
                }
                self.start_health(id, Instant::now());
            }
            Err(e) => {
                self.pending.push_back(Input::SpawnFailed {
                    id: id.clone(),
                    generation,
                    permanent: e.is_permanent(),
                    message: e.to_string(),
                });
            }
        }
    }

    /// The environment of an instance's child (and of its exec probes), in
    /// the documented precedence; `{instance}` expanded.
    pub(super) fn child_env(&self, id: &InstanceId) -> Vec<(String, String)> {
        let mut env: BTreeMap<String, String> = self.opts.base_env.iter().cloned().collect();
        match (self.launch(id), self.process_of(id)) {
            (Some(launch), _) => env.extend(launch.env.clone()),
            // Not resolved (yet): its spec.
            (None, Some(process)) => env.extend(
                self.core.plan().processes[process]
                    .for_instance(id.number)
                    .env,
            ),
            (None, None) => {}
        }
        env.insert("PRODSERVER_PROCESS".into(), id.process.clone());
        env.insert("PRODSERVER_INSTANCE".into(), id.number.to_string());
        env.into_iter().collect()
    }

    /// The instance's health plan, if it has one.
    pub(super) fn health_plan(&self, id: &InstanceId) -> Option<&HealthPlan> {
        let process = self.process_of(id)?;
        self.opts
            .resolved
            .instance(process, id.number)
            .and_then(|i| i.health.plan.as_ref())
    }

    /// The instance's launch: argv and env, `{instance}` expanded.
    fn launch(&self, id: &InstanceId) -> Option<&crate::backend::Launch> {
        let process = self.process_of(id)?;
        Some(&self.opts.resolved.instance(process, id.number)?.launch)
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

    /// The instance's running process, if any: the core's, the one place
    /// a pid is kept.
    pub(super) fn pid_of(&self, id: &InstanceId) -> Option<i32> {
        self.core.instance(id).and_then(Instance::pid)
    }

    fn live_pids(&self) -> Vec<i32> {
        self.core
            .ids()
            .filter_map(|id| self.core.instance(id).and_then(Instance::pid))
            .collect()
    }

    /// The generation of the instance's current spawn.
    pub(super) fn generation(&self, id: &InstanceId) -> u64 {
        self.core.generation(id).unwrap_or(0)
    }

    fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Probe {
                id,
                generation,
                result,
            } => self.on_probe(&id, generation, result),
            Msg::Notify {
                id,
                messages,
                sender,
            } => self.on_notify(&id, messages, sender),
            Msg::LogMatch { id, generation } => self.on_log_match(&id, generation),
            Msg::Usage(sweep) => {
                for u in sweep {
                    self.pending.push_back(Input::Usage {
                        id: u.id,
                        generation: u.generation,
                        sample: u.sample,
                        cpu_tenths: u.cpu_tenths,
                    });
                }
            }
            Msg::Exited {
                id,
                generation,
                pid,
                status,
            } => {
                if self.generation(&id) == generation {
                    self.stop_health(&id, true);
                    if let Some(sampling) = &self.sampling {
                        sampling.forget(&id);
                    }
                }
                self.pending.push_back(Input::Exited {
                    id,
                    generation,
                    status,
                });
                self.drain();
                // Its group was killed with the exit: forget it.
                Self::keeper_result(&self.logs, self.keeper.unregister(pid));
            }
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
        let due: Vec<InstanceId> = self
            .io
            .iter()
            .filter(|(_, io)| io.timer.is_some_and(|t| t <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            if let Some(io) = self.io.get_mut(&id) {
                io.timer = None;
            }
            self.pending.push_back(Input::Timer { id });
        }
    }

    fn on_signal(&mut self, sig: i32) {
        let hung_up = self.terminal.as_ref().is_some_and(|t| t.hung_up());
        let meaning = signal_policy::meaning(sig, hung_up);
        if meaning == SignalMeaning::Ignore {
            self.logs.project_event(&format!(
                "{} received: ignored (it has no meaning for prodserver)",
                os::signal_name(sig)
            ));
            return;
        }
        if meaning == SignalMeaning::Reload {
            if let Some(tx) = &self.reloads {
                if tx.send(()).is_ok() {
                    return;
                }
            }
        }
        self.pending.push_back(Input::Signal(meaning));
    }

    fn reap_orphans(&mut self) {
        let known: Vec<i32> = self.live_pids();
        let exec = self.exec_pids.clone();
        let now = Instant::now();
        for (pid, status) in os::reap_orphans(&|pid| known.contains(&pid) || exec.contains(pid)) {
            if let Some(line) = self.orphans.reaped(now, pid, status.to_string()) {
                self.logs.project_event(&line);
            }
        }
    }

    fn note(&mut self, id: &InstanceId, note: Note) {
        let tone = tone_of(&note);
        let failed = matches!(note, Note::Failed { .. });
        let has_health = self.health_plan(id).is_some();
        if matches!(note, Note::Stopping { .. } | Note::KilledOnRequest) {
            self.stop_health(id, false);
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
                    let policy = self
                        .process_of(id)
                        .map_or("never", |p| self.core.plan().processes[p].restart.name());
                    format!("FAILED: {how} and restart is \"{policy}\"")
                }
                FailReason::TooManyRestarts { max, window } => {
                    let last = self
                        .core
                        .instance(id)
                        .and_then(Instance::last_restart)
                        .map(|r| format!(", the last one {r}"))
                        .unwrap_or_default();
                    format!("FAILED after {restarts} restarts (max_restarts = {max} within {}){last}: staying down", format_duration(window))
                }
                FailReason::Blocked { reason } => format!("FAILED: cannot start: {reason}"),
                FailReason::NotReady { reason } => format!("FAILED: {reason}"),
                FailReason::BootFailed { meaning, .. } => {
                    format!("FAILED: the app failed to boot ({meaning})")
                }
            },
            Note::Stopping { signal } => format!("stopping ({})", os::signal_name(signal)),
            Note::Stopped => "stopped".into(),
            Note::Completed => "completed".into(),
            Note::Ready => "ready".into(),
            Note::KilledOnRequest => "killed its process group (asked to stop now)".into(),
            Note::RestartRequested { reason } => format!("restarting: {reason}"),
            Note::Recycling { reason } => reason,
            Note::KilledAfterTimeout { timeout } => {
                format!(
                    "did not stop within {}: killed its process group",
                    format_duration(timeout)
                )
            }
            Note::Escalating {
                signal,
                after,
                meaning,
            } => format!(
                "did not stop within {}: sending {}{}",
                format_duration(after),
                os::signal_name(signal),
                meaning.map(|m| format!(" ({m})")).unwrap_or_default()
            ),
            Note::ExecFailed { message, .. } => message,
            Note::Unhealthy { reason } => format!("unhealthy: {reason}"),
            Note::WaitingForLock { pid } => match pid {
                Some(pid) => format!("waiting for lock held by pid {pid}"),
                None => "waiting for the singleton lock".into(),
            },
        };
        let fatal = failed
            && self.process_of(id).is_some_and(|p| {
                let spec = &self.core.plan().processes[p];
                spec.oneshot || spec.critical
            });
        self.note_toned(id, text, tone);
        if fatal {
            // Why it failed is usually in its last words.
            let lines = self.logs.last_lines(&id.process, id.number);
            if !lines.is_empty() {
                self.note_text(id, format!("last {} lines of output:", lines.len()));
                for line in lines {
                    self.note_text(id, format!("  {line}"));
                }
            }
        }
    }

    pub(super) fn note_text(&mut self, id: &InstanceId, text: String) {
        self.note_toned(id, text, crate::logs::Tone::Plain);
    }

    fn note_toned(&mut self, id: &InstanceId, text: String, tone: crate::logs::Tone) {
        let pid = self.core.instance(id).and_then(Instance::last_pid);
        self.logs
            .toned_event(&id.process, id.number, pid.map(|p| p as u32), &text, tone);
    }

    /// Kills whatever is left, prints the exit summary, returns the code.
    fn finish(mut self) -> (i32, Vec<super::core::InstanceStatus>) {
        let known: Vec<i32> = self.live_pids();
        for pid in os::live_orphans(&|pid| known.contains(&pid)) {
            let _ = os::kill_group(pid);
            let _ = os::send(pid, libc::SIGKILL);
        }
        self.reap_orphans();
        if let Some(line) = self.orphans.flush(Instant::now(), true) {
            self.logs.project_event(&line);
        }
        let verdict = self.verdict.clone().unwrap_or(Verdict {
            code: exit::INTERNAL,
            reason: "the run ended without a verdict".into(),
        });
        let mut lines = vec![("exit summary:".to_string(), crate::logs::Tone::Plain)];
        let status = self.core.status();
        for s in &status {
            let Some(instance) = self.core.instance(&s.id) else {
                continue;
            };
            let last = match s.last_exit {
                Some(status) => format!(", last {}", status.describe()),
                None => String::new(),
            };
            let tasks = match s.tasks_total {
                0 => String::new(),
                1 => ", 1 task done".to_string(),
                n => format!(", {n} tasks done"),
            };
            // The last recycle's reason, unless the restarts said it.
            let recycles = match (s.recycles, &s.last_recycle) {
                (0, _) => String::new(),
                (n, Some(last)) if s.last_restart.as_ref() != Some(last) => {
                    format!(", {} (last: {last})", summary::recycles_count(n))
                }
                (n, _) => format!(", {}", summary::recycles_count(n)),
            };
            let memory = s
                .usage
                .as_ref()
                .map(|u| format!(", {}", summary::memory_text(u)))
                .unwrap_or_default();
            let tone = if s.state == "failed" {
                crate::logs::Tone::Bad
            } else {
                crate::logs::Tone::Plain
            };
            lines.push((
                format!(
                    "  {}: {}, {}{tasks}{recycles}{memory}{last}",
                    s.id,
                    s.state,
                    summary::restarts_text(instance)
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
        let _ = self.keeper.shutdown();
        (verdict.code, status)
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
        | Note::Recycling { .. }
        | Note::KilledAfterTimeout { .. }
        | Note::Escalating { .. } => Tone::Warn,
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
