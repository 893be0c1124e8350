//! `prodserver start`: everything between a validated plan and the event
//! loop. The order matters: the keeper is forked while prodserver is still
//! single-threaded, before the log writer thread and the runtime exist.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::read_suggest;
use crate::control;
use crate::error::Error;
use crate::logs::{self, Format, Logs};
use crate::notify;
use crate::os;
use crate::plan::Plan;
use crate::resolve::ResolvedPlan;
use crate::supervisor::engine::{Engine, RunOptions};
use crate::supervisor::order;
use crate::systemd;

pub struct Settings {
    /// Processes named on the command line (empty: all).
    pub names: Vec<String>,
    pub no_color: bool,
    pub json: bool,
    /// `--timestamps`: text lines start with their time.
    pub timestamps: bool,
    pub env: BTreeMap<String, String>,
    pub runtime_dir: PathBuf,
    /// `prodserver dev`: watch the tree and restart what a change concerns.
    pub dev: Option<crate::dev::Options>,
}

/// Runs the supervisor; `Ok` carries the exit code of the run (its
/// verdict), `Err` why nothing could be started.
pub fn run(plan: Plan, resolved: ResolvedPlan, settings: Settings) -> Result<i32, Error> {
    let prepared = prepare(
        &plan,
        &resolved,
        &settings.names,
        &settings.env,
        &settings.runtime_dir,
        settings.dev.is_some(),
    )?;
    let selected = prepared.selected.clone();

    // journald stamps and prioritises lines itself: ours would be doubled
    // (a time) or lost (colours), while `<N>` prefixes carry the level.
    let journal = !settings.json
        && systemd::journal::stdout_is_journal(
            settings.env.get("JOURNAL_STREAM").map(String::as_str),
        );
    let format = if settings.json {
        Format::Json
    } else if journal {
        Format::Text { color: false }
    } else {
        Format::Text {
            color: logs::use_color(
                settings.no_color,
                settings.env.get("NO_COLOR").map(String::as_str),
                std::io::stdout().is_terminal(),
            ),
        }
    };
    let log_settings = logs::Settings {
        format,
        prefix_width: prefix_width(&plan, &selected),
        timestamps: settings.timestamps && !journal,
        priorities: journal,
    };
    let (logs, writer) = Logs::start_with(log_settings, Box::new(std::io::stdout()))
        .map_err(|e| Error::setup("start the log writer", e))?;

    let runtime = runtime()?;
    let notify_dir = prepare_children(&plan, &resolved, &selected, &settings.runtime_dir, &logs)?;
    if let Some(warning) = systemd::killmode::check(&settings.env) {
        logs.toned_project_event(&format!("warning: {warning}"), logs::Tone::Warn);
    }
    // Our own NOTIFY_SOCKET and watchdog, read before the environment is
    // scrubbed of them for the children.
    let link = match systemd::Link::from_env(&settings.env, Instant::now()) {
        systemd::Setup::None => None,
        systemd::Setup::Link(link, watchdog) => {
            match watchdog {
                Ok(Some(w)) => logs.project_event(&format!(
                    "systemd watchdog: pinging every {} (WATCHDOG_USEC={})",
                    crate::config::units::format_duration(w / 2),
                    w.as_micros()
                )),
                Ok(None) => {}
                Err(why) => logs.toned_project_event(&format!("warning: {why}"), logs::Tone::Warn),
            }
            Some(link)
        }
        systemd::Setup::Broken(why) => {
            logs.toned_project_event(&format!("warning: {why}"), logs::Tone::Warn);
            None
        }
    };
    // Before the first spawn: what the processes write at start is then
    // compared with the tree as it was.
    let dev = match &settings.dev {
        Some(options) => Some(
            crate::dev::prepare(&plan, &selected, &settings.runtime_dir, options)
                .map_err(|e| Error::setup("watch the project", std::io::Error::other(e)))?,
        ),
        None => None,
    };
    let opts = RunOptions {
        selected,
        base_env: os::scrub_inherited_env(settings.env),
        runtime_dir: settings.runtime_dir,
        resolved,
        notify_dir,
        goal: crate::supervisor::core::Goal::UntilStopped,
    };
    let (mut engine, server, claim) = prepared.engine(plan, opts, &logs);
    if let Some(link) = link {
        engine = engine.with_systemd(link);
    }
    let control = engine.control();
    let events = logs.clone();
    let code = runtime.block_on(async move {
        let server = server.serve();
        let watcher = dev.map(|dev| tokio::spawn(dev.run(control, events)));
        let code = engine.run().await;
        if let Some(server) = server {
            server.abort();
        }
        // Dropping it restores the terminal's mode.
        if let Some(watcher) = watcher {
            watcher.abort();
            let _ = watcher.await;
        }
        code
    });
    finish(&runtime, logs, writer);
    drop(claim);
    Ok(code)
}

