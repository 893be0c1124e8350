//! From what was found in a Django project to the text of its
//! `prodserver.toml`: every decision is made here, in pure functions, and
//! written next to a comment that says why.

use std::path::PathBuf;

use super::detect::{server_app, CeleryFacts, ProbeOut, StaticCelery};
use super::toml_out::{TomlWriter, Value};

/// Where the project's Python comes from, which decides how the written
/// file names its programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A virtualenv under the config file's folder, as written relative
    /// to it (`.venv`): programs are named by that path, so the file runs
    /// without activating anything.
    Local(String),
    /// `$VIRTUAL_ENV`, outside the config file's folder: programs are
    /// named bare and found on `PATH`, so the file does not pin one
    /// machine's absolute path.
    VirtualEnv(PathBuf),
    /// No virtualenv: `python3` and the programs on `PATH`.
    System,
}

/// The interpreter asked, and why that one.
#[derive(Debug, Clone)]
pub struct PythonEnv {
    pub run: PathBuf,
    pub origin: Origin,
}

impl PythonEnv {
    /// The interpreter as the written file names it.
    fn python(&self) -> String {
        match &self.origin {
            Origin::Local(venv) => format!("{venv}/bin/python"),
            Origin::VirtualEnv(_) => "python".to_owned(),
            Origin::System => "python3".to_owned(),
        }
    }

    /// A `program` key for `name`, when the backend's bare name is not it.
    fn program(&self, name: &str) -> Option<String> {
        match &self.origin {
            Origin::Local(venv) => Some(format!("{venv}/bin/{name}")),
            Origin::VirtualEnv(_) | Origin::System => None,
        }
    }

    fn described(&self) -> String {
        match &self.origin {
            Origin::Local(venv) => format!(
                "the project's virtualenv `{venv}`, named by its path below so nothing needs activating"
            ),
            Origin::VirtualEnv(path) => format!(
                "$VIRTUAL_ENV ({}). Programs are named bare below and found on PATH: start prodserver with that virtualenv active (its bin/ first on PATH; under systemd, set `Environment=PATH=...`)",
                path.display()
            ),
            Origin::System => "no virtualenv ($VIRTUAL_ENV unset, no .venv/ or venv/ here): python3 and the programs on PATH".to_owned(),
        }
    }
}

/// The Celery app found in the source.
#[derive(Debug, Clone)]
pub struct CeleryFound {
    /// `shop.celery`
    pub module: String,
    /// The variable the app is assigned to, as read from the source.
    pub variable: Option<String>,
}

/// Everything `init` found, gathered by `mod.rs`.
#[derive(Debug, Clone)]
pub struct Facts {
    pub settings_module: String,
    /// Where the settings module came from (`manage.py`, or a guess).
    pub settings_from: String,
    pub python: PythonEnv,
    /// What the project's Python said, or why it could not be asked.
    pub probe: Result<ProbeOut, String>,
    /// `WSGI_APPLICATION`/`ASGI_APPLICATION` as literally written.
    pub static_wsgi: Option<String>,
    pub static_asgi: Option<String>,
    /// `<package>.wsgi` / `<package>.asgi` when those files exist.
    pub wsgi_module: Option<String>,
    pub asgi_module: Option<String>,
    /// django-celery-beat named in the settings source.
    pub static_celery_beat_app: bool,
    pub celery: Option<CeleryFound>,
    /// Celery facts read from the settings and celery.py sources.
    pub static_celery: StaticCelery,
    /// The project folder relative to the written file's, when the file
    /// is not written into it.
    pub cwd: Option<String>,
}

const SERVERS: [&str; 4] = ["gunicorn", "uvicorn", "granian", "daphne"];
const DATABASE_SCHEDULER: &str = "django_celery_beat.schedulers:DatabaseScheduler";

/// The web server chosen, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Web {
    pub backend: &'static str,
    pub app: String,
    pub args: Vec<(String, Value)>,
    pub why: String,
}

