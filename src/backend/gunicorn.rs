//! `backend = "gunicorn"`: `gunicorn [args...] APP`.

use super::launch::host_port;
use super::{
    args, require_app, ArgValue, BackendError, BackendInput, BackendKind, DefaultReadiness, Listen,
};

pub(super) const PROGRAM: &str = "gunicorn";

pub(super) const SHAPE: &str =
    "gunicorn --control-socket=RUNTIME/PROJECT.NAME.{instance}.gunicorn.ctl ARGS APP";

/// TERM is gunicorn's graceful stop: the arbiter closes its listeners and
/// lets workers finish in-flight requests for `graceful_timeout`. INT and
/// QUIT are the quick stops.
pub(super) const STOP_SIGNAL: i32 = libc::SIGTERM;

/// Unix socket paths are limited to 107 bytes (`sun_path`); stay clear of
/// it. Measured with the literal `{instance}` (10 bytes), which is at least
/// as long as any instance number it becomes.
const MAX_SOCKET_PATH: usize = 100;

/// gunicorn's arbiter exits 3 when a worker failed to boot and 4 when the
/// app could not be loaded (`Arbiter.WORKER_BOOT_ERROR`, `APP_LOAD_ERROR`),
/// at start or whenever a worker is (re)booted later: the code or the
/// configuration is broken, and starting it again would fail the same way.
pub(super) const BOOT_FAILURES: &[(i32, &str)] = &[
    (3, "gunicorn exit 3: worker boot error"),
    (4, "gunicorn exit 4: app load error"),
];

pub(super) const BACKEND: super::Backend = super::Backend {
    program: PROGRAM,
    stop_signal: STOP_SIGNAL,
    shape: SHAPE,
    keys: &[super::BackendKey::App],
    launch,
};

fn launch(input: &BackendInput, errs: &mut Vec<BackendError>) -> super::Launch {
    let (listen, readiness) = serves(input);
    match readiness {
        DefaultReadiness::Unprobeable { why } => super::Launch {
            listen,
            ..with_ready_hook(input, why, errs)
        },
        readiness => super::Launch {
            listen,
            readiness,
            ..super::Launch::at_spawn(argv(input, errs))
        },
    }
}

/// gunicorn's spellings of its config file option.
const CONFIG: &[&str] = &["config", "c"];

/// The launch with prodserver's gunicorn integration loaded (see
/// `crate::gunicorn`): readiness becomes "a worker has loaded the app",
/// for a server that cannot be probed from outside (`why`). gunicorn
/// reads one `--config` only: the user's own moves to the environment,
/// where the module finds and loads it.
pub(super) fn with_ready_hook(
    input: &BackendInput,
    why: String,
    errs: &mut Vec<BackendError>,
) -> super::Launch {
    let mut argv = command_line(input, CONFIG, errs);
    argv.insert(1, format!("--config=python:{}", crate::gunicorn::MODULE));
    let dir = crate::gunicorn::module_dir(input.runtime_dir);
    let dir = dir.to_string_lossy();
    let pythonpath = match input.env.get("PYTHONPATH") {
        Some(old) if !old.is_empty() => format!("{dir}:{old}"),
        _ => dir.into_owned(),
    };
    let mut env = std::collections::BTreeMap::from([("PYTHONPATH".to_owned(), pythonpath)]);
    if let Some(config) = args::values(input.args, CONFIG).pop() {
        env.insert(crate::gunicorn::CONFIG_ENV.to_owned(), config);
    }
    super::Launch {
        env,
        readiness: DefaultReadiness::AppLoaded { why },
        ..super::Launch::at_spawn(argv)
    }
}

pub(super) fn argv(input: &BackendInput, errs: &mut Vec<BackendError>) -> Vec<String> {
    command_line(input, &[], errs)
}

/// Why a held socket cannot be probed.
pub(super) const HELD_WHY: &str =
    "its socket is held and shared by every generation: either one may answer a probe";

/// A held socket: a probe of the address may be answered by the old
/// generation, so readiness is the integration's READY=1 (the launch's
/// argv and env get the hook; its addresses stay, prodserver binds them).
pub(super) fn ready_when_held(input: &BackendInput, launch: &mut super::Launch) {
    if matches!(launch.readiness, DefaultReadiness::AppLoaded { .. }) {
        return;
    }
    // Errors were reported by the launch already.
    let mut ignored = Vec::new();
    let mut hooked = with_ready_hook(input, HELD_WHY.to_owned(), &mut ignored);
    // `program = ...` was applied to argv[0] already.
    if let (Some(program), Some(first)) = (launch.argv.first(), hooked.argv.first_mut()) {
        first.clone_from(program);
    }
    launch.argv = hooked.argv;
    launch.env.extend(hooked.env);
    launch.readiness = hooked.readiness;
}

