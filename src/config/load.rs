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
use std::str::FromStr;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diagnostic::{Diagnostic, FileId, Severity, Sources};
use super::read::{self, did_you_mean, Reader, Table};
use super::{envfile, schema};
use crate::backend::{self, ArgValue, BackendInput, BackendKey, Field};
use crate::plan::*;
use crate::supervisor::order::find_cycle;

/// What loading needs from the outside world, passed in so tests control it.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// prodserver's own environment (children inherit it, scrubbed).
    pub env: BTreeMap<String, String>,
    /// prodserver's runtime directory (sockets, locks).
    pub runtime_dir: PathBuf,
}

/// A loaded plan, with the warnings found on the way.
pub struct Loaded {
    pub plan: Plan,
    pub sources: Sources,
    pub warnings: Vec<Diagnostic>,
}

/// A file that cannot run; `diagnostics` holds every error (and warning).
pub struct LoadError {
    pub sources: Sources,
    pub diagnostics: Vec<Diagnostic>,
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
    match std::fs::read_to_string(&path) {
        Ok(text) => load_str(&path, text, opts),
        Err(e) => {
            let mut sources = Sources::default();
            let file = sources.add(&path, String::new());
            let d = Diagnostic::error(file, None, format!("cannot read {}: {e}", path.display()))
                .with_hint("check the path given with -c/--config or PRODSERVER_CONFIG");
            Err(LoadError {
                sources,
                diagnostics: vec![d],
            })
        }
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
    let (doc, syntax_errors) = DeTable::parse_recoverable(&text);
    let mut loader = Loader {
        r: Reader::new(file),
        sources,
        root,
        opts,
    };
    for e in syntax_errors {
        let span = e.span().unwrap_or(0..0);
        loader.r.error(
            span,
            format!("TOML syntax: {}", e.message().trim()),
            "fix the TOML syntax at this point",
        );
    }
    let top = Table {
        path: String::new(),
        span: doc.span(),
        entries: doc.get_ref(),
    };
    let plan = loader.plan(path, &top);
    let Loader { mut r, sources, .. } = loader;
    // Read in file order, so the user can fix them top to bottom.
    r.diagnostics
        .sort_by_key(|d| (d.file, d.span.as_ref().map_or(usize::MAX, |s| s.start)));
    let has_errors = r.diagnostics.iter().any(|d| d.severity == Severity::Error);
    match plan {
        Some(plan) if !has_errors => Ok(Loaded {
            plan,
            sources,
            warnings: r.diagnostics,
        }),
        _ => Err(LoadError {
            sources,
            diagnostics: r.diagnostics,
        }),
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
}

/// What `[prodserver]` contributes to every process.
#[derive(Default)]
struct Project {
    name: String,
    env: Vec<(String, String)>,
    stop_timeout: Option<Duration>,
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
            }
            match self.process(id, name, &table, &project, &mut raw_deps) {
                Some(spec) => specs.push(spec),
                None => complete = false,
            }
        }

        self.resolve_dependencies(&names, &mut specs, raw_deps, complete);
        if complete {
            self.check_queue_routing(&project, &specs, &processes_table);
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
            if valid_process_name(&name) {
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
            if let Some(d) = self.r.duration(&t, "debounce", "200ms") {
                dev.debounce = d;
            }
        }
        dev
    }

    fn globs(&mut self, t: &Table, key: &str) -> Vec<String> {
        self.r
            .string_list(t, key, "[\"**/*.py\"]")
            .map(|l| l.into_iter().map(Spanned::into_inner).collect())
            .unwrap_or_default()
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
        let instances = self.r.count(t, "instances", 1, 2).unwrap_or(1);
        let singleton_key = self.r.bool(t, "singleton");
        let restart = self.restart_policy(t, oneshot);
        let stop_signal = self.stop_signal(t, backend);
        let stop_timeout = self
            .r
            .duration(t, "stop_timeout", "30s")
            .or(project.stop_timeout)
            .unwrap_or(schema::DEFAULT_STOP_TIMEOUT);
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
            .r
            .duration(t, "restart_window", "5m")
            .unwrap_or(schema::DEFAULT_RESTART_WINDOW);
        let user = self.r.string(t, "user", "\"www-data\"");
        let group = self.r.string(t, "group", "\"www-data\"");
        let cwd = self.cwd(t);
        let watch = self.globs(t, "watch");
        let health = self.health(t, backend);
        let limits = self.limits(t);
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
        };
        let output = match backend::resolve(backend, &input) {
            Ok(output) => output,
            Err(errors) => {
                for e in errors {
                    let span = self.field_span(t, &e.field);
                    self.r
                        .error(span, format!("`processes.{name}`: {}", e.message), e.hint);
                }
                return None;
            }
        };
        let mut argv = output.argv;
        let mut integration_env = Vec::new();
        if matches!(backend, BackendKind::CeleryWorker | BackendKind::CeleryBeat)
            && celery_integration.unwrap_or(true)
        {
            let dir = crate::celery::module_dir(&self.opts.runtime_dir);
            let pythonpath = child_env.get("PYTHONPATH").map(String::as_str);
            if let Some(i) = crate::celery::integrate(backend, &argv, &dir, pythonpath) {
                argv = i.argv;
                integration_env = i.env;
            }
        }
        if let Some(first) = argv.first_mut() {
            if first.contains('/') {
                *first = self.resolve_path(first);
            }
        }
        env.extend(output.env);
        env.extend(integration_env);

