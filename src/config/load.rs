//! From the spanned TOML tree to a validated [`Plan`].
//!
//! Two stages, as in ripgrep: each table is read field by field into plain
//! values (recording every type error), then cross-references (depends_on,
//! cycles, backend-specific keys, queue routing) are checked against the
//! whole file. Nothing stops at the first error: the user fixes the file
//! once, not once per error.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diagnostic::{Diagnostic, FileId, Severity, Sources};
use super::read::{self, did_you_mean, Reader, Table};
use super::{envfile, schema};
use crate::backend::{self, ArgValue, BackendInput, BackendKey, Field};
use crate::graph::find_cycle;
use crate::plan::*;

/// What loading needs from the outside world, passed in so tests control it.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// prodserver's own environment (children inherit it, scrubbed).
    pub env: BTreeMap<String, String>,
    /// prodserver's runtime directory (sockets, locks).
    pub runtime_dir: PathBuf,
    /// `prodserver dev` (and `check --dev`): each process's `.dev`
    /// overrides apply, and stop_timeout defaults shorter.
    pub dev: bool,
    /// Whether prodserver will hold the processes' listening sockets;
    /// false where each server runs on its own and binds its address (a
    /// Procfile, a unit per process, a Kubernetes pod).
    pub hold_sockets: bool,
}

/// A loaded plan, with the warnings found on the way.
pub struct Loaded {
    pub plan: Plan,
    pub sources: Sources,
    pub warnings: Vec<Diagnostic>,
    /// Every probe written in the file, where it is written.
    pub probes: Vec<ProbeAt>,
}

/// A file that cannot run; `diagnostics` holds every error (and warning).
pub struct LoadError {
    pub sources: Sources,
    pub diagnostics: Vec<Diagnostic>,
    /// The probes read before the errors stopped loading: compiling them
    /// (outside `config/`) still reports their errors in the same run.
    pub probes: Vec<ProbeAt>,
}

/// A probe as written in a `health` block: `table` is its key path
/// (`processes.web.health`), `span` its value in file 0. `config/` reads
/// probes but does not compile them (that is the health module's job, see
/// `resolve`), so they travel with the located place to report at.
#[derive(Debug, Clone)]
pub struct ProbeAt {
    pub table: String,
    pub probe: Probe,
    pub span: Range<usize>,
}

impl LoadError {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }
}

impl std::fmt::Debug for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sources.render(&self.diagnostics, false))
    }
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Loaded, LoadError> {
    let path = absolute(path);
    match std::fs::read(&path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => load_str(&path, text, opts),
            Err(e) => Err(not_utf8(&path, e)),
        },
        Err(e) => {
            let mut sources = Sources::default();
            let file = sources.add(&path, String::new());
            let d = Diagnostic::error(file, None, format!("cannot read {}: {e}", path.display()))
                .with_hint("check the path given with -c/--config or PRODSERVER_CONFIG");
            Err(LoadError {
                sources,
                diagnostics: vec![d],
                probes: Vec::new(),
            })
        }
    }
}

/// A file that is not UTF-8 (TOML must be): located at the first bad
/// byte, shown as U+FFFD in the snippet.
fn not_utf8(path: &Path, e: std::string::FromUtf8Error) -> LoadError {
    let at = e.utf8_error().valid_up_to();
    let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
    let end = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
    let mut sources = Sources::default();
    let file = sources.add(path, text);
    let d = Diagnostic::error(
        file,
        Some(at..end),
        "the file is not valid UTF-8 at this byte (TOML files must be UTF-8)",
    )
    .with_hint("re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)");
    LoadError {
        sources,
        diagnostics: vec![d],
        probes: Vec::new(),
    }
}

/// Validates config text that was read from `path` (absolute).
pub fn load_str(path: &Path, text: String, opts: &LoadOptions) -> Result<Loaded, LoadError> {
    let mut sources = Sources::default();
    let file = sources.add(path, text);
    let root = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    // The text lives in `sources`; parse a copy so diagnostics can keep
    // borrowing `sources` mutably for env files.
    let text = sources.text(file).to_string();
    let (mut doc, syntax_errors) = DeTable::parse_recoverable(&text);
    if opts.dev && syntax_errors.is_empty() {
        apply_dev_overrides(doc.get_mut());
    }
    let mut loader = Loader {
        r: Reader::new(file, opts.env.clone()),
        sources,
        root,
        opts,
        probes: Vec::new(),
    };
    if !syntax_errors.is_empty() {
        // What follows a syntax error is parsed as something else (keys of
        // an unclosed table land at the top level): reporting on that tree
        // would only add misleading errors.
        for e in syntax_errors {
            let span = e.span().unwrap_or(0..0);
            loader.r.error(
                span,
                format!("TOML syntax: {}", e.message().trim()),
                "fix the TOML syntax at this point",
            );
        }
        return Err(LoadError {
            sources: loader.sources,
            diagnostics: loader.r.diagnostics,
            probes: Vec::new(),
        });
    }
    let top = Table {
        path: String::new(),
        span: doc.span(),
        entries: doc.get_ref(),
    };
    let plan = loader.plan(path, &top);
    let Loader {
        mut r,
        sources,
        probes,
        ..
    } = loader;
    // Read in file order, so the user can fix them top to bottom.
    r.diagnostics
        .sort_by_key(|d| (d.file, d.span.as_ref().map_or(usize::MAX, |s| s.start)));
    let has_errors = r.diagnostics.iter().any(|d| d.severity == Severity::Error);
    match plan {
        Some(plan) if !has_errors => Ok(Loaded {
            plan,
            sources,
            warnings: r.diagnostics,
            probes,
        }),
        _ => Err(LoadError {
            sources,
            diagnostics: r.diagnostics,
            probes,
        }),
    }
}

/// The dev variant of the file, before any of it is read: each key of
/// `[processes.NAME.dev]` replaces the process's own (`env` merges name by
/// name), and a process with `enabled = false` is left out. Merging the
/// spanned tree, not the built plan, means the dev variant goes through
/// exactly the validation `start` gets, and an error in an override is
/// located at the override. Wrong types are left in place for the reader
/// to report.
/// The keys that describe how a backend is launched: a `.dev` override
/// of `backend` starts without the process's own.
pub const LAUNCH_KEYS: &[&str] = &[
    "app",
    "command",
    "program",
    "args",
    "queues",
    "concurrency",
    "celery_integration",
];

