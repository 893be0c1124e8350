//! `prodserver init [--force] [-o FILE] [DIR]`: a commented
//! `prodserver.toml` for the Django project in DIR.
//!
//! Finds the files (`manage.py`, the settings, `wsgi.py`/`asgi.py`, a
//! `celery.py` with `Celery(`), asks the project's own Python what is
//! installed and what the settings and the Celery app say (`probe.py`:
//! settings are code), decides and renders in [`render`] (pure), then
//! validates the text exactly as `check` would before writing it: a file
//! `check` refuses is never written.
//!
//! [`toml_out`] is the commented-TOML writer, kept free of anything
//! init-specific so other writers of `prodserver.toml` can share it.

pub mod detect;
pub mod render;
pub mod toml_out;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::{load_str, LoadOptions, Loaded};
use crate::error::Error;
use detect::{parse_probe, ProbeOut};
use render::{CeleryFound, Facts, Origin, PythonEnv};

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub force: bool,
    /// Where to write (default: `DIR/prodserver.toml`).
    pub output: Option<PathBuf>,
    /// The Django project (default: the current folder).
    pub dir: Option<PathBuf>,
}

const PROBE: &str = include_str!("probe.py");

/// Importing settings may touch a database or the network: bounded, so
/// `init` never hangs on a project's import.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `prodserver init`. Exit 0 once written; a usage error (exit 2)
/// when DIR is not a Django project or the file exists without `--force`.
pub fn run(
    opts: Options,
    env: &BTreeMap<String, String>,
    runtime_dir: PathBuf,
    color: bool,
) -> Result<i32, Error> {
    let cwd = std::env::current_dir().map_err(|e| Error::setup("read the current directory", e))?;
    let dir = cwd.join(opts.dir.as_deref().unwrap_or(Path::new(".")));
    let dir = dir
        .canonicalize()
        .map_err(|e| Error::usage(format!("{}: {e}", dir.display())))?;
    let manage_py = dir.join("manage.py");
    let manage = std::fs::read_to_string(&manage_py).map_err(|_| {
        Error::usage(format!(
            "no manage.py in {}: run `prodserver init` in a Django project's folder (where manage.py is), or name that folder: `prodserver init DIR`",
            dir.display()
        ))
    })?;
    let output = match &opts.output {
        Some(file) => absolute_in(&cwd.join(file)),
        None => dir.join("prodserver.toml"),
    };
    if !opts.force && output.symlink_metadata().is_ok() {
        return Err(exists(&output));
    }
    let out_dir = output
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));

    let (settings_module, settings_from) = settings_module(&dir, &manage)?;
    let settings_texts = settings_sources(&dir, &settings_module);
    let joined: Vec<&str> = settings_texts.iter().map(String::as_str).collect();
    let wsgi_module = app_module(&dir, &settings_module, "wsgi");
    let asgi_module = app_module(&dir, &settings_module, "asgi");
    let celery = find_celery(&dir, &settings_module);

    let python = choose_python(env, &dir, &out_dir);
    let probe = run_probe(
        &python.run,
        &dir,
        &settings_module,
        celery.as_ref().map(|c| c.0.module.as_str()),
    );

    let mut static_texts = joined.clone();
    if let Some((_, text)) = &celery {
        static_texts.push(text);
    }
    let facts = Facts {
        static_wsgi: joined
            .iter()
            .find_map(|t| detect::literal_setting(t, "WSGI_APPLICATION")),
        static_asgi: joined
            .iter()
            .find_map(|t| detect::literal_setting(t, "ASGI_APPLICATION")),
        static_celery_beat_app: joined
            .iter()
            .any(|t| detect::mentions_django_celery_beat(t)),
        static_celery: detect::static_celery(&static_texts),
        settings_module,
        settings_from,
        python,
        probe,
        wsgi_module,
        asgi_module,
        celery: celery.map(|c| c.0),
        cwd: (out_dir != dir).then(|| relative_or_absolute(&dir, &out_dir)),
    };
    let text = render::render(&facts);

    // The same load and resolve `check` runs: a refusal here is a bug in
    // init, and the file is not written.
    let load_opts = LoadOptions {
        hold_sockets: true,
        env: env.clone(),
        runtime_dir,
        dev: false,
    };
    let loaded = validate(&output, &text, &load_opts, color).map_err(|rendered| {
        eprint!("{rendered}");
        refused()
    })?;
    if !loaded.warnings.is_empty() {
        eprint!("{}", loaded.sources.render(&loaded.warnings, color));
    }
    write(&output, &text, opts.force)?;
    match &facts.probe {
        Ok(p) => eprintln!(
            "asked {} ({}) what is installed and what the settings say",
            p.python, p.version
        ),
        Err(e) => eprintln!(
            "could not run {} ({e}): read the source text only",
            facts.python.run.display()
        ),
    }
    let processes: Vec<&str> = loaded
        .plan
        .processes
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    eprintln!(
        "wrote {} ({}); `prodserver check` shows what will run",
        output.display(),
        processes.join(", ")
    );
    Ok(crate::exit::OK)
}

