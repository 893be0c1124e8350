//! The supervision engine's pure core.
//!
//! Theory of operation: every supervised instance is a state machine
//! ([`instance::Instance`]) that takes events (spawned, exited, ready, timer,
//! stop, restart, ...) together with the current time and returns the actions
//! the caller must carry out (spawn, signal, kill the group, arm a timer,
//! log a note). Nothing in this module performs I/O, reads a clock or draws a
//! random number: time is passed in as an [`std::time::Instant`] and jitter as
//! a number in `[0, 1)`, so restart pacing, stop order and dependency gating
//! are unit-tested deterministically without processes.
//!
//! The impure event loop (`engine.rs`, separate) owns all instances, applies
//! their actions to the OS, and feeds observations back as events. It uses:
//! - [`order`] to decide which processes start together and in which waves
//!   they stop (reverse dependencies, then producers before consumers);
//! - [`gate`] to decide whether a pending process may start yet;
//! - [`summary`] to decide when prodserver is done and with which exit code.

pub mod backoff;
pub mod core;
pub mod engine;
pub mod gate;
pub mod instance;
mod observe;
pub mod order;
pub mod orphans;
pub mod recycle;
pub mod reload;
pub mod rollout;
mod sampler;
pub mod signal_policy;
pub mod sockets;
pub mod summary;
