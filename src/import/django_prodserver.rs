//! `prodserver import django-prodserver [--settings MODULE] [DIR]`:
//! django-prodserver's `PRODUCTION_PROCESSES` setting as a prodserver.toml.
//!
//! Settings are code, so they are not parsed: the project's own Python
//! imports them ([`DUMP`], run in DIR with `DJANGO_SETTINGS_MODULE` set)
//! and prints the setting as JSON, which [`import`] maps (pure). Both
//! generations of django-prodserver's backend paths are understood: 2.x
//! (`django_prodserver.backends.gunicorn.GunicornServer`) and 3.x
//! (`django_prodserver.backends.servers.gunicorn.GunicornServer`,
//! `...backends.workers.celery.CeleryWorker`, `...backends.dev...`).
//!
//! django-prodserver passes every ARGS value as a string (`"workers":
//! "4"` → `--workers=4`); here `"4"` becomes the number 4 and `"True"` /
//! `"False"` a flag that is on or off, as prodserver's `args` mean them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value as Json;

use super::{Doc, Process, V};
use crate::error::Error;

/// The Python that prints the settings as JSON.
pub const DUMP: &str = include_str!("dump_settings.py");

/// What [`import`] needs from the outside.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub source: String,
    pub settings: String,
    /// The project's folder relative to the written file, when they differ.
    pub cwd: Option<String>,
    /// The virtualenv's `bin` folder, relative to the written file, and
    /// the programs in it: a program found there is named by its path.
    pub venv_bin: Option<(String, Vec<String>)>,
}

impl Context {
    fn program(&self, name: &str) -> Option<String> {
        let (bin, present) = self.venv_bin.as_ref()?;
        present
            .iter()
            .any(|p| p == name)
            .then(|| format!("{bin}/{name}"))
    }
}

/// What one BACKEND path runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gunicorn,
    Uvicorn { wsgi: bool },
    Granian { wsgi: bool },
    Waitress,
    CeleryWorker,
    CeleryBeat,
    Flower,
    DjangoQ2,
    DjangoTasks,
    Runserver,
}

/// A BACKEND path of django-prodserver 2.x or 3.x.
fn kind(backend: &str) -> Option<Kind> {
    let rest = backend.strip_prefix("django_prodserver.backends.")?;
    // 3.x sorted the backends into servers/, workers/ and dev/.
    let rest = ["servers.", "workers.", "dev."]
        .iter()
        .find_map(|p| rest.strip_prefix(p))
        .unwrap_or(rest);
    Some(match rest {
        "gunicorn.GunicornServer" => Kind::Gunicorn,
        "uvicorn.UvicornServer" => Kind::Uvicorn { wsgi: false },
        "uvicorn.UvicornWSGIServer" => Kind::Uvicorn { wsgi: true },
        "granian.GranianASGIServer" => Kind::Granian { wsgi: false },
        "granian.GranianWSGIServer" => Kind::Granian { wsgi: true },
        "waitress.WaitressServer" => Kind::Waitress,
        "celery.CeleryWorker" => Kind::CeleryWorker,
        "celery.CeleryBeat" => Kind::CeleryBeat,
        "celery.CeleryFlower" => Kind::Flower,
        "django_q2.DjangoQ2Worker" => Kind::DjangoQ2,
        "django_tasks.DjangoTasksWorker" => Kind::DjangoTasks,
        "django_runserver.DjangoRunserver" => Kind::Runserver,
        _ => return None,
    })
}

/// A dict's entries in their Python order: the dump writes dicts as
/// `{"__pairs__": [[key, value], ...]}` (a JSON object would lose the
/// order); a plain object is read too.
fn entries(v: &Json) -> Option<Vec<(String, &Json)>> {
    let map = v.as_object()?;
    match map.get("__pairs__") {
        Some(Json::Array(pairs)) => pairs
            .iter()
            .map(|p| match p.as_array().map(Vec::as_slice) {
                Some([Json::String(k), v]) => Some((k.clone(), v)),
                _ => None,
            })
            .collect(),
        _ => Some(map.iter().map(|(k, v)| (k.clone(), v)).collect()),
    }
}

