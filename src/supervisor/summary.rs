//! The final rollup: prodserver's exit code and, in words, why.
//!
//! Theory of operation: the core decides *when* the run is over; this
//! module decides what it amounts to ([`verdict`]). An instance that is not
//! terminal when the verdict is taken also counts as a failure: reporting
//! success for a process we could not account for would hide exactly the
//! bug an operator needs to see.

use super::instance::{Instance, Phase, StopOutcome};

/// Exit code for success.
pub const EXIT_OK: i32 = crate::exit::OK;
/// Exit code when any instance failed.
pub const EXIT_FAILED: i32 = crate::exit::PROCESS_FAILED;

/// Why prodserver is ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Every process ended by itself.
    OnItsOwn,
    /// A signal (or an operator) asked for the stop.
    Requested,
    /// A oneshot or critical process failed and took everything down.
    Fatal(String),
}

/// One instance's fate, as the exit code needs it.
#[derive(Debug, Clone)]
pub struct InstanceEnd<'a> {
    /// `web.1`.
    pub name: String,
    pub phase: &'a Phase,
    /// Its process was told to start at some point.
    pub started: bool,
    /// It was FAILED when the stop was requested.
    pub failed_before_stop: bool,
    pub stop: Option<StopOutcome>,
}

/// The exit code and, in words, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub code: i32,
    pub reason: String,
}

