//! The health of one running instance as a pure state machine.
//!
//! Theory of operation. The engine makes a [`Tracker`] when an instance is
//! spawned and drops it when the process exits (a new process gets a new
//! tracker). Everything it observes goes in with the time it happened:
//! probe results, `READY=1` or a matching log line, `WATCHDOG=1` pings, its
//! own timer firing. What comes out is at most one [`Verdict`] per call:
//!
//! ```text
//!            ┌──── probe passed / READY=1 / log line ───▶ Ready ── Verdict::Ready
//! Starting ──┤
//!            └──── start_timeout passes first ──────────▶ Done ─── Verdict::StartTimeout
//!
//! Ready ── `retries` consecutive failed probes (after start_period) ─▶ Done ── Unhealthy
//!       └─ no WATCHDOG=1 for `watchdog` ─────────────────────────────▶ Done ── Unhealthy
//! ```
//!
//! - The tracker schedules probes itself: [`Tracker::on_timer`] answers
//!   [`Verdict::RunProbe`] when one is due, and never asks for a second one
//!   while the first has not reported back through
//!   [`Tracker::probe_result`]. Probes are bounded by their own timeout, so
//!   a result always comes. The next probe is due `interval` after the
//!   previous one *finished* (before readiness: `start_interval`), so
//!   probes never overlap and a slow server is not piled on.
//! - The engine arms one timer at [`Tracker::next_deadline`] and calls
//!   [`Tracker::on_timer`] when it fires. A timer that fires early or late
//!   is harmless: every deadline is checked against `now`.
//! - Before readiness, failed probes are expected (the server is still
//!   loading) and never count; only `start_timeout` ends the wait. After
//!   readiness, failures count unless they fall inside `start_period`
//!   (measured from the spawn); a passing probe resets the count.
//! - The watchdog is armed at readiness: the deadline is `watchdog` after
//!   the later of readiness and the last `WATCHDOG=1`, and never earlier
//!   than the end of `start_period`.
//! - [`Verdict::Unhealthy`] and [`Verdict::StartTimeout`] are final: after
//!   either (or [`Tracker::stopping`]) the tracker says nothing more.

use std::time::{Duration, Instant};

use crate::plan::{HealthSpec, Probe};
use crate::units::format_duration;

/// Probe period before readiness for network probes (http, tcp), when
/// `interval` is longer: a web server that became ready should count as
/// ready within about a second, not up to `interval` later, and one
/// connection per second is no load. Exec probes start a process each
/// time, so they keep `interval`.
pub const START_INTERVAL: Duration = Duration::from_secs(1);

/// Stand-in for "never" when a deadline would overflow `Instant`: far
/// enough that no process lives to see it, near enough to be representable.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `t + d`, or [`FAR_FUTURE`] from `t` when that overflows: a huge
/// `interval` or `start_timeout` means "not in this process's lifetime",
/// and `Instant + Duration` would panic on it.
fn after(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(FAR_FUTURE))
        // Only within a century of the end of `Instant` itself.
        .unwrap_or(t)
}

/// How an instance becomes ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// No readiness check: ready as soon as it is spawned.
    AtSpawn,
    /// Ready on the first passing probe; the engine runs probes when told
    /// ([`Verdict::RunProbe`]).
    Probe,
    /// Ready when a message arrives ([`Tracker::ready_message`]):
    /// `READY=1`, a matching output line. `what` names it in the
    /// start-timeout reason ("no READY=1 within 60s").
    Message { what: String },
    /// Probed only once a message came (`what`, as for `Message`), ready on
    /// the first passing probe after it. For a probe that cannot tell
    /// generations apart (a socket shared by the old and the new one): the
    /// message is the new generation's own word that its app is loaded,
    /// the probe what the user asked to see pass.
    GatedProbe { what: String },
}

