//! The thin OS layer: the only place in the crate with `unsafe`.
//!
//! # Theory of operation
//!
//! prodserver promises that no process outlives it and that every exit is
//! observed. Three mechanisms, each covering what the others cannot:
//!
//! - **Process groups** ([`spawn()`]): every instance starts in a group of its
//!   own (pgid = pid). Its workers, shell wrappers and their children stay
//!   in that group, so a stop signals the main pid and, after the grace
//!   period, SIGKILLs the whole group ([`kill_group`]): no grandchild is
//!   left holding a port.
//! - **The keeper** ([`start_keeper`]): a SIGKILLed supervisor runs no
//!   cleanup, and PR_SET_PDEATHSIG (which every child also gets) only
//!   reaches direct children. A tiny process forked before the runtime
//!   starts holds the list of live groups and SIGKILLs them all when its
//!   socket to prodserver reaches end-of-file.
//! - **Subreaper** ([`set_child_subreaper`], [`reap_orphans`]): a
//!   descendant whose parent exits is re-parented to us rather than to
//!   PID 1, so its zombie is reaped and a live one killed on stop. Reaping
//!   is by pid, after a /proc scan: `waitpid(-1)` would steal tokio's
//!   exit statuses. As a container's PID 1 the same scan applies.
//!
//! Out of reach: a daemon that calls setsid() (leaving our group) AND
//! outlives its parent while prodserver itself is SIGKILLed, so that no
//! subreaper is left to adopt it. Containing those needs a cgroup per
//! instance, which a later cgroup mode can add.
//!
//! Each child also starts with an empty signal mask, default dispositions,
//! no inherited descriptors beyond 0-2, and exactly the environment the
//! caller built ([`scrub_inherited_env`] removes systemd's hand-off
//! variables).

#![warn(clippy::undocumented_unsafe_blocks)]

pub mod keeper;
pub mod limits;
pub mod listen;
pub mod lock;
pub mod memory;
pub mod proc;
pub mod reap;
pub mod signals;
pub mod spawn;
pub mod terminal;

pub use keeper::{start_keeper, start_keeper_among_threads, Keeper, KeeperExit, KeeperGone};
pub use limits::{nofile, raise_nofile, NofileLimits};
pub use lock::{
    ensure_own_dir, ensure_runtime_dir, runtime_dir, share_runtime_dir, try_lock, LockOutcome,
    SingletonLock,
};
pub use memory::{is_child_of, sample_tree, ChildSample, Sampler, TreeSample};
pub use reap::{live_orphans, reap_orphans, set_child_subreaper};
pub use signals::{ignore_sigpipe, kill_group, send, signal_by_name, signal_group, signal_name};
pub use spawn::{
    is_systemd_handoff_var, resolve_credentials, scrub_inherited_env, spawn, spawn_with,
    Credentials, PassFds, SpawnError, SpawnRequest, Spawned,
};
pub use terminal::Terminal;