/// What `start` and `smoke` set up before the log writer thread exists:
/// the selection, the project's claim (lock and control socket) and the
/// keeper, forked while prodserver is still single-threaded.
pub struct Prepared {
    /// The named processes plus what they depend on (all when none named).
    pub selected: Vec<usize>,
    claim: control::Claim,
    keeper: os::Keeper,
    reload_with: crate::config::LoadOptions,
}

/// The control server, started inside the runtime by [`Server::serve`].
pub struct Server {
    listener: Option<std::os::unix::net::UnixListener>,
    control: crate::supervisor::engine::Control,
    ctx: control::server::Context,
    hangups: tokio::sync::mpsc::UnboundedReceiver<()>,
}

impl Server {
    /// Serves the control socket (when there is one) until aborted; call
    /// inside the runtime.
    pub fn serve(self) -> Option<tokio::task::JoinHandle<()>> {
        match self.listener.map(tokio_listener) {
            Some(Ok(l)) => Some(tokio::spawn(control::server::serve(
                l,
                self.control,
                self.ctx,
                self.hangups,
            ))),
            Some(Err(e)) => {
                self.ctx
                    .logs
                    .project_event(&format!("no control socket: {e}"));
                None
            }
            None => None,
        }
    }
}

/// Everything before the log writer: the selection and its checks, the
/// runtime directory, the claim, the keeper, the process-wide settings.
pub fn prepare(
    plan: &Plan,
    resolved: &ResolvedPlan,
    names: &[String],
    env: &BTreeMap<String, String>,
    runtime_dir: &Path,
    dev: bool,
) -> Result<Prepared, Error> {
    let selected = select(plan, names).map_err(Error::usage)?;
    for queue in crate::config::unconsumed_queues(plan, &selected) {
        eprintln!(
            "warning: queue \"{queue}\" is in [prodserver] queues but no celery-worker started here consumes it: its tasks wait for a worker elsewhere"
        );
    }
    for id in &selected {
        if let Some(e) = &resolved.processes[*id].needs_root {
            return Err(Error::process(&plan.processes[*id].name, e));
        }
    }
    os::ensure_runtime_dir(runtime_dir).map_err(|e| {
        Error::setup(
            format!("use the runtime directory {}", runtime_dir.display()),
            e,
        )
    })?;
    // Before anything starts, and before the keeper (which closes what it
    // inherits) is forked: one supervisor per project on this host.
    let claim = control::claim(runtime_dir, &plan.name).map_err(|e| match e {
        control::ClaimError::Running { pid } => Error::setup(
            format!("supervise {}", plan.name),
            std::io::Error::other(match pid {
                Some(pid) => format!("already running as pid {pid}"),
                None => "already running".to_string(),
            }),
        ),
        control::ClaimError::Io(e) => Error::setup("open the control socket", e),
    })?;
    let reload_with = crate::config::LoadOptions {
        hold_sockets: true,
        env: env.clone(),
        runtime_dir: runtime_dir.to_path_buf(),
        dev,
    };
    // Forked before any thread exists: see os::keeper.
    let keeper = os::start_keeper().map_err(|e| Error::setup("start the keeper process", e))?;
    os::ignore_sigpipe();
    // Every instance needs descriptors of ours (log pipes, a notify socket):
    // the 1024 soft limit systemd gives services is not enough for a few
    // hundred. Children get the original limit back.
    if let Err(e) = os::raise_nofile() {
        eprintln!("warning: cannot raise the open-file limit ({e}): large process sets may fail with EMFILE");
    }
    if let Err(e) = os::set_child_subreaper() {
        eprintln!("warning: cannot become a child subreaper ({e}): orphans of crashed children are not reaped by prodserver");
    }
    Ok(Prepared {
        selected,
        claim,
        keeper,
        reload_with,
    })
}

impl Prepared {
    /// The engine for `opts`, the control server steering it, and the
    /// claim to drop once the run is over (the socket file goes first,
    /// then the lock).
    pub fn engine(
        mut self,
        plan: Plan,
        opts: RunOptions,
        logs: &Logs,
    ) -> (Engine, Server, control::Claim) {
        let ctx = control::server::Context {
            config_path: plan.config_path.clone(),
            load: self.reload_with.clone(),
            plan: plan.clone(),
            logs: logs.clone(),
        };
        let mut engine = Engine::new(plan, opts, self.keeper, logs.clone());
        let server = Server {
            listener: self.claim.listener.take(),
            control: engine.control(),
            ctx,
            hangups: engine.forward_reloads(),
        };
        (engine, server, self.claim)
    }
}