fn get<'a>(v: &'a Json, key: &str) -> Option<&'a Json> {
    entries(v)?
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// One ARGS value with its string quirks undone.
fn value(v: &Json) -> Option<V> {
    Some(match v {
        Json::String(s) => match s.as_str() {
            "True" | "true" => V::Bool(true),
            "False" | "false" => V::Bool(false),
            other => V::typed(other),
        },
        Json::Bool(b) => V::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => V::Int(i),
            None => V::Str(n.to_string()),
        },
        Json::Array(items) => V::List(items.iter().filter_map(value).collect()),
        Json::Null | Json::Object(_) => return None,
    })
}

/// ARGS as `(key, value)`: a dict (2.x, 3.x), or the older list or string
/// of `--key=value` words.
fn args_of(args: Option<&Json>) -> Result<Vec<(String, V)>, String> {
    let word = |w: &str| -> Result<(String, V), String> {
        let long = w
            .strip_prefix("--")
            .ok_or_else(|| format!("`{w}` is not a --key=value argument"))?;
        Ok(match long.split_once('=') {
            Some((k, v)) => (
                k.to_owned(),
                value(&Json::String(v.to_owned())).unwrap_or(V::str(v)),
            ),
            None => (long.to_owned(), V::Bool(true)),
        })
    };
    match args {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(obj @ Json::Object(_)) => entries(obj)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                value(v)
                    .map(|val| (k.clone(), val))
                    .ok_or_else(|| format!("ARGS[{k:?}] = {v} has no command-line form"))
            })
            .collect(),
        Some(Json::String(s)) => s.split_whitespace().map(word).collect(),
        Some(Json::Array(items)) => items
            .iter()
            .map(|i| match i {
                Json::String(s) => word(s),
                other => Err(format!("ARGS item {other} is not a string")),
            })
            .collect(),
        Some(other) => Err(format!("ARGS = {other} is neither a dict nor a list")),
    }
}

/// `a.b.application` → `a.b:application`, as django-prodserver does with
/// WSGI_APPLICATION and ASGI_APPLICATION.
fn app_name(dotted: &str) -> String {
    match dotted.rsplit_once('.') {
        Some((module, attr)) if !dotted.contains(':') => format!("{module}:{attr}"),
        _ => dotted.to_owned(),
    }
}

/// Granian's ARGS, which django-prodserver hands to `Granian(...)` by
/// these names (others are ignored there), as granian's own options.
fn granian_option(key: &str) -> Option<&'static str> {
    Some(match key {
        "address" | "host" => "host",
        "port" => "port",
        "workers" => "workers",
        "blocking-threads" | "blocking_threads" | "threads" => "blocking-threads",
        "runtime-threads" | "runtime_threads" => "runtime-threads",
        "backlog" => "backlog",
        "http" => "http",
        "log-level" | "log_level" => "log-level",
        "log-access" | "log_access" => "access-log",
        "ssl-cert" | "ssl_cert" => "ssl-certificate",
        "ssl-key" | "ssl_key" => "ssl-keyfile",
        "url-path-prefix" | "url_path_prefix" => "url-path-prefix",
        "reload" => "reload",
        "websockets" => "ws",
        _ => return None,
    })
}

