//! Health observations for the event loop: probes, `NOTIFY_SOCKET`
//! messages and log-line readiness, turned into instance events.
//!
//! Theory of operation. Each running instance with a health plan has a
//! [`Tracker`] (pure: it decides) created at spawn and dropped at exit. The
//! loop arms one health timer per instance at the tracker's next deadline;
//! when it fires, or a probe result, notification or matching log line
//! comes back (tagged with the spawn's generation, so reports about a
//! previous process are dropped), the tracker's verdict becomes an
//! instance event: `Ready`, `Unhealthy` (graceful restart, no backoff) or
//! `StartTimeout` (graceful restart through backoff). Probes run as tasks
//! on the loop, never on threads, and are bounded by their timeout; a
//! passing http/tcp probe is then checked against the instance's own
//! listeners (`health::owner`, on the blocking pool) before it counts.

use std::time::Instant;

use super::core::{Input, InstanceId};
use super::engine::{Engine, Msg};
use super::instance::Event;
use crate::health::{owner, probe, Check, Gate, Outcome, Tracker, Verdict};
use crate::logs::LineHook;
use crate::notify::{self, Message, NotifySocket, Sender};
use crate::os::SpawnRequest;

/// Per-instance health state.
#[derive(Default)]
pub(super) struct InstanceHealth {
    pub tracker: Option<Tracker>,
    pub timer: Option<Instant>,
    /// The notify socket's receiving task, kept for the instance's lifetime.
    pub notify_task: Option<tokio::task::JoinHandle<()>>,
    /// `NOTIFY_SOCKET` (and `WATCHDOG_USEC`) for the child.
    pub notify_env: Vec<(String, String)>,
    pub status: Option<String>,
    /// Who may speak for the instance: its process tree, cached (Celery
    /// sends a datagram per finished task).
    pub senders: Option<notify::SenderView>,
    /// A stranger's message was reported already (don't flood the log).
    pub stranger_reported: bool,
    /// The last "held by another process" reason logged: said again only
    /// when it changes, not at every probe.
    pub held_reported: Option<String>,
}

