//! Backends: one small module per `backend = "..."`, each a pure function
//! from a typed process entry to a typed [`Launch`]: argv and env, the
//! addresses it listens on, its default readiness, what the Celery
//! integration added. No I/O happens here (the one file a backend may ask
//! about comes through [`BackendInput::file_exists`]), so every backend is
//! unit-tested on its exact launch.
//!
//! Adding a backend: a module exporting a [`Backend`], a [`BackendKind`]
//! variant and its arm in [`table`]; every `match` over the kinds is
//! exhaustive, so the compiler points at anything else to decide.

use std::collections::BTreeMap;
use std::path::Path;

use crate::plan::BackendKind;

mod args;
mod celery_beat;
mod celery_worker;
mod command;
mod daphne;
mod django_q2;
mod django_runserver;
mod django_tasks;
mod flower;
mod granian;
mod gunicorn;
pub mod held;
mod launch;
mod uvicorn;
mod waitress;
mod web;

pub use launch::{CeleryIntegration, DefaultReadiness, Launch, Listen};

/// One value of `args = { key = value }`.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// `key = [a, b]`: the flag is repeated once per element (scalars only).
    List(Vec<ArgValue>),
}

/// What a backend sees of a process entry. Everything is already type-checked
/// by `config/`; a backend checks only what is specific to it.
#[derive(Clone)]
pub struct BackendInput<'a> {
    pub process: &'a str,
    pub project: &'a str,
    pub app: Option<&'a str>,
    /// `command` backend: the command, already split into words.
    pub command: Option<&'a [String]>,
    /// `program = "..."` override, already resolved against the config folder
    /// when it contains a slash.
    pub program: Option<&'a str>,
    /// `python = "..."` for manage.py backends, resolved like `program`.
    pub python: Option<&'a str>,
    pub queues: &'a [String],
    pub concurrency: Option<u32>,
    /// `args`, in file order.
    pub args: &'a [(String, ArgValue)],
    /// The environment the child will see (supervisor env merged with the
    /// file's env); read for variables such as `CELERYD_CONCURRENCY`.
    pub env: &'a BTreeMap<String, String>,
    /// prodserver's runtime directory (per-instance sockets live here).
    pub runtime_dir: &'a Path,
    /// The process's working directory (absolute).
    pub cwd: &'a Path,
    /// Whether a file exists (gunicorn's implicit `gunicorn.conf.py`).
    pub file_exists: &'a dyn Fn(&Path) -> bool,
    /// Load prodserver's Celery integration (Celery backends only).
    pub celery_integration: bool,
}

/// One backend: the row of [`table`] its module exports.
pub struct Backend {
    /// `argv[0]` when the entry has no `program` (`""` for `command`,
    /// whose program is the first word of `command`).
    pub program: &'static str,
    /// The signal sent to stop an instance when the entry has no
    /// `stop_signal`; each module documents why it is that tool's graceful
    /// one.
    pub stop_signal: i32,
    /// The command-line shape, for the README's backend table.
    pub shape: &'static str,
    /// The backend-specific keys it uses; `config/` rejects the others.
    pub keys: &'static [BackendKey],
    /// Builds the launch, pushing every problem of the entry to `errs`.
    pub launch: fn(&BackendInput, &mut Vec<BackendError>) -> Launch,
}

/// The one place that maps a kind to its module.
pub fn table(kind: BackendKind) -> &'static Backend {
    match kind {
        BackendKind::Command => &command::BACKEND,
        BackendKind::Gunicorn => &gunicorn::BACKEND,
        BackendKind::Uvicorn => &uvicorn::BACKEND,
        BackendKind::Granian => &granian::BACKEND,
        BackendKind::Waitress => &waitress::BACKEND,
        BackendKind::Daphne => &daphne::BACKEND,
        BackendKind::Flower => &flower::BACKEND,
        BackendKind::CeleryWorker => &celery_worker::BACKEND,
        BackendKind::CeleryBeat => &celery_beat::BACKEND,
        BackendKind::DjangoQ2 => &django_q2::BACKEND,
        BackendKind::DjangoTasks => &django_tasks::BACKEND,
        BackendKind::DjangoRunserver => &django_runserver::BACKEND,
    }
}

/// Which part of the entry a [`BackendError`] is about, so `config/` can
/// point at it in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Backend,
    App,
    Command,
    Program,
    Python,
    Queues,
    Concurrency,
    /// `args.KEY`
    Arg(String),
    /// A variable of the environment (e.g. `CELERYD_CONCURRENCY`).
    Env(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    pub field: Field,
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// Top-level process keys whose meaning depends on the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKey {
    App,
    Command,
    Python,
    Queues,
    Concurrency,
}