/// gunicorn's command line without the `skip` args.
fn command_line(input: &BackendInput, skip: &[&str], errs: &mut Vec<BackendError>) -> Vec<String> {
    let app = require_app(BackendKind::Gunicorn, input, "proj.wsgi:application", errs);
    super::forbid_args(input, &["daemon", "D"], super::DAEMON_WHY, errs);
    let mut argv = vec![PROGRAM.to_owned()];
    // gunicorn 25+ creates `$XDG_RUNTIME_DIR/gunicorn.ctl` and unlinks an
    // existing one, so a second gunicorn (another process or instance)
    // would silently take the first one's control socket away.
    if !args::is_set(input.args, &["control-socket", "no-control-socket"]) {
        argv.push(control_socket(input));
    }
    argv.extend(args::render(input.args, skip, errs));
    argv.push(app.unwrap_or_default().to_owned());
    argv
}

/// Where gunicorn binds, as it reads it: `--bind`/`-b` (every one; the
/// first is probed), else `GUNICORN_CMD_ARGS`, else a config file would
/// decide (`-c`, or `gunicorn.conf.py` in the working directory) and there
/// is no default (prodserver cannot evaluate Python), else `$PORT` on
/// 0.0.0.0, else 127.0.0.1:8000. `unix:` binds are sockets, `fd://` binds
/// inherited descriptors: neither gets a default probe.
fn serves(input: &BackendInput) -> (Vec<Listen>, DefaultReadiness) {
    let env_args: Vec<String> = input
        .env
        .get("GUNICORN_CMD_ARGS")
        .and_then(|s| shell_words::split(s).ok())
        .unwrap_or_default();
    let tls = args::is_set(input.args, &["certfile", "keyfile"])
        || has_option(&env_args, "certfile")
        || has_option(&env_args, "keyfile");
    let mut binds = args::values(input.args, &["bind", "b"]);
    if binds.is_empty() {
        binds = option_values(&env_args, "bind", Some("b"));
    }
    if binds.is_empty() {
        let implicit = input.cwd.join("gunicorn.conf.py");
        let why = if let Some(config) = args::values(input.args, &["config", "c"]).first() {
            Some(format!(
                "gunicorn reads its bind address from {config:?}, which prodserver cannot \
                 evaluate; pass `bind` in args"
            ))
        } else if (input.file_exists)(&implicit) {
            Some(format!(
                "gunicorn may read its bind address from {}, which prodserver cannot \
                 evaluate; pass `bind` in args",
                implicit.display()
            ))
        } else {
            None
        };
        if let Some(why) = why {
            return (Vec::new(), DefaultReadiness::Unprobeable { why });
        }
        binds.push(match input.env.get("PORT") {
            Some(port) => format!("0.0.0.0:{port}"),
            None => "127.0.0.1:8000".to_owned(),
        });
    }
    let readiness = match binds.first() {
        Some(b) if b.starts_with("unix:") => DefaultReadiness::Unprobeable {
            why: format!("gunicorn binds a unix socket ({b})"),
        },
        Some(b) if b.starts_with("fd://") => DefaultReadiness::Unprobeable {
            why: format!("gunicorn serves an inherited socket ({b})"),
        },
        _ => DefaultReadiness::Serving,
    };
    let listen = binds
        .iter()
        .filter(|b| !b.starts_with("fd://"))
        .map(|b| match b.strip_prefix("unix:") {
            Some(path) => Listen::Unix(path.to_owned()),
            None => host_port(b, "8000", tls),
        })
        .collect();
    (listen, readiness)
}

/// Values of an option in a command line (`GUNICORN_CMD_ARGS`), in order:
/// `--long=V`, `--long V`, `-s V`, `-sV`.
fn option_values(words: &[String], long: &str, short: Option<&str>) -> Vec<String> {
    let long_eq = format!("--{long}=");
    let long_flag = format!("--{long}");
    let short_flag = short.map(|s| format!("-{s}"));
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let a = &words[i];
        if let Some(v) = a.strip_prefix(&long_eq) {
            out.push(v.to_owned());
        } else if *a == long_flag || Some(a) == short_flag.as_ref() {
            if let Some(v) = words.get(i + 1) {
                out.push(v.clone());
                i += 1;
            }
        } else if let Some(v) = short_flag
            .as_deref()
            .and_then(|s| a.strip_prefix(s))
            .filter(|v| !v.is_empty() && !a.starts_with("--"))
        {
            out.push(v.to_owned());
        }
        i += 1;
    }
    out
}

fn has_option(words: &[String], long: &str) -> bool {
    let eq = format!("--{long}=");
    let flag = format!("--{long}");
    words.iter().any(|a| *a == flag || a.starts_with(&eq))
}

