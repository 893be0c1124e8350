//! What to tell systemd, decided from the supervisor's progress: pure.
//!
//! The engine feeds a [`Notifier`] with a [`Progress`] after every turn of
//! its loop ([`Notifier::poll`]) and with the start and end of a reload;
//! the notifier answers with the datagrams to send, each a list of
//! [`Message`]s. Nothing here knows about sockets or clocks: `now` and the
//! monotonic timestamp are arguments, so every sequence is a unit test.

use std::time::{Duration, Instant};

/// How much longer systemd is asked to wait at a time while a graceful stop
/// is still making progress. Re-sent when half of it has passed, so one
/// lost or late turn of the loop never lets an extension lapse.
pub const EXTEND_STEP: Duration = Duration::from_secs(20);

/// Most instances named in a `stopping:` status; the rest are counted.
const NAMED: usize = 3;

/// One line of an sd_notify datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Ready,
    /// `RELOADING=1` with the CLOCK_MONOTONIC time it began, which
    /// `Type=notify-reload` requires and plain `Type=notify` ignores.
    Reloading {
        monotonic_usec: u64,
    },
    Stopping,
    Status(String),
    ExtendTimeout(Duration),
    Watchdog,
}

impl Message {
    /// The `KEY=VALUE` line(s) systemd reads.
    pub fn render(&self) -> String {
        match self {
            Message::Ready => "READY=1".into(),
            Message::Reloading { monotonic_usec } => {
                format!("RELOADING=1\nMONOTONIC_USEC={monotonic_usec}")
            }
            Message::Stopping => "STOPPING=1".into(),
            // A newline would start another key: keep the status one line.
            Message::Status(s) => format!("STATUS={}", s.replace('\n', " ")),
            Message::ExtendTimeout(d) => format!("EXTEND_TIMEOUT_USEC={}", d.as_micros()),
            Message::Watchdog => "WATCHDOG=1".into(),
        }
    }
}

/// A datagram's payload: its messages, one per line.
pub fn datagram(messages: &[Message]) -> String {
    messages
        .iter()
        .map(Message::render)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where the supervisor stands, as systemd needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// Instances ready (or completed, for a oneshot), out of `total`: the
    /// readiness dependents wait for.
    pub ready: usize,
    pub total: usize,
    /// Set once the supervisor is stopping everything.
    pub stopping: Option<StopProgress>,
}

/// A stop in progress.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StopProgress {
    /// Instances still to stop, the ones being stopped first.
    pub waiting: Vec<Waiting>,
}

/// One instance a stop is waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// `worker.1`.
    pub instance: String,
    /// Why it takes time: `finishing its tasks`, `SIGTERM sent`, ...
    pub why: String,
    /// Its end is bounded by prodserver's own deadlines (stop_timeout,
    /// then the escalation and SIGKILL), so asking systemd for more time
    /// cannot leave it waiting forever. False once the group was killed:
    /// a process that survives SIGKILL (stuck in the kernel) is systemd's
    /// to time out.
    pub bounded: bool,
}

/// The sd_notify state machine. See the module docs.
#[derive(Debug, Clone)]
pub struct Notifier {
    /// The ping period: half of `WATCHDOG_USEC`.
    watchdog: Option<Duration>,
    next_watchdog: Option<Instant>,
    ready_sent: bool,
    reloading: bool,
    stopping_sent: bool,
    /// The last `STATUS=` sent.
    status: Option<String>,
    /// When the last `EXTEND_TIMEOUT_USEC` runs out.
    extended_until: Option<Instant>,
    /// Datagrams decided between polls (reload start and end).
    outbox: Vec<Vec<Message>>,
}

impl Notifier {
    /// `watchdog_usec`: systemd's `WATCHDOG_USEC` for us, if any; the first
    /// ping is due half of it after `now`.
    pub fn new(now: Instant, watchdog_usec: Option<Duration>) -> Notifier {
        let watchdog = watchdog_usec.map(|w| (w / 2).max(Duration::from_millis(1)));
        Notifier {
            watchdog,
            next_watchdog: watchdog.map(|p| now + p),
            ready_sent: false,
            reloading: false,
            stopping_sent: false,
            status: None,
            extended_until: None,
            outbox: Vec::new(),
        }
    }

    /// A reload began: `RELOADING=1` now, `READY=1` at [`Notifier::reload_done`].
    pub fn reload_started(&mut self, monotonic_usec: u64) {
        if self.stopping_sent || self.reloading {
            return;
        }
        self.reloading = true;
        self.status = Some("reloading".into());
        self.outbox.push(vec![
            Message::Reloading { monotonic_usec },
            Message::Status("reloading".into()),
        ]);
    }

    /// The reload was answered (applied or refused): the service is back.
    /// `READY=1` only if it had been ready before; otherwise it comes when
    /// every instance is ready, as at the start.
    pub fn reload_done(&mut self) {
        if !self.reloading {
            return;
        }
        self.reloading = false;
        if self.ready_sent && !self.stopping_sent {
            self.outbox.push(vec![Message::Ready]);
        }
    }