/// `text`, to be written at `path`, loaded and resolved exactly as
/// `check` does; the rendered diagnostics when it would refuse it.
pub fn validate(
    path: &Path,
    text: &str,
    opts: &LoadOptions,
    color: bool,
) -> Result<Loaded, String> {
    let loaded = load_str(path, text.to_owned(), opts)
        .map_err(|e| e.sources.render(&e.diagnostics, color))?;
    match crate::resolve::resolve(&loaded, &opts.runtime_dir) {
        Ok(_) => Ok(loaded),
        Err(errors) => Err(loaded.sources.render(&errors, color)),
    }
}

fn exists(output: &Path) -> Error {
    Error::usage(format!(
        "{} already exists: not overwritten (pass --force to replace it, or -o FILE to write elsewhere)",
        output.display()
    ))
}

fn refused() -> Error {
    Error::Panic(
        "init produced a file that `check` refuses (shown above); nothing was written".to_owned(),
    )
}

/// `path` with `.` and `..` folded away as far as its existing folder
/// allows, for messages and relative paths.
fn absolute_in(path: &Path) -> PathBuf {
    match (
        path.parent().and_then(|p| p.canonicalize().ok()),
        path.file_name(),
    ) {
        (Some(parent), Some(name)) => parent.join(name),
        _ => path.to_path_buf(),
    }
}

/// `target` as written in a file under `base`: relative when it lies
/// under `base`, else absolute (a `../` path breaks as soon as either
/// moves).
fn relative_or_absolute(target: &Path, base: &Path) -> String {
    match target.strip_prefix(base) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
        Ok(rel) => rel.display().to_string(),
        Err(_) => target.display().to_string(),
    }
}

/// The settings module and where it was found: manage.py's
/// `setdefault`, else a package holding `settings.py`/`settings/`.
fn settings_module(dir: &Path, manage: &str) -> Result<(String, String), Error> {
    if let Some(m) = detect::settings_module_from_manage_py(manage) {
        return Ok((m, "manage.py".to_owned()));
    }
    let mut found: Vec<String> = subfolders(dir)
        .into_iter()
        .filter(|p| p.join("settings.py").is_file() || p.join("settings/__init__.py").is_file())
        .filter_map(|p| Some(format!("{}.settings", p.file_name()?.to_str()?)))
        .collect();
    found.sort();
    match found.first() {
        Some(m) => Ok((
            m.clone(),
            "a guess: manage.py sets no DJANGO_SETTINGS_MODULE, and this is the first package with settings".to_owned(),
        )),
        None => Err(Error::usage(format!(
            "no settings module: {} sets no DJANGO_SETTINGS_MODULE and no package in {} has a settings.py",
            dir.join("manage.py").display(),
            dir.display()
        ))),
    }
}

fn subfolders(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !skipped(p))
        .collect()
}

/// Folders never searched: hidden ones, virtualenvs, node_modules.
fn skipped(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with('.')
        || matches!(
            name,
            "node_modules" | "site-packages" | "__pycache__" | "venv" | "env"
        )
        || p.join("pyvenv.cfg").exists()
}