/// The exit code rule. 0 only when the run did what was asked of it:
/// - ended on its own: every instance completed (or stopped);
/// - stopped on request: every instance stopped cleanly within its
///   `stop_timeout` (exit 0, or the exit its stop signal asks for), and
///   none was FAILED when the stop was requested;
///
/// 1 otherwise, and always after a fatal failure. A service manager or CI
/// job reading 0 can trust that nothing was lost on the way out. A stop
/// that needed the escalation signal is 1 too: nothing was lost (Celery's
/// cold shutdown hands the messages back), but running work was cut short
/// and will run again from its start.
pub fn verdict(ending: &Ending, instances: &[InstanceEnd<'_>]) -> Verdict {
    let mut problems = Vec::new();
    if let Ending::Fatal(what) = ending {
        problems.push(what.clone());
    }
    for i in instances.iter().filter(|i| i.started) {
        let name = &i.name;
        if !i.phase.is_terminal() {
            problems.push(format!("{name} had not ended ({})", i.phase.name()));
            continue;
        }
        match ending {
            Ending::Requested => {
                if i.failed_before_stop {
                    problems.push(format!("{name} had FAILED before the stop"));
                }
                match i.stop {
                    Some(StopOutcome::Escalated { signal }) => problems.push(format!(
                        "{name} did not stop within its stop_timeout and was sent {}",
                        crate::os::signal_name(signal)
                    )),
                    Some(StopOutcome::KilledAfterTimeout) => problems.push(format!(
                        "{name} did not stop within its stop_timeout and was killed"
                    )),
                    Some(StopOutcome::KilledOnRequest) => {
                        problems.push(format!("{name} was killed at once on request"))
                    }
                    Some(StopOutcome::Exited(status)) => {
                        problems.push(format!("{name} {} while stopping", status.describe()))
                    }
                    Some(StopOutcome::Clean) | None => {}
                }
            }
            Ending::OnItsOwn => {
                if let Phase::Failed { .. } = i.phase {
                    problems.push(format!("{name} FAILED"));
                }
            }
            Ending::Fatal(_) => {}
        }
    }
    if problems.is_empty() {
        let reason = match ending {
            Ending::Requested => "every process stopped cleanly",
            _ => "every process ended successfully",
        };
        return Verdict {
            code: EXIT_OK,
            reason: reason.into(),
        };
    }
    Verdict {
        code: EXIT_FAILED,
        reason: problems.join("; "),
    }
}

/// `0 restarts`, `1 restart`, `2 restarts`.
pub fn restarts_count(n: u32) -> String {
    if n == 1 {
        "1 restart".to_string()
    } else {
        format!("{n} restarts")
    }
}

/// `1 recycle`, `2 recycles`.
pub fn recycles_count(n: u32) -> String {
    if n == 1 {
        "1 recycle".to_string()
    } else {
        format!("{n} recycles")
    }
}

/// `87 MiB pss`: an instance's last measurement.
pub fn memory_text(u: &super::core::Usage) -> String {
    format!("{} {}", super::recycle::mib(u.bytes), u.metric.name())
}

/// `0 restarts`, `1 restart`, `3 restarts (last: unhealthy: ...)`: every
/// restart, whatever its cause, with the last reason.
pub fn restarts_text(instance: &Instance) -> String {
    let n = instance.all_restarts();
    match instance.last_restart() {
        Some(reason) if n > 0 => format!("{} (last: {reason})", restarts_count(n)),
        _ => restarts_count(n),
    }
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

    fn end<'a>(name: &str, phase: &'a Phase, stop: Option<StopOutcome>) -> InstanceEnd<'a> {
        InstanceEnd {
            name: name.into(),
            phase,
            started: true,
            failed_before_stop: false,
            stop,
        }
    }

    #[test]
    fn a_clean_stop_on_request_is_zero() {
        let stopped = Phase::Stopped;
        let done = Phase::Completed;
        let v = verdict(
            &Ending::Requested,
            &[
                end("web.1", &stopped, Some(StopOutcome::Clean)),
                end("migrate.1", &done, None),
            ],
        );
        assert_eq!(v.code, 0);
        assert_eq!(v.reason, "every process stopped cleanly");
    }

    #[test]
    fn a_kill_or_a_failure_before_the_stop_is_one_with_the_reason() {
        let stopped = Phase::Stopped;
        let f = failed();
        let mut web = end("web.1", &f, None);
        web.failed_before_stop = true;
        let v = verdict(
            &Ending::Requested,
            &[
                web,
                end("worker.1", &stopped, Some(StopOutcome::KilledAfterTimeout)),
                end("worker.2", &stopped, Some(StopOutcome::KilledOnRequest)),
                end(
                    "beat.1",
                    &stopped,
                    Some(StopOutcome::Exited(ExitStatus::Code(3))),
                ),
            ],
        );
        assert_eq!(v.code, 1);
        assert_eq!(
            v.reason,
            "web.1 had FAILED before the stop; \
             worker.1 did not stop within its stop_timeout and was killed; \
             worker.2 was killed at once on request; \
             beat.1 exited with code 3 while stopping"
        );
    }

    #[test]
    fn a_stop_that_needed_the_escalation_is_one_and_names_the_signal() {
        let stopped = Phase::Stopped;
        let v = verdict(
            &Ending::Requested,
            &[
                end("web.1", &stopped, Some(StopOutcome::Clean)),
                end(
                    "worker.1",
                    &stopped,
                    Some(StopOutcome::Escalated {
                        signal: libc::SIGQUIT,
                    }),
                ),
            ],
        );
        assert_eq!(v.code, 1);
        assert_eq!(
            v.reason,
            "worker.1 did not stop within its stop_timeout and was sent SIGQUIT"
        );
    }

    #[test]
    fn not_started_instances_do_not_count_and_fatal_is_one() {
        let pending = Phase::Pending;
        let mut never = end("web.1", &pending, None);
        never.started = false;
        assert_eq!(verdict(&Ending::Requested, &[never.clone()]).code, 0);
        let v = verdict(&Ending::Fatal("oneshot migrate.1 failed".into()), &[never]);
        assert_eq!(
            v,
            Verdict {
                code: 1,
                reason: "oneshot migrate.1 failed".into()
            }
        );
    }

    #[test]
    fn on_its_own_a_failure_is_one() {
        let f = failed();
        let done = Phase::Completed;
        let v = verdict(
            &Ending::OnItsOwn,
            &[end("a.1", &done, None), end("b.1", &f, None)],
        );
        assert_eq!((v.code, v.reason.as_str()), (1, "b.1 FAILED"));
        let running = Phase::Running {
            pid: 4,
            since: Instant::now(),
            ready: true,
        };
        let v = verdict(&Ending::OnItsOwn, &[end("c.1", &running, None)]);
        assert_eq!(v.reason, "c.1 had not ended (ready)");
    }
}
