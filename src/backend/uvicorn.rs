//! `backend = "uvicorn"`: `uvicorn [args...] APP`.

use super::{args_then_app, BackendError, BackendInput, BackendKind};

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
    fn missing_app_is_an_error_with_an_asgi_example() {
        let e = In::new().error(Uvicorn, Field::App);
        assert!(
            e.hint.contains("app = \"proj.asgi:application\""),
            "{}",
            e.hint
        );
    }
}