/// The source of the settings module: its file, or every `.py` of its
/// package (split settings: `base.py`, `prod.py`).
fn settings_sources(dir: &Path, module: &str) -> Vec<String> {
    let path = dir.join(module.replace('.', "/"));
    let file = path.with_extension("py");
    if let Ok(text) = std::fs::read_to_string(&file) {
        return vec![text];
    }
    let Ok(entries) = std::fs::read_dir(&path) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .collect();
    files.sort();
    files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

/// `pkg.wsgi` when `pkg/wsgi.py` exists, `pkg` being the settings
/// module's package or its top package.
fn app_module(dir: &Path, settings: &str, name: &str) -> Option<String> {
    let parts: Vec<&str> = settings.split('.').collect();
    let mut candidates = Vec::new();
    for n in (1..parts.len()).rev() {
        candidates.push(parts[..n].join("."));
    }
    candidates
        .into_iter()
        .find(|pkg| {
            dir.join(pkg.replace('.', "/"))
                .join(format!("{name}.py"))
                .is_file()
        })
        .map(|pkg| format!("{pkg}.{name}"))
}

/// A `celery.py` that creates a `Celery(...)` app, up to three folders
/// deep; one in the settings' top package first, else the first by path.
fn find_celery(dir: &Path, settings: &str) -> Option<(CeleryFound, String)> {
    let mut found = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0)];
    while let Some((folder, depth)) = stack.pop() {
        let file = folder.join("celery.py");
        if let Ok(text) = std::fs::read_to_string(&file) {
            if text.contains("Celery(") {
                let rel = relative_or_absolute(&file, dir);
                if let Some(module) = detect::module_of(&rel) {
                    found.push((module, text));
                }
            }
        }
        if depth < 3 {
            stack.extend(subfolders(&folder).into_iter().map(|p| (p, depth + 1)));
        }
    }
    found.sort();
    let top = settings.split('.').next().unwrap_or("");
    let pick = found
        .iter()
        .position(|(m, _)| m.split('.').next() == Some(top))
        .unwrap_or(0);
    if found.is_empty() {
        return None;
    }
    let (module, text) = found.swap_remove(pick);
    let variable = detect::celery_app_variable(&text);
    Some((CeleryFound { module, variable }, text))
}

/// The project's Python: `$VIRTUAL_ENV`'s, else `.venv/` or `venv/` in the
/// project, else `python3` from PATH.
fn choose_python(env: &BTreeMap<String, String>, dir: &Path, out_dir: &Path) -> PythonEnv {
    let local = |venv: &Path| PythonEnv {
        run: venv.join("bin/python"),
        origin: Origin::Local(relative_or_absolute(venv, out_dir)),
    };
    if let Some(venv) = env.get("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        let venv = Path::new(venv);
        let venv = venv.canonicalize().unwrap_or_else(|_| venv.to_path_buf());
        if venv.join("bin/python").exists() {
            if venv.starts_with(out_dir) {
                return local(&venv);
            }
            return PythonEnv {
                run: venv.join("bin/python"),
                origin: Origin::VirtualEnv(venv),
            };
        }
    }
    for name in [".venv", "venv"] {
        let venv = dir.join(name);
        if venv.join("bin/python").exists() {
            return local(&venv);
        }
    }
    PythonEnv {
        run: PathBuf::from("python3"),
        origin: Origin::System,
    }
}

/// Runs `probe.py` with the project's Python in the project folder.
fn run_probe(
    python: &Path,
    dir: &Path,
    settings: &str,
    celery: Option<&str>,
) -> Result<ProbeOut, String> {
    let mut child = Command::new(python)
        .arg("-c")
        .arg(PROBE)
        .arg(dir)
        .arg(settings)
        .arg(celery.unwrap_or(""))
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut stream| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stream.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    })
    .collect();
    // std has no wait with a timeout: poll, a few dozen times a second,
    // for the seconds an import of Django and Celery takes.
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "it did not finish within {}s",
                    PROBE_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let mut texts = readers.into_iter().map(|r| r.join().unwrap_or_default());
    let stdout = texts.next().unwrap_or_default();
    let stderr = texts.next().unwrap_or_default();
    parse_probe(&stdout).map_err(|e| {
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        format!(
            "{e} ({status}{}{last})",
            if last.is_empty() { "" } else { ": " }
        )
    })
}

/// Writes `text` to `path` whole (a temporary file, then a rename or a
/// link), never replacing an existing file unless `force`: the link
/// fails if the name exists, so a file created meanwhile is not lost.
fn write(path: &Path, text: &str, force: bool) -> Result<(), Error> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let failed = |e: std::io::Error| Error::setup(format!("write {}", path.display()), e);
    std::fs::write(&tmp, text).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        failed(e)
    })?;
    let placed = if force {
        std::fs::rename(&tmp, path).map_err(failed)
    } else {
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists(path)),
            Err(e) => Err(failed(e)),
        }
    };
    if placed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    placed
}

