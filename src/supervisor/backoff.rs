//! Restart pacing: how long to wait before a restart, and when to give up.
//!
//! Theory of operation: every unexpected exit of an instance bumps its
//! consecutive-failure counter `n` (1 for the first failure). The delay before
//! the restart is `initial * 2^(n-1)`, capped at `max`, then jittered by ±10%
//! so that a fleet of instances that crashed together (the database went
//! away) does not come back in lockstep. The cap wins over the jitter: the
//! delay never exceeds `max`. The counter itself is reset by the instance once
//! it has stayed up for `Backoff::reset` (see `instance.rs`).
//!
//! Independently, a [`RestartWindow`] remembers when the last restarts
//! happened; more than `max_restarts` of them within `restart_window` means the
//! process is flapping and the instance is marked failed instead of being
//! restarted again. It only keeps as many instants as it can ever need
//! (`max_restarts`), so memory is bounded however long prodserver runs.
//!
//! Everything here is pure: time and randomness come in as arguments.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::plan::Backoff;

/// Jitter amplitude: the delay is multiplied by a factor in `[1 - J, 1 + J)`.
const JITTER: f64 = 0.10;

/// The delay before restart number `consecutive` (1 = first failure in a row;
/// 0 is treated as 1). `jitter01` is a caller-supplied random number in
/// `[0, 1)`; out-of-range or NaN values are clamped rather than trusted.
pub fn restart_delay(b: &Backoff, consecutive: u32, jitter01: f64) -> Duration {
    if b.initial.is_zero() || b.max.is_zero() {
        return Duration::ZERO;
    }
    let cap = b.max;
    // Doubling in u128 nanoseconds with checked math: `consecutive = 1000`
    // (a process crashing for weeks) must saturate at `max`, not overflow.
    let shift = consecutive.saturating_sub(1);
    let base_nanos = if shift >= 64 {
        None
    } else {
        b.initial.as_nanos().checked_mul(1u128 << shift)
    };
    let cap_nanos = cap.as_nanos();
    let base_nanos = base_nanos.map_or(cap_nanos, |n| n.min(cap_nanos));

    let j = if jitter01.is_finite() {
        jitter01.clamp(0.0, 1.0)
    } else {
        0.5 // no information: no jitter
    };
    let factor = 1.0 - JITTER + 2.0 * JITTER * j;
    // f64 has plenty of precision for a restart delay; the result is >= 0
    // because the factor is >= 0.9, and is clamped to the cap again because
    // the jitter may push it above. Rounding to whole nanoseconds in integer
    // math keeps the unjittered delays exact (1s, 2s, 4s, not 3.999999999s).
    // `as u128` saturates, so even an absurd product cannot wrap.
    let nanos = ((base_nanos as f64 * factor).round() as u128).min(cap_nanos);
    from_nanos_u128(nanos)
}

/// `Duration::from_nanos` for values beyond `u64` (long caps); saturates.
fn from_nanos_u128(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    let sub = u32::try_from(nanos % NANOS_PER_SEC).unwrap_or(0);
    Duration::new(secs, sub)
}

/// Restarts within a sliding time window, to detect flapping.
#[derive(Debug, Clone)]
pub struct RestartWindow {
    max_restarts: u32,
    window: Duration,
    /// Instants of the restarts still inside the window, oldest first. Never
    /// longer than `max_restarts`.
    times: VecDeque<Instant>,
}