impl BackendKey {
    pub const ALL: [BackendKey; 5] = [
        BackendKey::App,
        BackendKey::Command,
        BackendKey::Python,
        BackendKey::Queues,
        BackendKey::Concurrency,
    ];

    /// The key as written in `[processes.NAME]`.
    pub fn name(self) -> &'static str {
        match self {
            BackendKey::App => "app",
            BackendKey::Command => "command",
            BackendKey::Python => "python",
            BackendKey::Queues => "queues",
            BackendKey::Concurrency => "concurrency",
        }
    }

    fn field(self) -> Field {
        match self {
            BackendKey::App => Field::App,
            BackendKey::Command => Field::Command,
            BackendKey::Python => Field::Python,
            BackendKey::Queues => Field::Queues,
            BackendKey::Concurrency => Field::Concurrency,
        }
    }
}

/// Whether `kind` uses `key`; `config/` rejects the key otherwise.
pub fn supports(kind: BackendKind, key: BackendKey) -> bool {
    table(kind).keys.contains(&key)
}

/// Build the launch of one process.
///
/// Every problem of the entry is reported, not just the first, so one run
/// of `prodserver check` shows the user everything to fix.
pub fn resolve(kind: BackendKind, input: &BackendInput) -> Result<Launch, Vec<BackendError>> {
    let mut errs = Vec::new();
    check_unused_keys(kind, input, &mut errs);
    check_program(kind, input, &mut errs);
    let mut launch = (table(kind).launch)(input, &mut errs);
    if let (Some(program), Some(first)) = (input.program, launch.argv.first_mut()) {
        program.clone_into(first);
    }
    if errs.is_empty() {
        Ok(launch)
    } else {
        Err(errs)
    }
}

/// What `argv[0]` is when the entry has no `program` (`""` for `command`,
/// whose program is the first word of `command`).
pub fn default_program(kind: BackendKind) -> &'static str {
    table(kind).program
}

/// The signal sent to an instance's main pid to stop it when the entry has
/// no `stop_signal`.
pub fn default_stop_signal(kind: BackendKind) -> i32 {
    table(kind).stop_signal
}

/// A backend's second stop signal and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escalation {
    pub signal: i32,
    /// How the log words it: `sending SIGQUIT (MEANING)`.
    pub meaning: &'static str,
}

/// The signal sent to the main pid when an instance outlives its
/// `stop_timeout` and the entry has no `escalate_signal`; `None` SIGKILLs
/// the group at once, as before escalation existed. Only a program whose
/// second signal saves work gets one.
pub fn default_escalation(kind: BackendKind) -> Option<Escalation> {
    match kind {
        BackendKind::CeleryWorker => Some(Escalation {
            signal: celery_worker::ESCALATE_SIGNAL,
            meaning: celery_worker::ESCALATE_MEANING,
        }),
        // gunicorn (27+) turns QUIT during its graceful stop into a quick
        // one, uvicorn a second INT into a forced exit: either way the
        // in-flight requests are cut, exactly as by SIGKILL, so the extra
        // `kill_timeout` would buy nothing.
        BackendKind::Gunicorn
        | BackendKind::Uvicorn
        | BackendKind::Granian
        | BackendKind::Waitress
        | BackendKind::Daphne
        | BackendKind::DjangoRunserver => None,
        // TERM already saved beat's schedule; QUIT ends it without saving.
        BackendKind::CeleryBeat => None,
        // No second-stage signal that restores work is known for these;
        // `command` runs anything.
        BackendKind::Flower
        | BackendKind::DjangoQ2
        | BackendKind::DjangoTasks
        | BackendKind::Command => None,
    }
}

/// The exit codes of `kind`'s main process that say the app failed to
/// boot, each with what it means (`gunicorn exit 4: app load error`): a
/// fatal configuration error, never restarted.
pub fn boot_failures(kind: BackendKind) -> &'static [(i32, &'static str)] {
    match kind {
        BackendKind::Gunicorn => gunicorn::BOOT_FAILURES,
        BackendKind::Uvicorn => uvicorn::BOOT_FAILURES,
        // Their exit codes don't tell a broken app from a crash.
        BackendKind::Granian
        | BackendKind::Waitress
        | BackendKind::Daphne
        | BackendKind::Flower
        | BackendKind::CeleryWorker
        | BackendKind::CeleryBeat
        | BackendKind::DjangoQ2
        | BackendKind::DjangoTasks
        | BackendKind::DjangoRunserver
        | BackendKind::Command => &[],
    }
}

