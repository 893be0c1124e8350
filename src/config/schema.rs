//! The keys each table of `prodserver.toml` accepts, and their defaults.
//! The README's config reference mirrors this file.

use std::time::Duration;

pub const TOP: &[&str] = &["prodserver", "processes", "dev"];

pub const PROJECT: &[&str] = &[
    "name",
    "env_file",
    "env",
    "stop_timeout",
    "queues",
    "kill_timeout",
];

pub const PROCESS: &[&str] = &[
    "backend",
    "command",
    "app",
    "args",
    "program",
    "python",
    "queues",
    "concurrency",
    "instances",
    "oneshot",
    "singleton",
    "env",
    "env_file",
    "cwd",
    "restart",
    "stop_signal",
    "stop_timeout",
    "escalate_signal",
    "kill_timeout",
    "watch",
    "critical",
    "depends_on",
    "user",
    "group",
    "backoff",
    "backoff_max",
    "backoff_reset",
    "max_restarts",
    "restart_window",
    "health",
    "max_memory_per_child",
    "max_tasks_per_child",
    "memory_metric",
    "memory_interval",
    "memory_samples",
    "rollout",
    "memory_scope",
    "celery_integration",
    "dev",
    "listen",
    "hold_socket",
    "backlog",
    "reuse_port",
];

pub const HEALTH: &[&str] = &[
    "http",
    "tcp",
    "exec",
    "notify",
    "watchdog",
    "log",
    "interval",
    "timeout",
    "retries",
    "start_period",
    "start_timeout",
    "status",
    "host",
    "path",
];

pub const DEV: &[&str] = &["watch", "ignore", "debounce"];
pub const PROCESS_DEV: &[&str] = &["watch", "ignore", "env", "enabled"];

pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Between the escalation signal and SIGKILL: Celery's cold shutdown
/// (cancel the tasks, join the pool, restore the messages) took about 3 s
/// in the end-to-end test; the margin covers a loaded host.
pub const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
pub const DEFAULT_BACKOFF_RESET: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_RESTARTS: u32 = 10;
pub const DEFAULT_RESTART_WINDOW: Duration = Duration::from_secs(300);

pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_HEALTH_RETRIES: u32 = 3;
pub const DEFAULT_START_PERIOD: Duration = Duration::ZERO;
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);

/// PSS: a prefork server's children share their parent's pages
/// copy-on-write, and RSS counts every shared page once per process.
pub const DEFAULT_MEMORY_METRIC: crate::plan::MemoryMetric = crate::plan::MemoryMetric::Pss;
/// With [`DEFAULT_MEMORY_SAMPLES`], at most 750 ms from crossing the limit
/// to the recycle starting (the target is 1 s).
pub const DEFAULT_MEMORY_INTERVAL: Duration = Duration::from_millis(250);
pub const DEFAULT_MEMORY_SAMPLES: u32 = 3;
/// Each sample walks the instance's process tree in `/proc`: CPU spent
/// for every instance with a limit, so no faster than this.
pub const MIN_MEMORY_INTERVAL: Duration = Duration::from_millis(50);
/// Slower than this, a leak can grow unwatched for minutes between
/// samples; the limit would no longer be a limit.
pub const MAX_MEMORY_INTERVAL: Duration = Duration::from_secs(60);
/// More consecutive samples than this is a delay, not debouncing: raise
/// `memory_interval` instead.
pub const MAX_MEMORY_SAMPLES: u32 = 100;

pub const DEFAULT_DEV_DEBOUNCE: Duration = Duration::from_millis(200);

/// Celery's queue when a worker is given no `-Q` (`task_default_queue`).
pub const CELERY_DEFAULT_QUEUE: &str = "celery";

pub const EXAMPLE_PROCESS: &str =
    "[processes.web]\nbackend = \"gunicorn\"\napp = \"shop.wsgi:application\"";