impl RestartWindow {
    /// `max_restarts == 0` means unlimited.
    pub fn new(max_restarts: u32, window: Duration) -> Self {
        RestartWindow {
            max_restarts,
            window,
            times: VecDeque::new(),
        }
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&t) = self.times.front() {
            if now.saturating_duration_since(t) >= self.window {
                self.times.pop_front();
            } else {
                break;
            }
        }
    }

    /// Would one more restart at `now` exceed the limit?
    pub fn exceeded(&mut self, now: Instant) -> bool {
        if self.max_restarts == 0 {
            return false;
        }
        self.prune(now);
        self.times.len() >= self.max_restarts as usize
    }

    /// Records a restart at `now` if the limit allows it. Returns `false`
    /// (and records nothing) when `max_restarts` restarts already happened
    /// within the window: the caller should give up.
    pub fn try_record(&mut self, now: Instant) -> bool {
        if self.max_restarts == 0 {
            return true; // unlimited: nothing to remember
        }
        if self.exceeded(now) {
            return false;
        }
        self.times.push_back(now);
        true
    }

    /// Restarts currently inside the window (as of the last call).
    pub fn recent(&self) -> usize {
        self.times.len()
    }

    /// Forgets every recorded restart (a manual start after a failure).
    pub fn clear(&mut self) {
        self.times.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(initial: u64, max: u64) -> Backoff {
        Backoff {
            initial: Duration::from_secs(initial),
            max: Duration::from_secs(max),
            reset: Duration::from_secs(60),
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn doubles_up_to_max_without_jitter() {
        let bo = b(1, 30);
        let got: Vec<_> = (1..=7).map(|n| restart_delay(&bo, n, 0.5)).collect();
        assert_eq!(got, vec![S(1), S(2), S(4), S(8), S(16), S(30), S(30)]);
        // 0 behaves like the first failure
        assert_eq!(restart_delay(&bo, 0, 0.5), S(1));
    }

    #[test]
    fn jitter_bounds() {
        let bo = b(10, 100);
        assert_eq!(restart_delay(&bo, 1, 0.0), S(9));
        let hi = restart_delay(&bo, 1, 0.999_999);
        assert!(hi > S(10) && hi <= Duration::from_millis(11_000), "{hi:?}");
        for i in 0..100 {
            let d = restart_delay(&bo, 2, f64::from(i) / 100.0);
            assert!(d >= S(18) && d < S(22), "{d:?}");
        }
    }

    #[test]
    fn jitter_never_exceeds_max() {
        let bo = b(1, 30);
        for n in [6, 7, 50] {
            assert_eq!(restart_delay(&bo, n, 0.999), S(30));
            assert_eq!(restart_delay(&bo, n, 0.0), S(27));
        }
    }

    #[test]
    fn zero_initial_is_always_zero() {
        let bo = b(0, 30);
        for n in [0, 1, 5, 1000, u32::MAX] {
            assert_eq!(restart_delay(&bo, n, 0.99), Duration::ZERO);
        }
    }

    #[test]
    fn huge_counts_saturate() {
        let bo = b(1, 300);
        for n in [63, 64, 65, 100, 1000, u32::MAX] {
            let d = restart_delay(&bo, n, 0.5);
            assert_eq!(d, S(300), "n={n}");
        }
        // an absurd max does not overflow either
        let bo = Backoff {
            initial: Duration::from_secs(u64::MAX / 4),
            max: Duration::MAX,
            reset: S(1),
        };
        let d = restart_delay(&bo, 1000, 0.999);
        assert!(d <= Duration::MAX);
    }

    #[test]
    fn bad_jitter_is_clamped() {
        let bo = b(10, 100);
        assert_eq!(restart_delay(&bo, 1, f64::NAN), S(10));
        assert_eq!(restart_delay(&bo, 1, -5.0), S(9));
        assert_eq!(restart_delay(&bo, 1, f64::INFINITY), S(10));
        assert_eq!(restart_delay(&bo, 1, 7.0), S(11));
    }

    #[test]
    fn window_exceeded_after_max() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(3, S(60));
        assert!(w.try_record(t0));
        assert!(w.try_record(t0 + S(1)));
        assert!(w.try_record(t0 + S(2)));
        assert!(!w.try_record(t0 + S(3)));
        assert_eq!(w.recent(), 3);
        // the first restart leaves the window at t0+60
        assert!(!w.try_record(t0 + S(59)));
        assert!(w.try_record(t0 + S(60)));
        assert_eq!(w.recent(), 3);
    }

    #[test]
    fn window_spread_out_never_exceeds_and_stays_bounded() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(2, S(10));
        for i in 0..1000 {
            assert!(w.try_record(t0 + S(i * 6)), "restart {i}");
            assert!(w.recent() <= 2);
        }
    }

    #[test]
    fn unlimited_keeps_nothing() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(0, S(10));
        for _ in 0..10_000 {
            assert!(w.try_record(t0));
        }
        assert_eq!(w.recent(), 0);
        assert!(!w.exceeded(t0));
    }

    #[test]
    fn clear_forgets() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(1, S(10));
        assert!(w.try_record(t0));
        assert!(!w.try_record(t0));
        w.clear();
        assert!(w.try_record(t0));
    }
}