/// [`default_escalation`]'s signal.
pub fn default_escalate_signal(kind: BackendKind) -> Option<i32> {
    default_escalation(kind).map(|e| e.signal)
}

/// What `signal` does as `kind`'s escalation, for the log line: known for
/// the backend's default only (a signal the user chose means what they
/// know it means).
pub fn escalation_meaning(kind: BackendKind, signal: i32) -> Option<&'static str> {
    default_escalation(kind)
        .filter(|e| e.signal == signal)
        .map(|e| e.meaning)
}

/// The command-line shape of a backend, for the README's backend table.
pub fn describe(kind: BackendKind) -> &'static str {
    table(kind).shape
}

/// The README's backend table (`backend | command line | needs | default
/// stop signal`), generated so it cannot drift from the code;
/// `docs/backends.md` is checked against it by a test.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| backend | command line | needs | default stop signal |\n|---|---|---|---|\n",
    );
    for kind in BackendKind::ALL {
        let signal = crate::signals::signal_name(default_stop_signal(kind));
        // A `|` would end the table cell even inside a code span.
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} |\n",
            kind.name(),
            describe(kind).replace('|', "\\|"),
            needs(kind),
            signal
        ));
    }
    out
}

fn needs(kind: BackendKind) -> String {
    let required: Vec<&str> = [BackendKey::App, BackendKey::Command]
        .into_iter()
        .filter(|k| supports(kind, *k))
        .map(BackendKey::name)
        .collect();
    let optional: Vec<&str> = [
        BackendKey::Python,
        BackendKey::Queues,
        BackendKey::Concurrency,
    ]
    .into_iter()
    .filter(|k| supports(kind, *k))
    .map(BackendKey::name)
    .collect();
    let mut parts = Vec::new();
    if !required.is_empty() {
        parts.push(code_list(&required));
    }
    if !optional.is_empty() {
        parts.push(format!("optional {}", code_list(&optional)));
    }
    if parts.is_empty() {
        "—".to_owned()
    } else {
        parts.join("; ")
    }
}

fn code_list(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---- recycling: `max_tasks_per_child` and `memory_scope` per backend ----

/// How a backend honours `max_tasks_per_child = N`.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskLimit {
    /// prodserver counts `TASKS_DONE` per incarnation (from the Celery
    /// integration, or a child that speaks the protocol) and recycles at N.
    Counted,
    /// Per-request recycling belongs to the server: these options are
    /// added to `args`, prodserver counts nothing.
    Server {
        args: Vec<(String, ArgValue)>,
        /// What `check` says about it.
        note: String,
        /// The server's main process itself exits at the limit (one
        /// process, no workers): prodserver's restart is the recycle.
        main_exits: bool,
    },
}

/// A recycling key the backend cannot honour; `arg` names the `args` key
/// it clashes with, otherwise the recycling key itself is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitError {
    pub arg: Option<String>,
    pub message: String,
    pub hint: String,
}

/// `max_tasks_per_child = n` on `kind`: counted by prodserver, translated
/// into the server's own per-worker request limit, or refused where
/// neither can work (a key that silently does nothing would be a lie).
pub fn task_limit(
    kind: BackendKind,
    n: u64,
    input: &BackendInput,
) -> Result<TaskLimit, LimitError> {
    let none = |why: &str, hint: &str| LimitError {
        arg: None,
        message: format!(
            "`max_tasks_per_child` can't apply to {}: {why}",
            kind.name()
        ),
        hint: hint.to_owned(),
    };
    match kind {
        BackendKind::Command
        | BackendKind::CeleryWorker
        | BackendKind::DjangoQ2
        | BackendKind::DjangoTasks => Ok(TaskLimit::Counted),
        BackendKind::Gunicorn => gunicorn::max_requests(n, input.args),
        BackendKind::Uvicorn => uvicorn::max_requests(n, input),
        BackendKind::Granian => Err(none(
            "granian has no per-request worker recycling",
            "remove `max_tasks_per_child`; granian recycles workers by age \
             (`args = { workers-lifetime = 3600 }`, seconds, at least 60) or by memory \
             (`max_memory_per_child`)",
        )),
        BackendKind::Daphne | BackendKind::Waitress => Err(none(
            "it serves every request from one process and has no request limit",
            "remove `max_tasks_per_child`; recycle it by memory with `max_memory_per_child`, \
             or serve the app with gunicorn or uvicorn, which limit requests per worker",
        )),
        BackendKind::CeleryBeat | BackendKind::Flower => Err(none(
            "it runs no tasks",
            "remove `max_tasks_per_child`; the workers' limit belongs on the celery-worker process",
        )),
        BackendKind::DjangoRunserver => Err(none(
            "it is a development server that runs no tasks",
            "remove `max_tasks_per_child`",
        )),
    }
}

