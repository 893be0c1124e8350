//! The final rollup: is prodserver done, and with which exit code?
//!
//! Theory of operation: prodserver exits on its own once every instance is in
//! a terminal phase (all oneshots done, every `restart = "never"` or
//! `"on-failure"` process has ended, nothing left in backoff). Its exit code
//! is 0 when everything either finished successfully or was stopped on
//! request, and 1 as soon as one instance failed. An instance that is not
//! terminal when the rollup is taken (the engine gave up waiting on it) also
//! counts as a failure: reporting success for a process we could not account
//! for would hide exactly the bug an operator needs to see.

use super::instance::Phase;

/// Exit code for success.
pub const EXIT_OK: i32 = crate::exit::OK;
/// Exit code when any instance failed.
pub const EXIT_FAILED: i32 = crate::exit::PROCESS_FAILED;

/// Instances counted by outcome (also for the final log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rollup {
    pub completed: u32,
    pub stopped: u32,
    pub failed: u32,
    /// Not terminal yet.
    pub active: u32,
}

impl Rollup {
    pub fn of<'a>(phases: impl IntoIterator<Item = &'a Phase>) -> Rollup {
        let mut r = Rollup::default();
        for p in phases {
            match p {
                Phase::Completed => r.completed += 1,
                Phase::Stopped => r.stopped += 1,
                Phase::Failed { .. } => r.failed += 1,
                _ => r.active += 1,
            }
        }
        r
    }

    pub fn all_ended(&self) -> bool {
        self.active == 0
    }

    pub fn exit_code(&self) -> i32 {
        if self.failed > 0 || self.active > 0 {
            EXIT_FAILED
        } else {
            EXIT_OK
        }
    }
}

/// prodserver's exit code given every instance's final phase.
pub fn exit_code<'a>(phases: impl IntoIterator<Item = &'a Phase>) -> i32 {
    Rollup::of(phases).exit_code()
}

/// True when nothing is left to supervise: every instance ended (completed,
/// stopped or failed), so prodserver may exit without being asked.
pub fn all_ended<'a>(phases: impl IntoIterator<Item = &'a Phase>) -> bool {
    Rollup::of(phases).all_ended()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::instance::{ExitStatus, FailReason};
    use std::time::Instant;

    fn failed() -> Phase {
        Phase::Failed {
            reason: FailReason::Exited {
                status: ExitStatus::Code(2),
            },
        }
    }

    #[test]
    fn success_and_stopped_is_zero() {
        let ps = [Phase::Completed, Phase::Stopped, Phase::Completed];
        assert_eq!(exit_code(&ps), 0);
        assert!(all_ended(&ps));
        assert_eq!(exit_code(&[]), 0);
        assert!(all_ended(&[]));
    }

    #[test]
    fn any_failure_is_one() {
        let ps = [Phase::Completed, failed(), Phase::Stopped];
        assert_eq!(exit_code(&ps), 1);
        assert!(all_ended(&ps));
        assert_eq!(
            Rollup::of(&ps),
            Rollup {
                completed: 1,
                stopped: 1,
                failed: 1,
                active: 0
            }
        );
    }

    #[test]
    fn anything_alive_means_not_ended() {
        let t = Instant::now();
        for alive in [
            Phase::Pending,
            Phase::Spawning { stop: None },
            Phase::Running {
                pid: 3,
                since: t,
                ready: true,
            },
            Phase::Backoff { until: t },
            Phase::WaitingLock { holder: None },
        ] {
            let ps = [Phase::Completed, alive];
            assert!(!all_ended(&ps), "{:?}", ps[1]);
            // unaccounted-for at the end: not a success
            assert_eq!(exit_code(&ps), 1);
        }
    }
}