/// The dumped settings as a [`Doc`].
pub fn import(dump: &Json, ctx: &Context) -> Result<Doc, String> {
    let mut doc = Doc {
        source: format!(
            "Imported from django-prodserver's PRODUCTION_PROCESSES in {} by `prodserver import django-prodserver`.",
            ctx.source
        ),
        ..Doc::default()
    };
    let found = |name: &str| dump.get(name).and_then(entries);
    let processes = match (found("PRODUCTION_PROCESSES"), found("PROD_SERVERS")) {
        (Some(p), _) => p,
        (_, Some(p)) => {
            doc.notes
                .push("From PROD_SERVERS, django-prodserver 1.x's name for the setting.".into());
            p
        }
        _ => {
            return Err(format!(
                "{} has no PRODUCTION_PROCESSES dict (nor 1.x's PROD_SERVERS)",
                ctx.settings
            ))
        }
    };
    doc.project.push((
        "env".into(),
        V::Table(vec![(
            "DJANGO_SETTINGS_MODULE".into(),
            V::str(&ctx.settings),
        )]),
        vec!["manage.py set it for django-prodserver; the servers and Celery read it here".into()],
    ));
    let setting = |name: &str| dump.get(name).and_then(Json::as_str).map(str::to_owned);
    for (raw_name, entry) in processes {
        let name = super::process_name(&raw_name).unwrap_or_else(|| raw_name.clone());
        let mut p = Process::new(&name);
        if name != raw_name {
            p.note(format!("\"{raw_name}\" in PRODUCTION_PROCESSES"));
        }
        let backend = get(entry, "BACKEND")
            .and_then(Json::as_str)
            .ok_or_else(|| format!("PRODUCTION_PROCESSES[{raw_name:?}] has no BACKEND string"))?;
        let Some(kind) = kind(backend) else {
            doc.warn(
                None,
                format!(
                    "\"{raw_name}\": BACKEND {backend} is not one of django-prodserver's; skipped (write it as a `command` process)"
                ),
            );
            continue;
        };
        let app = get(entry, "APP").and_then(Json::as_str).map(str::to_owned);
        let mut args = args_of(get(entry, "ARGS"))
            .map_err(|e| format!("PRODUCTION_PROCESSES[{raw_name:?}]: {e}"))?;
        let (backend, program) = match kind {
            Kind::Gunicorn => ("gunicorn", Some("gunicorn")),
            Kind::Uvicorn { .. } => ("uvicorn", Some("uvicorn")),
            Kind::Granian { .. } => ("granian", Some("granian")),
            Kind::Waitress => ("waitress", Some("waitress-serve")),
            Kind::CeleryWorker => ("celery-worker", Some("celery")),
            Kind::CeleryBeat => ("celery-beat", Some("celery")),
            Kind::Flower => ("flower", Some("celery")),
            Kind::DjangoQ2 => ("django-q2", None),
            Kind::DjangoTasks => ("django-tasks", None),
            Kind::Runserver => ("django-runserver", None),
        };
        p.set_noted(
            "backend",
            V::str(backend),
            Some(format!("BACKEND {}", backend_path(entry))),
        );
        // The web servers serve WSGI_APPLICATION / ASGI_APPLICATION, as
        // django-prodserver does; Celery takes APP.
        let asgi = matches!(
            kind,
            Kind::Uvicorn { wsgi: false } | Kind::Granian { wsgi: false }
        );
        let web = matches!(
            kind,
            Kind::Gunicorn | Kind::Uvicorn { .. } | Kind::Granian { .. } | Kind::Waitress
        );
        let celery = matches!(kind, Kind::CeleryWorker | Kind::CeleryBeat | Kind::Flower);
        if web {
            let from = if asgi {
                "ASGI_APPLICATION"
            } else {
                "WSGI_APPLICATION"
            };
            let dotted = app.clone().or_else(|| setting(from)).ok_or_else(|| {
                format!(
                    "\"{raw_name}\" serves {from}, which {} does not set",
                    ctx.settings
                )
            })?;
            p.set_noted(
                "app",
                V::Str(app_name(&dotted)),
                Some(format!("{from} = \"{dotted}\"")),
            );
        } else if celery {
            let app = app.ok_or_else(|| format!("\"{raw_name}\": a Celery backend needs APP"))?;
            p.set("app", V::Str(app));
        }
        if let Some(prog) = program.and_then(|name| ctx.program(name)) {
            p.set("program", V::Str(prog));
        }
        if !web && !celery {
            if let Some(py) = ctx.program("python") {
                p.set("python", V::Str(py));
            }
        }
        if let Some(cwd) = &ctx.cwd {
            p.set_noted(
                "cwd",
                V::str(cwd),
                Some("the Django project's folder, where manage.py ran".into()),
            );
        }
        match kind {
            Kind::Uvicorn { wsgi: true } => args.insert(0, ("interface".into(), V::str("wsgi"))),
            Kind::Granian { wsgi } => {
                let mut mapped = vec![(
                    "interface".to_owned(),
                    V::str(if wsgi { "wsgi" } else { "asgi" }),
                )];
                for (k, v) in args.drain(..) {
                    match (granian_option(&k), v) {
                        (Some("ws"), V::Bool(false)) => mapped.push(("no-ws".into(), V::Bool(true))),
                        (Some(opt), v) => mapped.push((opt.into(), v)),
                        (None, _) => doc.warn(
                            None,
                            format!("{name}: ARGS \"{k}\" was ignored by django-prodserver's granian backend, and is left out"),
                        ),
                    }
                }
                args = mapped;
            }
            _ => {}
        }
        if kind == Kind::CeleryWorker {
            let mut kept = Vec::new();
            for (k, v) in args.drain(..) {
                match (k.as_str(), v) {
                    ("queues" | "Q", V::Str(q)) => p.set_noted(
                        "queues",
                        V::List(q.split(',').map(str::trim).map(V::str).collect()),
                        Some(format!("ARGS \"{k}\": \"{q}\"")),
                    ),
                    ("queues" | "Q", V::List(q)) => p.set("queues", V::List(q)),
                    ("concurrency" | "c", V::Int(n)) if n >= 1 => p.set("concurrency", V::Int(n)),
                    ("hostname" | "n", v) => p.note(format!(
                        "dropped ARGS \"{k}\" = {v:?}: prodserver names each instance NAME.N@%h"
                    )),
                    ("pidfile" | "detach", _) => p.note(format!(
                        "dropped ARGS \"{k}\": prodserver tracks the pid and runs in the foreground"
                    )),
                    (_, v) => kept.push((k, v)),
                }
            }
            args = kept;
        }
        // A flag that is off is simply not passed: left out.
        args.retain(|(_, v)| *v != V::Bool(false));
        if !args.is_empty() {
            p.set("args", V::Table(args));
        }
        doc.processes.push(p);
    }
    Ok(doc)
}