/// The application a server loads: settings first, then the package's
/// `wsgi.py`/`asgi.py`.
fn applications(f: &Facts) -> (Option<String>, Option<String>, bool) {
    let settings = f.probe.as_ref().ok().and_then(|p| p.settings.as_ref());
    let wsgi = settings
        .and_then(|s| s.wsgi_application.clone())
        .or_else(|| f.static_wsgi.clone())
        .map(|a| server_app(&a))
        .or_else(|| f.wsgi_module.as_ref().map(|m| format!("{m}:application")));
    let asgi_setting = settings
        .and_then(|s| s.asgi_application.clone())
        .or_else(|| f.static_asgi.clone());
    let asgi_preferred = asgi_setting.is_some();
    let asgi = asgi_setting
        .map(|a| server_app(&a))
        .or_else(|| f.asgi_module.as_ref().map(|m| format!("{m}:application")));
    (wsgi, asgi, asgi_preferred)
}

/// Picks the server: ASGI first when the settings name an
/// `ASGI_APPLICATION` (Channels and async projects set it; Django's own
/// template sets only `WSGI_APPLICATION`), else WSGI; among the installed
/// servers in a fixed order of preference.
pub fn choose_web(
    installed: Option<&[&str]>,
    wsgi: Option<&str>,
    asgi: Option<&str>,
    asgi_preferred: bool,
) -> Web {
    let has = |s: &str| installed.is_some_and(|list| list.contains(&s));
    let listen = "127.0.0.1";
    let port = "${PORT:-8000}";
    let gunicorn = |app: &str, why: String| Web {
        backend: "gunicorn",
        app: app.to_owned(),
        args: vec![
            ("bind".into(), Value::str(format!("{listen}:{port}"))),
            ("workers".into(), Value::Int(2)),
        ],
        why,
    };
    let host_port = |backend: &'static str, app: &str, interface: Option<&str>, why: String| {
        let mut args = vec![
            ("host".into(), Value::str(listen)),
            ("port".into(), Value::str(port)),
        ];
        if let Some(i) = interface {
            args.push(("interface".into(), Value::str(i)));
        }
        Web {
            backend,
            app: app.to_owned(),
            args,
            why,
        }
    };
    let daphne = |app: &str, why: String| Web {
        backend: "daphne",
        app: app.to_owned(),
        args: vec![
            ("bind".into(), Value::str(listen)),
            ("port".into(), Value::str(port)),
        ],
        why,
    };
    if asgi_preferred {
        if let Some(app) = asgi {
            let why = "the settings name an ASGI_APPLICATION, so an ASGI server serves it";
            if has("uvicorn") {
                return host_port(
                    "uvicorn",
                    app,
                    None,
                    format!("{why}: uvicorn (preferred among the ASGI servers installed)"),
                );
            }
            if has("daphne") {
                return daphne(app, format!("{why}: daphne (installed; uvicorn is not)"));
            }
            if has("granian") {
                return host_port("granian", app, Some("asgi"), format!("{why}: granian with `interface = \"asgi\"` (installed; uvicorn and daphne are not)"));
            }
        }
    }
    if let Some(app) = wsgi {
        if has("gunicorn") {
            return gunicorn(app, "the WSGI application, served by gunicorn (installed; preferred for WSGI: a pre-fork pool that replaces crashed workers)".into());
        }
        if has("granian") {
            return host_port("granian", app, Some("wsgi"), "the WSGI application, served by granian with `interface = \"wsgi\"` (installed; gunicorn is not)".into());
        }
        if has("uvicorn") {
            return host_port("uvicorn", app, Some("wsgi"), "the WSGI application, served by uvicorn with `interface = \"wsgi\"` (installed; gunicorn and granian are not; without that option every request would fail with 500)".into());
        }
    }
    if let Some(app) = asgi {
        if has("uvicorn") {
            return host_port(
                "uvicorn",
                app,
                None,
                "the ASGI application, served by uvicorn (installed)".into(),
            );
        }
        if has("daphne") {
            return daphne(
                app,
                "the ASGI application, served by daphne (installed; daphne serves ASGI only)"
                    .into(),
            );
        }
        if has("granian") {
            return host_port(
                "granian",
                app,
                Some("asgi"),
                "the ASGI application, served by granian (installed)".into(),
            );
        }
    }
    let not_installed = if installed.is_some() {
        "none of gunicorn, uvicorn, granian, daphne is installed"
    } else {
        "which servers are installed is unknown (Python could not be asked)"
    };
    match (wsgi, asgi) {
        (Some(app), _) => gunicorn(app, format!("{not_installed}: gunicorn is written for the WSGI application; install it (`pip install gunicorn`) or change the backend")),
        (None, Some(app)) => host_port("uvicorn", app, None, format!("{not_installed}: uvicorn is written for the ASGI application; install it (`pip install uvicorn`) or change the backend")),
        (None, None) => unreachable_app(not_installed),
    }
}

