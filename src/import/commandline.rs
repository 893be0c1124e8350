//! A command line from a Procfile or a supervisord program, recognised as
//! one of prodserver's backends when that is safe: gunicorn, uvicorn,
//! daphne, granian, `celery worker` and `celery beat`.
//!
//! "Safe" means every word is understood: each option is in the program's
//! table (so we know whether the next word is its value), and the only
//! positional is the app (or Celery's subcommand). Anything else, a
//! wrapper (`newrelic-admin run-program gunicorn ...`), an option we do
//! not know, stays `backend = "command"` exactly as written: a wrong guess
//! would run a different command than before, which is worse than a plain
//! one.

use super::{Process, V};

/// Options of one program: `(short, long, takes a value)`.
type Table = &'static [(Option<char>, &'static str, bool)];

const GUNICORN: Table = &[
    (Some('b'), "bind", true),
    (Some('w'), "workers", true),
    (Some('k'), "worker-class", true),
    (Some('t'), "timeout", true),
    (Some('c'), "config", true),
    (Some('e'), "env", true),
    (Some('u'), "user", true),
    (Some('g'), "group", true),
    (Some('n'), "name", true),
    (Some('m'), "umask", true),
    (None, "threads", true),
    (None, "worker-connections", true),
    (None, "max-requests", true),
    (None, "max-requests-jitter", true),
    (None, "graceful-timeout", true),
    (None, "keep-alive", true),
    (None, "log-level", true),
    (None, "access-logfile", true),
    (None, "error-logfile", true),
    (None, "log-file", true),
    (None, "access-logformat", true),
    (None, "log-config", true),
    (None, "chdir", true),
    (None, "pythonpath", true),
    (None, "backlog", true),
    (None, "limit-request-line", true),
    (None, "limit-request-fields", true),
    (None, "limit-request-field_size", true),
    (None, "forwarded-allow-ips", true),
    (None, "worker-tmp-dir", true),
    (None, "statsd-host", true),
    (None, "statsd-prefix", true),
    (None, "control-socket", true),
    (None, "preload", false),
    (None, "reload", false),
    (None, "capture-output", false),
    (None, "proxy-protocol", false),
    (None, "no-sendfile", false),
    (None, "reuse-port", false),
    (None, "enable-stdio-inheritance", false),
    (None, "no-control-socket", false),
    (Some('D'), "daemon", false),
];

const UVICORN: Table = &[
    (None, "host", true),
    (None, "port", true),
    (None, "uds", true),
    (None, "fd", true),
    (None, "workers", true),
    (None, "loop", true),
    (None, "http", true),
    (None, "ws", true),
    (None, "lifespan", true),
    (None, "interface", true),
    (None, "env-file", true),
    (None, "log-config", true),
    (None, "log-level", true),
    (None, "root-path", true),
    (None, "limit-concurrency", true),
    (None, "limit-max-requests", true),
    (None, "backlog", true),
    (None, "timeout-keep-alive", true),
    (None, "timeout-graceful-shutdown", true),
    (None, "forwarded-allow-ips", true),
    (None, "ssl-keyfile", true),
    (None, "ssl-certfile", true),
    (None, "app-dir", true),
    (None, "header", true),
    (None, "proxy-headers", false),
    (None, "no-proxy-headers", false),
    (None, "access-log", false),
    (None, "no-access-log", false),
    (None, "factory", false),
    (None, "use-colors", false),
    (None, "no-use-colors", false),
    (None, "server-header", false),
    (None, "no-server-header", false),
    (None, "date-header", false),
    (None, "no-date-header", false),
];

const DAPHNE: Table = &[
    (Some('b'), "bind", true),
    (Some('p'), "port", true),
    (Some('u'), "unix-socket", true),
    (Some('e'), "endpoint", true),
    (Some('v'), "verbosity", true),
    (None, "fd", true),
    (None, "access-log", true),
    (None, "ping-interval", true),
    (None, "ping-timeout", true),
    (None, "application-close-timeout", true),
    (None, "websocket-timeout", true),
    (None, "websocket-connect-timeout", true),
    (None, "root-path", true),
    (None, "proxy-headers-host", true),
    (None, "proxy-headers-port", true),
    (None, "http-timeout", true),
    (None, "server-name", true),
    (None, "proxy-headers", false),
    (None, "no-server-name", false),
];

