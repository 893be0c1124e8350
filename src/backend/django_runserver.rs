//! `backend = "django-runserver"`: `PYTHON manage.py runserver [args...] [ADDRPORT]`.

use super::{args, manage_py, ArgValue, BackendError, BackendInput, Field};

pub(super) const SHAPE: &str = "PYTHON manage.py runserver ARGS [ADDRPORT]";

/// TERM to runserver's parent (the autoreloader) ends it and its serving
/// child; it has no in-flight work worth a gentler signal.
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
    let mut argv = manage_py(input, "runserver");
    argv.extend(args::render(input.args, &["addrport"], errs));
    // runserver takes `[addrport]` as a positional, not as an option.
    match args::get(input.args, "addrport") {
        None | Some(ArgValue::Bool(false)) => {}
        Some(value @ (ArgValue::Str(_) | ArgValue::Int(_))) => {
            argv.extend(args::scalar_text(value));
        }
        Some(_) => errs.push(BackendError {
            field: Field::Arg("addrport".to_owned()),
            message: "`args.addrport` must be a port or an address:port".to_owned(),
            hint: "write `addrport = \"127.0.0.1:8000\"` or `addrport = 8000`".to_owned(),
        }),
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::backend::{ArgValue, Field};
    use crate::plan::BackendKind::DjangoRunserver;

    #[test]
    fn typical() {
        assert_eq!(
            In::new().argv(DjangoRunserver),
            v(&["python3", "manage.py", "runserver"])
        );
    }

    #[test]
    fn addrport_is_positional_and_last() {
        let argv = In::new()
            .arg("addrport", "0.0.0.0:8000")
            .arg("noreload", true)
            .arg("nostatic", false)
            .argv(DjangoRunserver);
        assert_eq!(
            argv,
            v(&[
                "python3",
                "manage.py",
                "runserver",
                "--noreload",
                "0.0.0.0:8000"
            ])
        );
        let argv = In::new().arg("addrport", 8001).argv(DjangoRunserver);
        assert_eq!(argv, v(&["python3", "manage.py", "runserver", "8001"]));
    }

    #[test]
    fn bad_addrport_is_an_error() {
        for bad in [
            ArgValue::Bool(true),
            list(vec![s("8000")]),
            ArgValue::Float(80.5),
        ] {
            let e = In::new()
                .arg("addrport", bad)
                .error(DjangoRunserver, Field::Arg("addrport".into()));
            assert!(e.hint.contains("addrport = \"127.0.0.1:8000\""));
        }
    }

    #[test]
    fn python_picks_the_interpreter() {
        let argv = In::new()
            .python(".venv/bin/python")
            .arg("addrport", "8000")
            .argv(DjangoRunserver);
        assert_eq!(
            argv,
            v(&[".venv/bin/python", "manage.py", "runserver", "8000"])
        );
    }
}
