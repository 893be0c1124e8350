//! The validated model of `prodserver.toml`.
//!
//! `config/` turns the raw TOML into a [`Plan`]; everything downstream (the
//! engine, `check`, the OS layer) reads only this. Every default has been
//! applied and every cross-reference checked, so there are no `Option`s here
//! that a consumer would have to second-guess: an `Option` in this module
//! means "the user did not ask for this feature", never "use a default".

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::backend::{DefaultReadiness, Listen};

/// A whole project, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The config file this plan came from (absolute).
    pub config_path: PathBuf,
    /// The config file's folder: relative paths were resolved against it.
    pub root: PathBuf,
    /// Project name: keys lock files and shows in logs.
    pub name: String,
    /// Queues the project routes tasks to (`[prodserver] queues`), if declared.
    pub queues: Option<Vec<String>>,
    /// Processes in declaration order. Indexes into this vector are the
    /// process ids used everywhere else (`ProcessId`).
    pub processes: Vec<ProcessSpec>,
    /// `[dev]` settings.
    pub dev: DevSettings,
}

/// Index of a process in [`Plan::processes`].
pub type ProcessId = usize;

/// One `[processes.NAME]` entry, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSpec {
    pub name: String,
    pub backend: BackendKind,
    /// The resolved command line. `argv[0]` is the program as written or
    /// defaulted (a bare name is looked up on the child's `PATH` at spawn; a
    /// name with a slash was resolved against the config folder). The literal
    /// text `{instance}` in any element is replaced by the instance number
    /// (1-based): see [`ProcessSpec::for_instance`].
    pub argv: Vec<String>,
    /// Environment this process adds on top of the supervisor's, already
    /// merged in precedence order: `[prodserver].env`, the global env_file,
    /// the process env_file, the process `env`, then backend additions.
    /// `PRODSERVER_PROCESS`/`PRODSERVER_INSTANCE` are added at spawn.
    pub env: BTreeMap<String, String>,
    /// Working directory (absolute).
    pub cwd: PathBuf,
    pub oneshot: bool,
    /// Supervised copies of this process (>= 1).
    pub instances: u32,
    /// Takes a host-wide lock so that only one copy runs (celery-beat always).
    pub singleton: bool,
    pub restart: RestartPolicy,
    pub backoff: Backoff,
    /// 0 = unlimited.
    pub max_restarts: u32,
    pub restart_window: Duration,
    /// Signal number (e.g. `libc::SIGTERM`) sent to the main pid on stop.
    pub stop_signal: i32,
    pub stop_timeout: Duration,
    /// Sent to the main pid when `stop_timeout` has passed, before the
    /// group is SIGKILLed (Celery's cold shutdown puts unacknowledged
    /// messages back on the broker); `None` goes straight to SIGKILL.
    pub escalate_signal: Option<i32>,
    /// How long after `escalate_signal` the group is SIGKILLed.
    pub kill_timeout: Duration,
    /// A permanent failure stops the whole supervisor (exit 1).
    pub critical: bool,
    pub depends_on: Vec<Dependency>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub health: Option<HealthSpec>,
    pub limits: Limits,
    pub rollout: RolloutMode,
    /// Celery-specific view, for queue routing checks and the integration.
    pub celery: Option<CeleryInfo>,
    /// Globs watched by `prodserver dev` (relative to `root`).
    pub watch: Vec<String>,
    pub dev: ProcessDev,
    /// Every address the backend binds (the first is its default probe's),
    /// from its typed launch: nothing downstream reads them from argv.
    pub listen: Vec<Listen>,
    /// What readiness means without a `health` block, from the backend.
    pub readiness: DefaultReadiness,
    /// Whether prodserver binds `listen` itself and hands the sockets to
    /// every generation.
    pub holding: Holding,
}

/// Whether prodserver holds a process's listening sockets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Holding {
    /// The process binds no address prodserver knows of.
    #[default]
    Nothing,
    /// prodserver binds every address of `listen` once; each generation
    /// inherits the sockets, passed this way.
    Held {
        passing: crate::backend::held::Passing,
        backlog: u32,
        reuse_port: bool,
    },
    /// The server binds its own sockets; why (`check` says it).
    Own { why: String },
}

/// listen(2)'s queue for a held socket when `backlog` is not written:
/// gunicorn's own default.
pub const DEFAULT_BACKLOG: u32 = 2048;

