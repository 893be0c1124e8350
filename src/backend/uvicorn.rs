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

pub(super) const BACKEND: super::Backend = super::Backend {
    program: PROGRAM,
    stop_signal: STOP_SIGNAL,
    shape: SHAPE,
    keys: &[super::BackendKey::App],
    launch,
};

fn launch(input: &BackendInput, errs: &mut Vec<BackendError>) -> super::Launch {
    let (listen, readiness) = super::web::host_port_server(input, "uvicorn", "UVICORN", true);
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
    fn missing_app_is_an_error_with_an_asgi_example() {
        let e = In::new().error(Uvicorn, Field::App);
        assert!(
            e.hint.contains("app = \"proj.asgi:application\""),
            "{}",
            e.hint
        );
    }
}
