//! `backend = "uvicorn"`: `uvicorn [args...] APP`.

use super::{
    args, args_then_app, ArgValue, BackendError, BackendInput, BackendKind, LimitError, TaskLimit,
};

pub(super) const PROGRAM: &str = "uvicorn";

pub(super) const SHAPE: &str = "uvicorn ARGS APP";

/// TERM makes uvicorn stop accepting, finish in-flight requests (forever,
/// unless `timeout-graceful-shutdown` is set) and then re-raise the signal:
/// it exits "killed by SIGTERM" (143), which the engine must count as a
/// clean stop when it asked for it.
pub(super) const STOP_SIGNAL: i32 = libc::SIGTERM;

/// uvicorn exits 3 (`STARTUP_FAILURE`) when its server never started: the
/// lifespan startup failed, or the socket could not be bound or used. An
/// app that cannot be imported exits 1 instead, like any crash.
pub(super) const BOOT_FAILURES: &[(i32, &str)] = &[(3, "uvicorn exit 3: startup failure")];

pub(super) const BACKEND: super::Backend = super::Backend {
    program: PROGRAM,
    stop_signal: STOP_SIGNAL,
    shape: SHAPE,
    keys: &[super::BackendKey::App],
    launch,
};

fn launch(input: &BackendInput, errs: &mut Vec<BackendError>) -> super::Launch {
    let (listen, readiness) = super::web::host_port_server(input, "uvicorn", "UVICORN", true);
    let readiness = match readiness {
        super::DefaultReadiness::Unprobeable { why } => match startup_line(input) {
            Ok(pattern) => super::DefaultReadiness::OutputLine { pattern, why },
            Err(because) => super::DefaultReadiness::Unprobeable {
                why: format!("{why}, and {because}"),
            },
        },
        other => other,
    };
    super::Launch {
        listen,
        readiness,
        ..super::Launch::at_spawn(argv(input, errs))
    }
}

pub(super) fn argv(input: &BackendInput, errs: &mut Vec<BackendError>) -> Vec<String> {
    args_then_app(
        BackendKind::Uvicorn,
        input,
        PROGRAM,
        "proj.asgi:application",
        errs,
    )
}

/// The line of uvicorn's own output that says the app is loaded, for a
/// server that cannot be probed from outside: "Application startup
/// complete." once the app is imported and its lifespan startup ran (in
/// each worker); with `lifespan = "off"` that line is never written, and
/// one process says "Uvicorn running on" once it serves (with workers the
/// supervisor process says it before any worker imported the app). Both
/// are INFO lines: a quieter `log-level` or a `log-config` of the user's
/// may hide them, and then there is no line to wait for (`Err`: why).
pub(super) fn startup_line(input: &BackendInput) -> Result<String, String> {
    let level = args::last(input.args, &["log-level"])
        .or_else(|| input.env.get("UVICORN_LOG_LEVEL").cloned());
    if let Some(level) = level.filter(|l| !matches!(l.as_str(), "trace" | "debug" | "info")) {
        return Err(format!(
            "log-level {level:?} hides the INFO line that says the app is loaded"
        ));
    }
    if args::is_set(input.args, &["log-config"]) || input.env.contains_key("UVICORN_LOG_CONFIG") {
        return Err("a log-config decides which lines uvicorn writes".to_owned());
    }
    let lifespan = args::last(input.args, &["lifespan"])
        .or_else(|| input.env.get("UVICORN_LIFESPAN").cloned());
    match (lifespan.as_deref(), workers(input)) {
        (Some("off"), Some(1)) => Ok(r"Uvicorn running on ".to_owned()),
        (Some("off"), _) => Err(
            "with lifespan off and several workers uvicorn writes no line once a worker has \
             loaded the app"
                .to_owned(),
        ),
        _ => Ok(r"Application startup complete\.".to_owned()),
    }
}

/// A held socket: a probe of the address may be answered by the old
/// generation, so readiness is this generation's own startup line, when
/// uvicorn writes one (else the probe stays, and `check` shows it).
pub(super) fn ready_when_held(input: &BackendInput, launch: &mut super::Launch) {
    if let Ok(pattern) = startup_line(input) {
        launch.readiness = super::DefaultReadiness::OutputLine {
            pattern,
            why: "its socket is held and shared by every generation: either one may answer a probe"
                .to_owned(),
        };
    }
}

/// How many worker processes uvicorn runs, as it reads it: `--workers`,
/// else `UVICORN_WORKERS`, else `WEB_CONCURRENCY`, else 1. `None` when the
/// value is not a number prodserver can read.
pub(super) fn workers(input: &BackendInput) -> Option<u32> {
    let text = args::last(input.args, &["workers"])
        .or_else(|| input.env.get("UVICORN_WORKERS").cloned())
        .or_else(|| input.env.get("WEB_CONCURRENCY").cloned());
    match text {
        Some(t) => t.trim().parse().ok(),
        None => Some(1),
    }
}