/// No application found at all: a Django project always has one (its
/// template writes `wsgi.py`), so this is a guess the user must correct.
fn unreachable_app(not_installed: &str) -> Web {
    Web {
        backend: "gunicorn",
        app: "config.wsgi:application".into(),
        args: vec![("bind".into(), Value::str("127.0.0.1:${PORT:-8000}"))],
        why: format!("no WSGI or ASGI application was found (no WSGI_APPLICATION, no wsgi.py next to the settings): set `app` to yours; {not_installed}"),
    }
}

/// The queues to run workers for, where they were read, and what could
/// not be read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Queues {
    pub names: Vec<String>,
    /// Names no worker can be given on its command line.
    pub unusable: Vec<String>,
    pub default_queue: String,
    pub source: String,
    pub opaque: Vec<String>,
    pub beat_schedule: bool,
    pub beat_scheduler: Option<String>,
}

/// Queues named by `task_routes` and `task_queues`, plus the default
/// queue (a task no route matches goes there, so something must consume
/// it); empty when neither names any, and then one worker consumes
/// Celery's default queue.
pub fn queues(f: &Facts) -> Queues {
    let probe = f.probe.as_ref().ok();
    let from_app = probe.and_then(|p| p.celery.as_ref()).map(|c| &c.facts);
    let from_settings = probe.and_then(|p| p.settings.as_ref()).map(|s| &s.celery);
    let (facts, source): (CeleryFacts, String) = match (from_app, from_settings, probe) {
        (Some(c), _, _) => (c.clone(), format!("read from the Celery app's configuration ({}'s app.conf, imported by the project's Python)", f.celery.as_ref().map_or("celery", |c| c.module.as_str()))),
        (None, Some(s), Some(p)) => {
            let why = p.celery_error.as_deref().map_or(String::new(), |e| format!("; the Celery app itself could not be imported: {e}"));
            (s.clone(), format!("read from the settings' CELERY_* values, imported by the project's Python{why}"))
        }
        _ => {
            let why = match &f.probe {
                Err(e) => format!("the project's Python could not be run: {e}"),
                Ok(p) => format!(
                    "the project's Python could not import the settings: {}",
                    p.settings_error.as_deref().unwrap_or("unknown error")
                ),
            };
            let s = &f.static_celery;
            let facts = CeleryFacts {
                routes_set: !s.route_queues.is_empty(),
                route_queues: s.route_queues.clone(),
                opaque_routes: Vec::new(),
                task_queues: (!s.declared_queues.is_empty()).then(|| s.declared_queues.clone()),
                default_queue: s.default_queue.clone(),
                beat_schedule: s.beat_schedule,
                beat_scheduler: None,
            };
            (facts, format!("read from the source text (literal values only), since {why}"))
        }
    };
    let default_queue = facts
        .default_queue
        .clone()
        .unwrap_or_else(|| "celery".to_owned());
    let mut names: Vec<String> = Vec::new();
    for q in facts
        .route_queues
        .iter()
        .chain(facts.task_queues.iter().flatten())
    {
        if !names.contains(q) {
            names.push(q.clone());
        }
    }
    if !names.is_empty() && !names.contains(&default_queue) {
        names.push(default_queue.clone());
    }
    // `-Q` splits on commas and a name with whitespace cannot be written
    // there: such a queue gets no worker (and is not listed, which `check`
    // would then fail on), and the file says why.
    let (names, unusable) = names.into_iter().partition(|q: &String| {
        !q.is_empty() && !q.contains(',') && !q.chars().any(char::is_whitespace)
    });
    Queues {
        names,
        unusable,
        default_queue,
        source,
        opaque: facts.opaque_routes,
        beat_schedule: facts.beat_schedule,
        beat_scheduler: facts.beat_scheduler,
    }
}