/// `max_tasks_per_child = n`: gunicorn's own `--max-requests`, per worker,
/// with a jitter of a tenth of `n` (at least 1): workers start together at
/// boot, and without jitter they would all reach `n` together and reload
/// at once, leaving the server with no worker to answer. A jitter written
/// in `args` wins; `max-requests` written there is a second source of
/// truth for the same limit, and refused.
pub(super) fn max_requests(
    n: u64,
    given: &[(String, ArgValue)],
) -> Result<super::TaskLimit, super::LimitError> {
    if let Some(key) = args::first_set(given, &["max-requests"]) {
        return Err(super::LimitError {
            arg: Some(key.to_owned()),
            message: format!(
                "`args.{key}` and `max_tasks_per_child` both set gunicorn's per-worker request limit"
            ),
            hint: "keep one: `max_tasks_per_child = N` becomes `--max-requests=N` with a jitter"
                .to_owned(),
        });
    }
    let count = i64::try_from(n).unwrap_or(i64::MAX);
    let mut extra = vec![("max-requests".to_owned(), ArgValue::Int(count))];
    let jitter = match args::last(given, &["max-requests-jitter"]) {
        Some(j) => j,
        None => {
            let j = (count / 10).max(1);
            extra.push(("max-requests-jitter".to_owned(), ArgValue::Int(j)));
            j.to_string()
        }
    };
    Ok(super::TaskLimit::Server {
        note: format!(
            "gunicorn replaces each worker after {n} requests plus a random 0 to {jitter} more, \
             so workers don't reload together (--max-requests={n} --max-requests-jitter={jitter}); \
             the server keeps listening"
        ),
        args: extra,
        main_exits: false,
    })
}