/// The scope `max_memory_per_child` has when `memory_scope` is not
/// written: gunicorn replaces a worker that exits and a worker finishes
/// its requests on TERM, so one fat worker is recycled alone; anything
/// else is recycled whole.
pub fn default_memory_scope(kind: BackendKind) -> crate::plan::MemoryScope {
    use crate::plan::MemoryScope;
    match kind {
        BackendKind::Gunicorn => MemoryScope::Child,
        BackendKind::Command
        | BackendKind::Uvicorn
        | BackendKind::Granian
        | BackendKind::Waitress
        | BackendKind::Daphne
        | BackendKind::Flower
        | BackendKind::CeleryWorker
        | BackendKind::CeleryBeat
        | BackendKind::DjangoQ2
        | BackendKind::DjangoTasks
        | BackendKind::DjangoRunserver => MemoryScope::Instance,
    }
}

/// Whether `memory_scope = "child"` is safe on `kind`: only where the
/// server replaces a child that exits, and the child's TERM loses nothing.
/// Elsewhere recycling one child shrinks capacity for good, or loses work.
pub fn check_child_scope(kind: BackendKind, input: &BackendInput) -> Result<(), LimitError> {
    let refuse = |why: String, hint: &str| {
        Err(LimitError {
            arg: None,
            message: format!(
                "`memory_scope = \"child\"` can't apply to {}: {why}",
                kind.name()
            ),
            hint: hint.to_owned(),
        })
    };
    let whole = "remove `memory_scope`: the whole instance is then recycled, gracefully";
    match kind {
        BackendKind::Gunicorn => Ok(()),
        BackendKind::Uvicorn => match uvicorn::workers(input) {
            Some(n) if n >= 2 => Ok(()),
            _ => refuse(
                "it runs as one process here (no `workers` of 2 or more), so there is no worker to recycle alone".to_owned(),
                "remove `memory_scope` to recycle the whole instance, or run workers \
                 (`args = { workers = 4 }`): uvicorn 0.30+ replaces a worker that exits",
            ),
        },
        BackendKind::CeleryWorker => refuse(
            "a TERM to a pool child raises inside its running task, and the task is lost".to_owned(),
            "recycle the whole instance (remove `memory_scope`: a warm shutdown lets the running \
             task finish), or pass Celery's own limit in args: \
             `max-memory-per-child = 300000` (KiB, checked after each task)",
        ),
        BackendKind::Granian => refuse(
            "granian stops the whole server when a worker exits unasked (with \
             `respawn-failed-workers`, two exits within 5.5 s count as a crash loop and stop it too)"
                .to_owned(),
            "remove `memory_scope` to recycle the whole instance, or pass granian's own limit in \
             args: `workers-max-rss = 300` (MiB; it starts the new worker before stopping the old)",
        ),
        BackendKind::DjangoQ2 | BackendKind::DjangoTasks => refuse(
            "a TERM to a worker child can lose the task it is running".to_owned(),
            whole,
        ),
        BackendKind::Command => refuse(
            "prodserver cannot know whether the command replaces a child that exits; if it \
             doesn't, capacity shrinks until the instance restarts"
                .to_owned(),
            whole,
        ),
        BackendKind::CeleryBeat
        | BackendKind::Waitress
        | BackendKind::Daphne
        | BackendKind::Flower
        | BackendKind::DjangoRunserver => refuse(
            "nothing replaces a child of it that exits, so recycling one would shrink capacity \
             until the instance restarts"
                .to_owned(),
            whole,
        ),
    }
}