/// `max_tasks_per_child = n`: uvicorn's own `--limit-max-requests`. With
/// workers, uvicorn (0.30+) replaces a worker that reaches it; as one
/// process, uvicorn itself exits (status 0) and prodserver's restart is the
/// recycle, with the port closed until it serves again. No jitter is added:
/// `--limit-max-requests-jitter` exists only since uvicorn 0.41, and an
/// older uvicorn would refuse to start with it.
pub(super) fn max_requests(n: u64, input: &BackendInput) -> Result<TaskLimit, LimitError> {
    if let Some(key) = args::first_set(input.args, &["limit-max-requests"]) {
        return Err(LimitError {
            arg: Some(key.to_owned()),
            message: format!(
                "`args.{key}` and `max_tasks_per_child` both set uvicorn's request limit"
            ),
            hint: "keep one: `max_tasks_per_child = N` becomes `--limit-max-requests=N`".to_owned(),
        });
    }
    let count = i64::try_from(n).unwrap_or(i64::MAX);
    let args = vec![("limit-max-requests".to_owned(), ArgValue::Int(count))];
    let flag = format!("--limit-max-requests={n}");
    Ok(match workers(input) {
        Some(w) if w >= 2 => TaskLimit::Server {
            args,
            note: if args::is_set(input.args, &["limit-max-requests-jitter"]) {
                format!(
                    "each uvicorn worker exits after {n} requests ({flag}, plus your jitter) \
                     and uvicorn 0.30+ starts a new one"
                )
            } else {
                format!(
                    "each uvicorn worker exits after {n} requests ({flag}) and uvicorn 0.30+ \
                     starts a new one; add `limit-max-requests-jitter` to args (uvicorn 0.41+) \
                     so workers don't all restart together"
                )
            },
            main_exits: false,
        },
        _ => TaskLimit::Server {
            args,
            note: format!(
                "uvicorn runs as one process: it exits after {n} requests ({flag}) and \
                 prodserver restarts it, refusing connections until it serves again; run \
                 `workers = 2` or more in args to recycle one worker at a time"
            ),
            main_exits: true,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::backend::Field;
    use crate::plan::BackendKind::Uvicorn;

    #[test]
    fn typical() {
        let argv = In::new()
            .app("shop.asgi:application")
            .arg("host", "0.0.0.0")
            .arg("port", 8000)
            .arg("proxy-headers", true)
            .arg("access-log", false)
            .argv(Uvicorn);
        assert_eq!(
            argv,
            v(&[
                "uvicorn",
                "--host=0.0.0.0",
                "--port=8000",
                "--proxy-headers",
                "shop.asgi:application"
            ])
        );
    }

    #[test]
    fn no_args() {
        assert_eq!(
            In::new().app("m:app").argv(Uvicorn),
            v(&["uvicorn", "m:app"])
        );
    }

    #[test]
    fn workers_are_read_as_uvicorn_reads_them() {
        let w = |i: In| i.with(super::workers);
        assert_eq!(w(In::new()), Some(1));
        assert_eq!(w(In::new().env("WEB_CONCURRENCY", "3")), Some(3));
        assert_eq!(
            w(In::new()
                .env("WEB_CONCURRENCY", "3")
                .env("UVICORN_WORKERS", "5")),
            Some(5)
        );
        assert_eq!(
            w(In::new().env("UVICORN_WORKERS", "5").arg("workers", 2)),
            Some(2)
        );
        assert_eq!(w(In::new().arg("workers", "many")), None);
    }

    #[test]
    fn max_requests_in_one_process_exits_the_main_process() {
        use crate::backend::TaskLimit;
        match In::new().with(|i| super::max_requests(10, i)) {
            Ok(TaskLimit::Server {
                args, main_exits, ..
            }) => {
                assert!(main_exits);
                assert_eq!(args.len(), 1, "no jitter: older uvicorns refuse the flag");
            }
            other => panic!("{other:?}"),
        }
        match In::new()
            .arg("workers", 4)
            .with(|i| super::max_requests(10, i))
        {
            Ok(TaskLimit::Server { main_exits, .. }) => assert!(!main_exits),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unprobeable_uvicorn_is_ready_at_its_startup_line() {
        use crate::backend::DefaultReadiness;
        let l = In::new()
            .app("m:app")
            .arg("uds", "/run/u.sock")
            .launch(Uvicorn);
        assert!(
            matches!(&l.readiness, DefaultReadiness::OutputLine { pattern, why }
                if pattern == r"Application startup complete\." && why.contains("--uds")),
            "{:?}",
            l.readiness
        );
        let line = |i: In| i.with(super::startup_line);
        assert_eq!(
            line(In::new().arg("lifespan", "off")).as_deref(),
            Ok("Uvicorn running on ")
        );
        assert!(line(In::new().arg("lifespan", "off").arg("workers", 2)).is_err());
        assert!(line(In::new().arg("log-level", "warning")).is_err());
        assert!(line(In::new().env("UVICORN_LOG_LEVEL", "error")).is_err());
        assert!(line(In::new().arg("log-level", "debug")).is_ok());
        assert!(line(In::new().arg("log-config", "l.json")).is_err());
        // A probeable address keeps its HTTP probe.
        let l = In::new().app("m:app").arg("port", 9000).launch(Uvicorn);
        assert_eq!(l.readiness, DefaultReadiness::Serving);
        let l = In::new()
            .app("m:app")
            .arg("uds", "/u")
            .arg("log-level", "warning")
            .launch(Uvicorn);
        assert!(matches!(l.readiness, DefaultReadiness::Unprobeable { .. }));
    }

    #[test]
    fn missing_app_is_an_error_with_an_asgi_example() {
        let e = In::new().error(Uvicorn, Field::App);
        assert!(
            e.hint.contains("app = \"proj.asgi:application\""),
            "{}",
            e.hint
        );
    }
}
