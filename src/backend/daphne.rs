//! `backend = "daphne"`: `daphne [args...] APP`.

use super::{args_then_app, BackendError, BackendInput, BackendKind};

pub(super) const PROGRAM: &str = "daphne";

pub(super) const SHAPE: &str = "daphne ARGS APP";

/// TERM makes Twisted stop daphne's reactor cleanly (listeners closed,
/// shutdown hooks run); daphne has no gentler signal to ask for.
pub(super) const STOP_SIGNAL: i32 = libc::SIGTERM;

pub(super) const BACKEND: super::Backend = super::Backend {
    program: PROGRAM,
    stop_signal: STOP_SIGNAL,
    shape: SHAPE,
    keys: &[super::BackendKey::App],
    launch,
};

fn launch(input: &BackendInput, errs: &mut Vec<BackendError>) -> super::Launch {
    let (listen, readiness) = super::web::daphne(input);
    super::Launch {
        listen,
        readiness,
        ..super::Launch::at_spawn(argv(input, errs))
    }
}

pub(super) fn argv(input: &BackendInput, errs: &mut Vec<BackendError>) -> Vec<String> {
    args_then_app(
        BackendKind::Daphne,
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
    use crate::plan::BackendKind::Daphne;

    #[test]
    fn typical_with_short_keys() {
        let argv = In::new()
            .app("shop.asgi:application")
            .arg("b", "0.0.0.0")
            .arg("p", 8001)
            .arg("proxy-headers", true)
            .argv(Daphne);
        assert_eq!(
            argv,
            v(&[
                "daphne",
                "-b",
                "0.0.0.0",
                "-p",
                "8001",
                "--proxy-headers",
                "shop.asgi:application"
            ])
        );
    }

    #[test]
    fn missing_app_is_an_error_with_an_asgi_example() {
        let e = In::new().error(Daphne, Field::App);
        assert!(
            e.hint.contains("app = \"proj.asgi:application\""),
            "{}",
            e.hint
        );
    }
}