const GRANIAN: Table = &[
    (None, "host", true),
    (None, "port", true),
    (None, "interface", true),
    (None, "workers", true),
    (None, "blocking-threads", true),
    (None, "runtime-threads", true),
    (None, "runtime-mode", true),
    (None, "loop", true),
    (None, "http", true),
    (None, "backlog", true),
    (None, "backpressure", true),
    (None, "log-level", true),
    (None, "workers-lifetime", true),
    (None, "workers-max-rss", true),
    (None, "url-path-prefix", true),
    (None, "ssl-certificate", true),
    (None, "ssl-keyfile", true),
    (None, "working-dir", true),
    (None, "env-files", true),
    (None, "respawn-interval", true),
    (None, "log", false),
    (None, "no-log", false),
    (None, "access-log", false),
    (None, "ws", false),
    (None, "no-ws", false),
    (None, "respawn-failed-workers", false),
];

/// `celery` options before the subcommand.
const CELERY_GLOBAL: Table = &[
    (Some('A'), "app", true),
    (Some('b'), "broker", true),
    (None, "result-backend", true),
    (None, "loader", true),
    (None, "config", true),
    (None, "workdir", true),
    (Some('q'), "quiet", false),
    (Some('C'), "no-color", false),
    (None, "skip-checks", false),
];

const CELERY_WORKER: Table = &[
    (Some('A'), "app", true),
    (Some('l'), "loglevel", true),
    (Some('c'), "concurrency", true),
    (Some('Q'), "queues", true),
    (Some('X'), "exclude-queues", true),
    (Some('P'), "pool", true),
    (Some('n'), "hostname", true),
    (Some('O'), "optimization", true),
    (Some('I'), "include", true),
    (Some('f'), "logfile", true),
    (Some('s'), "schedule", true),
    (Some('S'), "scheduler", true),
    (None, "prefetch-multiplier", true),
    (None, "max-tasks-per-child", true),
    (None, "maxtasksperchild", true),
    (None, "max-memory-per-child", true),
    (None, "time-limit", true),
    (None, "soft-time-limit", true),
    (None, "autoscale", true),
    (None, "statedb", true),
    (None, "heartbeat-interval", true),
    (None, "pidfile", true),
    (Some('E'), "task-events", false),
    (Some('B'), "beat", false),
    (Some('D'), "detach", false),
    (None, "without-gossip", false),
    (None, "without-mingle", false),
    (None, "without-heartbeat", false),
    (None, "purge", false),
    (None, "discard", false),
];

const CELERY_BEAT: Table = &[
    (Some('A'), "app", true),
    (Some('l'), "loglevel", true),
    (Some('S'), "scheduler", true),
    (Some('s'), "schedule", true),
    (Some('f'), "logfile", true),
    (None, "max-interval", true),
    (None, "pidfile", true),
    (Some('D'), "detach", false),
];

/// One option as written: its long name and its value (`true` for a flag).
#[derive(Debug, Clone, PartialEq)]
struct Opt {
    name: String,
    value: V,
}