#[cfg(test)]
mod tests {
    use super::*;
    use detect::{CeleryFacts, ProbeCelery, ProbeSettings};

    fn opts() -> LoadOptions {
        LoadOptions {
            hold_sockets: true,
            env: BTreeMap::new(),
            runtime_dir: "/nonexistent/run".into(),
            dev: false,
        }
    }

    #[test]
    fn validation_refuses_what_check_refuses() {
        let bad = "[processes.w]\nbackend = \"celery-worker\"\napp = \"x.app\"\nqueues = [\"bulk mail\"]\n";
        let err = validate(Path::new("/srv/x/prodserver.toml"), bad, &opts(), false)
            .err()
            .expect("refused");
        assert!(err.contains("can't be passed to `-Q`"), "{err}");
        assert!(err.contains("prodserver.toml:4:"), "located: {err}");
    }

    fn facts(probe: Result<ProbeOut, String>) -> Facts {
        Facts {
            settings_module: "shop.settings".into(),
            settings_from: "manage.py".into(),
            python: PythonEnv {
                run: "/srv/shop/.venv/bin/python".into(),
                origin: Origin::Local(".venv".into()),
            },
            probe,
            static_wsgi: None,
            static_asgi: None,
            wsgi_module: Some("shop.wsgi".into()),
            asgi_module: Some("shop.asgi".into()),
            static_celery_beat_app: false,
            celery: Some(CeleryFound {
                module: "shop.celery".into(),
                variable: Some("app".into()),
            }),
            static_celery: Default::default(),
            cwd: None,
        }
    }

    fn celery_facts(routes: &[&str], default_queue: Option<&str>) -> CeleryFacts {
        CeleryFacts {
            routes_set: !routes.is_empty(),
            route_queues: routes.iter().map(|s| s.to_string()).collect(),
            opaque_routes: vec![],
            task_queues: None,
            default_queue: default_queue.map(str::to_owned),
            beat_schedule: false,
            beat_scheduler: None,
        }
    }

    fn probe(app: CeleryFacts) -> ProbeOut {
        ProbeOut {
            python: "/srv/shop/.venv/bin/python".into(),
            version: "3.12.3".into(),
            installed: [("gunicorn".to_owned(), true)].into_iter().collect(),
            settings: Some(ProbeSettings {
                wsgi_application: Some("shop.wsgi.application".into()),
                asgi_application: None,
                installed_apps: vec!["django_celery_beat".into()],
                celery: celery_facts(&[], None),
            }),
            settings_error: None,
            celery: Some(ProbeCelery {
                attr: "app".into(),
                facts: app,
            }),
            celery_error: None,
        }
    }

    #[test]
    fn a_rendered_project_validates_and_names_the_local_venv() {
        let f = facts(Ok(probe(celery_facts(
            &["emails", "bulk mail"],
            Some("default"),
        ))));
        let text = render::render(&f);
        let loaded = validate(
            Path::new("/srv/shop/prodserver.toml"),
            &text,
            &opts(),
            false,
        )
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let names: Vec<&str> = loaded
            .plan
            .processes
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["migrate", "web", "worker-emails", "worker-default", "beat"]
        );
        assert!(
            text.contains("queues = [\"emails\", \"default\"]\n"),
            "{text}"
        );
        assert!(
            text.contains("program = \".venv/bin/gunicorn\"\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "command = [\".venv/bin/python\", \"manage.py\", \"migrate\", \"--noinput\"]"
            ),
            "{text}"
        );
        assert!(
            text.contains("scheduler = \"django_celery_beat.schedulers:DatabaseScheduler\""),
            "{text}"
        );
    }

    #[test]
    fn without_python_the_source_text_decides() {
        let mut f = facts(Err("python3: No such file or directory".into()));
        f.static_celery.route_queues = vec!["priority".into()];
        let text = render::render(&f);
        validate(
            Path::new("/srv/shop/prodserver.toml"),
            &text,
            &opts(),
            false,
        )
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(
            text.contains("queues = [\"priority\", \"celery\"]\n"),
            "{text}"
        );
        assert!(
            !text.contains("\n[processes.beat]"),
            "no schedule, no beat: {text}"
        );
    }
}
