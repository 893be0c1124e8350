//! `backend = "waitress"`: `waitress-serve [args...] APP`.

use super::{args_then_app, BackendError, BackendInput, BackendKind};

pub(super) const PROGRAM: &str = "waitress-serve";

pub(super) const SHAPE: &str = "waitress-serve ARGS APP";

/// waitress-serve installs no signal handlers, so TERM ends it at once; it
/// has no graceful drain to ask for with another signal, and TERM is the
/// one it would get from systemd or a container runtime as well.
pub(super) const STOP_SIGNAL: i32 = libc::SIGTERM;

pub(super) const BACKEND: super::Backend = super::Backend {
    program: PROGRAM,
    stop_signal: STOP_SIGNAL,
    shape: SHAPE,
    keys: &[super::BackendKey::App],
    launch,
};

fn launch(input: &BackendInput, errs: &mut Vec<BackendError>) -> super::Launch {
    let (listen, readiness) = super::web::waitress(input);
    super::Launch {
        listen,
        readiness,
        ..super::Launch::at_spawn(argv(input, errs))
    }
}

pub(super) fn argv(input: &BackendInput, errs: &mut Vec<BackendError>) -> Vec<String> {
    args_then_app(
        BackendKind::Waitress,
        input,
        PROGRAM,
        "proj.wsgi:application",
        errs,
    )
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::backend::Field;
    use crate::plan::BackendKind::Waitress;

    #[test]
    fn typical() {
        let argv = In::new()
            .app("shop.wsgi:application")
            .arg("listen", list(vec![s("127.0.0.1:8080"), s("[::1]:8080")]))
            .arg("threads", 8)
            .argv(Waitress);
        assert_eq!(
            argv,
            v(&[
                "waitress-serve",
                "--listen=127.0.0.1:8080",
                "--listen=[::1]:8080",
                "--threads=8",
                "shop.wsgi:application"
            ])
        );
    }

    #[test]
    fn missing_app_is_an_error_with_a_wsgi_example() {
        let e = In::new().error(Waitress, Field::App);
        assert!(
            e.hint.contains("app = \"proj.wsgi:application\""),
            "{}",
            e.hint
        );
    }
}