    /// The datagrams to send now, in order, given the progress.
    pub fn poll(&mut self, now: Instant, progress: &Progress) -> Vec<Vec<Message>> {
        let mut out = std::mem::take(&mut self.outbox);
        let mut current = Vec::new();
        let status = match &progress.stopping {
            Some(stop) => {
                if !self.stopping_sent {
                    self.stopping_sent = true;
                    current.push(Message::Stopping);
                }
                if stop.waiting.iter().any(|w| w.bounded) {
                    let due = self
                        .extended_until
                        .is_none_or(|until| now + EXTEND_STEP / 2 >= until);
                    if due {
                        self.extended_until = Some(now + EXTEND_STEP);
                        current.push(Message::ExtendTimeout(EXTEND_STEP));
                    }
                } else {
                    self.extended_until = None;
                }
                stop_status(stop)
            }
            None if self.reloading => "reloading".into(),
            None => {
                if !self.ready_sent && progress.ready >= progress.total {
                    self.ready_sent = true;
                    current.push(Message::Ready);
                }
                format!("{}/{} ready", progress.ready, progress.total)
            }
        };
        if self.status.as_deref() != Some(status.as_str()) {
            current.push(Message::Status(status.clone()));
            self.status = Some(status);
        }
        if self.next_watchdog.is_some_and(|at| at <= now) {
            current.push(Message::Watchdog);
            self.next_watchdog = self.watchdog.map(|p| now + p);
        }
        if !current.is_empty() {
            out.push(current);
        }
        out
    }

    /// When [`Notifier::poll`] must run again even if nothing happens: the
    /// next watchdog ping, or the renewal of a timeout extension.
    pub fn next_due(&self) -> Option<Instant> {
        let renew = self.extended_until.map(|until| until - EXTEND_STEP / 2);
        [self.next_watchdog, renew].into_iter().flatten().min()
    }
}

