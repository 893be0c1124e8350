//! Rolling a process's instances one at a time: a pure machine.
//!
//! Restart-on-request, recycling, reload of a changed process and dev
//! reloads all go through a rollout, so that capacity never drops below
//! `instances - 1` and the next instance is touched only once the previous
//! replacement is ready.
//!
//! Two modes:
//! - **replace** (default): the old instance stops, then the new one
//!   starts (ports never clash); the step ends when the new one is ready.
//! - **surge**: the new one starts beside the old (on a held socket), and
//!   the old one gets its graceful stop once the new one is ready; the
//!   step ends when the old one has exited.
//!
//! The machine knows instance numbers only; the core turns its steps into
//! instance events and feeds back what happened.

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Replace,
    Surge,
}

/// What the core must do for the rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Replace: stop instance `n` gracefully, then start it again.
    Restart(u32),
    /// Surge: start a successor of instance `n` beside it.
    StartSuccessor(u32),
    /// Surge: the successor of `n` is ready: stop its predecessor.
    RetirePredecessor(u32),
    /// Every instance was rolled.
    Done,
    /// A replacement failed: the remaining instances are left alone.
    Aborted { instance: u32, reason: String },
}

/// What happened to the instance being rolled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The replacement (or successor) of `n` is ready.
    Ready(u32),
    /// The predecessor of `n` has exited (surge).
    Retired(u32),
    /// The replacement of `n` failed (crashed before ready, start timeout,
    /// cannot be executed).
    Failed(u32, String),
}

/// What a rollout waits for, about instance `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// `n`'s replacement to be ready (replace).
    Replacement(u32),
    /// `n`'s successor to be ready (surge).
    Successor(u32),
    /// `n` to have exited (surge).
    Retirement(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Waiting for `n`'s replacement to be ready.
    Replacing(u32),
    /// Surge: waiting for `n`'s successor to be ready.
    Surging(u32),
    /// Surge: waiting for `n`'s predecessor to exit.
    Retiring(u32),
    Finished,
}

#[derive(Debug, Clone)]
pub struct Rollout {
    mode: Mode,
    todo: VecDeque<u32>,
    phase: Phase,
}