/// `words` read against `table`: the options in order and the
/// positionals, or the first word that is not understood.
fn parse(words: &[String], table: Table) -> Result<(Vec<Opt>, Vec<String>), String> {
    let mut opts = Vec::new();
    let mut positionals = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        i += 1;
        if let Some(long) = w.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let Some(&(_, name, takes)) = table.iter().find(|(_, l, _)| *l == name) else {
                return Err(format!("option `--{name}`"));
            };
            let value = match (takes, inline) {
                (true, Some(v)) => V::typed(&v),
                (true, None) => {
                    let v = words
                        .get(i)
                        .ok_or_else(|| format!("`--{name}` without its value"))?;
                    i += 1;
                    V::typed(v)
                }
                (false, None) => V::Bool(true),
                (false, Some(_)) => return Err(format!("`{w}` (a flag with a value)")),
            };
            opts.push(Opt {
                name: name.to_owned(),
                value,
            });
        } else if w.len() >= 2 && w.starts_with('-') && w != "-" {
            let mut chars = w[1..].chars();
            let c = chars.next().unwrap_or('-');
            let Some(&(_, name, takes)) = table.iter().find(|(s, _, _)| *s == Some(c)) else {
                return Err(format!("option `-{c}`"));
            };
            let rest: String = chars.collect();
            let value = if takes {
                if rest.is_empty() {
                    let v = words
                        .get(i)
                        .ok_or_else(|| format!("`-{c}` without its value"))?;
                    i += 1;
                    V::typed(v)
                } else {
                    V::typed(rest.strip_prefix('=').unwrap_or(&rest))
                }
            } else if rest.is_empty() {
                V::Bool(true)
            } else {
                // `-Ef`: bundled flags are rare enough to leave alone.
                return Err(format!("`{w}` (bundled short options)"));
            };
            opts.push(Opt {
                name: name.to_owned(),
                value,
            });
        } else {
            positionals.push(w.clone());
        }
    }
    Ok((opts, positionals))
}

/// Options as an `args` table; a repeated option becomes a list.
fn args_table(opts: Vec<Opt>) -> Vec<(String, V)> {
    let mut out: Vec<(String, V)> = Vec::new();
    for o in opts {
        match out.iter_mut().find(|(k, _)| *k == o.name) {
            Some((_, V::List(items))) => items.push(o.value),
            Some((_, v)) => *v = V::List(vec![v.clone(), o.value]),
            None => out.push((o.name, o.value)),
        }
    }
    out
}

/// What a recognised command line becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub backend: &'static str,
    /// `(key, value)` for the process table, in order (`app`, `program`,
    /// `queues`, `concurrency`, `args`).
    pub keys: Vec<(String, V)>,
    /// Comments on what was changed on the way.
    pub notes: Vec<String>,
}

/// `argv` as a backend, or why it stays a `command` (`Err`, for a
/// comment; `Ok(None)` when it is simply not a program we know).
pub fn recognise(argv: &[String]) -> Result<Option<Mapped>, String> {
    let Some(first) = argv.first() else {
        return Ok(None);
    };
    let base = first.rsplit('/').next().unwrap_or(first);
    let program = first.contains('/').then(|| first.clone());
    let rest = &argv[1..];
    let (backend, mut keys, notes) = match base {
        "gunicorn" => server("gunicorn", rest, GUNICORN)?,
        "uvicorn" => server("uvicorn", rest, UVICORN)?,
        "daphne" => server("daphne", rest, DAPHNE)?,
        "granian" => server("granian", rest, GRANIAN)?,
        "celery" => celery(rest)?,
        _ => return Ok(None),
    };
    if let Some(p) = program {
        keys.insert(1.min(keys.len()), ("program".to_owned(), V::Str(p)));
    }
    Ok(Some(Mapped {
        backend,
        keys,
        notes,
    }))
}