/// A process name for a queue's worker: `worker-NAME`, with characters a
/// name may not hold replaced by `-` and a number added on a clash.
pub fn worker_name(queue: &str, taken: &[String]) -> String {
    let clean: String = queue
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(50)
        .collect();
    let base = format!("worker-{clean}");
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// The project name: the settings' top package (a Python identifier,
/// so a valid name), cut to the 64 characters a name may have.
fn project_name(settings_module: &str) -> String {
    let top = settings_module.split('.').next().unwrap_or("django");
    let clean: String = top
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if clean.is_empty() {
        "django".to_owned()
    } else {
        clean
    }
}

/// The whole file.
pub fn render(f: &Facts) -> String {
    let mut w = TomlWriter::new();
    let python = f.python.python();
    let probe = f.probe.as_ref().ok();
    w.comment(&format!(
        "prodserver.toml for the Django project {}, written by `prodserver init` (prodserver {}). Every choice is explained next to it; edit freely, then `prodserver check` shows what would run and `prodserver start` runs it.",
        f.cwd.as_deref().map_or("in this folder".to_owned(), |d| format!("in {d}")),
        env!("CARGO_PKG_VERSION")
    ));
    w.comment("");
    let python_line = match &f.probe {
        Ok(p) => format!(
            "Python: {} ({}), {}. It was asked which servers are installed (importlib.util.find_spec), and to import the settings{} to read them.",
            p.python,
            p.version,
            f.python.described(),
            f.celery.as_ref().map_or(String::new(), |c| format!(" and {}", c.module))
        ),
        Err(e) => format!(
            "Python: {} could not be run ({e}), so nothing was imported: everything below was read from the source text. Interpreter: {}.",
            f.python.run.display(),
            f.python.described()
        ),
    };
    w.comment(&python_line);
    if let Some(p) = probe {
        let (yes, no): (Vec<&str>, Vec<&str>) = SERVERS.iter().partition(|s| p.has(s));
        w.comment(&format!(
            "Web servers installed: {}; not installed: {}.",
            list_or_none(&yes),
            list_or_none(&no)
        ));
        if let Some(e) = &p.settings_error {
            w.comment(&format!(
                "The settings could not be imported ({e}): they were read from the source text instead (literal values only)."
            ));
        }
    }
    w.blank();

    w.table(&["prodserver"]);
    let name = project_name(&f.settings_module);
    w.comment("Keys the lock files and the control socket (one supervisor per name on a host): the settings' package.");
    w.set("name", name.as_str());
    w.comment(&format!(
        "DJANGO_SETTINGS_MODULE: {} (from {}), unless the environment prodserver starts in sets another (a production settings module, say). PYTHONUNBUFFERED: Python writes its output line by line instead of in blocks, so logs arrive as they happen.",
        f.settings_module, f.settings_from
    ));
    w.set(
        "env",
        Value::inline([
            (
                "DJANGO_SETTINGS_MODULE",
                Value::str(format!(
                    "${{DJANGO_SETTINGS_MODULE:-{}}}",
                    f.settings_module
                )),
            ),
            ("PYTHONUNBUFFERED", Value::str("1")),
        ]),
    );
    let q = f.celery.as_ref().map(|_| queues(f));
    if let Some(q) = q.as_ref().filter(|q| !q.names.is_empty()) {
        w.comment(&format!(
            "The queues tasks are routed to: task_routes and task_queues name them, and {} is the default queue (tasks no route matches go there). `check` fails if one has no worker. They were {}.",
            q.default_queue,
            q.source
        ));
        w.set("queues", Value::strings(q.names.iter().cloned()));
    }
    if let Some(q) = q.as_ref().filter(|q| !q.unusable.is_empty()) {
        let names: Vec<String> = q.unusable.iter().map(|n| format!("{n:?}")).collect();
        w.comment(&format!(
            "No worker for {}: Celery's -Q cannot take a queue name with a comma or whitespace. Rename it in the routes, then add it here and give it a worker.",
            names.join(", ")
        ));
    }
    w.blank();

    // migrate
    w.comment("Applies the database migrations once, before anything else starts: web, workers and beat wait until it has exited 0 (`depends_on = { migrate = \"completed\" }`), so none of them runs against an unmigrated database. If it fails, prodserver stops and exits 1, showing its last lines.");
    w.table(&["processes", "migrate"]);
    w.set("backend", "command");
    w.set(
        "command",
        Value::strings([python.as_str(), "manage.py", "migrate", "--noinput"]),
    );
    w.set("oneshot", true);
    cwd(&mut w, f);
    w.blank();

    // web
    let (wsgi, asgi, asgi_preferred) = applications(f);
    let installed: Option<Vec<&str>> =
        probe.map(|p| SERVERS.iter().copied().filter(|s| p.has(s)).collect());
    let web = choose_web(
        installed.as_deref(),
        wsgi.as_deref(),
        asgi.as_deref(),
        asgi_preferred,
    );
    w.comment(&format!("The web server: {}.", web.why));
    w.comment("It listens on 127.0.0.1, for a reverse proxy (nginx, a load balancer) in front; in a container write 0.0.0.0. The port is $PORT when the environment sets it (as platforms do), else 8000.");
    if web.backend == "gunicorn" {
        w.comment("workers = 2 to begin with; gunicorn suggests 2 to 4 per CPU core.");
    }
    w.comment(match web.backend {
        "gunicorn" => "prodserver holds the listening socket, so a restart refuses nobody: the new generation starts on it beside the old one. Readiness, with no `health` block: prodserver's gunicorn integration reports once a worker has loaded the app. For liveness too, add `health = { path = \"/healthz/\" }` on a cheap view of yours.",
        "uvicorn" => "prodserver holds the listening socket, so a restart refuses nobody: the new generation starts on it beside the old one. Readiness, with no `health` block: uvicorn's own \"Application startup complete.\" line. For liveness too, add `health = { path = \"/healthz/\" }` on a cheap view of yours.",
        _ => "Readiness, with no `health` block: any HTTP answer on the bound address once the app is loaded (a 404 or 400 still proves it). For liveness too, add `health = { path = \"/healthz/\" }` on a cheap view of yours.",
    });
    w.table(&["processes", "web"]);
    w.set("backend", web.backend);
    w.set("app", web.app.as_str());
    if let Some(p) = f.python.program(web.backend) {
        w.set("program", p);
    }
    w.set("args", Value::Inline(web.args.clone()));
    w.set(
        "depends_on",
        Value::inline([("migrate", Value::str("completed"))]),
    );
    cwd(&mut w, f);
    w.blank();

    match (&f.celery, q) {
        (Some(c), Some(q)) => celery_processes(&mut w, f, c, &q),
        _ => {
            w.comment("No Celery app was found (no celery.py with `Celery(` in the project), so no workers and no beat.");
        }
    }
    w.finish()
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

fn cwd(w: &mut TomlWriter, f: &Facts) {
    if let Some(dir) = &f.cwd {
        w.set_noted(
            "cwd",
            dir.as_str(),
            "the project folder, where manage.py is",
        );
    }
}

fn celery_processes(w: &mut TomlWriter, f: &Facts, c: &CeleryFound, q: &Queues) {
    let probe = f.probe.as_ref().ok();
    let attr = probe
        .and_then(|p| p.celery.as_ref())
        .map(|c| c.attr.clone())
        .or_else(|| c.variable.clone())
        .unwrap_or_else(|| "app".to_owned());
    let app = format!("{}.{attr}", c.module);
    let program = f.python.program("celery");
    let worker = |w: &mut TomlWriter, name: &str, queues: Option<&str>| {
        w.table(&["processes", name]);
        w.set("backend", "celery-worker");
        w.set("app", app.as_str());
        if let Some(p) = &program {
            w.set("program", p.as_str());
        }
        if let Some(queue) = queues {
            w.set("queues", Value::strings([queue]));
        }
        w.set_noted(
            "args",
            Value::inline([("loglevel", Value::str("info"))]),
            "Celery logs at WARNING by default, which hides task starts and ends",
        );
        w.set(
            "depends_on",
            Value::inline([("migrate", Value::str("completed"))]),
        );
        cwd(w, f);
        w.blank();
    };
    let concurrency = "Concurrency is Celery's default (one pool process per CPU core); set `concurrency = N` to choose.";
    if q.names.is_empty() {
        w.comment(&format!(
            "The Celery app {app} (found in {}). Its routes name no queue ({}), so one worker consumes Celery's default queue, {}. {concurrency}",
            c.module, q.source, q.default_queue
        ));
        worker(w, "worker", None);
    } else {
        w.comment(&format!(
            "The Celery app {app} (found in {}): one worker per queue, so a slow queue never holds up another; to share one worker, list several names in its `queues`. {concurrency}",
            c.module
        ));
        if !q.opaque.is_empty() {
            w.comment(&format!(
                "task_routes also has {}: the queues it returns are not known here; add them to [prodserver] queues and give each a worker.",
                q.opaque.join(", ")
            ));
        }
        w.blank();
        let mut taken: Vec<String> = Vec::new();
        for queue in &q.names {
            let name = worker_name(queue, &taken);
            taken.push(name.clone());
            worker(w, &name, Some(queue));
        }
    }

    let settings = probe.and_then(|p| p.settings.as_ref());
    let dcb_in_apps = settings.map_or(f.static_celery_beat_app, |s| {
        s.installed_apps
            .iter()
            .any(|a| a == "django_celery_beat" || a.starts_with("django_celery_beat."))
    });
    let dcb_importable = probe.is_some_and(|p| p.has("django_celery_beat"));
    let scheduler_set = q
        .beat_scheduler
        .as_deref()
        .is_some_and(|s| s.contains("django_celery_beat"));
    let wanted = dcb_in_apps || q.beat_schedule || scheduler_set;
    let why = if dcb_in_apps {
        "django-celery-beat is in INSTALLED_APPS, so beat reads the schedule from the database (DatabaseScheduler) and periodic tasks are edited in the admin"
    } else if scheduler_set {
        "the configuration picks django-celery-beat's scheduler"
    } else if q.beat_schedule {
        "the configuration has a beat_schedule"
    } else if dcb_importable {
        "django-celery-beat is installed but not in INSTALLED_APPS, and no beat_schedule was found"
    } else {
        "no beat_schedule and no django-celery-beat were found"
    };
    let header = ["processes", "beat"];
    if wanted {
        w.comment(&format!(
            "Beat sends the periodic tasks: {why}. Exactly one may run (two would send every task twice): prodserver holds a host-wide lock for it, and it is not scaled."
        ));
        w.table(&header);
    } else {
        w.comment(&format!(
            "No beat: {why}. Remove the `# ` below to run one (for django-celery-beat, add it to INSTALLED_APPS first, and its scheduler to `args`: `scheduler = \"{DATABASE_SCHEDULER}\"`)."
        ));
        w.table_disabled(&header);
    }
    let set = |w: &mut TomlWriter, k: &str, v: Value| {
        if wanted {
            w.set(k, v);
        } else {
            w.set_disabled(k, v);
        }
    };
    set(w, "backend", Value::str("celery-beat"));
    set(w, "app", Value::str(app.as_str()));
    if let Some(p) = &program {
        set(w, "program", Value::str(p.as_str()));
    }
    let mut args = vec![("loglevel".to_owned(), Value::str("info"))];
    if dcb_in_apps || scheduler_set {
        args.push(("scheduler".to_owned(), Value::str(DATABASE_SCHEDULER)));
    }
    set(w, "args", Value::Inline(args));
    set(
        w,
        "depends_on",
        Value::inline([("migrate", Value::str("completed"))]),
    );
    if let Some(dir) = &f.cwd {
        set(w, "cwd", Value::str(dir.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wsgi_prefers_gunicorn_then_granian_then_uvicorn() {
        let app = Some("shop.wsgi:application");
        let all = ["gunicorn", "uvicorn", "granian", "daphne"];
        assert_eq!(choose_web(Some(&all), app, None, false).backend, "gunicorn");
        let w = choose_web(Some(&["uvicorn", "granian"]), app, None, false);
        assert_eq!(
            (w.backend, w.args.last().map(|a| a.1.clone())),
            ("granian", Some(Value::str("wsgi")))
        );
        let w = choose_web(Some(&["uvicorn"]), app, None, false);
        assert_eq!(w.backend, "uvicorn");
        assert!(
            w.args.contains(&("interface".into(), Value::str("wsgi"))),
            "{w:?}"
        );
    }

    #[test]
    fn an_asgi_application_setting_prefers_asgi_servers() {
        let all = ["gunicorn", "uvicorn", "granian", "daphne"];
        let w = choose_web(
            Some(&all),
            Some("s.wsgi:application"),
            Some("s.asgi:application"),
            true,
        );
        assert_eq!(
            (w.backend, w.app.as_str()),
            ("uvicorn", "s.asgi:application")
        );
        let w = choose_web(
            Some(&["gunicorn", "daphne"]),
            Some("s.wsgi:application"),
            Some("s.asgi:application"),
            true,
        );
        assert_eq!(w.backend, "daphne");
        // asgi.py alone (Django's template writes both) does not switch.
        let w = choose_web(
            Some(&all),
            Some("s.wsgi:application"),
            Some("s.asgi:application"),
            false,
        );
        assert_eq!(w.backend, "gunicorn");
    }

    #[test]
    fn nothing_installed_still_writes_a_server_and_says_so() {
        let w = choose_web(Some(&[]), Some("s.wsgi:application"), None, false);
        assert_eq!(w.backend, "gunicorn");
        assert!(w.why.contains("none of gunicorn"), "{}", w.why);
        let w = choose_web(None, None, Some("s.asgi:application"), false);
        assert_eq!(w.backend, "uvicorn");
        assert!(w.why.contains("unknown"), "{}", w.why);
    }

    #[test]
    fn worker_names_are_valid_and_distinct() {
        assert_eq!(worker_name("default", &[]), "worker-default");
        assert_eq!(worker_name("emails.high", &[]), "worker-emails-high");
        assert_eq!(worker_name("a.b", &["worker-a-b".into()]), "worker-a-b-2");
    }

    #[test]
    fn project_names_are_valid() {
        assert_eq!(project_name("shop.settings.prod"), "shop");
        assert_eq!(project_name(""), "django");
    }
}
