//! Why prodserver could not start, with one mapping to exit codes
//! ([`Error::exit_code`]) and one way to print it ([`Error::render`]).
//!
//! Everything between the command line and the event loop returns
//! `Result<_, Error>`; `main` prints the error and exits with its code.
//! A panic is a bug, never an exit path: [`guard`] turns one into
//! [`Error::Panic`], which exits with [`exit::INTERNAL`] like any other
//! failure to set up, instead of Rust's 101.

use std::any::Any;
use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::config::LoadError;
use crate::exit;

#[derive(Debug)]
pub enum Error {
    /// The config file is invalid: every diagnostic, located.
    Config { path: PathBuf, load: LoadError },
    /// Bad usage that argument parsing could not catch: no config file
    /// found, a process named on the command line that does not exist.
    Usage(String),
    /// A process's settings, valid as written, that cannot be used here
    /// (a `user` this machine does not have, a health check that cannot
    /// be built). Known without a location in the file.
    Process { process: String, message: String },
    /// prodserver could not set itself up. `what` completes "cannot …":
    /// `start the keeper process`.
    Setup { what: String, source: io::Error },
    /// A bug: a panic caught by [`guard`], with its message.
    Panic(String),
}

impl Error {
    pub fn config(path: impl Into<PathBuf>, load: LoadError) -> Error {
        Error::Config {
            path: path.into(),
            load,
        }
    }

    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage(message.into())
    }

    pub fn process(process: impl Into<String>, message: impl fmt::Display) -> Error {
        Error::Process {
            process: process.into(),
            message: message.to_string(),
        }
    }

    pub fn setup(what: impl Into<String>, source: io::Error) -> Error {
        Error::Setup {
            what: what.into(),
            source,
        }
    }

    /// The code prodserver exits with: nothing was started either way,
    /// and the code says whose fault it is (the README's table).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config { .. } | Error::Usage(_) | Error::Process { .. } => exit::CONFIG,
            Error::Setup { .. } | Error::Panic(_) => exit::INTERNAL,
        }
    }

    /// What to print on stderr, ending in a newline: a config file's
    /// diagnostics (in color when `color`) with a one-line verdict, or one
    /// `error:` line.
    pub fn render(&self, color: bool) -> String {
        match self {
            Error::Config { path, load } => {
                let n = load.errors().count();
                format!(
                    "{}\n{}: {n} error{} found; nothing was started\n",
                    load.sources.render(&load.diagnostics, color),
                    path.display(),
                    if n == 1 { "" } else { "s" }
                )
            }
            other => format!("error: {other}\n"),
        }
    }
}

impl fmt::Display for Error {
    /// One line, without the `error:` prefix; a config file's diagnostics
    /// need [`Error::render`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config { path, load } => {
                let n = load.errors().count();
                write!(f, "{}: {n} error(s) in the config file", path.display())
            }
            Error::Usage(message) => f.write_str(message),
            Error::Process { process, message } => write!(f, "[processes.{process}] {message}"),
            Error::Setup { what, source } => write!(f, "cannot {what}: {source}"),
            Error::Panic(message) => write!(f, "internal error (a bug in prodserver): {message}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Setup { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Runs `body`, turning a panic into [`Error::Panic`]. The panic hook has
/// printed the message and location already; the caller prints the
/// error and exits with its code like for any other.
pub fn guard<T>(body: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    // AssertUnwindSafe: after a panic nothing of `body` is used again,
    // the process only reports and exits.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
        .unwrap_or_else(|payload| Err(Error::Panic(panic_message(payload.as_ref()))))
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_str, LoadOptions};
    use std::path::Path;

    fn invalid_config() -> LoadError {
        let opts = LoadOptions {
            hold_sockets: true,
            env: Default::default(),
            runtime_dir: "/nonexistent/run".into(),
            dev: false,
        };
        let text = "[processes.web]\nstop_signal = \"CHLD\"\nstop_timeout = \"soon\"\n";
        load_str(Path::new("/srv/app/prodserver.toml"), text.into(), &opts)
            .err()
            .expect("an invalid file")
    }

    #[test]
    fn config_errors_render_every_diagnostic_and_a_verdict() {
        let e = Error::config("prodserver.toml", invalid_config());
        assert_eq!(e.exit_code(), exit::CONFIG);
        let text = e.render(false);
        assert!(text.contains("cannot be a stop signal"), "{text}");
        assert!(text.contains("prodserver.toml:2:"), "located: {text}");
        let n = match &e {
            Error::Config { load, .. } => load.errors().count(),
            _ => unreachable!(),
        };
        assert!(n >= 2, "{text}");
        assert!(
            text.ends_with(&format!(
                "\nprodserver.toml: {n} errors found; nothing was started\n"
            )),
            "{text}"
        );
        assert!(!text.contains('\x1b'), "no color asked");
        assert!(e.render(true).contains('\x1b'), "color asked");
    }

    #[test]
    fn one_line_errors_and_their_codes() {
        let cases = [
            (
                Error::usage("no process named \"wbe\""),
                exit::CONFIG,
                "error: no process named \"wbe\"\n",
            ),
            (
                Error::process("web", "unknown user \"www\""),
                exit::CONFIG,
                "error: [processes.web] unknown user \"www\"\n",
            ),
            (
                Error::setup(
                    "start the keeper process",
                    io::Error::other("2 threads are running"),
                ),
                exit::INTERNAL,
                "error: cannot start the keeper process: 2 threads are running\n",
            ),
            (
                Error::Panic("oops".into()),
                exit::INTERNAL,
                "error: internal error (a bug in prodserver): oops\n",
            ),
        ];
        for (e, code, text) in cases {
            assert_eq!(e.exit_code(), code, "{e:?}");
            assert_eq!(e.render(false), text);
            assert_eq!(e.render(true), text, "only diagnostics have color");
        }
        let e = Error::setup("lock", io::Error::other("held"));
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("held"));
    }

    #[test]
    fn a_panic_becomes_an_internal_error_not_an_exit_path() {
        // The hook prints these three panics: the hook is process-wide,
        // and silencing it would race with the other tests.
        let literal = guard::<i32>(|| panic!("a literal"));
        let formatted = guard::<i32>(|| panic!("slot {}", 3));
        let other = guard::<i32>(|| std::panic::panic_any(42u8));
        for (result, message) in [
            (literal, "a literal"),
            (formatted, "slot 3"),
            (other, "a panic without a message"),
        ] {
            let e = result.unwrap_err();
            assert_eq!(e.exit_code(), exit::INTERNAL);
            assert!(matches!(&e, Error::Panic(m) if m == message), "{e:?}");
        }
        assert_eq!(guard(|| Ok::<_, Error>(7)).unwrap(), 7);
        let e = guard::<()>(|| Err(Error::usage("bad"))).unwrap_err();
        assert_eq!(e.exit_code(), exit::CONFIG);
    }
}