impl Rollout {
    /// A rollout over `instances`, in order; returns it with its first
    /// step.
    pub fn start(mode: Mode, instances: impl IntoIterator<Item = u32>) -> (Rollout, Step) {
        let mut r = Rollout {
            mode,
            todo: instances.into_iter().collect(),
            phase: Phase::Finished,
        };
        let step = r.next();
        (r, step)
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The instance being rolled now, if any.
    pub fn current(&self) -> Option<u32> {
        match self.phase {
            Phase::Replacing(n) | Phase::Surging(n) | Phase::Retiring(n) => Some(n),
            Phase::Finished => None,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// What the rollout waits for now.
    pub fn waiting_for(&self) -> Option<Waiting> {
        match self.phase {
            Phase::Replacing(n) => Some(Waiting::Replacement(n)),
            Phase::Surging(n) => Some(Waiting::Successor(n)),
            Phase::Retiring(n) => Some(Waiting::Retirement(n)),
            Phase::Finished => None,
        }
    }

    /// Instances still waiting their turn (a scale-down drops them).
    pub fn forget(&mut self, instance: u32) {
        self.todo.retain(|&n| n != instance);
    }

    /// Adds `instance` to the end of the queue (a recycle that falls while
    /// the process is rolling waits its turn); no-op if it is queued
    /// already or being rolled now.
    pub fn enqueue(&mut self, instance: u32) {
        if self.current() != Some(instance) && !self.todo.contains(&instance) {
            self.todo.push_back(instance);
        }
    }

    /// Being rolled now or waiting its turn.
    pub fn includes(&self, instance: u32) -> bool {
        self.current() == Some(instance) || self.todo.contains(&instance)
    }

    fn next(&mut self) -> Step {
        match self.todo.pop_front() {
            None => {
                self.phase = Phase::Finished;
                Step::Done
            }
            Some(n) => match self.mode {
                Mode::Replace => {
                    self.phase = Phase::Replacing(n);
                    Step::Restart(n)
                }
                Mode::Surge => {
                    self.phase = Phase::Surging(n);
                    Step::StartSuccessor(n)
                }
            },
        }
    }

    /// Feeds what happened; returns the next step, or `None` when the
    /// outcome is not the one awaited (another instance's news, a late
    /// report).
    pub fn on(&mut self, outcome: Outcome) -> Option<Step> {
        match (&self.phase, outcome) {
            (Phase::Replacing(n), Outcome::Ready(m)) if *n == m => Some(self.next()),
            (Phase::Surging(n), Outcome::Ready(m)) if *n == m => {
                self.phase = Phase::Retiring(m);
                Some(Step::RetirePredecessor(m))
            }
            (Phase::Retiring(n), Outcome::Retired(m)) if *n == m => Some(self.next()),
            (Phase::Replacing(n) | Phase::Surging(n), Outcome::Failed(m, reason)) if *n == m => {
                self.todo.clear();
                self.phase = Phase::Finished;
                Some(Step::Aborted {
                    instance: m,
                    reason,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_rolls_one_at_a_time_waiting_for_readiness() {
        let (mut r, first) = Rollout::start(Mode::Replace, [1, 2, 3]);
        assert_eq!(first, Step::Restart(1));
        // News about others, or a retirement, moves nothing.
        assert_eq!(r.on(Outcome::Ready(2)), None);
        assert_eq!(r.on(Outcome::Retired(1)), None);
        assert_eq!(r.current(), Some(1));
        assert_eq!(r.on(Outcome::Ready(1)), Some(Step::Restart(2)));
        assert_eq!(r.on(Outcome::Ready(2)), Some(Step::Restart(3)));
        assert_eq!(r.on(Outcome::Ready(3)), Some(Step::Done));
        assert!(r.is_finished());
        assert_eq!(r.on(Outcome::Ready(3)), None);
    }

    #[test]
    fn surge_starts_the_successor_then_retires_the_predecessor() {
        let (mut r, first) = Rollout::start(Mode::Surge, [1, 2]);
        assert_eq!(first, Step::StartSuccessor(1));
        assert_eq!(r.on(Outcome::Retired(1)), None, "not before ready");
        assert_eq!(r.on(Outcome::Ready(1)), Some(Step::RetirePredecessor(1)));
        assert_eq!(r.on(Outcome::Ready(2)), None);
        assert_eq!(r.on(Outcome::Retired(1)), Some(Step::StartSuccessor(2)));
        assert_eq!(r.on(Outcome::Ready(2)), Some(Step::RetirePredecessor(2)));
        assert_eq!(r.on(Outcome::Retired(2)), Some(Step::Done));
    }

    #[test]
    fn a_failed_replacement_aborts_and_leaves_the_rest_alone() {
        let (mut r, _) = Rollout::start(Mode::Replace, [1, 2, 3]);
        assert_eq!(r.on(Outcome::Ready(1)), Some(Step::Restart(2)));
        assert_eq!(
            r.on(Outcome::Failed(2, "exited with code 3".into())),
            Some(Step::Aborted {
                instance: 2,
                reason: "exited with code 3".into()
            })
        );
        assert!(r.is_finished());
        assert_eq!(r.on(Outcome::Ready(3)), None);
    }

    #[test]
    fn enqueued_instances_wait_their_turn_once() {
        let (mut r, _) = Rollout::start(Mode::Replace, [1]);
        r.enqueue(1);
        r.enqueue(3);
        r.enqueue(3);
        assert!(r.includes(1) && r.includes(3) && !r.includes(2));
        assert_eq!(r.on(Outcome::Ready(1)), Some(Step::Restart(3)));
        assert_eq!(r.on(Outcome::Ready(3)), Some(Step::Done));
    }

    #[test]
    fn an_empty_rollout_is_done_at_once_and_scale_down_drops_waiting_ones() {
        let (r, first) = Rollout::start(Mode::Replace, []);
        assert_eq!(first, Step::Done);
        assert!(r.is_finished());
        let (mut r, _) = Rollout::start(Mode::Replace, [1, 2, 3]);
        r.forget(2);
        assert_eq!(r.on(Outcome::Ready(1)), Some(Step::Restart(3)));
    }
}