fn apply_dev_overrides(doc: &mut DeTable) {
    let Some(processes) = doc.get_mut("processes") else {
        return;
    };
    let DeValue::Table(processes) = processes.get_mut() else {
        return;
    };
    let mut disabled = Vec::new();
    for (name, process) in processes.iter_mut() {
        let DeValue::Table(table) = process.get_mut() else {
            continue;
        };
        let overrides = match table.get("dev").map(|d| d.get_ref()) {
            Some(DeValue::Table(d)) => d.clone(),
            _ => continue,
        };
        if overrides.contains_key("backend") {
            // Another backend is another launch: what described the old
            // one (gunicorn's `app`, its `args`) would not apply.
            for key in LAUNCH_KEYS {
                table.remove(*key);
            }
        }
        for (key, value) in overrides {
            match key.get_ref().as_ref() {
                "enabled" => {
                    if matches!(value.get_ref(), DeValue::Boolean(false)) {
                        disabled.push(name.get_ref().to_string());
                    }
                }
                // Dev-only keys: read from the `dev` table itself.
                "ignore" | "dev" => {}
                "env" => match (table.get_mut("env").map(|e| e.get_mut()), value.get_ref()) {
                    (Some(DeValue::Table(env)), DeValue::Table(extra)) => {
                        for (k, v) in extra {
                            env.insert(k.clone(), v.clone());
                        }
                    }
                    _ => {
                        table.insert(key, value);
                    }
                },
                _ => {
                    table.insert(key, value);
                }
            }
        }
    }
    for name in disabled {
        processes.remove(name.as_str());
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

struct Loader<'o> {
    r: Reader,
    sources: Sources,
    root: PathBuf,
    opts: &'o LoadOptions,
    probes: Vec<ProbeAt>,
}

/// What `[prodserver]` contributes to every process.
#[derive(Default)]
struct Project {
    name: String,
    env: Vec<(String, String)>,
    stop_timeout: Option<Duration>,
    kill_timeout: Option<Duration>,
    queues: Option<Vec<Spanned<String>>>,
    queues_span: Option<Range<usize>>,
}

/// A dependency as written, resolved to ids once every process is known.
struct RawDep {
    from: ProcessId,
    name: String,
    name_span: Range<usize>,
    condition: Option<Condition>,
}

impl Loader<'_> {
    fn plan(&mut self, path: &Path, top: &Table) -> Option<Plan> {
        self.r.check_keys(top, schema::TOP);
        let project = self.project(top);
        let dev = self.dev_settings(top);

        let Some(processes_value) = top.get("processes") else {
            let d = Diagnostic::error(
                self.r.file,
                None,
                "no processes: the file declares no [processes.NAME] table",
            )
            .with_hint(format!(
                "declare at least one process, e.g.\n{}",
                schema::EXAMPLE_PROCESS
            ));
            self.r.diagnostics.push(d);
            return None;
        };
        let processes_table = self.r.as_table(processes_value, "processes".into())?;
        if processes_table.entries.is_empty() {
            self.r.error(
                processes_table.span.clone(),
                "no processes: [processes] is empty",
                format!(
                    "declare at least one process, e.g.\n{}",
                    schema::EXAMPLE_PROCESS
                ),
            );
            return None;
        }

        let mut specs = Vec::new();
        let mut raw_deps = Vec::new();
        let mut complete = true;
        let names: Vec<String> = processes_table.keys().map(|(k, _)| k.to_string()).collect();
        for (id, (name, name_span)) in processes_table.keys().enumerate() {
            let Some(table) = self.r.table(&processes_table, name) else {
                complete = false;
                continue;
            };
            if !valid_process_name(name) {
                self.r.error(
                    name_span.clone(),
                    format!("`{name}` is not a valid process name"),
                    "use letters, digits, - and _ (it names log prefixes and lock files)",
                );
            } else if name.len() > MAX_NAME_LEN {
                self.r.error(
                    name_span.clone(),
                    format!(
                        "the process name is {} characters long, more than {MAX_NAME_LEN}",
                        name.len()
                    ),
                    "shorten it: it names log prefixes, lock files and sockets",
                );
            }
            match self.process(id, name, &table, &project, &mut raw_deps) {
                Some(spec) => specs.push(spec),
                None => complete = false,
            }
        }

        self.resolve_dependencies(&names, &mut specs, raw_deps, complete);
        if complete {
            self.check_queue_routing(&project, &specs, &processes_table);
            self.check_binds(&specs, &processes_table);
        }
        if !complete {
            return None;
        }
        Some(Plan {
            config_path: path.to_path_buf(),
            root: self.root.clone(),
            name: project.name,
            queues: project
                .queues
                .map(|q| q.into_iter().map(Spanned::into_inner).collect()),
            env: project.env.into_iter().collect(),
            processes: specs,
            dev,
        })
    }

    fn project(&mut self, top: &Table) -> Project {
        let default_name = self
            .root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "prodserver".into());
        let mut project = Project {
            name: default_name,
            ..Project::default()
        };
        let Some(t) = self.r.table(top, "prodserver") else {
            return project;
        };
        self.r.check_keys(&t, schema::PROJECT);
        if let Some(name) = self.r.string(&t, "name", "\"shop\"") {
            if name.len() > MAX_NAME_LEN {
                if let Some(v) = t.get("name") {
                    self.r.error(
                        v.span(),
                        format!("the project name is {} characters long, more than {MAX_NAME_LEN}", name.len()),
                        format!("shorten it: it names lock files and sockets, whose paths are limited (a unix socket path to {} bytes)", 108),
                    );
                }
            } else if valid_process_name(&name) {
                project.name = name;
            } else if let Some(v) = t.get("name") {
                self.r.error(
                    v.span(),
                    format!("`{name}` is not a valid project name"),
                    "use letters, digits, - and _ (it names lock files)",
                );
            }
        }
        project.env = self.env_sources(&t, true);
        project.stop_timeout = self.r.duration(&t, "stop_timeout", "30s");
        project.kill_timeout = self.r.duration(&t, "kill_timeout", "10s");
        project.queues = self
            .r
            .string_list(&t, "queues", "[\"default\", \"emails\"]");
        project.queues_span = t.get("queues").map(|v| v.span());
        project
    }

    /// `env_file` and `env` of one table, merged in the documented
    /// precedence: for `[prodserver]` the inline `env` holds defaults that
    /// a deployment's env_file overrides; for a process its own `env` is
    /// the most specific word and comes last.
    fn env_sources(&mut self, t: &Table, inline_first: bool) -> Vec<(String, String)> {
        let inline = self
            .r
            .env_table(t, "env", &self.opts.env)
            .unwrap_or_default();
        let mut from_file = Vec::new();
        if let Some(value) = t.get("env_file") {
            if let Some(file) = self.r.as_string(value, &t.key_path("env_file"), "\".env\"") {
                from_file = self.env_file(&file, value.span());
            }
        }
        if inline_first {
            inline.into_iter().chain(from_file).collect()
        } else {
            from_file.into_iter().chain(inline).collect()
        }
    }

    fn env_file(&mut self, file: &str, span: Range<usize>) -> Vec<(String, String)> {
        let path = self.root.join(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                self.r.error(
                    span,
                    format!("cannot read env_file {}: {e}", path.display()),
                    "create the file, fix the path (relative paths start at the config file's folder), or remove `env_file`",
                );
                return Vec::new();
            }
        };
        match envfile::parse(&text) {
            Ok(vars) => vars,
            Err(errors) => {
                let id: FileId = self.sources.add(&path, text);
                for e in errors {
                    self.r
                        .diagnostics
                        .push(Diagnostic::error(id, Some(e.span), e.message).with_hint(e.hint));
                }
                Vec::new()
            }
        }
    }

    fn dev_settings(&mut self, top: &Table) -> DevSettings {
        let mut dev = DevSettings {
            debounce: schema::DEFAULT_DEV_DEBOUNCE,
            ..DevSettings::default()
        };
        if let Some(t) = self.r.table(top, "dev") {
            self.r.check_keys(&t, schema::DEV);
            dev.watch = self.globs(&t, "watch");
            dev.ignore = self.globs(&t, "ignore");
            if let Some(d) = self.r.duration(&t, "debounce", "50ms") {
                dev.debounce = d;
            }
        }
        dev
    }

    /// A list of globs (relative to the project root), each compiled here
    /// so a bad one is reported where it is written, not when dev starts.
    fn globs(&mut self, t: &Table, key: &str) -> Vec<String> {
        let list = self
            .r
            .string_list(t, key, "[\"**/*.py\"]")
            .unwrap_or_default();
        let mut globs = Vec::new();
        for glob in list {
            match globset::Glob::new(glob.get_ref()) {
                Ok(_) => globs.push(glob.into_inner()),
                Err(e) => self.r.error(
                    glob.span(),
                    format!("`{}`: not a glob: {}", t.key_path(key), e.kind()),
                    "globs are relative to the config file's folder: `*` within a folder, `**` across folders, `{a,b}` alternatives, e.g. \"orders/**/*.py\"",
                ),
            }
        }
        globs
    }

    /// Reads one `[processes.NAME]`. Returns `None` when it cannot be built;
    /// every reason has been recorded.
    fn process(
        &mut self,
        id: ProcessId,
        name: &str,
        t: &Table,
        project: &Project,
        raw_deps: &mut Vec<RawDep>,
    ) -> Option<ProcessSpec> {
        self.r.check_keys(t, schema::PROCESS);
        let backend = self.backend(t);

        // Fields every backend shares.
        let oneshot = self.r.bool(t, "oneshot").unwrap_or(false);
        let instances = self.instances(t);
        let singleton_key = self.r.bool(t, "singleton");
        let restart = self.restart_policy(t, oneshot);
        let stop_signal = self.stop_signal(t, backend);
        let stop_timeout = self
            .r
            .duration(t, "stop_timeout", "30s")
            .or(project.stop_timeout)
            .unwrap_or(if self.opts.dev {
                schema::DEFAULT_DEV_STOP_TIMEOUT
            } else {
                schema::DEFAULT_STOP_TIMEOUT
            });
        let escalate_signal = self.escalate_signal(t, backend);
        let kill_timeout = self
            .r
            .duration(t, "kill_timeout", "10s")
            .or(project.kill_timeout)
            .unwrap_or(schema::DEFAULT_KILL_TIMEOUT);
        if let (None, Some(value)) = (escalate_signal, t.get("kill_timeout")) {
            self.r.warning(
                value.span(),
                format!(
                    "`{}` has no effect: there is no escalate_signal, so SIGKILL follows stop_timeout",
                    t.key_path("kill_timeout")
                ),
                "set `escalate_signal` (e.g. \"QUIT\") to send a second signal before SIGKILL, or remove kill_timeout",
            );
        }
        let critical = self.r.bool(t, "critical").unwrap_or(false);
        let backoff = Backoff {
            initial: self
                .r
                .duration(t, "backoff", "1s")
                .unwrap_or(schema::DEFAULT_BACKOFF),
            max: self
                .r
                .duration(t, "backoff_max", "30s")
                .unwrap_or(schema::DEFAULT_BACKOFF_MAX),
            reset: self
                .r
                .duration(t, "backoff_reset", "30s")
                .unwrap_or(schema::DEFAULT_BACKOFF_RESET),
        };
        if backoff.max < backoff.initial {
            if let Some(v) = t.get("backoff_max") {
                self.r.error(
                    v.span(),
                    "`backoff_max` is smaller than `backoff`",
                    "raise `backoff_max` or lower `backoff`",
                );
            }
        }
        let max_restarts = self
            .r
            .count(t, "max_restarts", 0, 10)
            .unwrap_or(schema::DEFAULT_MAX_RESTARTS);
        let restart_window = self
            .nonzero_duration(t, "restart_window", "5m")
            .unwrap_or(schema::DEFAULT_RESTART_WINDOW);
        let user = self.r.string(t, "user", "\"www-data\"");
        let group = self.r.string(t, "group", "\"www-data\"");
        self.check_credentials(t, user.as_deref(), group.as_deref());
        let cwd = self.cwd(t);
        let watch = t.get("watch").map(|_| self.globs(t, "watch"));
        let health = self.health(t, backend);
        let mut limits = self.limits(t, backend);
        let dev = self.process_dev(t);
        self.depends_on(id, t, raw_deps);

        let mut env: BTreeMap<String, String> = project.env.iter().cloned().collect();
        env.extend(self.env_sources(t, false));

        // Backend-specific fields.
        let backend = backend?;
        self.reject_unsupported(t, backend);
        let app = self.r.string(t, "app", "\"shop.wsgi:application\"");
        let command = self.command(t);
        let program = self
            .r
            .string(t, "program", "\".venv/bin/gunicorn\"")
            .map(|p| self.resolve_path(&p));
        let python = self
            .r
            .string(t, "python", "\".venv/bin/python\"")
            .map(|p| self.resolve_path(&p));
        let queues: Vec<String> = self
            .r
            .string_list(t, "queues", "[\"default\", \"emails\"]")
            .map(|q| q.into_iter().map(Spanned::into_inner).collect())
            .unwrap_or_default();
        let concurrency = self.r.count(t, "concurrency", 1, 4);
        let args = self.args(t);
        let celery_integration = self.r.bool(t, "celery_integration");
        let held_keys = self.held_keys(t, Some(backend));

        if backend == BackendKind::CeleryBeat {
            if instances > 1 {
                let span = t.value_span("instances");
                self.r.error(
                    span,
                    format!("`processes.{name}` is a celery-beat with instances = {instances}: two beats send every periodic task twice"),
                    "run exactly one beat: remove `instances` (prodserver also locks beat host-wide)",
                );
            }
            if singleton_key == Some(false) {
                let span = t.value_span("singleton");
                self.r.error(
                    span,
                    "a celery-beat is always a singleton",
                    "remove `singleton = false`: two beats send every periodic task twice",
                );
            }
        }
        let singleton = singleton_key.unwrap_or(false) || backend == BackendKind::CeleryBeat;
        let rollout = self.rollout_mode(t, oneshot, singleton);
        if singleton && instances > 1 && backend != BackendKind::CeleryBeat {
            let span = t.value_span("instances");
            self.r.error(
                span,
                format!("`processes.{name}` is a singleton with instances = {instances}"),
                "a singleton runs once per host: remove `instances` or `singleton`",
            );
        }
        if celery_integration.is_some()
            && !matches!(backend, BackendKind::CeleryWorker | BackendKind::CeleryBeat)
        {
            if let Some(span) = t.key_span("celery_integration") {
                self.r.error(
                    span,
                    "`celery_integration` only applies to celery-worker and celery-beat",
                    "remove it",
                );
            }
        }

        // A key present but unreadable has been reported; the backend would
        // only add "needs `command`" on top.
        let unread = [
            ("app", app.is_none()),
            ("command", command.is_none()),
            ("program", program.is_none()),
            ("python", python.is_none()),
        ];
        if unread.iter().any(|(k, none)| *none && t.get(k).is_some()) {
            return None;
        }
        // Keys the backend does not use were reported above; don't hand
        // them to the backend to be reported twice.
        let uses = |key| backend::supports(backend, key);
        let app = app.filter(|_| uses(BackendKey::App));
        let command = command.filter(|_| uses(BackendKey::Command));
        let python = python.filter(|_| uses(BackendKey::Python));
        let queues = if uses(BackendKey::Queues) {
            queues
        } else {
            Vec::new()
        };
        let concurrency = concurrency.filter(|_| uses(BackendKey::Concurrency));
        let mut child_env = self.opts.env.clone();
        child_env.extend(env.clone());
        let input = BackendInput {
            process: name,
            project: &project.name,
            app: app.as_deref(),
            command: command.as_deref(),
            program: program.as_deref(),
            python: python.as_deref(),
            queues: &queues,
            concurrency,
            args: &args,
            env: &child_env,
            runtime_dir: &self.opts.runtime_dir,
            cwd: &cwd,
            file_exists: &|p: &Path| p.exists(),
            celery_integration: matches!(
                backend,
                BackendKind::CeleryWorker | BackendKind::CeleryBeat
            ) && celery_integration.unwrap_or(true),
        };
        let server_args = self.recycling(t, backend, restart, &input, &mut limits);
        let args_with_limits: Vec<(String, ArgValue)> =
            args.iter().cloned().chain(server_args).collect();
        let input = BackendInput {
            args: &args_with_limits,
            ..input
        };
        if backend == BackendKind::CeleryWorker && t.get("queues").is_none() {
            for key in ["Q", "queues"] {
                if args.iter().any(|(k, _)| k == key) {
                    let span = self.field_span(t, &Field::Arg(key.to_string()));
                    self.r.error(
                        span,
                        format!("`processes.{name}` gives its queues in `args.{key}`, where prodserver cannot check routing against them"),
                        "use the `queues` key instead: `queues = [\"default\", \"emails\"]` (it becomes -Q default,emails)",
                    );
                }
            }
        }
        if backend == BackendKind::Uvicorn && !args.iter().any(|(k, _)| k == "interface") {
            if let Some(app) = app.as_deref().filter(|a| looks_wsgi(a)) {
                self.r.warning(
                    t.value_span("app"),
                    format!("`processes.{name}`: uvicorn serves ASGI, but \"{app}\" looks like a WSGI application: every request would fail with 500"),
                    "serve it as WSGI with `args = { interface = \"wsgi\" }`, or point `app` at the ASGI application (e.g. shop.asgi:application)",
                );
            }
        }
        let mut launch = match backend::resolve(backend, &input) {
            Ok(launch) => launch,
            Err(errors) => {
                for e in errors {
                    let span = self.field_span(t, &e.field);
                    self.r
                        .error(span, format!("`processes.{name}`: {}", e.message), e.hint);
                }
                return None;
            }
        };
        if backend == BackendKind::Command {
            launch.listen = held_keys.listen.clone();
        }
        let holding = self.holding(t, backend, &input, &mut launch, &held_keys);
        let mut argv = launch.argv;
        if let Some(first) = argv.first_mut() {
            if first.contains('/') {
                *first = self.resolve_path(first);
            }
        }
        env.extend(launch.env);

        // Exhaustive on purpose: a new backend must say whether it is Celery.
        let celery = match backend {
            BackendKind::CeleryWorker | BackendKind::CeleryBeat => Some(CeleryInfo {
                app: app.unwrap_or_default(),
                queues: queues.clone(),
                integration: celery_integration.unwrap_or(true),
            }),
            BackendKind::Command
            | BackendKind::Gunicorn
            | BackendKind::Uvicorn
            | BackendKind::Granian
            | BackendKind::Waitress
            | BackendKind::Daphne
            | BackendKind::Flower
            | BackendKind::DjangoQ2
            | BackendKind::DjangoTasks
            | BackendKind::DjangoRunserver => None,
        };

        let spec = ProcessSpec {
            name: name.to_string(),
            backend,
            argv,
            env,
            cwd,
            oneshot,
            instances,
            singleton,
            restart,
            backoff,
            max_restarts,
            restart_window,
            stop_signal,
            stop_timeout,
            escalate_signal,
            kill_timeout,
            critical,
            depends_on: Vec::new(),
            user,
            group,
            health,
            limits,
            rollout,
            celery,
            watch,
            dev,
            listen: launch.listen,
            readiness: launch.readiness,
            holding,
        };
        self.check_exec_limits(t, &spec, &child_env);
        let bound = spec.listen.first().map(|l| {
            l.key(&spec.cwd)
                .unwrap_or_else(|| "its address".to_string())
        });
        let bound = bound.filter(|_| !spec.surges_on_held_socket());
        if let (RolloutMode::Surge, Some(listen)) = (spec.rollout, bound) {
            self.r.error(
                t.value_span("rollout"),
                format!(
                    "`{}` = \"surge\" would start a second copy that binds {listen} while the first still does",
                    t.key_path("rollout")
                ),
                "use `rollout = \"replace\"` (the default) for a process that binds an address, or let prodserver hold its socket (`hold_socket`, see the README's Held sockets) and use the same address for every instance",
            );
        }
        Some(spec)
    }

    /// execve fails with E2BIG past the kernel's limits: one string (an
    /// argument or `KEY=value`) over MAX_ARG_STRLEN, or all of them (with
    /// their pointers) over ARG_MAX. Found here rather than as a spawn
    /// failure in a restart loop.
    fn check_exec_limits(
        &mut self,
        t: &Table,
        spec: &ProcessSpec,
        inherited: &BTreeMap<String, String>,
    ) {
        let mut env: BTreeMap<&str, &str> = inherited
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.extend(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let argv_span = || {
            ["args", "command", "app", "program"]
                .iter()
                .find_map(|k| t.get(k).map(|v| v.span()))
                .unwrap_or(t.span.clone())
        };
        if let Some(arg) = spec.argv.iter().find(|a| a.len() >= MAX_ARG_STRLEN) {
            self.r.error(
                argv_span(),
                format!(
                    "an argument of `{}` is {} bytes long; the kernel refuses any argument of {MAX_ARG_STRLEN} bytes or more",
                    t.path,
                    arg.len()
                ),
                "pass large data through a file, not the command line",
            );
            return;
        }
        for (k, v) in &spec.env {
            if k.len() + 1 + v.len() >= MAX_ARG_STRLEN {
                let span = match t.get("env").map(|e| e.get_ref()) {
                    Some(DeValue::Table(e)) => e.get(k.as_str()).map(|v| v.span()),
                    _ => None,
                }
                .or_else(|| t.get("env_file").map(|v| v.span()))
                .unwrap_or(t.span.clone());
                self.r.error(
                    span,
                    format!(
                        "environment variable {k} of `{}` is {} bytes long; the kernel refuses any of {MAX_ARG_STRLEN} bytes or more",
                        t.path,
                        v.len()
                    ),
                    "pass large data through a file, not the environment",
                );
                return;
            }
        }
        let pointer = std::mem::size_of::<usize>();
        let total: usize = spec
            .argv
            .iter()
            .map(|a| a.len() + 1 + pointer)
            .sum::<usize>()
            + env
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2 + pointer)
                .sum::<usize>();
        let limit = arg_max();
        if total > limit {
            self.r.error(
                argv_span(),
                format!(
                    "the command line and environment of `{}` take {total} bytes, more than the kernel's limit of {limit} (ARG_MAX)",
                    t.path
                ),
                "shorten the arguments and environment, or pass large data through a file",
            );
        }
    }

    fn backend(&mut self, t: &Table) -> Option<BackendKind> {
        let known: Vec<&str> = BackendKind::ALL.iter().map(|b| b.name()).collect();
        let Some(value) = t.get("backend") else {
            self.r.error(
                t.span.clone(),
                format!("`{}` has no `backend`", t.path),
                format!(
                    "add `backend = \"command\"` (or one of: {})",
                    known.join(", ")
                ),
            );
            return None;
        };
        let name = self
            .r
            .as_string(value, &t.key_path("backend"), "\"gunicorn\"")?;
        match BackendKind::from_name(&name) {
            Some(b) => Some(b),
            None => {
                let hint = match did_you_mean(&name, &known) {
                    Some(best) => format!(
                        "did you mean \"{best}\"? The known backends are: {}",
                        known.join(", ")
                    ),
                    None => format!("the known backends are: {}", known.join(", ")),
                };
                self.r
                    .error(value.span(), format!("unknown backend \"{name}\""), hint);
                None
            }
        }
    }

    /// Keys whose meaning depends on the backend are errors where unused:
    /// a `queues` on a gunicorn would otherwise be silently ignored.
    fn reject_unsupported(&mut self, t: &Table, kind: BackendKind) {
        let keys = [
            ("app", BackendKey::App),
            ("command", BackendKey::Command),
            ("python", BackendKey::Python),
            ("queues", BackendKey::Queues),
            ("concurrency", BackendKey::Concurrency),
        ];
        for (key, bk) in keys {
            if let Some(span) = t.key_span(key) {
                if !backend::supports(kind, bk) {
                    let users: Vec<&str> = BackendKind::ALL
                        .iter()
                        .filter(|b| backend::supports(**b, bk))
                        .map(|b| b.name())
                        .collect();
                    let hint = match key {
                        "command" => "remove it, or use `program = \"...\"` to override the backend's program, or `backend = \"command\"`".to_string(),
                        _ => format!("`{key}` is used by: {}; pass backend options through `args` instead", users.join(", ")),
                    };
                    self.r.error(
                        span,
                        format!(
                            "`{}` does not apply to backend \"{}\"",
                            t.key_path(key),
                            kind.name()
                        ),
                        hint,
                    );
                }
            }
        }
    }

    fn restart_policy(&mut self, t: &Table, oneshot: bool) -> RestartPolicy {
        let default = if oneshot {
            RestartPolicy::Never
        } else {
            RestartPolicy::Always
        };
        let Some(value) = t.get("restart") else {
            return default;
        };
        let Some(text) = self
            .r
            .as_string(value, &t.key_path("restart"), "\"on-failure\"")
        else {
            return default;
        };
        let policy = match text.as_str() {
            "always" => RestartPolicy::Always,
            "on-failure" => RestartPolicy::OnFailure,
            "never" => RestartPolicy::Never,
            other => {
                let hint = match did_you_mean(other, &["always", "on-failure", "never"]) {
                    Some(best) => format!(
                        "did you mean \"{best}\"? Use \"always\", \"on-failure\" or \"never\""
                    ),
                    None => "use \"always\", \"on-failure\" or \"never\"".into(),
                };
                self.r.error(
                    value.span(),
                    format!("unknown restart policy \"{other}\""),
                    hint,
                );
                return default;
            }
        };
        if oneshot && policy == RestartPolicy::Always {
            self.r.error(
                value.span(),
                "a oneshot cannot restart \"always\": it would run forever",
                "use `restart = \"on-failure\"` to retry a failed oneshot, or remove `oneshot`",
            );
        }
        policy
    }

    /// `escalate_signal`: a signal, or `"none"` to SIGKILL the group right
    /// after `stop_timeout`.
    fn escalate_signal(&mut self, t: &Table, backend: Option<BackendKind>) -> Option<i32> {
        let default = backend.and_then(backend::default_escalate_signal);
        let Some(value) = t.get("escalate_signal") else {
            return default;
        };
        let Some(text) = self
            .r
            .as_string(value, &t.key_path("escalate_signal"), "\"QUIT\"")
        else {
            return default;
        };
        if text.trim().eq_ignore_ascii_case("none") {
            return None;
        }
        match crate::signals::signal_by_name(&text) {
            Some(libc::SIGKILL) => {
                self.r.error(
                    value.span(),
                    "KILL cannot be the escalation signal: SIGKILL to the whole group is what follows it anyway",
                    "write `escalate_signal = \"none\"` to SIGKILL the group as soon as stop_timeout has passed",
                );
                default
            }
            Some(sig) if STOP_SIGNALS_REFUSED.contains(&sig) => {
                self.r.error(
                    value.span(),
                    format!(
                        "{} cannot be the escalation signal: by default it does not end a process",
                        crate::signals::signal_name(sig)
                    ),
                    "use QUIT (Celery's cold shutdown), INT or TERM, or \"none\" to go straight to SIGKILL",
                );
                default
            }
            Some(sig) => Some(sig),
            None => {
                self.r.error(
                    value.span(),
                    format!("unknown signal \"{text}\""),
                    "use a signal name such as \"QUIT\", \"INT\" or \"SIGQUIT\", or \"none\"",
                );
                default
            }
        }
    }

    fn stop_signal(&mut self, t: &Table, backend: Option<BackendKind>) -> i32 {
        let default = backend
            .map(backend::default_stop_signal)
            .unwrap_or(libc::SIGTERM);
        let Some(value) = t.get("stop_signal") else {
            return default;
        };
        let Some(text) = self
            .r
            .as_string(value, &t.key_path("stop_signal"), "\"TERM\"")
        else {
            return default;
        };
        match crate::signals::signal_by_name(&text) {
            Some(sig) if STOP_SIGNALS_REFUSED.contains(&sig) => {
                self.r.error(
                    value.span(),
                    format!(
                        "{} cannot be a stop signal: by default it does not end a process",
                        crate::signals::signal_name(sig)
                    ),
                    "use TERM (or INT, QUIT, HUP, USR1, USR2 if the program stops on it; KILL skips any graceful stop)",
                );
                default
            }
            Some(sig) => sig,
            None => {
                self.r.error(
                    value.span(),
                    format!("unknown signal \"{text}\""),
                    "use a signal name such as \"TERM\", \"INT\", \"QUIT\" or \"SIGTERM\"",
                );
                default
            }
        }
    }

    fn cwd(&mut self, t: &Table) -> PathBuf {
        let Some(value) = t.get("cwd") else {
            return self.root.clone();
        };
        let Some(text) = self.r.as_string(value, &t.key_path("cwd"), "\"backend\"") else {
            return self.root.clone();
        };
        let dir = self.root.join(&text);
        if dir.exists() && !dir.is_dir() {
            self.r.error(
                value.span(),
                format!("working directory {} is not a directory", dir.display()),
                "point `cwd` at a folder (relative paths start at the config file's folder)",
            );
        } else if !dir.is_dir() {
            self.r.warning(
                value.span(),
                format!("working directory {} does not exist (yet)", dir.display()),
                "relative paths start at the config file's folder; the process fails to start unless something creates it first",
            );
        }
        dir
    }

    fn resolve_path(&self, p: &str) -> String {
        if p.contains('/') && !Path::new(p).is_absolute() {
            self.root.join(p).display().to_string()
        } else {
            p.to_string()
        }
    }

    /// `command = ["a", "b"]` or `command = "a b"` (split as a shell splits
    /// words: quotes group, no expansion, no `sh -c`).
    fn command(&mut self, t: &Table) -> Option<Vec<String>> {
        let value = t.get("command")?;
        let path = t.key_path("command");
        match value.get_ref() {
            DeValue::String(s) => match shell_words::split(s) {
                Ok(words) => self.expand_words(value.span(), &path, words),
                Err(e) => {
                    self.r.error(value.span(), format!("cannot split `{path}` into words: {e}"), "close every quote, or write the command as a list: [\"python\", \"manage.py\", \"migrate\"]");
                    None
                }
            },
            DeValue::Array(_) => self
                .r
                .as_string_list(value, &path, "[\"python\", \"manage.py\", \"migrate\"]")
                .map(|l| l.into_iter().map(Spanned::into_inner).collect()),
            other => {
                self.r.type_error(
                    value,
                    &path,
                    "a list of strings or a string",
                    other,
                    "write `command = [\"python\", \"manage.py\", \"migrate\"]`",
                );
                None
            }
        }
    }

    fn args(&mut self, t: &Table) -> Vec<(String, ArgValue)> {
        let Some(value) = t.get("args") else {
            return Vec::new();
        };
        let path = t.key_path("args");
        let Some(args) = self.r.as_table(value, path.clone()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, _) in args.keys() {
            let Some(v) = args.get(key) else { continue };
            let hint = "args values are strings, numbers, true/false, or lists of those: `{ bind = \"0.0.0.0:8000\", workers = 4, preload = true }`";
            match arg_value(v.get_ref(), true) {
                Some(a) => {
                    if let Some(a) = self.expand_arg(v.span(), &format!("{path}.{key}"), a) {
                        out.push((key.to_string(), a));
                    }
                }
                None => {
                    let found = v.get_ref();
                    self.r.type_error(
                        v,
                        &format!("{path}.{key}"),
                        "a string, number, boolean or list",
                        found,
                        hint,
                    );
                }
            }
        }
        out
    }

    /// Maps a backend's complaint to the text it is about.
    fn field_span(&self, t: &Table, field: &Field) -> Range<usize> {
        let key = match field {
            Field::Backend => "backend",
            Field::App => "app",
            Field::Command => "command",
            Field::Program => "program",
            Field::Python => "python",
            Field::Queues => "queues",
            Field::Concurrency => "concurrency",
            Field::Arg(name) => {
                if let Some(DeValue::Table(args)) = t.get("args").map(|v| v.get_ref()) {
                    if let Some(v) = args.get(name.as_str()) {
                        return v.span();
                    }
                }
                "args"
            }
            Field::Env(var) => {
                if let Some(DeValue::Table(env)) = t.get("env").map(|v| v.get_ref()) {
                    if let Some(v) = env.get(var.as_str()) {
                        return v.span();
                    }
                }
                "backend"
            }
        };
        t.get(key)
            .map(|v| v.span())
            .or_else(|| t.key_span("backend"))
            .unwrap_or(t.span.clone())
    }

    fn depends_on(&mut self, from: ProcessId, t: &Table, out: &mut Vec<RawDep>) {
        let Some(value) = t.get("depends_on") else {
            return;
        };
        let path = t.key_path("depends_on");
        if !matches!(value.get_ref(), DeValue::Table(_)) {
            self.r.type_error(
                value,
                &path,
                "a table of process = condition",
                value.get_ref(),
                "write `depends_on = { migrate = \"completed\", redis = \"started\" }`",
            );
            return;
        }
        let Some(deps) = self.r.as_table(value, path.clone()) else {
            return;
        };
        for (name, name_span) in deps.keys() {
            let Some(v) = deps.get(name) else { continue };
            let names: Vec<&str> = Condition::ALL.iter().map(|c| c.name()).collect();
            let condition = match self
                .r
                .as_string(v, &format!("{path}.{name}"), "\"started\"")
            {
                Some(text) => match Condition::ALL.iter().find(|c| c.name() == text) {
                    Some(c) => Some(*c),
                    None => {
                        let hint = match did_you_mean(&text, &names) {
                            Some(best) => format!("did you mean \"{best}\"? Conditions are \"started\", \"healthy\" and \"completed\""),
                            None => "conditions are \"started\" (spawned), \"healthy\" (ready) and \"completed\" (a oneshot exited 0)".into(),
                        };
                        self.r.error(
                            v.span(),
                            format!("unknown dependency condition \"{text}\""),
                            hint,
                        );
                        None
                    }
                },
                None => None,
            };
            out.push(RawDep {
                from,
                name: name.to_string(),
                name_span,
                condition,
            });
        }
    }

    fn resolve_dependencies(
        &mut self,
        names: &[String],
        specs: &mut [ProcessSpec],
        raw: Vec<RawDep>,
        complete: bool,
    ) {
        let known: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut adjacency = vec![Vec::new(); names.len()];
        let mut edge_spans = BTreeMap::new();
        let mut resolved: Vec<(ProcessId, Dependency)> = Vec::new();
        for dep in raw {
            let Some(target) = names.iter().position(|n| *n == dep.name) else {
                let hint = match did_you_mean(&dep.name, &known) {
                    Some(best) => format!(
                        "did you mean `{best}`? The processes are: {}",
                        known.join(", ")
                    ),
                    None => format!("the processes are: {}", known.join(", ")),
                };
                self.r.error(
                    dep.name_span,
                    format!(
                        "`{}` depends on `{}`, which is not a process",
                        names[dep.from], dep.name
                    ),
                    hint,
                );
                continue;
            };
            adjacency[dep.from].push(target);
            edge_spans.insert((dep.from, target), dep.name_span.clone());
            if let Some(condition) = dep.condition {
                resolved.push((
                    dep.from,
                    Dependency {
                        process: target,
                        condition,
                    },
                ));
            }
        }
        if let Some(cycle) = find_cycle(&adjacency) {
            let path: Vec<&str> = cycle.iter().map(|i| names[*i].as_str()).collect();
            let span = edge_spans
                .get(&(cycle[0], cycle[1]))
                .cloned()
                .unwrap_or(0..0);
            self.r.error(
                span,
                format!("dependency cycle: {}", path.join(" -> ")),
                "remove one of these depends_on entries: processes in a cycle could never start",
            );
        }
        if !complete {
            return;
        }
        for (from, dep) in resolved {
            let target = &specs[dep.process];
            if dep.condition == Condition::Completed && !target.oneshot {
                let span = edge_spans
                    .get(&(from, dep.process))
                    .cloned()
                    .unwrap_or(0..0);
                self.r.error(
                    span,
                    format!("`{}` waits for `{}` to complete, but `{}` is not a oneshot and never completes", specs[from].name, target.name, target.name),
                    format!("use \"started\" or \"healthy\", or set `oneshot = true` on `{}`", target.name),
                );
            }
            specs[from].depends_on.push(dep);
        }
    }

    /// Two processes, or two instances of one, binding the same address:
    /// the second would fail to start (or, with SO_REUSEPORT, share the
    /// port with a stranger). Addresses are read as the default probe
    /// reads them, after `{instance}` expansion.
    fn check_binds(&mut self, specs: &[ProcessSpec], processes: &Table) {
        let mut seen: BTreeMap<String, (String, u32)> = BTreeMap::new();
        // One error per process: its other instances clash the same way.
        'process: for spec in specs {
            for n in 1..=spec.instances {
                for address in listen_addresses(spec, n) {
                    let here = (spec.name.clone(), n);
                    let Some(first) = seen.get(&address) else {
                        seen.insert(address, here);
                        continue;
                    };
                    let who = |(name, n): &(String, u32)| {
                        let count = specs
                            .iter()
                            .find(|s| s.name == *name)
                            .map_or(1, |s| s.instances);
                        if count > 1 {
                            format!("`{name}` instance {n}")
                        } else {
                            format!("`{name}`")
                        }
                    };
                    let hint = if first.0 == spec.name {
                        "give each instance its own port with `{instance}`: `bind = \"127.0.0.1:800{instance}\"`".to_string()
                    } else {
                        "give each process its own address (port or socket path)".to_string()
                    };
                    let message = format!("{} binds {address}, as {} does", who(&here), who(first));
                    let span = bind_span(processes, &spec.name);
                    self.r.error(span, message, hint);
                    continue 'process;
                }
            }
        }
    }

    /// `[prodserver] queues` lists where the project routes tasks: each must
    /// have a consumer, and a consumed queue nothing routes to is suspicious.
    fn check_queue_routing(&mut self, project: &Project, specs: &[ProcessSpec], processes: &Table) {
        let Some(routed) = &project.queues else {
            return;
        };
        let mut consumed: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for spec in specs {
            for q in consumed_queues(spec) {
                consumed.entry(q).or_default().push(&spec.name);
            }
        }
        for q in routed {
            if !consumed.contains_key(q.get_ref()) {
                self.r.error(
                    q.span(),
                    format!("queue \"{}\" is routed to but no celery-worker consumes it: its tasks would wait forever", q.get_ref()),
                    format!("add \"{}\" to a worker's `queues`, or remove it from [prodserver] queues", q.get_ref()),
                );
            }
        }
        for (q, workers) in consumed {
            if !routed.iter().any(|r| *r.get_ref() == q) {
                for w in workers {
                    let span = processes
                        .get(w)
                        .and_then(|v| match v.get_ref() {
                            DeValue::Table(t) => t.get("queues").map(|q| q.span()),
                            _ => None,
                        })
                        .or_else(|| processes.key_span(w))
                        .or(project.queues_span.clone())
                        .unwrap_or(0..0);
                    self.r.warning(
                        span,
                        format!("`{w}` consumes queue \"{q}\", which [prodserver] queues does not route to"),
                        format!("add \"{q}\" to [prodserver] queues if tasks are routed there, or drop it from the worker"),
                    );
                }
            }
        }
    }

    fn health(&mut self, t: &Table, backend: Option<BackendKind>) -> Option<HealthSpec> {
        let h = self.r.table(t, "health")?;
        self.r.check_keys(&h, schema::HEALTH);
        let mut probes: Vec<(Probe, Range<usize>)> = Vec::new();
        if let Some(url) = self
            .r
            .string(&h, "http", "\"http://127.0.0.1:8000/healthz/\"")
        {
            let span = h.value_span("http");
            let status = self.r.count(&h, "status", 100, 200).and_then(|s| {
                if (100..=599).contains(&s) {
                    Some(s as u16)
                } else {
                    self.r.error(
                        h.value_span("status"),
                        format!("`{}` = {s} is not an HTTP status", h.key_path("status")),
                        "HTTP statuses are 100 to 599, e.g. `status = 200`",
                    );
                    None
                }
            });
            let host = self.r.string(&h, "host", "\"shop.example.com\"");
            probes.push((Probe::Http { url, status, host }, span));
        } else {
            for key in ["status", "host"] {
                if let Some(span) = h.key_span(key) {
                    self.r.error(
                        span,
                        format!("`{}` only applies to http probes", h.key_path(key)),
                        "add `http = \"http://...\"` or remove it",
                    );
                }
            }
        }
        if let Some(address) = self.r.string(&h, "tcp", "\"127.0.0.1:6379\"") {
            let span = h.value_span("tcp");
            probes.push((Probe::Tcp { address }, span));
        }
        if let Some(value) = h.get("exec") {
            let path = h.key_path("exec");
            let argv = match value.get_ref() {
                DeValue::String(s) => shell_words::split(s)
                    .ok()
                    .and_then(|words| self.expand_words(value.span(), &path, words)),
                _ => self
                    .r
                    .as_string_list(value, &path, "[\"pg_isready\"]")
                    .map(|l| l.into_iter().map(Spanned::into_inner).collect()),
            };
            match argv {
                Some(argv) if argv.first().is_some_and(|p| !p.is_empty()) => probes.push((
                    Probe::Exec {
                        argv: argv.into_iter().map(|a| self.resolve_path(&a)).collect(),
                    },
                    value.span(),
                )),
                _ => self.r.error(
                    value.span(),
                    format!("`{path}` must be a non-empty command with a program"),
                    "write `exec = [\"pg_isready\", \"-h\", \"127.0.0.1\"]`",
                ),
            }
        }
        if self.r.bool(&h, "notify") == Some(true) {
            probes.push((Probe::Notify, h.value_span("notify")));
        }
        if let Some(pattern) = self.r.string(&h, "log", "\"Listening at\"") {
            probes.push((Probe::Log { pattern }, h.value_span("log")));
        }
        self.probes
            .extend(probes.iter().map(|(probe, span)| ProbeAt {
                table: h.path.clone(),
                probe: probe.clone(),
                span: span.clone(),
            }));
        let watchdog = self.r.duration(&h, "watchdog", "30s");
        let path = self.r.string(&h, "path", "\"/healthz/\"");
        if let Some(p) = &path {
            let web = matches!(
                backend,
                Some(BackendKind::Gunicorn | BackendKind::Uvicorn | BackendKind::Granian)
            );
            if !p.starts_with('/') || p.bytes().any(|b| b <= b' ') {
                self.r.error(
                    h.value_span("path"),
                    format!(
                        "`{}` must be a URL path such as \"/healthz/\", found \"{p}\"",
                        h.key_path("path")
                    ),
                    "start it with / and leave out spaces",
                );
            } else if !probes.is_empty() {
                self.r.error(
                    h.value_span("path"),
                    format!(
                        "`{}` goes with the default probe, not with an explicit one",
                        h.key_path("path")
                    ),
                    "with `http`, put the path in its URL; otherwise remove `path`",
                );
            } else if !web {
                self.r.error(
                    h.value_span("path"),
                    format!("`{}` only applies to gunicorn, uvicorn and granian, whose bind address prodserver knows", h.key_path("path")),
                    "write the whole probe: `http = \"http://127.0.0.1:8000/healthz/\"`",
                );
            }
        }
        if probes.len() > 1 {
            self.r.error(
                probes[1].1.clone(),
                format!("`{}` declares more than one readiness probe", h.path),
                "keep one of http, tcp, exec, notify and log (watchdog may go with any)",
            );
        }
        // A probe key that was refused above has been reported already.
        let probe_keys = ["http", "tcp", "exec", "notify", "log"];
        if probes.is_empty()
            && watchdog.is_none()
            && path.is_none()
            && !probe_keys.iter().any(|k| h.get(k).is_some())
        {
            self.r.error(
                h.span.clone(),
                format!("`{}` declares no probe", h.path),
                "add one of http, tcp, exec, notify, log or watchdog (or `path` for a web backend)",
            );
        }
        Some(HealthSpec {
            probe: probes.into_iter().next().map(|(p, _)| p),
            path,
            watchdog,
            interval: self
                .nonzero_duration(&h, "interval", "5s")
                .unwrap_or(schema::DEFAULT_HEALTH_INTERVAL),
            timeout: self
                .nonzero_duration(&h, "timeout", "2s")
                .unwrap_or(schema::DEFAULT_HEALTH_TIMEOUT),
            retries: self
                .r
                .count(&h, "retries", 1, 3)
                .unwrap_or(schema::DEFAULT_HEALTH_RETRIES),
            start_period: self
                .r
                .duration(&h, "start_period", "10s")
                .unwrap_or(schema::DEFAULT_START_PERIOD),
            start_timeout: self
                .nonzero_duration(&h, "start_timeout", "60s")
                .unwrap_or(schema::DEFAULT_START_TIMEOUT),
        })
    }

    /// The recycling keys every backend reads; what depends on the
    /// backend's launch (`memory_scope = "child"`, `max_tasks_per_child` on
    /// a web server) is decided by [`Loader::recycling`].
    fn limits(&mut self, t: &Table, backend: Option<BackendKind>) -> Limits {
        let memory_metric = match t.get("memory_metric") {
            None => schema::DEFAULT_MEMORY_METRIC,
            Some(value) => match self
                .r
                .as_string(value, &t.key_path("memory_metric"), "\"pss\"")
                .as_deref()
            {
                None => schema::DEFAULT_MEMORY_METRIC,
                Some("rss") => MemoryMetric::Rss,
                Some("pss") => MemoryMetric::Pss,
                Some("uss") => MemoryMetric::Uss,
                Some(other) => {
                    self.r.error(
                        value.span(),
                        format!("unknown memory metric \"{other}\""),
                        "use \"pss\" (the default), \"rss\" or \"uss\"",
                    );
                    schema::DEFAULT_MEMORY_METRIC
                }
            },
        };
        let memory_scope = match t.get("memory_scope") {
            None => backend.map_or(MemoryScope::Instance, backend::default_memory_scope),
            Some(value) => match self
                .r
                .as_string(value, &t.key_path("memory_scope"), "\"instance\"")
                .as_deref()
            {
                Some("instance") => MemoryScope::Instance,
                Some("child") => MemoryScope::Child,
                None => MemoryScope::Instance,
                Some(other) => {
                    self.r.error(
                        value.span(),
                        format!("unknown memory scope \"{other}\""),
                        "use \"instance\" (the whole process tree, recycled as one) or \"child\" (each child of the main process, recycled alone)",
                    );
                    MemoryScope::Instance
                }
            },
        };
        let max_memory_per_child = self.memory_limit(t);
        if max_memory_per_child.is_none() && t.get("max_memory_per_child").is_none() {
            if let Some(span) = t.key_span("memory_scope") {
                self.r.warning(
                    span,
                    format!(
                        "`{}` has no effect without `max_memory_per_child`",
                        t.key_path("memory_scope")
                    ),
                    "set `max_memory_per_child = \"300MiB\"`, or remove `memory_scope`",
                );
            }
        }
        Limits {
            max_memory_per_child,
            max_tasks_per_child: self.r.big_count(t, "max_tasks_per_child", 1000),
            server_recycling: None,
            memory_metric,
            memory_interval: self
                .memory_interval(t)
                .unwrap_or(schema::DEFAULT_MEMORY_INTERVAL),
            memory_samples: self
                .memory_samples(t)
                .unwrap_or(schema::DEFAULT_MEMORY_SAMPLES),
            memory_scope,
        }
    }

    /// `memory_interval`, within [`schema::MIN_MEMORY_INTERVAL`] and
    /// [`schema::MAX_MEMORY_INTERVAL`] (why each: see there).
    fn memory_interval(&mut self, t: &Table) -> Option<Duration> {
        let d = self.r.duration(t, "memory_interval", "250ms")?;
        let path = t.key_path("memory_interval");
        let (min, max) = (schema::MIN_MEMORY_INTERVAL, schema::MAX_MEMORY_INTERVAL);
        if d < min {
            self.r.error(
                t.value_span("memory_interval"),
                format!("`{path}` is shorter than the minimum of {}", crate::units::format_duration(min)),
                "each sample walks the instance's process tree in /proc and costs CPU; sample every 50ms or slower (the default, 250ms, reacts within 750ms)",
            );
            return None;
        }
        if d > max {
            self.r.error(
                t.value_span("memory_interval"),
                format!("`{path}` is longer than the maximum of {}", crate::units::format_duration(max)),
                "between samples a leak grows unwatched; sample at least every minute (the default is 250ms)",
            );
            return None;
        }
        Some(d)
    }

    /// `memory_samples`, 1 to [`schema::MAX_MEMORY_SAMPLES`].
    fn memory_samples(&mut self, t: &Table) -> Option<u32> {
        let n = self.r.count(t, "memory_samples", 1, 3)?;
        if n > schema::MAX_MEMORY_SAMPLES {
            self.r.error(
                t.value_span("memory_samples"),
                format!(
                    "`{}` = {n} is more than the maximum of {}",
                    t.key_path("memory_samples"),
                    schema::MAX_MEMORY_SAMPLES
                ),
                "the recycle waits memory_samples × memory_interval after the limit is crossed; to tolerate longer spikes raise `memory_interval` instead",
            );
            return None;
        }
        Some(n)
    }

    /// What the backend's launch decides about recycling: whether
    /// `memory_scope = "child"` is safe for it, and what
    /// `max_tasks_per_child` becomes (prodserver's count, or the web
    /// server's own flags, returned to be added to `args`).
    fn recycling(
        &mut self,
        t: &Table,
        kind: BackendKind,
        restart: RestartPolicy,
        input: &BackendInput,
        limits: &mut Limits,
    ) -> Vec<(String, ArgValue)> {
        if limits.memory_scope == MemoryScope::Child {
            if let Err(e) = backend::check_child_scope(kind, input) {
                let span = t.value_span("memory_scope");
                self.r
                    .error(span, format!("`{}`: {}", t.path, e.message), e.hint);
            }
        }
        let Some(n) = limits.max_tasks_per_child else {
            return Vec::new();
        };
        match backend::task_limit(kind, n, input) {
            Ok(backend::TaskLimit::Counted) => Vec::new(),
            Ok(backend::TaskLimit::Server {
                args,
                note,
                main_exits,
            }) => {
                if main_exits && restart != RestartPolicy::Always {
                    self.r.error(
                        t.value_span("max_tasks_per_child"),
                        format!(
                            "`{}`: {} exits with status 0 at the limit, and `restart = \"{}\"` would not start it again",
                            t.key_path("max_tasks_per_child"),
                            kind.name(),
                            restart.name()
                        ),
                        "use `restart = \"always\"` (the default), or run workers (`args = { workers = 4 }`) so the server replaces them itself",
                    );
                }
                limits.max_tasks_per_child = None;
                limits.server_recycling = Some(note);
                args
            }
            Err(e) => {
                let span = match &e.arg {
                    Some(key) => self.field_span(t, &Field::Arg(key.clone())),
                    None => t.value_span("max_tasks_per_child"),
                };
                self.r
                    .error(span, format!("`{}`: {}", t.path, e.message), e.hint);
                Vec::new()
            }
        }
    }

    /// `rollout`: how a running instance is replaced.
    fn rollout_mode(&mut self, t: &Table, oneshot: bool, singleton: bool) -> RolloutMode {
        let Some(value) = t.get("rollout") else {
            return RolloutMode::Replace;
        };
        let path = t.key_path("rollout");
        let mode = match self.r.as_string(value, &path, "\"surge\"").as_deref() {
            None | Some("replace") => RolloutMode::Replace,
            Some("surge") => RolloutMode::Surge,
            Some(other) => {
                self.r.error(
                    value.span(),
                    format!("unknown rollout \"{other}\""),
                    "use \"replace\" (stop, then start) or \"surge\" (start the new one, then stop the old)",
                );
                RolloutMode::Replace
            }
        };
        let why = if oneshot {
            Some("a oneshot is never replaced while it runs")
        } else if singleton {
            Some("a singleton must never run twice, not even for a moment")
        } else {
            None
        };
        match (mode, why) {
            (RolloutMode::Surge, Some(why)) => {
                self.r.error(
                    value.span(),
                    format!("`{path}` = \"surge\" is not possible here: {why}"),
                    "remove `rollout` (the default replaces the instance)",
                );
                RolloutMode::Replace
            }
            _ => mode,
        }
    }

    /// `listen`, `hold_socket`, `backlog` and `reuse_port`, read and
    /// checked on their own.
    fn held_keys(&mut self, t: &Table, backend: Option<BackendKind>) -> HeldKeys {
        let hold = self.r.bool(t, "hold_socket");
        let backlog = match t.get("backlog") {
            Some(value) => {
                let n = self.r.count(t, "backlog", 1, 2048);
                if n.is_some_and(|n| n > MAX_BACKLOG) {
                    self.r.error(
                        value.span(),
                        format!("`{}` is above {MAX_BACKLOG}", t.key_path("backlog")),
                        "the kernel caps the queue at net.core.somaxconn (4096 by default): write at most that, e.g. `backlog = 2048`",
                    );
                }
                n.filter(|n| *n <= MAX_BACKLOG)
            }
            None => None,
        };
        let reuse_port = self.r.bool(t, "reuse_port");
        let mut listen = Vec::new();
        if let Some(items) = self.r.string_list(t, "listen", "[\"127.0.0.1:8000\"]") {
            if backend.is_some_and(|b| b != BackendKind::Command) {
                if let Some(span) = t.key_span("listen") {
                    self.r.error(
                        span,
                        format!("`{}` applies to backend \"command\" only", t.key_path("listen")),
                        "a web server's address comes from its args (`bind`, `host`/`port`, `uds`); prodserver holds that socket already",
                    );
                }
            }
            for item in items {
                match backend::held::parse_listen(item.get_ref()) {
                    Ok(l) => listen.push(l),
                    Err(message) => self.r.error(
                        item.span(),
                        format!("`{}`: {message}", t.key_path("listen")),
                        "write \"HOST:PORT\" (\"127.0.0.1:8000\", \"[::]:8000\") or \"unix:PATH\" (\"unix:/run/shop/web.sock\")",
                    ),
                }
            }
        }
        HeldKeys {
            hold,
            backlog,
            reuse_port,
            listen,
        }
    }

    /// Whether prodserver holds the process's sockets (see `backend::held`).
    fn holding(
        &mut self,
        t: &Table,
        backend: BackendKind,
        input: &BackendInput,
        launch: &mut crate::backend::Launch,
        keys: &HeldKeys,
    ) -> Holding {
        let decision = backend::held::hold(
            backend,
            input,
            launch,
            keys.hold.unwrap_or(true) && self.opts.hold_sockets,
        );
        let holding = match decision {
            backend::held::Decision::Nothing => Holding::Nothing,
            backend::held::Decision::Own(why) => Holding::Own { why },
            backend::held::Decision::Held(passing) => Holding::Held {
                passing,
                backlog: keys.backlog.unwrap_or(crate::plan::DEFAULT_BACKLOG),
                reuse_port: keys.reuse_port.unwrap_or(false),
            },
        };
        if !matches!(holding, Holding::Held { .. }) {
            for key in ["backlog", "reuse_port"] {
                if let Some(value) = t.get(key) {
                    self.r.warning(
                        value.span(),
                        format!(
                            "`{}` has no effect: prodserver does not hold this process's socket",
                            t.key_path(key)
                        ),
                        "remove it, or pass the server's own option in args",
                    );
                }
            }
        }
        holding
    }

    /// `instances`, 1 to [`MAX_INSTANCES`].
    fn instances(&mut self, t: &Table) -> u32 {
        let n = self.r.count(t, "instances", 1, 2).unwrap_or(1);
        if n > MAX_INSTANCES {
            self.r.error(
                t.value_span("instances"),
                format!("`{}` = {n} is more than the maximum of {MAX_INSTANCES}", t.key_path("instances")),
                "each instance is a supervised process with its own pipes and sockets; use fewer instances and more workers/threads per instance",
            );
            return 1;
        }
        n
    }

    /// A duration that must be positive: a zero interval would probe in a
    /// busy loop, a zero timeout or window could never be met.
    fn nonzero_duration(&mut self, t: &Table, key: &str, example: &str) -> Option<Duration> {
        let d = self.r.duration(t, key, example)?;
        if d.is_zero() {
            self.r.error(
                t.value_span(key),
                format!("`{}` must be longer than zero", t.key_path(key)),
                format!(
                    "write e.g. `{} = \"{example}\"`, or remove it for the default",
                    t.key_path(key)
                ),
            );
            return None;
        }
        Some(d)
    }

    /// `max_memory_per_child`, at least [`MIN_MEMORY_PER_CHILD`]: below
    /// that no Python process even starts, so every instance would be
    /// recycled in a loop.
    fn memory_limit(&mut self, t: &Table) -> Option<u64> {
        let bytes = self.r.size(t, "max_memory_per_child", "300MiB")?;
        if bytes < MIN_MEMORY_PER_CHILD {
            self.r.error(
                t.value_span("max_memory_per_child"),
                format!(
                    "`{}` = {} is below the minimum of 1MiB",
                    t.key_path("max_memory_per_child"),
                    crate::units::format_size(bytes)
                ),
                "write a limit a process can live within, e.g. `max_memory_per_child = \"300MiB\"`",
            );
            return None;
        }
        Some(bytes)
    }

    /// `user` and `group` must exist on this host, checked as `start`
    /// resolves them (whether prodserver runs as root is `start`'s
    /// business: `check` may run as anyone).
    fn check_credentials(&mut self, t: &Table, user: Option<&str>, group: Option<&str>) {
        if let Some(user) = user {
            if let Err(e) = lookup_user(user, group.is_some()) {
                self.r.error(t.value_span("user"), e.0, e.1);
            }
        }
        if let Some(group) = group {
            if let Err(e) = lookup_group(group) {
                self.r.error(t.value_span("group"), e.0, e.1);
            }
        }
    }

    fn expand_words(
        &mut self,
        span: Range<usize>,
        path: &str,
        words: Vec<String>,
    ) -> Option<Vec<String>> {
        let out: Vec<Option<String>> = words
            .iter()
            .map(|w| self.r.expand(span.clone(), path, w))
            .collect();
        out.into_iter().collect()
    }

    fn expand_arg(&mut self, span: Range<usize>, path: &str, value: ArgValue) -> Option<ArgValue> {
        match value {
            ArgValue::Str(s) => self.r.expand(span, path, &s).map(ArgValue::Str),
            ArgValue::List(items) => {
                let out: Vec<Option<ArgValue>> = items
                    .into_iter()
                    .map(|i| self.expand_arg(span.clone(), path, i))
                    .collect();
                out.into_iter()
                    .collect::<Option<Vec<_>>>()
                    .map(ArgValue::List)
            }
            other => Some(other),
        }
    }

    fn process_dev(&mut self, t: &Table) -> ProcessDev {
        let Some(d) = self.r.table(t, "dev") else {
            return ProcessDev::default();
        };
        self.r.check_keys(&d, &schema::process_dev_keys());
        ProcessDev {
            watch: d.get("watch").map(|_| self.globs(&d, "watch")),
            ignore: self.globs(&d, "ignore"),
            env: self
                .r
                .env_table(&d, "env", &self.opts.env)
                .unwrap_or_default()
                .into_iter()
                .collect(),
            disabled: self.r.bool(&d, "enabled") == Some(false),
        }
    }
}