fn control_socket(input: &BackendInput) -> String {
    let path = input.runtime_dir.to_str().map(|dir| {
        format!(
            "{}/{}.{}.{{instance}}.gunicorn.ctl",
            dir.trim_end_matches('/'),
            input.project,
            input.process
        )
    });
    match path {
        Some(path) if path.len() <= MAX_SOCKET_PATH => format!("--control-socket={path}"),
        // A path that doesn't fit in sun_path (or can't go into argv) would
        // make gunicorn fail at start; no control socket loses only the
        // optional `gunicornc` tool.
        _ => "--no-control-socket".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::backend::Field;
    use crate::plan::BackendKind::Gunicorn;

    const CTL: &str = "--control-socket=/run/user/1000/prodserver/shop.web.{instance}.gunicorn.ctl";

    #[test]
    fn typical() {
        let argv = In::new()
            .app("shop.wsgi:application")
            .arg("bind", "127.0.0.1:8000")
            .arg("workers", 4)
            .argv(Gunicorn);
        assert_eq!(
            argv,
            v(&[
                "gunicorn",
                CTL,
                "--bind=127.0.0.1:8000",
                "--workers=4",
                "shop.wsgi:application"
            ])
        );
    }

    #[test]
    fn app_comes_last_after_every_arg() {
        let argv = In::new()
            .app("shop.wsgi:application")
            .arg("b", "0.0.0.0:80")
            .arg("preload", true)
            .arg("reload", false)
            .arg("bind", list(vec![s("[::]:80"), s("unix:/tmp/s")]))
            .argv(Gunicorn);
        assert_eq!(
            argv,
            v(&[
                "gunicorn",
                CTL,
                "-b",
                "0.0.0.0:80",
                "--preload",
                "--bind=[::]:80",
                "--bind=unix:/tmp/s",
                "shop.wsgi:application"
            ])
        );
    }

    #[test]
    fn an_unprobeable_gunicorn_loads_the_ready_hook_and_keeps_the_users_config() {
        use crate::backend::DefaultReadiness;
        let l = In::new()
            .app("a:b")
            .arg("c", "conf/gunicorn.py")
            .arg("workers", 2)
            .env("PYTHONPATH", "/srv")
            .launch(Gunicorn);
        assert_eq!(
            l.argv,
            v(&[
                "gunicorn",
                "--config=python:prodserver_gunicorn",
                CTL,
                "--workers=2",
                "a:b"
            ])
        );
        assert_eq!(l.env["PRODSERVER_GUNICORN_CONFIG"], "conf/gunicorn.py");
        let dir = crate::gunicorn::module_dir(std::path::Path::new("/run/user/1000/prodserver"));
        assert_eq!(l.env["PYTHONPATH"], format!("{}:/srv", dir.display()));
        assert!(
            matches!(&l.readiness, DefaultReadiness::AppLoaded { why } if why.contains("conf/gunicorn.py")),
            "{:?}",
            l.readiness
        );
        // A TCP bind is probed over HTTP: no hook, argv untouched.
        let l = In::new()
            .app("a:b")
            .arg("bind", "127.0.0.1:8000")
            .launch(Gunicorn);
        assert_eq!(l.readiness, DefaultReadiness::Serving);
        assert!(l.env.is_empty());
        assert!(!l.argv.iter().any(|a| a.contains("prodserver_gunicorn")));
    }

    #[test]
    fn user_control_socket_wins() {
        let argv = In::new()
            .app("a:b")
            .arg("control-socket", "/tmp/g.ctl")
            .argv(Gunicorn);
        assert_eq!(argv, v(&["gunicorn", "--control-socket=/tmp/g.ctl", "a:b"]));
        let argv = In::new()
            .app("a:b")
            .arg("no-control-socket", true)
            .argv(Gunicorn);
        assert_eq!(argv, v(&["gunicorn", "--no-control-socket", "a:b"]));
    }

    #[test]
    fn a_false_no_control_socket_still_gets_a_distinct_socket() {
        let argv = In::new()
            .app("a:b")
            .arg("no-control-socket", false)
            .argv(Gunicorn);
        assert_eq!(argv, v(&["gunicorn", CTL, "a:b"]));
    }

    #[test]
    fn trailing_slash_of_runtime_dir_is_not_doubled() {
        let argv = In::new().app("a:b").runtime_dir("/run/ps/").argv(Gunicorn);
        assert_eq!(
            argv[1],
            "--control-socket=/run/ps/shop.web.{instance}.gunicorn.ctl"
        );
    }

    #[test]
    fn long_socket_path_falls_back_to_no_control_socket() {
        // 100 bytes exactly still fits.
        let dir = format!(
            "/{}",
            "d".repeat(100 - "/".len() - "/shop.web.{instance}.gunicorn.ctl".len())
        );
        let argv = In::new().app("a:b").runtime_dir(&dir).argv(Gunicorn);
        let path = argv[1].trim_start_matches("--control-socket=");
        assert_eq!(path.len(), 100);
        let longer = format!("{dir}x");
        let argv = In::new().app("a:b").runtime_dir(&longer).argv(Gunicorn);
        assert_eq!(argv, v(&["gunicorn", "--no-control-socket", "a:b"]));
    }

    #[test]
    fn socket_is_named_after_project_and_process() {
        let argv = In::new()
            .app("a:b")
            .project("blog")
            .process("api")
            .runtime_dir("/tmp/ps")
            .argv(Gunicorn);
        assert_eq!(
            argv,
            v(&[
                "gunicorn",
                "--control-socket=/tmp/ps/blog.api.{instance}.gunicorn.ctl",
                "a:b"
            ])
        );
    }

    #[test]
    fn long_process_name_falls_back_too() {
        let name = "p".repeat(80);
        let argv = In::new().app("a:b").process(&name).argv(Gunicorn);
        assert_eq!(argv[1], "--no-control-socket");
    }

    #[test]
    fn missing_app_is_an_error_with_a_wsgi_example() {
        let e = In::new().arg("workers", 2).error(Gunicorn, Field::App);
        assert!(
            e.hint.contains("app = \"proj.wsgi:application\""),
            "{}",
            e.hint
        );
        let e = In::new().app("").error(Gunicorn, Field::App);
        assert!(e.message.contains("non-empty"));
    }

    #[test]
    fn daemon_is_rejected() {
        let e = In::new()
            .app("a:b")
            .arg("daemon", true)
            .error(Gunicorn, Field::Arg("daemon".into()));
        assert!(e.message.contains("background"));
        assert!(e.hint.contains("remove `daemon`"));
        In::new()
            .app("a:b")
            .arg("D", true)
            .error(Gunicorn, Field::Arg("D".into()));
    }

    #[test]
    fn max_requests_gets_a_tenth_as_jitter_at_least_one() {
        use crate::backend::{ArgValue, TaskLimit};
        let args = |n| match super::max_requests(n, &[]) {
            Ok(TaskLimit::Server {
                args, main_exits, ..
            }) => {
                assert!(!main_exits);
                args
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(
            args(1000),
            vec![
                ("max-requests".to_owned(), ArgValue::Int(1000)),
                ("max-requests-jitter".to_owned(), ArgValue::Int(100)),
            ]
        );
        assert_eq!(args(9)[1].1, ArgValue::Int(1));
        assert_eq!(args(1)[1].1, ArgValue::Int(1));
        let given = [("max-requests".to_owned(), ArgValue::Int(5))];
        let e = super::max_requests(10, &given).expect_err("two sources");
        assert_eq!(e.arg.as_deref(), Some("max-requests"));
    }

    #[test]
    fn nested_list_is_an_error() {
        In::new()
            .app("a:b")
            .arg("bind", list(vec![list(vec![s("x")])]))
            .error(Gunicorn, Field::Arg("bind".into()));
    }
}