impl ProcessSpec {
    /// How a restart, recycle, reload or dev reload replaces an instance.
    /// A held socket makes surge the default: the new generation accepts
    /// on the same socket while the old one still does, so nobody is
    /// refused. Not where an address depends on `{instance}` (a surge's
    /// successor runs under another number, so another address), nor for
    /// singletons and oneshots, which never run twice.
    pub fn restart_mode(&self) -> RolloutMode {
        match self.rollout {
            RolloutMode::Surge => RolloutMode::Surge,
            RolloutMode::Replace if self.surges_on_held_socket() => RolloutMode::Surge,
            RolloutMode::Replace => RolloutMode::Replace,
        }
    }

    /// Whether a held socket lets this process surge (see [`Self::restart_mode`]).
    pub fn surges_on_held_socket(&self) -> bool {
        matches!(self.holding, Holding::Held { .. })
            && !self.oneshot
            && !self.singleton
            && !self.listen.iter().any(|l| match l {
                Listen::Tcp { host, port, .. } => {
                    host.contains("{instance}") || port.contains("{instance}")
                }
                Listen::Unix(path) => path.contains("{instance}"),
            })
    }
}

impl ProcessSpec {
    /// This process as instance `n` runs it: the literal `{instance}` in
    /// argv, env values and health probes becomes `n`, so instances can
    /// bind their own ports (`bind = "127.0.0.1:800{instance}"`) and be
    /// probed there.
    pub fn for_instance(&self, number: u32) -> ProcessSpec {
        let n = number.to_string();
        let x = |text: &str| text.replace("{instance}", &n);
        let mut spec = self.clone();
        let launch = crate::backend::Launch {
            argv: std::mem::take(&mut spec.argv),
            env: std::mem::take(&mut spec.env),
            listen: std::mem::take(&mut spec.listen),
            readiness: std::mem::take(&mut spec.readiness),
            celery: None,
        }
        .for_instance(number);
        spec.argv = launch.argv;
        spec.env = launch.env;
        spec.listen = launch.listen;
        spec.readiness = launch.readiness;
        if let Some(h) = &mut spec.health {
            h.path = h.path.as_deref().map(x);
            h.probe = h.probe.as_ref().map(|probe| probe.for_instance(&n));
        }
        spec
    }
}

impl Probe {
    /// The probe of instance `n`: `{instance}` in its URL, Host header,
    /// address or command becomes `n`.
    pub fn for_instance(&self, n: &str) -> Probe {
        let x = |text: &str| text.replace("{instance}", n);
        match self {
            Probe::Http { url, status, host } => Probe::Http {
                url: x(url),
                status: *status,
                host: host.as_deref().map(x),
            },
            Probe::Tcp { address } => Probe::Tcp {
                address: x(address),
            },
            Probe::Exec { argv } => Probe::Exec {
                argv: argv.iter().map(|a| x(a)).collect(),
            },
            other => other.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Command,
    Gunicorn,
    Uvicorn,
    Granian,
    Waitress,
    Daphne,
    Flower,
    CeleryWorker,
    CeleryBeat,
    DjangoQ2,
    DjangoTasks,
    DjangoRunserver,
}

impl BackendKind {
    /// Every backend, in the order the README's backend table lists them.
    pub const ALL: [BackendKind; 12] = [
        BackendKind::Command,
        BackendKind::Gunicorn,
        BackendKind::Uvicorn,
        BackendKind::Granian,
        BackendKind::Waitress,
        BackendKind::Daphne,
        BackendKind::CeleryWorker,
        BackendKind::CeleryBeat,
        BackendKind::Flower,
        BackendKind::DjangoQ2,
        BackendKind::DjangoTasks,
        BackendKind::DjangoRunserver,
    ];

    /// The name written in `backend = "..."`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Command => "command",
            BackendKind::Gunicorn => "gunicorn",
            BackendKind::Uvicorn => "uvicorn",
            BackendKind::Granian => "granian",
            BackendKind::Waitress => "waitress",
            BackendKind::Daphne => "daphne",
            BackendKind::Flower => "flower",
            BackendKind::CeleryWorker => "celery-worker",
            BackendKind::CeleryBeat => "celery-beat",
            BackendKind::DjangoQ2 => "django-q2",
            BackendKind::DjangoTasks => "django-tasks",
            BackendKind::DjangoRunserver => "django-runserver",
        }
    }

