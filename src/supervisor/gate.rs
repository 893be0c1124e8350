//! Dependency gates: may a pending process start now?
//!
//! Theory of operation: the engine summarises each dependency's instances
//! into a [`ProcessView`] (how many are up, ready, completed, failed,
//! stopped) and asks [`dependencies_met`] whether every `depends_on`
//! condition holds. The answer is re-evaluated whenever a dependency
//! changes phase; it is a snapshot, not a latch:
//!
//! - `started`: every instance has a process (running or stopping), or
//!   already finished successfully (a oneshot that ran counts as started);
//! - `healthy`: every instance is running and has passed its readiness
//!   check;
//! - `completed`: every instance exited 0 (`Completed`).
//!
//! [`Gate::Blocked`] means the condition cannot come true on its own: a
//! dependency failed, was stopped, or (for `healthy`) ended without staying
//! up. The engine reports it and fails the dependent (`Event::Blocked`) so
//! that prodserver does not wait forever; an operator restarting the
//! dependency can start the dependent again.

use std::fmt;

use super::instance::Phase;
use crate::plan::{Condition, Dependency, ProcessId};

/// A dependency's instances, counted by what matters for gating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessView {
    pub instances: u32,
    /// Have a live process (Running or Stopping).
    pub up: u32,
    /// Running and ready.
    pub ready: u32,
    pub completed: u32,
    pub failed: u32,
    pub stopped: u32,
}

impl ProcessView {
    pub fn of<'a>(phases: impl IntoIterator<Item = &'a Phase>) -> ProcessView {
        let mut v = ProcessView::default();
        for p in phases {
            v.instances += 1;
            match p {
                Phase::Running { ready, .. } => {
                    v.up += 1;
                    if *ready {
                        v.ready += 1;
                    }
                }
                Phase::Stopping { .. } => v.up += 1,
                Phase::Completed => v.completed += 1,
                Phase::Failed { .. } => v.failed += 1,
                Phase::Stopped => v.stopped += 1,
                Phase::Pending
                | Phase::Spawning { .. }
                | Phase::Backoff { .. }
                | Phase::WaitingLock { .. } => {}
            }
        }
        v
    }
}

/// Why a dependency can never be satisfied on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockReason {
    Failed,
    Stopped,
    /// `healthy` was required but the dependency ended (exited 0, no
    /// restart).
    Ended,
}

impl fmt::Display for BlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlockReason::Failed => "failed",
            BlockReason::Stopped => "was stopped",
            BlockReason::Ended => "has exited and will not become healthy",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// The first unmet dependency, for `status` ("waiting for migrate to
    /// complete").
    Wait {
        dependency: ProcessId,
        condition: Condition,
    },
    Blocked {
        dependency: ProcessId,
        reason: BlockReason,
    },
}

/// One condition against one view.
fn check(condition: Condition, v: &ProcessView) -> Result<bool, BlockReason> {
    if v.failed > 0 {
        return Err(BlockReason::Failed);
    }
    if v.stopped > 0 {
        return Err(BlockReason::Stopped);
    }
    match condition {
        Condition::Started => Ok(v.up + v.completed >= v.instances),
        Condition::Healthy if v.completed > 0 => Err(BlockReason::Ended),
        Condition::Healthy => Ok(v.ready >= v.instances),
        Condition::Completed => Ok(v.completed >= v.instances),
    }
}

