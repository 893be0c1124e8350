//! prodserver: one file, one binary, a whole Django + Celery process set.
//!
//! Data flows one way: `config` → `plan` → `supervisor` (pure engine) → `os`;
//! observations (exits, output, signals) flow back into the engine as events.

pub mod backend;
pub mod check;
pub mod cli;
pub mod config;
pub mod exit;
pub mod logs;
pub mod os;
pub mod plan;
pub mod supervisor;