impl Engine {
    /// The notify environment of an instance, binding its socket on first use.
    pub(super) fn notify_env(&mut self, id: &InstanceId) -> Vec<(String, String)> {
        if self.io_mut(id).health.notify_task.is_some() {
            return self.io_mut(id).health.notify_env.clone();
        }
        let Some(dir) = self.opts.notify_dir.clone() else {
            return Vec::new();
        };
        let owner = self
            .process_of(id)
            .and_then(|p| self.credentials(p))
            .map(|c| (c.uid, c.gid));
        let key = self.io_mut(id).key;
        let socket = match NotifySocket::for_instance(&dir, key, owner) {
            Ok(socket) => socket,
            Err(e) => {
                self.note_text(id, format!("cannot create its NOTIFY_SOCKET: {e}"));
                return Vec::new();
            }
        };
        let watchdog = self.health_plan(id).and_then(|h| h.settings.watchdog);
        let env = notify::child_env(&socket, watchdog);
        let tx = self.tx.clone();
        let report_id = id.clone();
        let task = tokio::spawn(async move {
            loop {
                match socket.recv().await {
                    Ok((messages, sender)) => {
                        if tx
                            .send(Msg::Notify {
                                id: report_id.clone(),
                                messages,
                                sender,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                    // A broken socket only loses notifications; the
                    // instance itself is unaffected.
                    Err(_) => return,
                }
            }
        });
        let h = &mut self.io_mut(id).health;
        h.notify_task = Some(task);
        h.notify_env = env.clone();
        env
    }

    /// The log hook for a spawn whose readiness is a matching output line.
    pub(super) fn log_hook(&self, id: &InstanceId, generation: u64) -> Option<LineHook> {
        let plan = self.health_plan(id)?;
        let regex = match (&plan.check, &plan.gate) {
            (Check::Log(regex), _) | (_, Some(Gate::Log(regex))) => Some(regex),
            _ => None,
        };
        match regex {
            Some(regex) => {
                let tx = self.tx.clone();
                let id = id.clone();
                Some(crate::health::log::line_hook(regex.clone(), move || {
                    let _ = tx.send(Msg::LogMatch {
                        id: id.clone(),
                        generation,
                    });
                }))
            }
            _ => None,
        }
    }

    /// Called once a spawn succeeded: start tracking its health.
    pub(super) fn start_health(&mut self, id: &InstanceId, now: Instant) {
        // Stopped as soon as it spawned (a stop arrived meanwhile): nothing
        // to judge.
        if !matches!(
            self.core.phase(id),
            Some(super::instance::Phase::Running { .. })
        ) {
            return;
        }
        let settings = self.health_plan(id).map(|plan| plan.settings.clone());
        let h = &mut self.io_mut(id).health;
        h.status = None;
        h.held_reported = None;
        match settings {
            None => {
                h.tracker = None;
                h.timer = None;
                self.health_event(id, Event::Ready);
            }
            Some(settings) => {
                let (tracker, verdict) = Tracker::new(settings, now);
                h.tracker = Some(tracker);
                self.verdict(id, verdict);
            }
        }
    }

    /// The process exited or is being stopped: no more verdicts.
    pub(super) fn stop_health(&mut self, id: &InstanceId, exited: bool) {
        let h = &mut self.io_mut(id).health;
        if let Some(t) = &mut h.tracker {
            t.stopping();
        }
        if exited {
            h.tracker = None;
        }
        h.timer = None;
    }

    pub(super) fn health_timers_due(&mut self, now: Instant) {
        let due: Vec<InstanceId> = self
            .io
            .iter()
            .filter(|(_, io)| io.health.timer.is_some_and(|t| t <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &due {
            {
                self.io_mut(id).health.timer = None;
                let verdict = self
                    .io_mut(id)
                    .health
                    .tracker
                    .as_mut()
                    .and_then(|t| t.on_timer(now));
                self.verdict(id, verdict);
            }
        }
    }

    pub(super) fn on_probe(&mut self, id: &InstanceId, generation: u64, outcome: Outcome) {
        if self.generation(id) != generation {
            return;
        }
        let h = &self.io_mut(id).health;
        let judged = h.tracker.as_ref().is_some_and(|t| !t.is_done());
        let held = match &outcome {
            Outcome::HeldByOther(reason) if judged => Some(reason.clone()),
            _ => None,
        };
        // Before readiness failures are not logged, yet a stranger on the
        // instance's address is what the user needs to hear about.
        if let Some(reason) = held
            .as_ref()
            .filter(|r| h.held_reported.as_ref() != Some(r))
        {
            self.note_text(id, reason.clone());
        }
        self.io_mut(id).health.held_reported = held;
        let result = match outcome {
            Outcome::Pass => Ok(()),
            Outcome::Fail(reason) | Outcome::HeldByOther(reason) => Err(reason),
        };
        self.feed_tracker(id, |t, now| t.probe_result(now, result));
    }

    pub(super) fn on_log_match(&mut self, id: &InstanceId, generation: u64) {
        if self.generation(id) == generation {
            self.feed_tracker(id, |t, now| t.ready_message(now));
        }
    }

    /// Gives the instance's tracker (if any) an observation and carries out
    /// its verdict.
    fn feed_tracker(
        &mut self,
        id: &InstanceId,
        f: impl FnOnce(&mut Tracker, Instant) -> Option<Verdict>,
    ) {
        let now = Instant::now();
        let verdict = self
            .io_mut(id)
            .health
            .tracker
            .as_mut()
            .and_then(|t| f(t, now));
        self.verdict(id, verdict);
    }

    /// A datagram on an instance's notify socket. Only the instance's own
    /// process tree may speak for it: anyone else able to reach the socket
    /// could otherwise mark it ready or keep a hung one alive.
    pub(super) fn on_notify(&mut self, id: &InstanceId, messages: Vec<Message>, sender: Sender) {
        let Some(pid) = self.pid_of(id) else {
            return;
        };
        let view = self
            .io_mut(id)
            .health
            .senders
            .get_or_insert_with(|| notify::SenderView::new(pid));
        if view.main_pid() != pid {
            view.respawned(pid);
        }
        if !view.accepts(sender.pid) {
            if !self.io_mut(id).health.stranger_reported {
                self.io_mut(id).health.stranger_reported = true;
                self.note_text(
                    id,
                    format!(
                        "ignored a notification from pid {}, which is not in its process tree",
                        sender.pid
                    ),
                );
            }
            return;
        }
        let now = Instant::now();
        for message in messages {
            let tracker = self.io_mut(id).health.tracker.as_mut();
            let verdict = match (message, tracker) {
                (Message::Ready, Some(t)) => t.ready_message(now),
                (Message::Watchdog, Some(t)) => {
                    t.watchdog_ping(now);
                    None
                }
                (Message::WatchdogTrigger, Some(t)) => t.watchdog_trigger(now),
                (Message::Stopping, Some(t)) => {
                    t.stopping();
                    self.note_text(id, "stopping (STOPPING=1)".into());
                    None
                }
                (Message::Status(text), _) => {
                    if self.io_mut(id).health.status.as_deref() != Some(text.as_str()) {
                        self.note_text(id, format!("status: {text}"));
                        self.io_mut(id).health.status = Some(text);
                    }
                    None
                }
                (Message::TasksDone(count), _) => {
                    let generation = self.generation(id);
                    self.pending.push_back(Input::TasksDone {
                        id: id.clone(),
                        generation,
                        count,
                    });
                    None
                }
                _ => None,
            };
            self.verdict(id, verdict);
        }
    }

    /// Carries out a tracker verdict and re-arms the health timer.
    fn verdict(&mut self, id: &InstanceId, verdict: Option<Verdict>) {
        match verdict {
            None => {}
            Some(Verdict::RunProbe) => self.run_probe(id),
            Some(Verdict::Ready) => self.health_event(id, Event::Ready),
            Some(Verdict::Failing { reason }) => {
                self.note_text(id, format!("health check failed: {reason}"))
            }
            Some(Verdict::Recovered { after }) => self.note_text(
                id,
                format!("health check passes again after {after} failures"),
            ),
            Some(Verdict::Unhealthy { reason }) => {
                self.health_event(id, Event::Unhealthy { reason })
            }
            Some(Verdict::StartTimeout { reason }) => {
                self.health_event(id, Event::StartTimeout { reason })
            }
        }
        let h = &mut self.io_mut(id).health;
        h.timer = h.tracker.as_ref().and_then(Tracker::next_deadline);
    }

    fn run_probe(&mut self, id: &InstanceId) {
        let Some(process) = self.process_of(id) else {
            return;
        };
        let generation = self.generation(id);
        let Some(plan) = self.health_plan(id) else {
            return;
        };
        let timeout = plan.timeout;
        let tx = self.tx.clone();
        let report_id = id.clone();
        let report = move |result| {
            let _ = tx.send(Msg::Probe {
                id: report_id,
                generation,
                result,
            });
        };
        // A network probe passes only if the instance's own listener
        // answered (see `health::owner`).
        let pid = self.pid_of(id);
        let label = id.to_string();
        match &plan.check {
            Check::Http(p) => {
                let p = p.clone();
                tokio::spawn(async move {
                    report(owner::outcome(p.check_peer(timeout).await, pid, label).await)
                });
            }
            Check::Tcp(p) => {
                let p = p.clone();
                tokio::spawn(async move {
                    report(owner::outcome(p.check_peer(timeout).await, pid, label).await)
                });
            }
            Check::Exec(argv) => {
                let request = SpawnRequest {
                    argv: argv.clone(),
                    env: self.child_env(id),
                    cwd: self.core.plan().processes[process].cwd.clone(),
                    creds: self.credentials(process),
                };
                let pids = self.exec_pids.clone();
                tokio::spawn(async move {
                    report(match probe::exec(&request, timeout, &pids).await {
                        Ok(()) => Outcome::Pass,
                        Err(reason) => Outcome::Fail(reason),
                    })
                });
            }
            // Readiness by message: nothing to run.
            Check::None | Check::Notify | Check::Log(_) => {}
        }
    }

    /// A health verdict for the core, about the current spawn.
    fn health_event(&mut self, id: &InstanceId, event: Event) {
        let generation = self.generation(id);
        self.pending.push_back(Input::Health {
            id: id.clone(),
            generation,
            event,
        });
    }

    pub(super) fn io_mut(&mut self, id: &InstanceId) -> &mut super::engine::Io {
        self.ensure_io(id)
    }
}