/// The tracker's view of a `health` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub readiness: Readiness,
    /// Keep probing after readiness and restart after `retries`
    /// consecutive failures. False: probes only decide readiness.
    pub liveness: bool,
    /// Between probes once ready.
    pub interval: Duration,
    /// Between probes while waiting for readiness.
    pub start_interval: Duration,
    /// Consecutive failures that make a ready instance unhealthy (>= 1).
    pub retries: u32,
    /// From the spawn: failures in this window don't count.
    pub start_period: Duration,
    /// From the spawn: readiness must arrive within this.
    pub start_timeout: Duration,
    /// `WATCHDOG=1` must arrive at least this often once ready.
    pub watchdog: Option<Duration>,
}

impl Settings {
    /// Settings for a configured `health` block.
    pub fn from_spec(h: &HealthSpec) -> Settings {
        let (readiness, liveness, start_interval) = match &h.probe {
            Some(Probe::Http { .. } | Probe::Tcp { .. }) => {
                (Readiness::Probe, true, h.interval.min(START_INTERVAL))
            }
            Some(Probe::Exec { .. }) => (Readiness::Probe, true, h.interval),
            Some(Probe::Notify) => (
                Readiness::Message {
                    what: "READY=1".to_owned(),
                },
                false,
                h.interval,
            ),
            Some(Probe::Log { pattern }) => (
                Readiness::Message {
                    what: format!("output line matching {pattern:?}"),
                },
                false,
                h.interval,
            ),
            None => (Readiness::AtSpawn, false, h.interval),
        };
        Settings {
            readiness,
            liveness,
            interval: h.interval,
            start_interval,
            retries: h.retries,
            start_period: h.start_period,
            start_timeout: h.start_timeout,
            watchdog: h.watchdog,
        }
    }
}

/// What the engine must do, or learn, after an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Start one probe now and report it with [`Tracker::probe_result`].
    RunProbe,
    /// The instance is ready: feed `Event::Ready`.
    Ready,
    /// A counted liveness failure short of `retries`, e.g.
    /// `GET /healthz/ -> 503 (1/3)`: worth a log line, nothing else.
    Failing { reason: String },
    /// A probe passed after `after` counted failures: worth a log line.
    Recovered { after: u32 },
    /// Restart through the graceful stop path: feed
    /// `Event::Unhealthy { reason }`. Final.
    Unhealthy { reason: String },
    /// Readiness never came: treat as a crash (restart with backoff).
    /// Final.
    StartTimeout { reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Starting,
    Ready { at: Instant },
    Done,
}

/// Health of one spawned process. See the module docs.
#[derive(Debug, Clone)]
pub struct Tracker {
    s: Settings,
    spawned: Instant,
    state: State,
    /// Consecutive counted failures since readiness.
    failures: u32,
    /// Reason of the latest failed probe (for the start-timeout message).
    last_failure: Option<String>,
    /// When the next probe is due; `None` while one runs or none is needed.
    next_probe: Option<Instant>,
    probing: bool,
    last_ping: Option<Instant>,
    /// [`Readiness::GatedProbe`]: the message came, probes may run.
    gate_open: bool,
}

impl Tracker {
    /// A tracker for a process spawned at `spawned`. The verdict is
    /// [`Verdict::Ready`] when readiness is [`Readiness::AtSpawn`].
    pub fn new(settings: Settings, spawned: Instant) -> (Tracker, Option<Verdict>) {
        let mut t = Tracker {
            spawned,
            state: State::Starting,
            failures: 0,
            last_failure: None,
            next_probe: None,
            probing: false,
            last_ping: None,
            gate_open: false,
            s: settings,
        };
        match t.s.readiness {
            Readiness::AtSpawn => {
                t.state = State::Ready { at: spawned };
                (t, Some(Verdict::Ready))
            }
            Readiness::Probe => {
                t.next_probe = Some(after(spawned, t.s.start_interval));
                (t, None)
            }
            Readiness::Message { .. } | Readiness::GatedProbe { .. } => (t, None),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.s
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready { .. })
    }

