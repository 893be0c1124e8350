//! The thin OS layer: the only place in the crate with `unsafe`.

#![warn(clippy::undocumented_unsafe_blocks)]

pub mod lock;
pub mod signals;
pub mod spawn;

pub use lock::{ensure_runtime_dir, runtime_dir, try_lock, LockOutcome, SingletonLock};
pub use signals::{ignore_sigpipe, kill_group, send, signal_by_name, signal_group, signal_name};
pub use spawn::{
    is_systemd_handoff_var, resolve_credentials, scrub_inherited_env, spawn, Credentials,
    SpawnError, SpawnRequest, Spawned,
};