/// The README's recycling table: what `max_tasks_per_child` becomes and
/// the default `memory_scope`, per backend; generated like the backend
/// table so it cannot drift.
pub fn recycling_table() -> String {
    let mut out = String::from(
        "| backend | `max_tasks_per_child = N` | default `memory_scope` | `memory_scope = \"child\"` |\n|---|---|---|---|\n",
    );
    for kind in BackendKind::ALL {
        let tasks = match kind {
            BackendKind::Gunicorn => {
                "`--max-requests=N --max-requests-jitter=J` (J = N/10, at least 1)"
            }
            BackendKind::Uvicorn => "`--limit-max-requests=N`",
            BackendKind::CeleryWorker => {
                "counted by prodserver (the Celery integration's `TASKS_DONE`)"
            }
            BackendKind::Command | BackendKind::DjangoQ2 | BackendKind::DjangoTasks => {
                "counted by prodserver: the child must send `TASKS_DONE=N`"
            }
            BackendKind::Granian
            | BackendKind::Waitress
            | BackendKind::Daphne
            | BackendKind::Flower
            | BackendKind::CeleryBeat
            | BackendKind::DjangoRunserver => "refused",
        };
        let child = match kind {
            BackendKind::Gunicorn => "yes",
            BackendKind::Uvicorn => "with `workers` ≥ 2 (uvicorn 0.30+)",
            _ => "refused",
        };
        out.push_str(&format!(
            "| `{}` | {tasks} | {} | {child} |\n",
            kind.name(),
            default_memory_scope(kind).name()
        ));
    }
    out
}

// ---- helpers shared by the backend modules ----

const CELERY: &str = "celery";
const DEFAULT_PYTHON: &str = "python3";

/// The backends that run `PYTHON manage.py ...` (they take `python`).
fn is_manage_py(kind: BackendKind) -> bool {
    supports(kind, BackendKey::Python)
}

/// `config/` already rejects keys a backend doesn't use; checking again
/// here keeps `resolve` honest on its own: a key it would silently ignore
/// is an error, never a no-op.
fn check_unused_keys(kind: BackendKind, input: &BackendInput, errs: &mut Vec<BackendError>) {
    for key in BackendKey::ALL {
        let given = match key {
            BackendKey::App => input.app.is_some(),
            BackendKey::Command => input.command.is_some(),
            BackendKey::Python => input.python.is_some(),
            BackendKey::Queues => !input.queues.is_empty(),
            BackendKey::Concurrency => input.concurrency.is_some(),
        };
        if given && !supports(kind, key) {
            let users: Vec<&str> = BackendKind::ALL
                .into_iter()
                .filter(|k| supports(*k, key))
                .map(BackendKind::name)
                .collect();
            errs.push(BackendError {
                field: key.field(),
                message: format!("the {} backend does not use `{}`", kind.name(), key.name()),
                hint: format!(
                    "remove `{}` from this process; it is used by the {} backend{}",
                    key.name(),
                    users.join(", "),
                    if users.len() == 1 { "" } else { "s" }
                ),
            });
        }
    }
}

fn check_program(kind: BackendKind, input: &BackendInput, errs: &mut Vec<BackendError>) {
    if input.program.is_some_and(|p| p.trim().is_empty()) {
        errs.push(BackendError {
            field: Field::Program,
            message: "`program` is empty".to_owned(),
            hint: format!(
                "remove `program` to run {}, or give a program name or path",
                if kind == BackendKind::Command {
                    "the first word of `command`".to_owned()
                } else {
                    format!("`{}`", default_program(kind))
                }
            ),
        });
    }
    if input.python.is_some_and(|p| p.trim().is_empty()) {
        errs.push(BackendError {
            field: Field::Python,
            message: "`python` is empty".to_owned(),
            hint: format!(
                "remove `python` to use `{DEFAULT_PYTHON}`, or give an interpreter such as \
                 `python = \".venv/bin/python\"`"
            ),
        });
    }
    // Both would name the same argv[0]; picking one silently would hide
    // which interpreter actually runs manage.py.
    if is_manage_py(kind) && input.program.is_some() && input.python.is_some() {
        errs.push(BackendError {
            field: Field::Program,
            message: format!(
                "`program` and `python` both set the interpreter of the {} backend",
                kind.name()
            ),
            hint: "keep only `python = \"...\"`; it runs `PYTHON manage.py ...`".to_owned(),
        });
    }
}

/// The app a web or Celery backend serves; pushes an error (with an example
/// of the expected form) when it is missing or blank.
fn require_app<'a>(
    kind: BackendKind,
    input: &BackendInput<'a>,
    example: &str,
    errs: &mut Vec<BackendError>,
) -> Option<&'a str> {
    match input.app {
        Some(app) if !app.trim().is_empty() => Some(app),
        given => {
            errs.push(BackendError {
                field: Field::App,
                message: format!(
                    "the {} backend needs {}",
                    kind.name(),
                    if given.is_some() {
                        "a non-empty `app`"
                    } else {
                        "`app`"
                    }
                ),
                hint: format!("add `app = \"{example}\"` to this process"),
            });
            None
        }
    }
}