    /// True once a final verdict was given or [`Tracker::stopping`] called.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consecutive counted failures right now.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// When to call [`Tracker::on_timer`] next; `None`: no timer needed.
    pub fn next_deadline(&self) -> Option<Instant> {
        let state_deadline = match self.state {
            State::Done => return None,
            State::Starting => Some(self.start_deadline()),
            State::Ready { at } => self.watchdog_deadline(at),
        };
        let probe = if self.probing { None } else { self.next_probe };
        [state_deadline, probe].into_iter().flatten().min()
    }

    /// The engine's timer fired (early or late is fine).
    pub fn on_timer(&mut self, now: Instant) -> Option<Verdict> {
        match self.state {
            State::Done => return None,
            State::Starting => {
                if now >= self.start_deadline() {
                    self.state = State::Done;
                    return Some(Verdict::StartTimeout {
                        reason: self.start_timeout_reason(),
                    });
                }
            }
            State::Ready { at } => {
                if let (Some(deadline), Some(wd)) = (self.watchdog_deadline(at), self.s.watchdog) {
                    if now >= deadline {
                        self.state = State::Done;
                        return Some(Verdict::Unhealthy {
                            reason: format!("no WATCHDOG=1 within {}", format_duration(wd)),
                        });
                    }
                }
            }
        }
        match self.next_probe {
            Some(due) if !self.probing && now >= due => {
                self.probing = true;
                self.next_probe = None;
                Some(Verdict::RunProbe)
            }
            _ => None,
        }
    }

    /// A probe asked for by [`Verdict::RunProbe`] finished. `Err` carries
    /// the log-ready reason (`GET /healthz/ -> 503`). A result nobody asked
    /// for (after a final verdict, or a duplicate) is ignored.
    pub fn probe_result(&mut self, now: Instant, result: Result<(), String>) -> Option<Verdict> {
        if !self.probing || self.state == State::Done {
            return None;
        }
        self.probing = false;
        match self.state {
            State::Done => None,
            State::Starting => match result {
                Ok(()) => {
                    self.become_ready(now);
                    Some(Verdict::Ready)
                }
                Err(reason) => {
                    self.last_failure = Some(reason);
                    self.next_probe = Some(after(now, self.s.start_interval));
                    None
                }
            },
            State::Ready { .. } => {
                self.next_probe = Some(after(now, self.s.interval));
                match result {
                    Ok(()) => {
                        let after = std::mem::take(&mut self.failures);
                        (after > 0).then_some(Verdict::Recovered { after })
                    }
                    Err(reason) => {
                        if now < after(self.spawned, self.s.start_period) {
                            return None;
                        }
                        let retries = self.s.retries.max(1);
                        self.failures += 1;
                        let reason = format!("{reason} ({}/{retries})", self.failures);
                        if self.failures >= retries {
                            self.state = State::Done;
                            Some(Verdict::Unhealthy { reason })
                        } else {
                            Some(Verdict::Failing { reason })
                        }
                    }
                }
            }
        }
    }

    /// `READY=1` from the instance, or its output matched the `log`
    /// pattern. Counts only when readiness is [`Readiness::Message`]: a
    /// gunicorn's own `READY=1` (sent once bound, before the app loads) must
    /// not pre-empt its HTTP readiness probe.
    pub fn ready_message(&mut self, now: Instant) -> Option<Verdict> {
        if self.state != State::Starting {
            return None;
        }
        match self.s.readiness {
            Readiness::Message { .. } => {
                self.become_ready(now);
                Some(Verdict::Ready)
            }
            Readiness::GatedProbe { .. } if !self.gate_open => {
                self.gate_open = true;
                self.probing = true;
                Some(Verdict::RunProbe)
            }
            _ => None,
        }
    }

    /// `WATCHDOG=1` from the instance.
    pub fn watchdog_ping(&mut self, now: Instant) {
        if self.state != State::Done {
            self.last_ping = Some(self.last_ping.map_or(now, |p| p.max(now)));
        }
    }

    /// `WATCHDOG=trigger`: the process reports its own failure. Honoured
    /// only when a watchdog is configured (the user opted into watchdog
    /// restarts), as systemd does.
    pub fn watchdog_trigger(&mut self, _now: Instant) -> Option<Verdict> {
        if self.state == State::Done || self.s.watchdog.is_none() {
            return None;
        }
        self.state = State::Done;
        Some(Verdict::Unhealthy {
            reason: "the process reported a failure (WATCHDOG=trigger)".to_owned(),
        })
    }

