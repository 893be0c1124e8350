//! Reaped orphans, reported at most once a second.
//!
//! A child that forks in a loop (`while :; do (true &); done`) hands
//! prodserver thousands of orphans a second. One log line each would grow
//! prodserver's memory without bound while its output is stalled (Ctrl-S, a
//! stuck log shipper), and bury everything else when it is not. The first
//! orphan of a quiet period is reported on its own; the rest are counted
//! and summed up a second later.

use std::time::{Duration, Instant};

use crate::logs::writer::thousands;

const PERIOD: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct OrphanTally {
    /// Reaped since the last report.
    pending: u64,
    /// The last of those: `(pid, how it ended)`.
    last: Option<(i32, String)>,
    last_report: Option<Instant>,
}

impl OrphanTally {
    /// One orphan was reaped; returns the line to log now, if any.
    pub fn reaped(&mut self, now: Instant, pid: i32, status: String) -> Option<String> {
        let quiet = self
            .last_report
            .is_none_or(|at| now.saturating_duration_since(at) >= PERIOD);
        if quiet && self.pending == 0 {
            self.last_report = Some(now);
            return Some(format!("reaped orphan pid {pid} ({status})"));
        }
        self.pending += 1;
        self.last = Some((pid, status));
        None
    }

    /// When the counted orphans are due to be reported.
    pub fn due(&self) -> Option<Instant> {
        if self.pending == 0 {
            return None;
        }
        Some(self.last_report.map_or(Instant::now(), |at| at + PERIOD))
    }

    /// The summary line once due (or at exit, whatever the time).
    pub fn flush(&mut self, now: Instant, force: bool) -> Option<String> {
        let due = self.due()?;
        if !force && now < due {
            return None;
        }
        let n = std::mem::take(&mut self.pending);
        let (pid, status) = self.last.take()?;
        self.last_report = Some(now);
        Some(if n == 1 {
            format!("reaped orphan pid {pid} ({status})")
        } else {
            format!(
                "reaped {} orphans (the last: pid {pid}, {status})",
                thousands(n)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_reported_at_once_the_rest_once_a_second() {
        let t0 = Instant::now();
        let mut t = OrphanTally::default();
        assert_eq!(
            t.reaped(t0, 10, "exit status: 0".into()).as_deref(),
            Some("reaped orphan pid 10 (exit status: 0)")
        );
        assert_eq!(t.due(), None);
        for pid in 11..1245 {
            assert_eq!(
                t.reaped(t0 + Duration::from_millis(5), pid, "x".into()),
                None
            );
        }
        assert_eq!(t.due(), Some(t0 + PERIOD));
        assert_eq!(t.flush(t0 + Duration::from_millis(500), false), None);
        assert_eq!(
            t.flush(t0 + PERIOD, false).as_deref(),
            Some("reaped 1,234 orphans (the last: pid 1244, x)")
        );
        assert_eq!(t.due(), None);
        // Within the next second: counted again, not logged one by one.
        assert_eq!(t.reaped(t0 + PERIOD, 7, "y".into()), None);
        assert_eq!(
            t.flush(t0 + PERIOD, true).as_deref(),
            Some("reaped orphan pid 7 (y)")
        );
        // After a quiet second, reported at once again.
        assert!(t.reaped(t0 + 3 * PERIOD, 8, "z".into()).is_some());
    }
}