/// Labels are padded to the widest of the selection (and `prodserver`).
pub fn prefix_width(plan: &Plan, selected: &[usize]) -> usize {
    selected
        .iter()
        .map(|id| {
            let spec = &plan.processes[*id];
            spec.name.len() + 1 + spec.instances.to_string().len()
        })
        .max()
        .unwrap_or(0)
        .max("prodserver".len())
}

/// The single-threaded runtime the engine runs on.
pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::setup("start the async runtime", e))
}

/// What the children need before the first spawn: health notes, the
/// Celery integration, a runtime directory others can reach, the notify
/// sockets' directory (`None`: no NOTIFY_SOCKET).
pub fn prepare_children(
    plan: &Plan,
    resolved: &ResolvedPlan,
    selected: &[usize],
    runtime_dir: &Path,
    logs: &Logs,
) -> Result<Option<notify::RunDir>, Error> {
    for id in selected {
        if let Some(note) = resolved
            .instance(*id, 1)
            .and_then(|i| i.health.note.as_ref())
        {
            logs.project_event(&format!("{}: {note}", plan.processes[*id].name));
        }
    }
    if resolved.celery_module_dir(selected).is_some() {
        crate::celery::install(runtime_dir)
            .map_err(|e| Error::setup("install the Celery integration", e))?;
    }
    let gunicorn_hook = selected.iter().any(|id| {
        matches!(
            plan.processes[*id].readiness,
            crate::backend::DefaultReadiness::AppLoaded { .. }
        )
    });
    if gunicorn_hook {
        crate::gunicorn::install(runtime_dir)
            .map_err(|e| Error::setup("install the gunicorn integration", e))?;
    }
    let runs_as_other_user = selected.iter().any(|id| plan.processes[*id].user.is_some());
    if runs_as_other_user {
        // Instances that drop privileges must still reach their notify
        // socket and the Celery module inside the runtime directory.
        os::share_runtime_dir(runtime_dir)
            .map_err(|e| Error::setup("open the runtime directory to other users", e))?;
    }
    Ok(match notify::prepare_dir(runtime_dir) {
        Ok(dir) => Some(dir),
        Err(e) => {
            logs.project_event(&format!(
                "no NOTIFY_SOCKET for children: cannot prepare its directory: {e}"
            ));
            None
        }
    })
}

/// After the run: lets the last lines out, within the flush limit.
pub fn finish(runtime: &tokio::runtime::Runtime, logs: Logs, writer: logs::WriterHandle) {
    // The children have stopped, but their pumps may still be passing on
    // their last lines: the flush deadline covers both.
    let flush_by = Instant::now() + logs::EXIT_FLUSH_LIMIT;
    runtime.block_on(async {
        let _ = tokio::time::timeout_at(flush_by.into(), logs.pumps_finished()).await;
    });
    drop(logs);
    match writer.stop_within(flush_by.saturating_duration_since(Instant::now())) {
        logs::Stopped::Flushed => {}
        logs::Stopped::Failed(e) => eprintln!("warning: the log stream could not be flushed: {e}"),
        logs::Stopped::TimedOut(d) => eprintln!("{}", d.warning(logs::EXIT_FLUSH_LIMIT)),
    }
}

fn tokio_listener(
    l: std::os::unix::net::UnixListener,
) -> std::io::Result<tokio::net::UnixListener> {
    l.set_nonblocking(true)?;
    tokio::net::UnixListener::from_std(l)
}

/// The named processes plus everything they depend on; all when none named.
fn select(plan: &Plan, names: &[String]) -> Result<Vec<usize>, String> {
    if names.is_empty() {
        return Ok((0..plan.processes.len()).collect());
    }
    let known: Vec<&str> = plan.processes.iter().map(|p| p.name.as_str()).collect();
    let mut ids = Vec::new();
    for name in names {
        match known.iter().position(|k| k == name) {
            Some(id) => ids.push(id),
            None => {
                let hint = match read_suggest(name, &known) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => format!("the processes are: {}", known.join(", ")),
                };
                return Err(format!(
                    "no process named `{name}` in {}; {hint}",
                    plan.config_path.display()
                ));
            }
        }
    }
    Ok(order::closure(plan, &ids))
}