/// Whether all of `deps` hold. A blocked dependency wins over a waiting one
/// (waiting for the others would be pointless); otherwise the first unmet
/// dependency in declaration order is reported.
pub fn dependencies_met(deps: &[Dependency], view: impl Fn(ProcessId) -> ProcessView) -> Gate {
    let mut wait = None;
    for d in deps {
        match check(d.condition, &view(d.process)) {
            Err(reason) => {
                return Gate::Blocked {
                    dependency: d.process,
                    reason,
                }
            }
            Ok(false) if wait.is_none() => {
                wait = Some(Gate::Wait {
                    dependency: d.process,
                    condition: d.condition,
                });
            }
            Ok(_) => {}
        }
    }
    wait.unwrap_or(Gate::Open)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::instance::FailReason;
    use std::time::Instant;

    fn dep(process: ProcessId, condition: Condition) -> Dependency {
        Dependency { process, condition }
    }

    fn running(ready: bool) -> Phase {
        Phase::Running {
            pid: 10,
            since: Instant::now(),
            ready,
        }
    }

    fn failed() -> Phase {
        Phase::Failed {
            reason: FailReason::Blocked { reason: "x".into() },
        }
    }

    /// Gate for a single dependency whose instances are in `phases`.
    fn gate1(condition: Condition, phases: &[Phase]) -> Gate {
        dependencies_met(&[dep(0, condition)], |_| ProcessView::of(phases))
    }

    const WAIT: fn(Condition) -> Gate = |condition| Gate::Wait {
        dependency: 0,
        condition,
    };
    const BLOCKED: fn(BlockReason) -> Gate = |reason| Gate::Blocked {
        dependency: 0,
        reason,
    };

    #[test]
    fn view_counts() {
        let t = Instant::now();
        let phases = [
            Phase::Pending,
            running(false),
            running(true),
            Phase::Stopping {
                pid: 1,
                since: t,
                deadline: t,
                then: crate::supervisor::instance::AfterStop::Stay,
                stage: crate::supervisor::instance::StopStage::Signalled,
            },
            Phase::Completed,
            Phase::Stopped,
            failed(),
            Phase::Backoff { until: t },
        ];
        assert_eq!(
            ProcessView::of(&phases),
            ProcessView {
                instances: 8,
                up: 3,
                ready: 1,
                completed: 1,
                failed: 1,
                stopped: 1
            }
        );
    }

    #[test]
    fn started() {
        use Condition::Started as C;
        assert_eq!(gate1(C, &[Phase::Pending]), WAIT(C));
        assert_eq!(
            gate1(C, &[running(false), Phase::Spawning { stop: None }]),
            WAIT(C)
        );
        assert_eq!(gate1(C, &[running(false), running(true)]), Gate::Open);
        assert_eq!(gate1(C, &[Phase::Completed]), Gate::Open);
        // crashed and waiting to come back: wait for it
        assert_eq!(
            gate1(
                C,
                &[Phase::Backoff {
                    until: Instant::now()
                }]
            ),
            WAIT(C)
        );
        assert_eq!(gate1(C, &[failed()]), BLOCKED(BlockReason::Failed));
        assert_eq!(
            gate1(C, &[running(true), Phase::Stopped]),
            BLOCKED(BlockReason::Stopped)
        );
    }

    #[test]
    fn healthy() {
        use Condition::Healthy as C;
        assert_eq!(gate1(C, &[running(false)]), WAIT(C));
        assert_eq!(gate1(C, &[running(true), running(false)]), WAIT(C));
        assert_eq!(gate1(C, &[running(true), running(true)]), Gate::Open);
        assert_eq!(gate1(C, &[Phase::Completed]), BLOCKED(BlockReason::Ended));
        assert_eq!(
            gate1(C, &[failed(), running(true)]),
            BLOCKED(BlockReason::Failed)
        );
    }

    #[test]
    fn completed() {
        use Condition::Completed as C;
        assert_eq!(gate1(C, &[Phase::Pending]), WAIT(C));
        assert_eq!(gate1(C, &[running(true)]), WAIT(C));
        // a oneshot retrying through backoff: still hope
        assert_eq!(
            gate1(
                C,
                &[Phase::Backoff {
                    until: Instant::now()
                }]
            ),
            WAIT(C)
        );
        assert_eq!(gate1(C, &[Phase::Completed]), Gate::Open);
        assert_eq!(gate1(C, &[Phase::Completed, running(true)]), WAIT(C));
        assert_eq!(gate1(C, &[failed()]), BLOCKED(BlockReason::Failed));
        assert_eq!(gate1(C, &[Phase::Stopped]), BLOCKED(BlockReason::Stopped));
    }

    #[test]
    fn no_deps_is_open() {
        assert_eq!(dependencies_met(&[], |_| unreachable!()), Gate::Open);
    }

    #[test]
    fn several_deps_blocked_wins_then_first_wait() {
        let views = [
            ProcessView::of(&[running(false)]),   // 0: started, not healthy
            ProcessView::of(&[Phase::Pending]),   // 1: nothing
            ProcessView::of(&[failed()]),         // 2: failed
            ProcessView::of(&[Phase::Completed]), // 3: done
        ];
        let v = |p: ProcessId| views[p];
        let deps = [
            dep(0, Condition::Healthy),
            dep(1, Condition::Started),
            dep(2, Condition::Completed),
        ];
        assert_eq!(
            dependencies_met(&deps, v),
            Gate::Blocked {
                dependency: 2,
                reason: BlockReason::Failed
            }
        );
        let deps = [
            dep(3, Condition::Completed),
            dep(1, Condition::Started),
            dep(0, Condition::Healthy),
        ];
        assert_eq!(
            dependencies_met(&deps, v),
            Gate::Wait {
                dependency: 1,
                condition: Condition::Started
            }
        );
        let deps = [dep(3, Condition::Completed), dep(0, Condition::Started)];
        assert_eq!(dependencies_met(&deps, v), Gate::Open);
    }
}
