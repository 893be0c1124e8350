//! `backend = "flower"`: `celery -A APP flower [args...]`.

use super::{args, celery, BackendError, BackendInput, BackendKind};

pub(super) const SHAPE: &str = "celery -A APP flower ARGS";

/// Flower is a stateless web UI (tornado): TERM ends it cleanly and there is
/// nothing in flight worth a gentler signal.
pub(super) const STOP_SIGNAL: i32 = libc::SIGTERM;

pub(super) const BACKEND: super::Backend = super::Backend {
    program: super::CELERY,
    stop_signal: STOP_SIGNAL,
    shape: SHAPE,
    keys: &[super::BackendKey::App],
    launch,
};

fn launch(input: &BackendInput, errs: &mut Vec<BackendError>) -> super::Launch {
    super::Launch::at_spawn(argv(input, errs))
}

pub(super) fn argv(input: &BackendInput, errs: &mut Vec<BackendError>) -> Vec<String> {
    let mut argv = celery(BackendKind::Flower, input, "flower", errs);
    argv.extend(args::render(input.args, &[], errs));
    argv
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::backend::Field;
    use crate::plan::BackendKind::Flower;

    #[test]
    fn typical() {
        let argv = In::new()
            .app("shop.celery.app")
            .arg("port", 5555)
            .arg("basic-auth", "admin:secret")
            .argv(Flower);
        assert_eq!(
            argv,
            v(&[
                "celery",
                "-A",
                "shop.celery.app",
                "flower",
                "--port=5555",
                "--basic-auth=admin:secret"
            ])
        );
    }

    #[test]
    fn missing_app_is_an_error_with_a_celery_example() {
        let e = In::new().error(Flower, Field::App);
        assert!(e.hint.contains("app = \"proj.celery.app\""), "{}", e.hint);
    }

    #[test]
    fn app_in_args_is_an_error() {
        let e = In::new()
            .app("shop.celery.app")
            .arg("A", "other")
            .error(Flower, Field::Arg("A".into()));
        assert!(e.hint.contains("remove `A`"));
    }
}