type Parts = (&'static str, Vec<(String, V)>, Vec<String>);

fn server(backend: &'static str, words: &[String], table: Table) -> Result<Parts, String> {
    let (opts, positionals) = parse(words, table)?;
    let [app] = positionals.as_slice() else {
        return Err(format!(
            "{} positional arguments where {backend} takes one app",
            positionals.len()
        ));
    };
    let mut notes = Vec::new();
    let mut opts = opts;
    if backend == "granian" && !opts.iter().any(|o| o.name == "interface") {
        // prodserver guesses the interface from the app's name; granian's
        // own default is rsgi, which a Django app is not.
        if !(app.contains("wsgi") || app.contains("asgi")) {
            return Err(
                "granian without --interface, for an app whose name says neither wsgi nor asgi"
                    .into(),
            );
        }
        notes.push("granian: no --interface was given (granian's default is rsgi); prodserver picks wsgi or asgi from the app's name".into());
    }
    if opts.iter().any(|o| o.name == "daemon") {
        opts.retain(|o| o.name != "daemon");
        notes.push("dropped --daemon: prodserver runs its processes in the foreground".into());
    }
    let mut keys = vec![("app".to_owned(), V::str(app))];
    let args = args_table(opts);
    if !args.is_empty() {
        keys.push(("args".to_owned(), V::Table(args)));
    }
    Ok((backend, keys, notes))
}

fn celery(words: &[String]) -> Result<Parts, String> {
    let sub = words
        .iter()
        .position(|w| w == "worker" || w == "beat")
        .ok_or("a celery subcommand other than worker or beat")?;
    let (global, before) = parse(&words[..sub], CELERY_GLOBAL)?;
    if !before.is_empty() {
        return Err(format!("`{}` before the celery subcommand", before[0]));
    }
    let beat = words[sub] == "beat";
    let (opts, positionals) = parse(
        &words[sub + 1..],
        if beat { CELERY_BEAT } else { CELERY_WORKER },
    )?;
    if let Some(p) = positionals.first() {
        return Err(format!("the argument `{p}`"));
    }
    let mut notes = Vec::new();
    if opts.iter().any(|o| o.name == "app") {
        notes.push(format!(
            "celery {sub} -A APP is Celery 4's order; Celery 5 takes -A before the subcommand, as written here",
            sub = words[sub]
        ));
    }
    let mut app = None;
    let mut queues = None;
    let mut concurrency = None;
    let mut args = Vec::new();
    for o in global.into_iter().chain(opts) {
        match (o.name.as_str(), &o.value) {
            ("app", V::Str(a)) => app = Some(a.clone()),
            ("queues", V::Str(q)) if !beat => {
                queues = Some(q.split(',').map(str::trim).map(V::str).collect::<Vec<_>>());
            }
            ("concurrency", V::Int(n)) if !beat && *n >= 1 => concurrency = Some(*n),
            ("beat", _) => {
                return Err("a worker with an embedded beat (-B): prodserver runs beat as its own celery-beat process, exactly one; split it out by hand".into())
            }
            ("hostname", _) => notes.push(format!(
                "dropped the worker's --hostname={}: prodserver names each instance NAME.N@%h, so two never clash",
                display(&o.value)
            )),
            ("pidfile", _) => notes.push(
                "dropped --pidfile: a stale pid file makes Celery refuse to start (exit 73), and prodserver tracks the pid itself".into(),
            ),
            ("detach", _) => notes.push("dropped --detach: prodserver runs its processes in the foreground".into()),
            ("broker" | "result-backend" | "loader" | "config" | "workdir" | "quiet" | "no-color" | "skip-checks", _) => {
                return Err(format!("celery's global option --{} (the backend puts only -A before the subcommand)", o.name))
            }
            _ => args.push(o),
        }
    }
    let app = app.ok_or("no -A/--app")?;
    let mut keys = vec![("app".to_owned(), V::Str(app))];
    if let Some(q) = queues {
        keys.push(("queues".to_owned(), V::List(q)));
    }
    if let Some(c) = concurrency {
        keys.push(("concurrency".to_owned(), V::Int(c)));
    }
    let args = args_table(args);
    if !args.is_empty() {
        keys.push(("args".to_owned(), V::Table(args)));
    }
    Ok((
        if beat { "celery-beat" } else { "celery-worker" },
        keys,
        notes,
    ))
}

fn display(v: &V) -> String {
    match v {
        V::Str(s) => s.clone(),
        V::Int(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

/// Fills `p` from `argv`: a backend when recognised, else `command` as
/// written (with the reason as a comment when it looked like a server).
pub fn apply(p: &mut Process, argv: Vec<String>) {
    match recognise(&argv) {
        Ok(Some(m)) => {
            p.set("backend", V::str(m.backend));
            for (k, v) in m.keys {
                p.set(&k, v);
            }
            for n in m.notes {
                p.note(n);
            }
        }
        Ok(None) => command(p, argv),
        Err(why) => {
            p.note(format!(
                "kept as a plain command, not a {} backend: {why}",
                argv.first()
                    .map_or("", |a| a.rsplit('/').next().unwrap_or(a))
            ));
            command(p, argv);
        }
    }
}

fn command(p: &mut Process, argv: Vec<String>) {
    p.set("backend", V::str("command"));
    p.set("command", V::List(argv.into_iter().map(V::Str).collect()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        shell_words::split(s).expect("words")
    }

    fn keys(s: &str) -> Vec<(String, V)> {
        recognise(&words(s)).expect("ok").expect("recognised").keys
    }

    #[test]
    fn gunicorn_short_and_long_options_become_args() {
        let m = recognise(&words(
            "gunicorn config.wsgi:application -b 0.0.0.0:8000 --workers 3 --timeout=120 --preload -w4",
        ))
        .expect("ok")
        .expect("some");
        assert_eq!(m.backend, "gunicorn");
        assert_eq!(
            m.keys,
            vec![
                ("app".into(), V::str("config.wsgi:application")),
                (
                    "args".into(),
                    V::Table(vec![
                        ("bind".into(), V::str("0.0.0.0:8000")),
                        ("workers".into(), V::List(vec![V::Int(3), V::Int(4)])),
                        ("timeout".into(), V::Int(120)),
                        ("preload".into(), V::Bool(true)),
                    ])
                ),
            ]
        );
    }

    #[test]
    fn a_program_path_is_kept() {
        let k = keys(".venv/bin/uvicorn shop.asgi:application --host 0.0.0.0 --port 8000");
        assert_eq!(k[1], ("program".into(), V::str(".venv/bin/uvicorn")));
    }

    #[test]
    fn unknown_options_and_wrappers_stay_commands() {
        assert!(recognise(&words("gunicorn app:x --frobnicate")).is_err());
        assert!(recognise(&words("gunicorn a:x b:y")).is_err());
        assert_eq!(
            recognise(&words("newrelic-admin run-program gunicorn x:y")),
            Ok(None)
        );
    }

    #[test]
    fn celery_worker_options_map_to_process_keys() {
        let m = recognise(&words(
            "celery -A proj worker -l info -Q default,priority -c 4 -n w1@%h --max-tasks-per-child=50 -E",
        ))
        .expect("ok")
        .expect("some");
        assert_eq!(m.backend, "celery-worker");
        assert_eq!(
            m.keys,
            vec![
                ("app".into(), V::str("proj")),
                (
                    "queues".into(),
                    V::List(vec![V::str("default"), V::str("priority")])
                ),
                ("concurrency".into(), V::Int(4)),
                (
                    "args".into(),
                    V::Table(vec![
                        ("loglevel".into(), V::str("info")),
                        ("max-tasks-per-child".into(), V::Int(50)),
                        ("task-events".into(), V::Bool(true)),
                    ])
                ),
            ]
        );
        assert!(m.notes[0].contains("--hostname=w1@%h"), "{:?}", m.notes);
    }

    #[test]
    fn old_style_celery_and_beat() {
        let m = recognise(&words(
            "celery beat -A proj -l info -S redbeat.RedBeatScheduler --pidfile /tmp/b.pid",
        ))
        .expect("ok")
        .expect("some");
        assert_eq!(m.backend, "celery-beat");
        assert_eq!(m.keys[0], ("app".into(), V::str("proj")));
        assert!(
            m.notes[0].contains("Celery 5 takes -A before"),
            "{:?}",
            m.notes
        );
        assert!(m.notes[1].contains("pidfile"));
        assert!(recognise(&words("celery -A proj worker -B")).is_err());
        assert!(recognise(&words("celery -A proj flower")).is_err());
    }

    #[test]
    fn granian_needs_an_interface_it_can_infer() {
        assert!(recognise(&words("granian --interface wsgi app:x"))
            .expect("ok")
            .is_some());
        assert!(recognise(&words("granian shop.asgi:application"))
            .expect("ok")
            .is_some());
        assert!(recognise(&words("granian main:app")).is_err());
    }
}