    /// The instance is stopping (`STOPPING=1`, or the engine stops it):
    /// no more verdicts, so a process that drains slowly is not restarted
    /// for missing pings or failing probes on its way out.
    pub fn stopping(&mut self) {
        self.state = State::Done;
        self.next_probe = None;
    }

    fn become_ready(&mut self, now: Instant) {
        self.state = State::Ready { at: now };
        self.failures = 0;
        let probed = matches!(
            self.s.readiness,
            Readiness::Probe | Readiness::GatedProbe { .. }
        );
        self.next_probe = if self.s.liveness && probed {
            Some(after(now, self.s.interval))
        } else {
            None
        };
    }

    fn start_deadline(&self) -> Instant {
        after(self.spawned, self.s.start_timeout)
    }

    fn watchdog_deadline(&self, ready_at: Instant) -> Option<Instant> {
        let wd = self.s.watchdog?;
        let last = self.last_ping.map_or(ready_at, |p| p.max(ready_at));
        Some(after(last, wd).max(after(self.spawned, self.s.start_period)))
    }

    fn start_timeout_reason(&self) -> String {
        let within = format_duration(self.s.start_timeout);
        match &self.s.readiness {
            Readiness::Message { what } => format!("no {what} within {within}"),
            Readiness::GatedProbe { what } if !self.gate_open => {
                format!("no {what} within {within}")
            }
            _ => match &self.last_failure {
                Some(last) => format!("not ready within {within} (last probe: {last})"),
                None => format!("not ready within {within} (no probe finished)"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn http_settings() -> Settings {
        Settings {
            readiness: Readiness::Probe,
            liveness: true,
            interval: s(5),
            start_interval: s(1),
            retries: 3,
            start_period: Duration::ZERO,
            start_timeout: s(60),
            watchdog: None,
        }
    }

    fn notify_settings(watchdog: Option<Duration>) -> Settings {
        Settings {
            readiness: Readiness::Message {
                what: "READY=1".into(),
            },
            liveness: false,
            watchdog,
            ..http_settings()
        }
    }

    /// Drives the tracker like the engine: fire the timer at its deadline,
    /// answer a RunProbe with `result`, return what was said.
    fn probe_once(t: &mut Tracker, result: Result<(), &str>) -> (Instant, Option<Verdict>) {
        let at = t.next_deadline().expect("a deadline");
        assert_eq!(t.on_timer(at), Some(Verdict::RunProbe), "at {at:?}");
        // While the probe runs there is no probe deadline.
        assert!(t.next_deadline().is_none_or(|d| d > at));
        let done = at + ms(10);
        (done, t.probe_result(done, result.map_err(str::to_owned)))
    }

    fn ready_tracker(settings: Settings) -> (Tracker, Instant) {
        let t0 = Instant::now();
        let (mut t, v) = Tracker::new(settings, t0);
        assert_eq!(v, None);
        let (_, v) = probe_once(&mut t, Ok(()));
        assert_eq!(v, Some(Verdict::Ready));
        (t, t0)
    }

    #[test]
    fn first_pass_is_ready_and_earlier_failures_do_not_count() {
        let t0 = Instant::now();
        let (mut t, v) = Tracker::new(http_settings(), t0);
        assert_eq!(v, None);
        assert_eq!(t.next_deadline(), Some(t0 + s(1)));
        for _ in 0..10 {
            let (_, v) = probe_once(&mut t, Err("connect 127.0.0.1:8000: connection refused"));
            assert_eq!(v, None, "failures before readiness are silent");
        }
        assert!(!t.is_ready());
        let (_, v) = probe_once(&mut t, Ok(()));
        assert_eq!(v, Some(Verdict::Ready));
        assert!(t.is_ready());
        assert_eq!(t.failures(), 0);
    }

    #[test]
    fn probes_are_spaced_from_the_previous_result_and_never_overlap() {
        let t0 = Instant::now();
        let (mut t, _) = Tracker::new(http_settings(), t0);
        assert_eq!(t.on_timer(t0 + ms(999)), None, "not due yet");
        assert_eq!(t.on_timer(t0 + s(1)), Some(Verdict::RunProbe));
        // The timer firing again while the probe runs asks for nothing.
        assert_eq!(t.on_timer(t0 + s(3)), None);
        assert_eq!(
            t.next_deadline(),
            Some(t0 + s(60)),
            "only the start timeout"
        );
        // A slow probe: the next is due start_interval after it finished.
        assert_eq!(t.probe_result(t0 + s(3), Err("x".into())), None);
        assert_eq!(t.next_deadline(), Some(t0 + s(4)));
        // Once ready: `interval` apart.
        assert_eq!(t.on_timer(t0 + s(4)), Some(Verdict::RunProbe));
        assert_eq!(t.probe_result(t0 + s(4), Ok(())), Some(Verdict::Ready));
        assert_eq!(t.next_deadline(), Some(t0 + s(9)));
    }

    #[test]
    fn unasked_probe_results_are_ignored() {
        let t0 = Instant::now();
        let (mut t, _) = Tracker::new(http_settings(), t0);
        assert_eq!(t.probe_result(t0, Ok(())), None);
        assert!(!t.is_ready());
        let (_, v) = probe_once(&mut t, Ok(()));
        assert_eq!(v, Some(Verdict::Ready));
        // A duplicate report of the same probe.
        assert_eq!(t.probe_result(t0 + s(2), Err("late".into())), None);
        assert_eq!(t.failures(), 0);
    }

    #[test]
    fn retries_consecutive_failures_make_it_unhealthy_with_a_counter() {
        let (mut t, _) = ready_tracker(http_settings());
        let (_, v) = probe_once(&mut t, Err("GET /healthz/ -> 503"));
        assert_eq!(
            v,
            Some(Verdict::Failing {
                reason: "GET /healthz/ -> 503 (1/3)".into()
            })
        );
        let (_, v) = probe_once(&mut t, Err("GET /healthz/ -> 503"));
        assert_eq!(
            v,
            Some(Verdict::Failing {
                reason: "GET /healthz/ -> 503 (2/3)".into()
            })
        );
        let (_, v) = probe_once(&mut t, Err("GET /healthz/ -> 503"));
        assert_eq!(
            v,
            Some(Verdict::Unhealthy {
                reason: "GET /healthz/ -> 503 (3/3)".into()
            })
        );
        assert!(t.is_done());
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.on_timer(Instant::now() + s(3600)), None);
    }

    #[test]
    fn a_pass_resets_the_count() {
        let (mut t, _) = ready_tracker(http_settings());
        probe_once(&mut t, Err("e"));
        probe_once(&mut t, Err("e"));
        assert_eq!(t.failures(), 2);
        let (_, v) = probe_once(&mut t, Ok(()));
        assert_eq!(v, Some(Verdict::Recovered { after: 2 }));
        assert_eq!(t.failures(), 0);
        let (_, v) = probe_once(&mut t, Ok(()));
        assert_eq!(v, None, "recovered is said once");
        let (_, v) = probe_once(&mut t, Err("e"));
        assert_eq!(
            v,
            Some(Verdict::Failing {
                reason: "e (1/3)".into()
            })
        );
    }

    #[test]
    fn retries_of_one_fails_at_once() {
        let (mut t, _) = ready_tracker(Settings {
            retries: 1,
            ..http_settings()
        });
        let (_, v) = probe_once(&mut t, Err("e"));
        assert_eq!(
            v,
            Some(Verdict::Unhealthy {
                reason: "e (1/1)".into()
            })
        );
    }

    #[test]
    fn failures_inside_start_period_do_not_count() {
        let settings = Settings {
            start_period: s(30),
            ..http_settings()
        };
        let (mut t, t0) = ready_tracker(settings);
        // Probes at ~6s, ~11s, ... all inside the 30 s start period.
        loop {
            let (done, v) = probe_once(&mut t, Err("e"));
            if done >= t0 + s(30) {
                assert_eq!(
                    v,
                    Some(Verdict::Failing {
                        reason: "e (1/3)".into()
                    })
                );
                break;
            }
            assert_eq!(v, None, "at {:?}", done - t0);
            assert_eq!(t.failures(), 0);
        }
    }

    #[test]
    fn start_timeout_reports_the_last_probe_failure() {
        let t0 = Instant::now();
        let settings = Settings {
            start_timeout: s(3),
            ..http_settings()
        };
        let (mut t, _) = Tracker::new(settings, t0);
        probe_once(&mut t, Err("connect 127.0.0.1:8000: connection refused"));
        probe_once(&mut t, Err("GET / -> 502"));
        // The next probe would be due after the deadline: the deadline wins.
        assert_eq!(t.next_deadline(), Some(t0 + s(3)));
        assert_eq!(
            t.on_timer(t0 + s(3)),
            Some(Verdict::StartTimeout {
                reason: "not ready within 3s (last probe: GET / -> 502)".into()
            })
        );
        assert!(t.is_done());
        assert_eq!(t.probe_result(t0 + s(4), Ok(())), None);
    }

    #[test]
    fn start_timeout_while_a_probe_runs_and_without_any_result() {
        let t0 = Instant::now();
        let settings = Settings {
            start_timeout: s(2),
            ..http_settings()
        };
        let (mut t, _) = Tracker::new(settings, t0);
        assert_eq!(t.on_timer(t0 + s(1)), Some(Verdict::RunProbe));
        assert_eq!(
            t.on_timer(t0 + s(5)),
            Some(Verdict::StartTimeout {
                reason: "not ready within 2s (no probe finished)".into()
            })
        );
    }

    #[test]
    fn notify_readiness_waits_for_ready_and_ignores_probe_results() {
        let t0 = Instant::now();
        let (mut t, v) = Tracker::new(notify_settings(None), t0);
        assert_eq!(v, None);
        assert_eq!(t.next_deadline(), Some(t0 + s(60)));
        assert_eq!(t.on_timer(t0 + s(10)), None);
        assert_eq!(t.ready_message(t0 + s(12)), Some(Verdict::Ready));
        assert_eq!(t.ready_message(t0 + s(13)), None, "ready once");
        assert_eq!(t.next_deadline(), None, "no probes, no watchdog");
    }

    #[test]
    fn notify_start_timeout_names_the_message() {
        let t0 = Instant::now();
        let (mut t, _) = Tracker::new(notify_settings(None), t0);
        assert_eq!(
            t.on_timer(t0 + s(60)),
            Some(Verdict::StartTimeout {
                reason: "no READY=1 within 1m".into()
            })
        );
    }

    #[test]
    fn ready_message_does_not_preempt_a_probe() {
        // gunicorn sends READY=1 once bound, before the app is loaded.
        let t0 = Instant::now();
        let (mut t, _) = Tracker::new(http_settings(), t0);
        assert_eq!(t.ready_message(t0 + ms(100)), None);
        assert!(!t.is_ready());
    }

    #[test]
    fn at_spawn_readiness_is_immediate() {
        let t0 = Instant::now();
        let settings = Settings {
            readiness: Readiness::AtSpawn,
            liveness: false,
            ..http_settings()
        };
        let (t, v) = Tracker::new(settings, t0);
        assert_eq!(v, Some(Verdict::Ready));
        assert!(t.is_ready());
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn watchdog_expires_after_readiness_and_pings_push_it_back() {
        let t0 = Instant::now();
        let (mut t, _) = Tracker::new(notify_settings(Some(s(30))), t0);
        // Not armed before readiness: only the start timeout.
        assert_eq!(t.next_deadline(), Some(t0 + s(60)));
        t.ready_message(t0 + s(5));
        assert_eq!(t.next_deadline(), Some(t0 + s(35)));
        t.watchdog_ping(t0 + s(20));
        assert_eq!(t.next_deadline(), Some(t0 + s(50)));
        // An early timer (set before the ping) says nothing.
        assert_eq!(t.on_timer(t0 + s(35)), None);
        // An out-of-order, older ping does not pull the deadline in.
        t.watchdog_ping(t0 + s(10));
        assert_eq!(t.next_deadline(), Some(t0 + s(50)));
        assert_eq!(
            t.on_timer(t0 + s(50)),
            Some(Verdict::Unhealthy {
                reason: "no WATCHDOG=1 within 30s".into()
            })
        );
        assert!(t.is_done());
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn watchdog_deadline_respects_start_period() {
        let t0 = Instant::now();
        let settings = Settings {
            readiness: Readiness::AtSpawn,
            liveness: false,
            start_period: s(60),
            watchdog: Some(s(30)),
            ..http_settings()
        };
        let (mut t, _) = Tracker::new(settings, t0);
        assert_eq!(t.next_deadline(), Some(t0 + s(60)));
        assert_eq!(t.on_timer(t0 + s(45)), None);
        t.watchdog_ping(t0 + s(50));
        assert_eq!(t.next_deadline(), Some(t0 + s(80)));
    }

    #[test]
    fn watchdog_and_probe_deadlines_combine() {
        let t0 = Instant::now();
        let settings = Settings {
            watchdog: Some(s(3)),
            ..http_settings()
        };
        let (mut t, _) = Tracker::new(settings, t0);
        let (ready_at, _) = probe_once(&mut t, Ok(()));
        // Watchdog (3 s) comes before the next probe (5 s).
        assert_eq!(t.next_deadline(), Some(ready_at + s(3)));
        t.watchdog_ping(ready_at + s(3));
        assert_eq!(t.next_deadline(), Some(ready_at + s(5)));
        assert_eq!(t.on_timer(ready_at + s(5)), Some(Verdict::RunProbe));
        // With the probe running, the watchdog deadline remains.
        assert_eq!(t.next_deadline(), Some(ready_at + s(6)));
        assert!(matches!(
            t.on_timer(ready_at + s(6)),
            Some(Verdict::Unhealthy { .. })
        ));
    }

    #[test]
    fn pings_before_readiness_do_not_count_against_it() {
        let t0 = Instant::now();
        let (mut t, _) = Tracker::new(notify_settings(Some(s(10))), t0);
        t.watchdog_ping(t0 + s(1));
        t.ready_message(t0 + s(20));
        assert_eq!(t.next_deadline(), Some(t0 + s(30)));
    }

    #[test]
    fn watchdog_trigger_needs_a_watchdog() {
        let t0 = Instant::now();
        let (mut t, _) = Tracker::new(notify_settings(None), t0);
        t.ready_message(t0);
        assert_eq!(t.watchdog_trigger(t0), None);
        let (mut t, _) = Tracker::new(notify_settings(Some(s(30))), t0);
        assert_eq!(
            t.watchdog_trigger(t0),
            Some(Verdict::Unhealthy {
                reason: "the process reported a failure (WATCHDOG=trigger)".into()
            })
        );
    }

    #[test]
    fn stopping_silences_everything() {
        let (mut t, t0) = ready_tracker(Settings {
            watchdog: Some(s(1)),
            ..http_settings()
        });
        t.stopping();
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.on_timer(t0 + s(3600)), None);
        assert_eq!(t.probe_result(t0 + s(3600), Err("e".into())), None);
        assert_eq!(t.ready_message(t0), None);
    }

    #[test]
    fn huge_durations_never_overflow() {
        let t0 = Instant::now();
        let huge = Settings {
            interval: Duration::MAX,
            start_interval: Duration::MAX,
            start_period: Duration::MAX,
            start_timeout: Duration::MAX,
            watchdog: Some(Duration::MAX),
            ..http_settings()
        };
        let (mut t, v) = Tracker::new(huge.clone(), t0);
        assert_eq!(v, None);
        let far = t.next_deadline().expect("a deadline");
        assert!(far >= t0 + FAR_FUTURE, "{:?}", far - t0);
        assert_eq!(t.on_timer(t0 + s(3600)), None);
        // Ready through a probe, then failures and the watchdog: all far off.
        t.probing = true;
        assert_eq!(t.probe_result(t0, Ok(())), Some(Verdict::Ready));
        assert!(t.next_deadline().is_some_and(|d| d >= t0 + FAR_FUTURE));
        t.probing = true;
        assert_eq!(
            t.probe_result(t0 + s(1), Err("e".into())),
            None,
            "start_period"
        );
        t.watchdog_ping(t0 + s(2));
        assert_eq!(t.on_timer(t0 + s(3600)), None);
        // Readiness by message, with a watchdog.
        let (mut t, _) = Tracker::new(notify_settings(Some(Duration::MAX)), t0);
        assert_eq!(t.ready_message(t0), Some(Verdict::Ready));
        assert!(t.next_deadline().is_some_and(|d| d >= t0 + FAR_FUTURE));
        assert_eq!(after(t0, Duration::MAX), t0 + FAR_FUTURE);
    }

    #[test]
    fn readiness_only_probes_stop_after_ready() {
        let (t, _) = ready_tracker(Settings {
            liveness: false,
            ..http_settings()
        });
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn settings_from_spec() {
        let spec = |probe| HealthSpec {
            probe,
            path: None,
            watchdog: None,
            interval: s(10),
            timeout: s(2),
            retries: 3,
            start_period: Duration::ZERO,
            start_timeout: s(60),
        };
        let http = Settings::from_spec(&spec(Some(Probe::Http {
            url: "http://127.0.0.1:8000/".into(),
            status: None,
            host: None,
        })));
        assert_eq!(http.readiness, Readiness::Probe);
        assert!(http.liveness);
        assert_eq!(http.start_interval, s(1));
        let exec = Settings::from_spec(&spec(Some(Probe::Exec {
            argv: vec!["true".into()],
        })));
        assert_eq!(exec.start_interval, s(10));
        let log = Settings::from_spec(&spec(Some(Probe::Log {
            pattern: "Listening at".into(),
        })));
        assert_eq!(
            log.readiness,
            Readiness::Message {
                what: "output line matching \"Listening at\"".into()
            }
        );
        assert!(!log.liveness);
        let watchdog_only = Settings::from_spec(&spec(None));
        assert_eq!(watchdog_only.readiness, Readiness::AtSpawn);
    }
    #[test]
    fn a_gated_probe_runs_only_after_the_message_and_readiness_needs_both() {
        let t0 = Instant::now();
        let settings = Settings {
            readiness: Readiness::GatedProbe {
                what: "READY=1".into(),
            },
            ..http_settings()
        };
        let (mut t, v) = Tracker::new(settings, t0);
        assert_eq!(v, None);
        // No probe before the message: the old generation would answer it.
        assert_eq!(t.on_timer(t0 + s(5)), None);
        assert_eq!(t.next_deadline(), Some(t0 + s(60)));
        assert_eq!(t.ready_message(t0 + s(6)), Some(Verdict::RunProbe));
        // A second READY=1 (another worker) asks for nothing more.
        assert_eq!(t.ready_message(t0 + s(6)), None);
        assert!(!t.is_ready());
        assert_eq!(t.probe_result(t0 + s(7), Err("GET / -> 503".into())), None);
        assert!(!t.is_ready());
        assert_eq!(t.on_timer(t0 + s(8)), Some(Verdict::RunProbe));
        assert_eq!(t.probe_result(t0 + s(8), Ok(())), Some(Verdict::Ready));
        // Liveness goes on as for a plain probe.
        assert_eq!(t.next_deadline(), Some(t0 + s(13)));

        let (mut silent, _) = Tracker::new(
            Settings {
                readiness: Readiness::GatedProbe {
                    what: "READY=1".into(),
                },
                ..http_settings()
            },
            t0,
        );
        assert_eq!(
            silent.on_timer(t0 + s(60)),
            Some(Verdict::StartTimeout {
                reason: "no READY=1 within 1m".into()
            })
        );
    }
}