/// `PROGRAM [args...] APP`: the servers take the app as their one
/// positional argument, placed last so no option can swallow it.
fn args_then_app(
    kind: BackendKind,
    input: &BackendInput,
    program: &str,
    example: &str,
    errs: &mut Vec<BackendError>,
) -> Vec<String> {
    let app = require_app(kind, input, example, errs);
    let mut argv = vec![program.to_owned()];
    argv.extend(args::render(input.args, &[], errs));
    argv.push(app.unwrap_or_default().to_owned());
    argv
}

/// `PYTHON manage.py SUBCOMMAND`.
fn manage_py(input: &BackendInput, subcommand: &str) -> Vec<String> {
    vec![
        input.python.unwrap_or(DEFAULT_PYTHON).to_owned(),
        "manage.py".to_owned(),
        subcommand.to_owned(),
    ]
}

/// `celery -A APP SUBCOMMAND`: `-A` is a global option and must come before
/// the subcommand.
fn celery(
    kind: BackendKind,
    input: &BackendInput,
    subcommand: &str,
    errs: &mut Vec<BackendError>,
) -> Vec<String> {
    let app = require_app(kind, input, "proj.celery.app", errs).unwrap_or_default();
    if let Some(key) = args::first_set(input.args, &["A", "app"]) {
        errs.push(BackendError {
            field: Field::Arg(key.to_owned()),
            message: format!(
                "`args.{key}` repeats the app, which prodserver passes as `-A APP` already"
            ),
            hint: format!("remove `{key}` from args and set `app = \"proj.celery.app\"`"),
        });
    }
    vec![
        CELERY.to_owned(),
        "-A".to_owned(),
        app.to_owned(),
        subcommand.to_owned(),
    ]
}

/// A Celery launch with the integration loaded (its module's folder first
/// on `PYTHONPATH`, plus `env`) and the readiness it reports, or, with
/// `celery_integration = false`, the bare argv.
fn with_celery_integration(
    input: &BackendInput,
    argv: Vec<String>,
    readiness: DefaultReadiness,
    env: Vec<(String, String)>,
) -> Launch {
    if !input.celery_integration {
        return Launch {
            readiness: DefaultReadiness::CeleryWithoutIntegration,
            ..Launch::at_spawn(argv)
        };
    }
    let module_dir = crate::celery::module_dir(input.runtime_dir);
    let dir = module_dir.to_string_lossy();
    let pythonpath = match input.env.get("PYTHONPATH") {
        Some(old) if !old.is_empty() => format!("{dir}:{old}"),
        _ => dir.into_owned(),
    };
    let mut all = BTreeMap::from([("PYTHONPATH".to_owned(), pythonpath)]);
    all.extend(env);
    Launch {
        argv,
        env: all,
        listen: Vec::new(),
        readiness,
        celery: Some(CeleryIntegration { module_dir }),
    }
}

/// Rejects args that would make the tool fork into the background (the
/// supervisor would see its main pid exit at once and restart it in a loop)
/// or write a pid file.
fn forbid_args(input: &BackendInput, keys: &[&str], why: &str, errs: &mut Vec<BackendError>) {
    if let Some(key) = args::first_set(input.args, keys) {
        errs.push(BackendError {
            field: Field::Arg(key.to_owned()),
            message: format!("`args.{key}` can't be used under prodserver: {why}"),
            hint: format!("remove `{key}` from args"),
        });
    }
}

const DAEMON_WHY: &str = "it detaches the process into the background, so prodserver would see \
                          it exit at once and could no longer stop or restart it";

