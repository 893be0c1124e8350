//! prodserver's exit codes (the README's table mirrors this). A failure
//! to start maps to one through [`crate::error::Error::exit_code`] only.

/// Everything succeeded, or everything stopped on request.
pub const OK: i32 = 0;
/// A supervised process failed: a oneshot exited non-zero, a critical
/// process failed permanently, or a process that ended on its own failed.
pub const PROCESS_FAILED: i32 = 1;
/// Bad usage or an invalid config file: nothing was started.
pub const CONFIG: i32 = 2;
/// prodserver could not set itself up (runtime directory, signals, keeper).
pub const INTERNAL: i32 = 3;
/// A command for a running supervisor found none for this config (or may
/// not talk to it).
pub const NOT_RUNNING: i32 = 4;