        let celery = match backend {
            BackendKind::CeleryWorker | BackendKind::CeleryBeat => Some(CeleryInfo {
                app: app.unwrap_or_default(),
                queues: queues.clone(),
                integration: celery_integration.unwrap_or(true),
            }),
            _ => None,
        };

        Some(ProcessSpec {
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
            critical,
            depends_on: Vec::new(),
            user,
            group,
            health,
            limits,
            celery,
            watch,
            dev,
        })
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
        match signal_from_name(&text) {
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
        if !dir.is_dir() {
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
                Ok(words) => Some(words),
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
                Some(a) => out.push((key.to_string(), a)),
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

    /// `[prodserver] queues` lists where the project routes tasks: each must
    /// have a consumer, and a consumed queue nothing routes to is suspicious.
    fn check_queue_routing(&mut self, project: &Project, specs: &[ProcessSpec], processes: &Table) {
        let Some(routed) = &project.queues else {
            return;
        };
        let mut consumed: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for spec in specs
            .iter()
            .filter(|s| s.backend == BackendKind::CeleryWorker)
        {
            let queues = spec
                .celery
                .as_ref()
                .map(|c| c.queues.clone())
                .unwrap_or_default();
            let queues = if queues.is_empty() {
                vec![schema::CELERY_DEFAULT_QUEUE.to_string()]
            } else {
                queues
            };
            for q in queues {
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
            let status = self.r.count(&h, "status", 100, 200).map(|s| s as u16);
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
                DeValue::String(s) => shell_words::split(s).ok(),
                _ => self
                    .r
                    .as_string_list(value, &path, "[\"pg_isready\"]")
                    .map(|l| l.into_iter().map(Spanned::into_inner).collect()),
            };
            match argv {
                Some(argv) if !argv.is_empty() => probes.push((
                    Probe::Exec {
                        argv: argv.into_iter().map(|a| self.resolve_path(&a)).collect(),
                    },
                    value.span(),
                )),
                _ => self.r.error(
                    value.span(),
                    format!("`{path}` must be a non-empty command"),
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
        // Build each probe now, as start would: a bad URL, address or
        // regex is a located config error, not a failure at start.
        for (probe, span) in &probes {
            // As instance 1 would run it: `{instance}` may stand for a port.
            if let Err(e) = crate::health::check_for(&probe.for_instance("1")) {
                self.r.error(
                    span.clone(),
                    format!("`{}`: {e}", h.path),
                    "fix the probe: `http = \"http://127.0.0.1:8000/healthz/\"`, `tcp = \"127.0.0.1:6379\"`, `log = \"^Listening\"` (a Rust regex)",
                );
            }
        }
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
        if probes.is_empty() && watchdog.is_none() && path.is_none() {
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
                .r
                .duration(&h, "interval", "5s")
                .unwrap_or(schema::DEFAULT_HEALTH_INTERVAL),
            timeout: self
                .r
                .duration(&h, "timeout", "2s")
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
                .r
                .duration(&h, "start_timeout", "60s")
                .unwrap_or(schema::DEFAULT_START_TIMEOUT),
        })
    }

    fn limits(&mut self, t: &Table) -> Limits {
        // Validated now so files written today stay valid; enforcing them
        // (recycling) is a later step, and a key that silently does nothing
        // would be a lie.
        for key in ["max_memory_per_child", "max_tasks_per_child"] {
            if let Some(span) = t.key_span(key) {
                self.r.warning(
                    span,
                    format!("`{}` is checked but not enforced yet: this prodserver does not recycle instances", t.key_path(key)),
                    "keep it for a prodserver that recycles; Celery's own per-pool-child option goes in `args` (e.g. `max-tasks-per-child = 1000`) and works today",
                );
            }
        }
        let memory_metric = match t.get("memory_metric") {
            None => MemoryMetric::Rss,
            Some(value) => match self
                .r
                .as_string(value, &t.key_path("memory_metric"), "\"pss\"")
                .as_deref()
            {
                Some("rss") | None => MemoryMetric::Rss,
                Some("pss") => MemoryMetric::Pss,
                Some("uss") => MemoryMetric::Uss,
                Some(other) => {
                    self.r.error(
                        value.span(),
                        format!("unknown memory metric \"{other}\""),
                        "use \"rss\", \"pss\" or \"uss\"",
                    );
                    MemoryMetric::Rss
                }
            },
        };
        Limits {
            max_memory_per_child: self.r.size(t, "max_memory_per_child", "300MiB"),
            max_tasks_per_child: self.r.big_count(t, "max_tasks_per_child", 1000),
            memory_metric,
            memory_interval: self
                .r
                .duration(t, "memory_interval", "5s")
                .unwrap_or(schema::DEFAULT_MEMORY_INTERVAL),
            memory_samples: self
                .r
                .count(t, "memory_samples", 1, 3)
                .unwrap_or(schema::DEFAULT_MEMORY_SAMPLES),
        }
    }

    fn process_dev(&mut self, t: &Table) -> ProcessDev {
        let Some(d) = self.r.table(t, "dev") else {
            return ProcessDev::default();
        };
        self.r.check_keys(&d, schema::PROCESS_DEV);
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

/// `TERM`, `SIGTERM`, `term` or a number.
pub fn signal_from_name(text: &str) -> Option<i32> {
    if let Ok(n) = text.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).ok().map(|s| s as i32);
    }
    let upper = text.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&full)
        .ok()
        .map(|s| s as i32)
}
