//! prodserver as a systemd service: what it tells its own manager.
//!
//! Theory of operation. [`crate::notify`] is the child side: prodserver
//! *receives* sd_notify datagrams from its instances. This module is the
//! other direction: prodserver *sends* to the `NOTIFY_SOCKET` systemd gave
//! it (read once at start, and scrubbed from every child's environment by
//! [`crate::os::scrub_inherited_env`], so no child can speak for us).
//!
//! - [`Notifier`] (pure) turns the supervisor's [`Progress`] into
//!   messages: `READY=1` once every instance is ready (or completed, for a
//!   oneshot), `STATUS=` kept current, `RELOADING=1` then `READY=1` around
//!   a reload, `STOPPING=1`, and `EXTEND_TIMEOUT_USEC=` while a graceful
//!   stop is still running. [`progress`] reads the progress off the core.
//! - [`Link`] owns the socket and the notifier for the engine. The engine
//!   polls it after every turn of its loop and wakes up for
//!   [`Link::next_due`], so `WATCHDOG=1` is sent by the loop itself: a
//!   stuck loop stops the pings, and systemd restarts the service.
//! - [`killmode`] warns at start when the unit's KillMode would break the
//!   graceful stop; [`journal`] tells whether stdout is the journal.

pub mod journal;
pub mod killmode;
mod notifier;
mod socket;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub use notifier::{datagram, Message, Notifier, Progress, StopProgress, Waiting, EXTEND_STEP};
pub use socket::{monotonic_usec, target, watchdog, ManagerSocket, Target};

use crate::plan::BackendKind;
use crate::supervisor::core::Core;
use crate::supervisor::instance::{Phase, StopStage};

/// The engine's connection to systemd: socket plus notifier.
#[derive(Debug)]
pub struct Link {
    socket: ManagerSocket,
    notifier: Notifier,
    /// A failed send is said once, not at every ping.
    failed: bool,
}

/// What [`Link::from_env`] found.
pub enum Setup {
    /// Not run with `NOTIFY_SOCKET`.
    None,
    /// The link, and the watchdog period asked for (`Err`: why the
    /// watchdog variables cannot be used; the rest still works).
    Link(Box<Link>, Result<Option<Duration>, String>),
    /// Run with it, but it cannot be used: say why.
    Broken(String),
}

impl Link {
    /// Reads prodserver's own `NOTIFY_SOCKET`, `WATCHDOG_USEC` and
    /// `WATCHDOG_PID` from `env` (its environment as started).
    pub fn from_env(env: &BTreeMap<String, String>, now: Instant) -> Setup {
        let Some(value) = env.get("NOTIFY_SOCKET") else {
            return Setup::None;
        };
        let Some(target) = target(value) else {
            return Setup::Broken(format!(
                "NOTIFY_SOCKET={value:?} is neither an absolute path nor @name: systemd is not told when the stack is ready"
            ));
        };
        let watchdog = watchdog(
            env.get("WATCHDOG_USEC").map(String::as_str),
            env.get("WATCHDOG_PID").map(String::as_str),
            std::process::id(),
        )
        .map_err(|e| format!("{e}: the systemd watchdog is not answered"));
        match ManagerSocket::connect(&target) {
            Ok(socket) => Setup::Link(
                Box::new(Link {
                    socket,
                    notifier: Notifier::new(now, watchdog.clone().ok().flatten()),
                    failed: false,
                }),
                watchdog,
            ),
            Err(e) => Setup::Broken(format!("cannot use NOTIFY_SOCKET={value}: {e}")),
        }
    }

    /// Sends what is due given the core's state; returns an error text the
    /// first time a send fails.
    pub fn poll(&mut self, now: Instant, core: &Core) -> Option<String> {
        let datagrams = self.notifier.poll(now, &progress(core));
        let mut error = None;
        for d in datagrams {
            if let Err(e) = self.socket.send(&datagram(&d)) {
                if !self.failed {
                    self.failed = true;
                    error = Some(format!("cannot notify systemd: {e}"));
                }
            }
        }
        error
    }

    pub fn reload_started(&mut self) {
        self.notifier.reload_started(monotonic_usec());
    }

    pub fn reload_done(&mut self) {
        self.notifier.reload_done();
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.notifier.next_due()
    }
}

/// The supervisor's progress as systemd sees it: one pass over the
/// instances.
pub fn progress(core: &Core) -> Progress {
    let mut p = Progress::default();
    let mut stopping = Vec::new();
    let mut later = Vec::new();
    for id in core.ids() {
        let Some(phase) = core.phase(id) else {
            continue;
        };
        p.total += 1;
        if matches!(phase, Phase::Running { ready: true, .. } | Phase::Completed) {
            p.ready += 1;
        }
        if !core.is_stopping() {
            continue;
        }
        let spec = core
            .process_id(&id.process)
            .map(|pid| &core.plan().processes[pid]);
        match phase {
            Phase::Stopping { stage, .. } => {
                let (why, bounded) = match stage {
                    StopStage::Signalled => match spec {
                        Some(s) if s.backend == BackendKind::CeleryWorker => {
                            ("finishing its tasks".to_string(), true)
                        }
                        Some(s) => (
                            format!("{} sent", crate::os::signal_name(s.stop_signal)),
                            true,
                        ),
                        None => ("stopping".to_string(), true),
                    },
                    StopStage::Escalated => (
                        match spec.and_then(|s| s.escalate_signal) {
                            Some(sig) => format!("{} sent", crate::os::signal_name(sig)),
                            None => "escalated".to_string(),
                        },
                        true,
                    ),
                    StopStage::Killed => ("killed".to_string(), false),
                };
                stopping.push(Waiting {
                    instance: id.to_string(),
                    why,
                    bounded,
                });
            }
            // Still to be stopped, after its dependents: a later wave.
            Phase::Running { .. } | Phase::Spawning { .. } => later.push(Waiting {
                instance: id.to_string(),
                why: "waiting its turn".into(),
                bounded: true,
            }),
            _ => {}
        }
    }
    if core.is_stopping() {
        stopping.extend(later);
        p.stopping = Some(StopProgress { waiting: stopping });
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn from_the_environment() {
        let now = Instant::now();
        assert!(matches!(Link::from_env(&env(&[]), now), Setup::None));
        match Link::from_env(&env(&[("NOTIFY_SOCKET", "notify")]), now) {
            Setup::Broken(why) => assert!(why.contains("neither an absolute path"), "{why}"),
            _ => panic!("a relative path is refused"),
        }
        // A bad watchdog does not cost readiness: the link works without it.
        let bad = env(&[("NOTIFY_SOCKET", "@x"), ("WATCHDOG_USEC", "5s")]);
        match Link::from_env(&bad, now) {
            Setup::Link(link, Err(why)) => {
                assert!(why.contains("WATCHDOG_USEC=\"5s\""), "{why}");
                assert_eq!(link.next_due(), None);
            }
            _ => panic!("a link without watchdog"),
        }
        let good = env(&[("NOTIFY_SOCKET", "/run/n"), ("WATCHDOG_USEC", "4000000")]);
        match Link::from_env(&good, now) {
            Setup::Link(link, Ok(Some(w))) => {
                assert_eq!(w, Duration::from_secs(4));
                assert_eq!(link.next_due(), Some(now + Duration::from_secs(2)));
            }
            _ => panic!("a link with a watchdog"),
        }
    }
}