/// The kernel's limit on one argument or environment string, NUL included
/// (MAX_ARG_STRLEN: 32 pages).
pub const MAX_ARG_STRLEN: usize = 32 * 4096;

/// The limit on all argument and environment strings of one exec
/// (a quarter of the stack limit, as the kernel computes it).
pub(super) fn arg_max() -> usize {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::ARG_MAX) {
        Ok(Some(n)) if n > 0 => n as usize,
        _ => 128 * 1024,
    }
}

/// `shop.wsgi:application`, `wsgi:app`: a module named `wsgi`.
fn looks_wsgi(app: &str) -> bool {
    let module = app.split(':').next().unwrap_or(app);
    module.rsplit('.').next() == Some("wsgi")
}

/// The queues a process consumes: a celery-worker's `queues`, or Celery's
/// default queue when it has none; nothing for other backends.
fn consumed_queues(spec: &ProcessSpec) -> Vec<String> {
    if spec.backend != BackendKind::CeleryWorker {
        return Vec::new();
    }
    let queues = spec
        .celery
        .as_ref()
        .map(|c| c.queues.clone())
        .unwrap_or_default();
    if queues.is_empty() {
        vec![schema::CELERY_DEFAULT_QUEUE.to_string()]
    } else {
        queues
    }
}

/// The `[prodserver] queues` that no celery-worker among `selected`
/// consumes: `start NAME...` warns, since their tasks would wait until a
/// worker elsewhere takes them.
pub fn unconsumed_queues(plan: &Plan, selected: &[usize]) -> Vec<String> {
    let Some(routed) = &plan.queues else {
        return Vec::new();
    };
    let consumed: Vec<String> = selected
        .iter()
        .filter_map(|id| plan.processes.get(*id))
        .flat_map(consumed_queues)
        .collect();
    routed
        .iter()
        .filter(|q| !consumed.contains(q))
        .cloned()
        .collect()
}

