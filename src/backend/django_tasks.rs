//! `backend = "django-tasks"`: `PYTHON manage.py db_worker [args...]`.

use super::{args, manage_py, BackendError, BackendInput};

pub(super) const SHAPE: &str = "PYTHON manage.py db_worker ARGS";

/// TERM asks `db_worker` to stop after the task it is running, its graceful
/// shutdown.
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
    let mut argv = manage_py(input, "db_worker");
    argv.extend(args::render(input.args, &[], errs));
    argv
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::plan::BackendKind::DjangoTasks;

    #[test]
    fn typical() {
        let argv = In::new()
            .arg("queue-name", list(vec![s("default"), s("emails")]))
            .arg("interval", 0.5)
            .argv(DjangoTasks);
        assert_eq!(
            argv,
            v(&[
                "python3",
                "manage.py",
                "db_worker",
                "--queue-name=default",
                "--queue-name=emails",
                "--interval=0.5"
            ])
        );
    }

    #[test]
    fn python_picks_the_interpreter() {
        assert_eq!(
            In::new().python("python3.13").argv(DjangoTasks),
            v(&["python3.13", "manage.py", "db_worker"])
        );
    }
}