    pub fn from_name(name: &str) -> Option<BackendKind> {
        BackendKind::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Stop order when no dependencies say otherwise: producers (web, beat)
    /// stop before consumers (workers) so workers drain what was produced.
    /// Lower tiers stop first.
    pub fn default_stop_tier(self) -> u8 {
        match self {
            BackendKind::CeleryBeat => 0,
            BackendKind::Gunicorn
            | BackendKind::Uvicorn
            | BackendKind::Granian
            | BackendKind::Waitress
            | BackendKind::Daphne
            | BackendKind::DjangoRunserver
            | BackendKind::Flower => 0,
            BackendKind::Command => 1,
            BackendKind::CeleryWorker | BackendKind::DjangoQ2 | BackendKind::DjangoTasks => 2,
        }
    }
}

/// How a running instance is replaced (restart, recycle, reload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutMode {
    /// The old instance exits, then the new one starts: never two at once.
    Replace,
    /// The new one starts beside the old and becomes ready, then the old
    /// one drains: capacity never drops, memory briefly doubles.
    Surge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn name(self) -> &'static str {
        match self {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        }
    }
}

/// Restart delay: starts at `initial`, doubles up to `max` (with jitter),
/// and resets once an instance has stayed up for `reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub reset: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub process: ProcessId,
    pub condition: Condition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The dependency's instances have been spawned.
    Started,
    /// The dependency's instances passed their readiness check.
    Healthy,
    /// The dependency (a oneshot) exited 0.
    Completed,
}

impl Condition {
    pub const ALL: [Condition; 3] = [Condition::Started, Condition::Healthy, Condition::Completed];
    pub fn name(self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Healthy => "healthy",
            Condition::Completed => "completed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthSpec {
    pub probe: Option<Probe>,
    /// `path = "/healthz/"`: probe this path on the web backend's own bind
    /// address (its default probe), requiring 2xx/3xx, with liveness.
    pub path: Option<String>,
    /// The child must send `WATCHDOG=1` at least this often.
    pub watchdog: Option<Duration>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failures before the instance counts as unhealthy.
    pub retries: u32,
    /// Failures don't count while the instance starts.
    pub start_period: Duration,
    /// Readiness must arrive within this, or the instance is restarted.
    pub start_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    Http {
        url: String,
        /// Expected status; `None` means any 2xx/3xx.
        status: Option<u16>,
        host: Option<String>,
    },
    Tcp {
        address: String,
    },
    Exec {
        argv: Vec<String>,
    },
    Notify,
    Log {
        pattern: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryMetric {
    Rss,
    Pss,
    Uss,
}

impl MemoryMetric {
    pub fn name(self) -> &'static str {
        match self {
            MemoryMetric::Rss => "rss",
            MemoryMetric::Pss => "pss",
            MemoryMetric::Uss => "uss",
        }
    }
}

/// What `max_memory_per_child` is compared with, and what is recycled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryScope {
    /// The instance's whole process tree; the instance is recycled.
    Instance,
    /// Each direct child of the main pid (a gunicorn worker); only that
    /// child gets SIGTERM, and the server replaces it.
    Child,
}

impl MemoryScope {
    pub fn name(self) -> &'static str {
        match self {
            MemoryScope::Instance => "instance",
            MemoryScope::Child => "child",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Bytes.
    pub max_memory_per_child: Option<u64>,
    /// Finished tasks (TASKS_DONE) per incarnation before prodserver
    /// recycles the instance. `None` as well when the key was translated
    /// into a web server's own per-worker request limit: then the server
    /// recycles and prodserver counts nothing (see `server_recycling`).
    pub max_tasks_per_child: Option<u64>,
    /// `max_tasks_per_child` of a web server, as the server's own flags
    /// were added to argv: the sentence `check` shows.
    pub server_recycling: Option<String>,
    pub memory_metric: MemoryMetric,
    pub memory_interval: Duration,
    /// Consecutive samples over the limit before recycling.
    pub memory_samples: u32,
    pub memory_scope: MemoryScope,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CeleryInfo {
    pub app: String,
    pub queues: Vec<String>,
    /// Load prodserver's embedded Celery integration (`--include`).
    pub integration: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DevSettings {
    /// Extra globs watched for every process.
    pub watch: Vec<String>,
    /// Globs never watched.
    pub ignore: Vec<String>,
    pub debounce: Duration,
}

/// `[processes.NAME.dev]`: overrides that apply under `prodserver dev` only.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcessDev {
    pub watch: Option<Vec<String>>,
    pub ignore: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Don't run this process under `dev`.
    pub disabled: bool,
}