/// The held-socket keys of one process, read before its backend resolves.
struct HeldKeys {
    hold: Option<bool>,
    backlog: Option<u32>,
    reuse_port: Option<bool>,
    /// `listen` of a command process.
    listen: Vec<crate::backend::Listen>,
}

/// listen(2)'s queue is an int, and the kernel caps it at somaxconn.
const MAX_BACKLOG: u32 = 65535;

/// The addresses instance `n` of `spec` binds, as two binds of one would
/// clash: `HOST:PORT` (wildcards on loopback) or `unix:PATH`.
pub fn listen_addresses(spec: &ProcessSpec, n: u32) -> Vec<String> {
    let spec = spec.for_instance(n);
    spec.listen
        .iter()
        .filter_map(|l| l.key(&spec.cwd))
        .collect()
}

/// Where in config `text` process `name` writes its bind address (see
/// [`bind_span`]), or with `key`, that key's value (else the name):
/// for `check`'s warnings about the host, found after loading.
pub fn span_in(text: &str, name: &str, key: Option<&str>) -> Option<Range<usize>> {
    let doc = DeTable::parse(text).ok()?;
    let processes = doc.get_ref().get("processes")?;
    let DeValue::Table(entries) = processes.get_ref() else {
        return None;
    };
    let table = Table {
        path: "processes".into(),
        span: processes.span(),
        entries,
    };
    match key {
        None => Some(bind_span(&table, name)),
        Some(key) => match entries.get(name).map(|v| v.get_ref()) {
            Some(DeValue::Table(p)) => p
                .get(key)
                .map(|v| v.span())
                .or_else(|| table.key_span(name)),
            _ => table.key_span(name),
        },
    }
}