/// `stopping: waiting for worker.1 (finishing its tasks)`, naming a few.
fn stop_status(stop: &StopProgress) -> String {
    if stop.waiting.is_empty() {
        return "stopping".into();
    }
    let named: Vec<String> = stop
        .waiting
        .iter()
        .take(NAMED)
        .map(|w| format!("{} ({})", w.instance, w.why))
        .collect();
    let more = match stop.waiting.len().saturating_sub(NAMED) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!("stopping: waiting for {}{more}", named.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Message::*;

    fn ready(ready: usize, total: usize) -> Progress {
        Progress {
            ready,
            total,
            stopping: None,
        }
    }

    fn stopping(waiting: &[(&str, &str, bool)]) -> Progress {
        Progress {
            ready: 0,
            total: 2,
            stopping: Some(StopProgress {
                waiting: waiting
                    .iter()
                    .map(|(i, w, b)| Waiting {
                        instance: i.to_string(),
                        why: w.to_string(),
                        bounded: *b,
                    })
                    .collect(),
            }),
        }
    }

    fn status(s: &str) -> Message {
        Status(s.into())
    }

    #[test]
    fn ready_once_every_instance_is_ready_and_status_only_on_change() {
        let t = Instant::now();
        let mut n = Notifier::new(t, None);
        assert_eq!(n.poll(t, &ready(0, 3)), vec![vec![status("0/3 ready")]]);
        assert_eq!(n.poll(t, &ready(0, 3)), Vec::<Vec<Message>>::new());
        assert_eq!(n.poll(t, &ready(2, 3)), vec![vec![status("2/3 ready")]]);
        assert_eq!(
            n.poll(t, &ready(3, 3)),
            vec![vec![Ready, status("3/3 ready")]]
        );
        // An instance restarting: the status follows, READY is not repeated.
        assert_eq!(n.poll(t, &ready(2, 3)), vec![vec![status("2/3 ready")]]);
        assert_eq!(n.poll(t, &ready(3, 3)), vec![vec![status("3/3 ready")]]);
        assert_eq!(n.next_due(), None, "no watchdog, no extension");
    }

    #[test]
    fn reload_is_reloading_then_ready() {
        let t = Instant::now();
        let mut n = Notifier::new(t, None);
        n.poll(t, &ready(2, 2));
        n.reload_started(1_234_567);
        assert_eq!(
            n.poll(t, &ready(1, 2)),
            vec![vec![
                Reloading {
                    monotonic_usec: 1_234_567
                },
                status("reloading")
            ]]
        );
        // No READY while reloading, whatever the count.
        assert_eq!(n.poll(t, &ready(2, 2)), Vec::<Vec<Message>>::new());
        n.reload_started(9);
        assert_eq!(n.poll(t, &ready(2, 2)), Vec::<Vec<Message>>::new());
        n.reload_done();
        assert_eq!(
            n.poll(t, &ready(3, 3)),
            vec![vec![Ready], vec![status("3/3 ready")]]
        );
        let text: Vec<String> = [
            Reloading { monotonic_usec: 5 },
            status("a\nb"),
            ExtendTimeout(Duration::from_secs(2)),
        ]
        .iter()
        .map(Message::render)
        .collect();
        assert_eq!(
            text,
            [
                "RELOADING=1\nMONOTONIC_USEC=5",
                "STATUS=a b",
                "EXTEND_TIMEOUT_USEC=2000000"
            ]
        );
        assert_eq!(
            datagram(&[Ready, status("1/1 ready")]),
            "READY=1\nSTATUS=1/1 ready"
        );
    }

    #[test]
    fn a_reload_before_readiness_does_not_claim_it() {
        let t = Instant::now();
        let mut n = Notifier::new(t, None);
        n.poll(t, &ready(1, 2));
        n.reload_started(7);
        n.reload_done();
        assert_eq!(
            n.poll(t, &ready(1, 2)),
            vec![
                vec![Reloading { monotonic_usec: 7 }, status("reloading")],
                vec![status("1/2 ready")]
            ]
        );
        assert_eq!(
            n.poll(t, &ready(2, 2)),
            vec![vec![Ready, status("2/2 ready")]]
        );
    }

    #[test]
    fn stopping_extends_the_timeout_while_a_graceful_stop_runs() {
        let t = Instant::now();
        let mut n = Notifier::new(t, None);
        n.poll(t, &ready(2, 2));
        let worker = [("worker.1", "finishing its tasks", true)];
        assert_eq!(
            n.poll(t, &stopping(&worker)),
            vec![vec![
                Stopping,
                ExtendTimeout(EXTEND_STEP),
                status("stopping: waiting for worker.1 (finishing its tasks)")
            ]]
        );
        assert_eq!(n.next_due(), Some(t + EXTEND_STEP / 2));
        // Renewed when half of the extension has passed, not before.
        let early = t + EXTEND_STEP / 2 - Duration::from_millis(1);
        assert_eq!(
            n.poll(early, &stopping(&worker)),
            Vec::<Vec<Message>>::new()
        );
        let half = t + EXTEND_STEP / 2;
        assert_eq!(
            n.poll(half, &stopping(&worker)),
            vec![vec![ExtendTimeout(EXTEND_STEP)]]
        );
        assert_eq!(n.next_due(), Some(half + EXTEND_STEP / 2));
        // Killed: its end is no longer ours to promise.
        let killed = [("worker.1", "killed", false)];
        assert_eq!(
            n.poll(half, &stopping(&killed)),
            vec![vec![status("stopping: waiting for worker.1 (killed)")]]
        );
        assert_eq!(n.next_due(), None);
        // No READY after STOPPING, even through a reload's end.
        n.reload_started(1);
        n.reload_done();
        assert_eq!(n.poll(half, &stopping(&[])), vec![vec![status("stopping")]]);
    }

    #[test]
    fn a_long_wait_list_is_cut() {
        let t = Instant::now();
        let mut n = Notifier::new(t, None);
        let many = [
            ("worker.1", "finishing its tasks", true),
            ("worker.2", "finishing its tasks", true),
            ("web.1", "SIGTERM sent", true),
            ("web.2", "waiting its turn", true),
            ("beat.1", "waiting its turn", true),
        ];
        assert_eq!(
            n.poll(t, &stopping(&many)),
            vec![vec![
                Stopping,
                ExtendTimeout(EXTEND_STEP),
                status("stopping: waiting for worker.1 (finishing its tasks), worker.2 (finishing its tasks), web.1 (SIGTERM sent) and 2 more")
            ]]
        );
    }

    #[test]
    fn the_watchdog_pings_at_half_its_period() {
        let t = Instant::now();
        let mut n = Notifier::new(t, Some(Duration::from_secs(10)));
        assert_eq!(n.next_due(), Some(t + Duration::from_secs(5)));
        assert_eq!(
            n.poll(t, &ready(1, 1)),
            vec![vec![Ready, status("1/1 ready")]]
        );
        let t5 = t + Duration::from_secs(5);
        assert_eq!(n.poll(t5, &ready(1, 1)), vec![vec![Watchdog]]);
        assert_eq!(n.next_due(), Some(t5 + Duration::from_secs(5)));
        // A late loop pings once, and the next one is half a period later.
        let late = t5 + Duration::from_secs(7);
        assert_eq!(
            n.poll(late, &ready(0, 1)),
            vec![vec![status("0/1 ready"), Watchdog]]
        );
        assert_eq!(n.next_due(), Some(late + Duration::from_secs(5)));
        assert_eq!(render_all(&[Watchdog, Stopping]), "WATCHDOG=1\nSTOPPING=1");
    }

    fn render_all(m: &[Message]) -> String {
        datagram(m)
    }
}
