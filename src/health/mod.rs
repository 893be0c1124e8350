//! Health checks: readiness and liveness of each instance.
//!
//! Building blocks the engine wires together:
//! - [`probe`]: http, tcp and exec probes, each bounded by its timeout.
//! - [`tracker`]: the pure state machine that turns probe results,
//!   `READY=1`, `WATCHDOG=1` and time into verdicts.

pub mod log;
pub mod probe;
pub mod tracker;

pub use tracker::{Readiness, Settings, Tracker, Verdict};