fn backend_path(entry: &Json) -> String {
    get(entry, "BACKEND")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The settings module manage.py sets by default.
fn settings_from_manage_py(text: &str) -> Option<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r#"["']DJANGO_SETTINGS_MODULE["']\s*,\s*["']([A-Za-z_][\w.]*)["']"#)
            .expect("valid regex")
    });
    re.captures(text).map(|c| c[1].to_owned())
}

/// The project's interpreter: the active virtualenv's, else DIR's
/// `.venv`, else `python3` from PATH.
fn python(dir: &Path, env: &BTreeMap<String, String>) -> PathBuf {
    if let Some(venv) = env.get("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        return Path::new(venv).join("bin/python");
    }
    let local = dir.join(".venv/bin/python");
    if local.exists() {
        return local;
    }
    PathBuf::from("python3")
}

/// Imports the settings of the project in `dir` with its Python and maps
/// them, for a file written in `base`.
pub fn read(
    dir: &Path,
    settings: Option<&str>,
    base: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Doc, Error> {
    let dir = std::fs::canonicalize(dir)
        .map_err(|e| Error::setup(format!("read {}", dir.display()), e))?;
    let manage = std::fs::read_to_string(dir.join("manage.py")).ok();
    let settings = settings
        .map(str::to_owned)
        .or_else(|| env.get("DJANGO_SETTINGS_MODULE").cloned())
        .or_else(|| manage.as_deref().and_then(settings_from_manage_py))
        .ok_or_else(|| {
            Error::usage(format!(
                "no settings module: pass --settings MODULE (neither DJANGO_SETTINGS_MODULE nor {}/manage.py names one)",
                dir.display()
            ))
        })?;
    let python = python(&dir, env);
    let out = std::process::Command::new(&python)
        .args(["-c", DUMP])
        .current_dir(&dir)
        .env("DJANGO_SETTINGS_MODULE", &settings)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::setup(format!("run {}", python.display()), e))?;
    if !out.status.success() {
        return Err(Error::usage(format!(
            "{} could not import the settings {settings} in {} ({}):\n{}",
            python.display(),
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        )));
    }
    let dump: Json = serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::usage(format!(
            "{} printed no JSON for the settings: {e}",
            python.display()
        ))
    })?;
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    let bin_dir = python.parent().filter(|p| !p.as_os_str().is_empty());
    let venv_bin = bin_dir.map(|bin| {
        let present = [
            "gunicorn",
            "uvicorn",
            "granian",
            "waitress-serve",
            "celery",
            "python",
        ]
        .iter()
        .filter(|p| bin.join(p).exists())
        .map(|p| (*p).to_owned())
        .collect();
        (super::relative_to(bin, &base), present)
    });
    let ctx = Context {
        source: format!("{settings} ({})", dir.display()),
        settings,
        cwd: (dir != base).then(|| super::relative_to(&dir, &base)),
        venv_bin,
    };
    import(&dump, &ctx).map_err(Error::usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Context {
        Context {
            source: "shop.settings".into(),
            settings: "shop.settings".into(),
            ..Context::default()
        }
    }

    #[test]
    fn both_generations_of_backend_paths() {
        assert_eq!(
            kind("django_prodserver.backends.gunicorn.GunicornServer"),
            Some(Kind::Gunicorn)
        );
        assert_eq!(
            kind("django_prodserver.backends.servers.gunicorn.GunicornServer"),
            Some(Kind::Gunicorn)
        );
        assert_eq!(
            kind("django_prodserver.backends.workers.celery.CeleryBeat"),
            Some(Kind::CeleryBeat)
        );
        assert_eq!(
            kind("django_prodserver.backends.dev.django_runserver.DjangoRunserver"),
            Some(Kind::Runserver)
        );
        assert_eq!(kind("myapp.backends.Thing"), None);
    }

    #[test]
    fn string_quirks_become_types() {
        assert_eq!(value(&json!("4")), Some(V::Int(4)));
        assert_eq!(value(&json!("True")), Some(V::Bool(true)));
        assert_eq!(value(&json!("False")), Some(V::Bool(false)));
        assert_eq!(value(&json!("info")), Some(V::str("info")));
        assert_eq!(
            args_of(Some(&json!(["--bind=0.0.0.0:8111", "--preload"]))).expect("ok"),
            vec![
                ("bind".into(), V::str("0.0.0.0:8111")),
                ("preload".into(), V::Bool(true))
            ]
        );
    }

    #[test]
    fn queues_and_concurrency_leave_args() {
        let dump = json!({
            "PRODUCTION_PROCESSES": {
                "w": {
                    "BACKEND": "django_prodserver.backends.workers.celery.CeleryWorker",
                    "APP": "shop.celery.app",
                    "ARGS": {"queues": "default, priority", "concurrency": "4", "without-gossip": "True", "purge": "False"},
                },
                "web": {
                    "BACKEND": "django_prodserver.backends.uvicorn.UvicornWSGIServer",
                    "ARGS": {"workers": "2"},
                },
            },
            "WSGI_APPLICATION": "shop.wsgi.application",
        });
        let doc = import(&dump, &ctx()).expect("ok");
        let w = &doc.processes[0];
        assert_eq!(
            w.get("queues"),
            Some(&V::List(vec![V::str("default"), V::str("priority")]))
        );
        assert_eq!(w.get("concurrency"), Some(&V::Int(4)));
        assert_eq!(
            w.get("args"),
            Some(&V::Table(vec![("without-gossip".into(), V::Bool(true))]))
        );
        let web = &doc.processes[1];
        assert_eq!(web.get("app"), Some(&V::str("shop.wsgi:application")));
        assert_eq!(
            web.get("args"),
            Some(&V::Table(vec![
                ("interface".into(), V::str("wsgi")),
                ("workers".into(), V::Int(2))
            ]))
        );
    }

    #[test]
    fn manage_py_names_the_settings() {
        assert_eq!(
            settings_from_manage_py(
                "    os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"shop.settings.prod\")\n"
            ),
            Some("shop.settings.prod".into())
        );
    }
}