/// Where in config `text` the key `path` of process `name` is written
/// (`["health", "http"]` is `processes.NAME.health.http`): its value, or
/// with `key`, the key itself; the process's name when the file does not
/// spell it out. For diagnostics found after loading.
pub fn span_at(text: &str, name: &str, path: &[&str], key: bool) -> Option<Range<usize>> {
    let doc = DeTable::parse(text).ok()?;
    let processes = doc.get_ref().get("processes")?;
    let DeValue::Table(entries) = processes.get_ref() else {
        return None;
    };
    let table = Table {
        path: "processes".into(),
        span: processes.span(),
        entries,
    };
    let fallback = table.key_span(name);
    let mut at = entries;
    let mut span = None;
    let mut walk = std::iter::once(name).chain(path.iter().copied()).peekable();
    while let Some(step) = walk.next() {
        let Some((k, v)) = at.get_key_value(step) else {
            return span.or(fallback);
        };
        span = Some(if key && walk.peek().is_none() {
            k.span()
        } else {
            v.span()
        });
        match v.get_ref() {
            DeValue::Table(t) => at = t,
            _ if walk.peek().is_some() => return span.or(fallback),
            _ => {}
        }
    }
    span.or(fallback)
}

/// Where a process's bind address is written: its bind/host/port/listen
/// argument, else its `args`, else its name.
fn bind_span(processes: &Table, name: &str) -> Range<usize> {
    let Some(DeValue::Table(t)) = processes.get(name).map(|v| v.get_ref()) else {
        return processes.key_span(name).unwrap_or(0..0);
    };
    let args = t.get("args");
    if let Some(DeValue::Table(a)) = args.map(|v| v.get_ref()) {
        for key in [
            "bind",
            "b",
            "listen",
            "host",
            "port",
            "p",
            "uds",
            "unix-socket",
            "u",
        ] {
            if let Some(v) = a.get(key) {
                return v.span();
            }
        }
    }
    args.map(|v| v.span())
        .or_else(|| processes.key_span(name))
        .unwrap_or(0..0)
}