#[cfg(test)]
mod testutil;

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn only_gunicorn_and_uvicorn_have_boot_failure_codes() {
        use BackendKind as K;
        let codes = |k| boot_failures(k).iter().map(|(c, _)| *c).collect::<Vec<_>>();
        assert_eq!(codes(K::Gunicorn), [3, 4]);
        assert_eq!(codes(K::Uvicorn), [3]);
        assert_eq!(
            boot_failures(K::Gunicorn)[1].1,
            "gunicorn exit 4: app load error"
        );
        for kind in K::ALL {
            if !matches!(kind, K::Gunicorn | K::Uvicorn) {
                assert_eq!(codes(kind), Vec::<i32>::new(), "{kind:?}");
            }
        }
    }

    #[test]
    fn supports_matches_the_backend_table() {
        use BackendKind as K;
        let app: Vec<_> = K::ALL
            .into_iter()
            .filter(|k| supports(*k, BackendKey::App))
            .collect();
        assert_eq!(
            app,
            [
                K::Gunicorn,
                K::Uvicorn,
                K::Granian,
                K::Waitress,
                K::Daphne,
                K::CeleryWorker,
                K::CeleryBeat,
                K::Flower
            ]
        );
        for kind in K::ALL {
            assert_eq!(supports(kind, BackendKey::Command), kind == K::Command);
            assert_eq!(
                supports(kind, BackendKey::Python),
                matches!(kind, K::DjangoQ2 | K::DjangoTasks | K::DjangoRunserver)
            );
            assert_eq!(supports(kind, BackendKey::Queues), kind == K::CeleryWorker);
            assert_eq!(
                supports(kind, BackendKey::Concurrency),
                kind == K::CeleryWorker
            );
        }
    }

    #[test]
    fn a_key_the_backend_does_not_use_is_an_error_not_ignored() {
        let errs = In::new()
            .app("shop.wsgi:application")
            .command(&["true"])
            .python("python3.12")
            .queues(&["default"])
            .concurrency(2)
            .errors(BackendKind::Gunicorn);
        let fields: Vec<_> = errs.iter().map(|e| e.field.clone()).collect();
        assert_eq!(
            fields,
            [
                Field::Command,
                Field::Python,
                Field::Queues,
                Field::Concurrency
            ]
        );
        assert!(errs[1]
            .hint
            .contains("django-q2, django-tasks, django-runserver backends"));
        assert!(errs[2].hint.contains("celery-worker backend"));
    }

    #[test]
    fn all_errors_of_an_entry_are_collected() {
        let errs = In::new()
            .program("")
            .arg("pidfile", "/tmp/w.pid")
            .arg("include", list(vec![list(vec![s("x")])]))
            .env("CELERYD_CONCURRENCY", "many")
            .errors(BackendKind::CeleryWorker);
        let fields: Vec<_> = errs.iter().map(|e| e.field.clone()).collect();
        assert_eq!(
            fields,
            [
                Field::Program,
                Field::App,
                Field::Env("CELERYD_CONCURRENCY".into()),
                Field::Arg("pidfile".into()),
                Field::Arg("include".into()),
            ]
        );
    }

    #[test]
    fn empty_program_and_python_are_errors() {
        let e = one_error(In::new().python(" ").resolve(BackendKind::DjangoQ2));
        assert_eq!(e.field, Field::Python);
        assert!(e.hint.contains("python3"));
        let e = one_error(In::new().program("").resolve(BackendKind::DjangoQ2));
        assert_eq!(e.field, Field::Program);
        assert!(e.hint.contains("to run `python3`"), "{}", e.hint);
        let e = one_error(
            In::new()
                .program("")
                .command(&["true"])
                .resolve(BackendKind::Command),
        );
        assert!(
            e.hint.contains("to run the first word of `command`"),
            "{}",
            e.hint
        );
    }

    #[test]
    fn program_overrides_argv0_of_every_backend() {
        for kind in BackendKind::ALL {
            let input = In::new()
                .program("/opt/bin/tool")
                .app_if(supports(kind, BackendKey::App), "shop.asgi:application")
                .command_if(kind == BackendKind::Command, &["tool", "x"]);
            let argv = input.argv(kind);
            assert_eq!(argv[0], "/opt/bin/tool", "{kind:?}");
        }
    }

    #[test]
    fn default_program_is_argv0_without_program() {
        for kind in BackendKind::ALL {
            let input = In::new()
                .app_if(supports(kind, BackendKey::App), "shop.asgi:application")
                .command_if(kind == BackendKind::Command, &["tool", "x"]);
            let argv = input.argv(kind);
            let expected = if kind == BackendKind::Command {
                "tool"
            } else {
                default_program(kind)
            };
            assert_eq!(argv[0], expected, "{kind:?}");
        }
        assert_eq!(default_program(BackendKind::Command), "");
        assert_eq!(default_program(BackendKind::CeleryBeat), "celery");
        assert_eq!(default_program(BackendKind::Waitress), "waitress-serve");
        assert_eq!(default_program(BackendKind::DjangoTasks), "python3");
    }

    #[test]
    fn program_and_python_together_on_manage_py_is_an_error() {
        let e = one_error(
            In::new()
                .program("/usr/bin/python3")
                .python(".venv/bin/python")
                .resolve(BackendKind::DjangoRunserver),
        );
        assert_eq!(e.field, Field::Program);
        assert!(e.hint.contains("python"));
    }

    #[test]
    fn backends_add_no_environment_today() {
        let out = In::new()
            .app("shop.celery.app")
            .resolve(BackendKind::CeleryWorker)
            .unwrap_or_else(|e| panic!("{e:#?}"));
        assert!(out.env.is_empty());
    }

    #[test]
    fn only_celery_workers_escalate_by_default() {
        for kind in BackendKind::ALL {
            let expected = (kind == BackendKind::CeleryWorker).then_some(libc::SIGQUIT);
            assert_eq!(default_escalate_signal(kind), expected, "{kind:?}");
        }
        assert!(escalation_meaning(BackendKind::CeleryWorker, libc::SIGQUIT)
            .is_some_and(|m| m.contains("back to the broker")));
        assert_eq!(
            escalation_meaning(BackendKind::CeleryWorker, libc::SIGINT),
            None
        );
        assert_eq!(
            escalation_meaning(BackendKind::Gunicorn, libc::SIGQUIT),
            None
        );
    }

    #[test]
    fn every_backend_stops_with_term_today() {
        for kind in BackendKind::ALL {
            assert_eq!(default_stop_signal(kind), libc::SIGTERM, "{kind:?}");
        }
    }

    #[test]
    fn describe_names_the_program_of_every_backend() {
        for kind in BackendKind::ALL {
            let shape = describe(kind);
            let first = shape.split(' ').next().unwrap_or_default();
            let expected = match default_program(kind) {
                "" => "COMMAND",
                "python3" => "PYTHON",
                p => p,
            };
            assert_eq!(first, expected, "{kind:?}: {shape}");
        }
    }

    #[test]
    fn every_backend_decides_max_tasks_and_child_scope() {
        use crate::plan::MemoryScope;
        for kind in BackendKind::ALL {
            let input = In::new();
            let limit = input.with(|i| task_limit(kind, 100, i));
            let child = input.with(|i| check_child_scope(kind, i));
            match kind {
                BackendKind::Gunicorn | BackendKind::Uvicorn => {
                    assert!(matches!(limit, Ok(TaskLimit::Server { .. })), "{kind:?}")
                }
                BackendKind::Command
                | BackendKind::CeleryWorker
                | BackendKind::DjangoQ2
                | BackendKind::DjangoTasks => assert_eq!(limit, Ok(TaskLimit::Counted)),
                _ => assert!(limit.is_err(), "{kind:?}"),
            }
            if let Err(e) = &limit {
                assert!(e.hint.contains("remove `max_tasks_per_child`"), "{e:?}");
            }
            // The default scope is always one the backend accepts.
            if default_memory_scope(kind) == MemoryScope::Child {
                assert_eq!(child, Ok(()), "{kind:?}");
            }
            assert_eq!(child.is_ok(), kind == BackendKind::Gunicorn, "{kind:?}");
        }
        let workers = In::new().arg("workers", 2);
        assert_eq!(
            workers.with(|i| check_child_scope(BackendKind::Uvicorn, i)),
            Ok(())
        );
    }

    #[test]
    fn recycling_table_is_in_the_readme() {
        let table = recycling_table();
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&table),
            "README.md's recycling table is out of date; paste this table:\n{table}"
        );
        assert!(table.contains("| `gunicorn` | `--max-requests=N --max-requests-jitter=J` (J = N/10, at least 1) | child | yes |"));
        assert!(table.contains("| `celery-worker` | counted by prodserver"));
    }

    #[test]
    fn docs_table_is_up_to_date() {
        let docs = include_str!("../../docs/backends.md");
        let table = markdown_table();
        assert!(
            docs.contains(&table),
            "docs/backends.md is out of date; paste this table:\n{table}"
        );
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&table),
            "README.md's backend table is out of date; paste this table:\n{table}"
        );
        assert!(table.contains(
            "| `celery-worker` | `celery -A APP worker -Q QUEUES --concurrency=N \
             --hostname=NAME.{instance}@%h ARGS` | `app`; optional `queues`, `concurrency` | \
             SIGTERM |"
        ));
        assert!(table.contains("| `command` | `COMMAND ARGS` | `command` | SIGTERM |"));
        assert!(table.contains("`granian --interface=wsgi\\|asgi\\|rsgi ARGS APP`"));
    }
}
