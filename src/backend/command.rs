//! `backend = "command"`: any program, run exactly as written. There is
//! never an implicit `sh -c`: a shell would sit between prodserver and the
//! program, swallow the stop signal and leave the real process orphaned.

use super::{args, BackendError, BackendInput, Field};

/// The program is the first word of `command`.
pub(super) const PROGRAM: &str = "";

pub(super) const SHAPE: &str = "COMMAND ARGS";

/// TERM is the conventional "please exit" for arbitrary programs; it is what
/// systemd and container runtimes send too, so scripts already handle it.
pub(super) const STOP_SIGNAL: i32 = libc::SIGTERM;

pub(super) const BACKEND: super::Backend = super::Backend {
    program: PROGRAM,
    stop_signal: STOP_SIGNAL,
    shape: SHAPE,
    keys: &[super::BackendKey::Command],
    launch,
};

fn launch(input: &BackendInput, errs: &mut Vec<BackendError>) -> super::Launch {
    super::Launch::at_spawn(argv(input, errs))
}

pub(super) fn argv(input: &BackendInput, errs: &mut Vec<BackendError>) -> Vec<String> {
    let mut argv = match input.command {
        Some(words) if !words.is_empty() => words.to_vec(),
        given => {
            errs.push(BackendError {
                field: Field::Command,
                message: if given.is_some() {
                    "`command` is empty".to_owned()
                } else {
                    "the command backend needs `command`".to_owned()
                },
                hint: "add the command line to run, e.g. \
                       `command = [\"python\", \"manage.py\", \"migrate\", \"--noinput\"]`"
                    .to_owned(),
            });
            Vec::new()
        }
    };
    if input.program.is_none() && argv.first().is_some_and(|p| p.trim().is_empty()) {
        errs.push(BackendError {
            field: Field::Command,
            message: "the first word of `command` (the program) is empty".to_owned(),
            hint: "start `command` with the program to run, e.g. `[\"python\", ...]`".to_owned(),
        });
    }
    argv.extend(args::render(input.args, &[], errs));
    argv
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::backend::Field;
    use crate::plan::BackendKind::Command;

    #[test]
    fn runs_the_command_verbatim() {
        let argv = In::new()
            .command(&["python", "manage.py", "migrate", "--noinput"])
            .argv(Command);
        assert_eq!(argv, v(&["python", "manage.py", "migrate", "--noinput"]));
    }

    #[test]
    fn args_are_appended_after_the_command() {
        let argv = In::new()
            .command(&["python", "manage.py", "migrate"])
            .arg("noinput", true)
            .arg("database", "replica")
            .arg("v", 2)
            .argv(Command);
        assert_eq!(
            argv,
            v(&[
                "python",
                "manage.py",
                "migrate",
                "--noinput",
                "--database=replica",
                "-v",
                "2"
            ])
        );
    }

    #[test]
    fn shell_syntax_is_not_interpreted() {
        let argv = In::new().command(&["echo", "a", "&&", "b"]).argv(Command);
        assert_eq!(argv, v(&["echo", "a", "&&", "b"]));
    }

    #[test]
    fn program_replaces_the_first_word() {
        let argv = In::new()
            .command(&["python", "manage.py", "migrate"])
            .program("/srv/shop/.venv/bin/python")
            .argv(Command);
        assert_eq!(
            argv,
            v(&["/srv/shop/.venv/bin/python", "manage.py", "migrate"])
        );
    }

    #[test]
    fn missing_command_is_an_error_with_an_example() {
        let e = In::new().error(Command, Field::Command);
        assert!(e.message.contains("needs `command`"));
        assert!(e.hint.contains("command = [\"python\""));
    }

    #[test]
    fn empty_command_is_an_error_even_with_program() {
        let e = In::new()
            .command(&[])
            .program("tool")
            .error(Command, Field::Command);
        assert!(e.message.contains("empty"));
        assert!(e.hint.contains("command = "));
    }

    #[test]
    fn empty_first_word_is_an_error_unless_program_replaces_it() {
        let e = In::new().command(&["", "x"]).error(Command, Field::Command);
        assert!(e.message.contains("first word"));
        let argv = In::new().command(&["", "x"]).program("tool").argv(Command);
        assert_eq!(argv, v(&["tool", "x"]));
    }
}