/// Longest project or process name: names key lock files and the
/// per-instance notify sockets under the runtime directory, and a unix
/// socket path is limited to 108 bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Most instances of one process: each is a supervised process with its
/// own log pipes, notify socket and timers.
pub const MAX_INSTANCES: u32 = 1000;

/// Smallest `max_memory_per_child`.
pub const MIN_MEMORY_PER_CHILD: u64 = 1 << 20;

/// Signals refused as `stop_signal`: by default they are ignored (CHLD,
/// URG, WINCH), continue (CONT) or suspend (STOP, TSTP, TTIN, TTOU) a
/// process instead of ending it, or, for PIPE, are ignored by Python
/// programs; every stop would wait out `stop_timeout` and end in SIGKILL.
pub const STOP_SIGNALS_REFUSED: &[i32] = &[
    libc::SIGCHLD,
    libc::SIGCONT,
    libc::SIGSTOP,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGURG,
    libc::SIGWINCH,
    libc::SIGPIPE,
];

/// A multi-line library message (the regex crate's points at the pattern
/// with a caret over three lines) as one line: the diagnostic already
/// shows where.
/// A multi-line library message (a regex error) as one diagnostic line.
pub fn one_line(message: &str) -> String {
    let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
    let Some(first) = lines.next() else {
        return String::new();
    };
    if let Some(err) = message
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("error: "))
    {
        let head = first
            .trim_end_matches(':')
            .trim_end_matches("regex parse error")
            .trim_end();
        let head = head.trim_end_matches(':');
        return if head.is_empty() {
            err.to_string()
        } else {
            format!("{head}: {err}")
        };
    }
    std::iter::once(first)
        .chain(lines)
        .collect::<Vec<_>>()
        .join("; ")
}

