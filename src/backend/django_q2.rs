//! `backend = "django-q2"`: `PYTHON manage.py qcluster [args...]`.

use super::{args, manage_py, BackendError, BackendInput};

pub(super) const SHAPE: &str = "PYTHON manage.py qcluster ARGS";

/// TERM makes the qcluster sentinel stop its workers after their current
/// task, the cluster's graceful stop.
pub(super) const STOP_SIGNAL: i32 = libc::SIGTERM;

pub(super) const BACKEND: super::Backend = super::Backend {
    program: super::DEFAULT_PYTHON,
    stop_signal: STOP_SIGNAL,
    shape: SHAPE,
    keys: &[super::BackendKey::Python],
    launch,
};

fn launch(input: &BackendInput, errs: &mut Vec<BackendError>) -> super::Launch {
    super::Launch::at_spawn(argv(input, errs))
}

pub(super) fn argv(input: &BackendInput, errs: &mut Vec<BackendError>) -> Vec<String> {
    let mut argv = manage_py(input, "qcluster");
    argv.extend(args::render(input.args, &[], errs));
    argv
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::backend::Field;
    use crate::plan::BackendKind::DjangoQ2;

    #[test]
    fn typical() {
        assert_eq!(
            In::new().argv(DjangoQ2),
            v(&["python3", "manage.py", "qcluster"])
        );
        assert_eq!(
            In::new().arg("run-once", true).argv(DjangoQ2),
            v(&["python3", "manage.py", "qcluster", "--run-once"])
        );
    }

    #[test]
    fn python_picks_the_interpreter() {
        assert_eq!(
            In::new()
                .python("/srv/shop/.venv/bin/python")
                .argv(DjangoQ2),
            v(&["/srv/shop/.venv/bin/python", "manage.py", "qcluster"])
        );
    }

    #[test]
    fn app_is_not_used() {
        In::new().app("shop").error(DjangoQ2, Field::App);
    }
}
