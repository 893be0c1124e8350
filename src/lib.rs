//! prodserver: one file, one binary, a whole Django + Celery process set.
//!
//! Data flows one way: `config` → `plan` → `supervisor` (pure engine) → `os`;
//! observations (exits, output, signals) flow back into the engine as events.

#![deny(unsafe_code)]

pub mod backend;
pub mod celery;
pub mod check;
pub mod cli;
pub mod completions;
pub mod config;
pub mod control;
pub mod dev;
pub mod embedded;
pub mod error;
pub mod exit;
pub mod export;
pub mod graph;
pub mod gunicorn;
pub mod health;
pub mod import;
pub mod init;
pub mod logs;
pub mod notify;
#[allow(unsafe_code)] // the thin OS layer is the only place with `unsafe`
pub mod os;
pub mod plan;
pub mod resolve;
pub mod signals;
pub mod smoke;
pub mod start;
pub mod supervisor;
pub mod systemd;
pub mod units;