/// As `start` looks a user up: by name, else a numeric uid (which needs a
/// `group` when it has no passwd entry). Errors are (message, hint).
fn lookup_user(user: &str, has_group: bool) -> Result<(), (String, String)> {
    if user.is_empty() {
        return Err((
            "`user` is empty".into(),
            "name a user (e.g. \"www-data\"), or remove the key".into(),
        ));
    }
    let lookup_err = |e: nix::Error| {
        (
            format!("cannot look up user {user:?}: {e}"),
            "check the user database (NSS)".to_string(),
        )
    };
    if nix::unistd::User::from_name(user)
        .map_err(lookup_err)?
        .is_some()
    {
        return Ok(());
    }
    let Ok(uid) = user.parse::<u32>() else {
        return Err((
            format!("user {user:?} does not exist on this host"),
            format!("create it (e.g. `useradd --system {user}`) or fix `user`"),
        ));
    };
    let known = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .map_err(lookup_err)?
        .is_some();
    if known || has_group {
        Ok(())
    } else {
        Err((
            format!("uid {uid} has no entry in the user database, so its primary group is unknown"),
            "set `group` as well".into(),
        ))
    }
}

fn lookup_group(group: &str) -> Result<(), (String, String)> {
    if group.is_empty() {
        return Err((
            "`group` is empty".into(),
            "name a group (e.g. \"www-data\"), or remove the key".into(),
        ));
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(_)) => Ok(()),
        // A numeric gid needs no entry in /etc/group to be valid.
        Ok(None) if group.parse::<u32>().is_ok() => Ok(()),
        Ok(None) => Err((
            format!("group {group:?} does not exist on this host"),
            format!("create it (e.g. `groupadd --system {group}`) or fix `group`"),
        )),
        Err(e) => Err((
            format!("cannot look up group {group:?}: {e}"),
            "check the group database (NSS)".into(),
        )),
    }
}

fn arg_value(v: &DeValue, allow_list: bool) -> Option<ArgValue> {
    match v {
        DeValue::String(s) => Some(ArgValue::Str(s.to_string())),
        DeValue::Integer(i) => read::integer(i).map(ArgValue::Int),
        DeValue::Float(f) => f.as_str().parse().ok().map(ArgValue::Float),
        DeValue::Boolean(b) => Some(ArgValue::Bool(*b)),
        DeValue::Array(items) if allow_list => items
            .iter()
            .map(|i| arg_value(i.get_ref(), false))
            .collect::<Option<Vec<_>>>()
            .map(ArgValue::List),
        _ => None,
    }
}

fn valid_process_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
