//! `backend = "granian"`: `granian --interface=I [args...] APP`.
//!
//! granian's default interface is RSGI, which Django doesn't speak, so the
//! interface is always passed: from `args.interface`, or inferred from the
//! app's module path (`proj.asgi:...` / `proj.wsgi:...`).

use super::{args, require_app, ArgValue, BackendError, BackendInput, BackendKind, Field};

pub(super) const PROGRAM: &str = "granian";

pub(super) const SHAPE: &str = "granian --interface=wsgi|asgi|rsgi ARGS APP";

/// TERM is granian's graceful shutdown: workers stop accepting and finish
/// in-flight requests before the main process exits.
pub(super) const STOP_SIGNAL: i32 = libc::SIGTERM;

const INTERFACES: [&str; 3] = ["wsgi", "asgi", "rsgi"];

pub(super) const BACKEND: super::Backend = super::Backend {
    program: PROGRAM,
    stop_signal: STOP_SIGNAL,
    shape: SHAPE,
    keys: &[super::BackendKey::App],
    launch,
};

fn launch(input: &BackendInput, errs: &mut Vec<BackendError>) -> super::Launch {
    let (listen, readiness) = super::web::host_port_server(input, "granian", "GRANIAN", false);
    super::Launch {
        listen,
        readiness,
        ..super::Launch::at_spawn(argv(input, errs))
    }
}

pub(super) fn argv(input: &BackendInput, errs: &mut Vec<BackendError>) -> Vec<String> {
    let app = require_app(BackendKind::Granian, input, "proj.asgi:application", errs);
    let interface = interface(input, app, errs);
    let mut argv = vec![PROGRAM.to_owned()];
    argv.push(format!("--interface={}", interface.unwrap_or_default()));
    argv.extend(args::render(input.args, &["interface"], errs));
    argv.push(app.unwrap_or_default().to_owned());
    argv
}

fn interface(
    input: &BackendInput,
    app: Option<&str>,
    errs: &mut Vec<BackendError>,
) -> Option<String> {
    let hint = "set `args = { interface = \"wsgi\" }` (or \"asgi\") for a Django app";
    match args::get(input.args, "interface") {
        Some(ArgValue::Str(given)) if INTERFACES.contains(&given.as_str()) => Some(given.clone()),
        Some(other) => {
            let shown = match other {
                ArgValue::Str(s) => format!("\"{s}\""),
                ArgValue::Int(i) => i.to_string(),
                ArgValue::Float(f) => f.to_string(),
                ArgValue::Bool(b) => b.to_string(),
                ArgValue::List(_) => "a list".to_owned(),
            };
            errs.push(BackendError {
                field: Field::Arg("interface".to_owned()),
                message: format!(
                    "`args.interface` is {shown}; granian's interface is one of {}",
                    INTERFACES.join(", ")
                ),
                hint: hint.to_owned(),
            });
            None
        }
        None => {
            // Without an app there is nothing to infer from, and the missing
            // app is already reported.
            let app = app?;
            let lower = app.to_ascii_lowercase();
            if lower.contains("asgi") {
                Some("asgi".to_owned())
            } else if lower.contains("wsgi") {
                Some("wsgi".to_owned())
            } else {
                errs.push(BackendError {
                    field: Field::Arg("interface".to_owned()),
                    message: format!(
                        "can't tell whether `{app}` is a WSGI or an ASGI app, and granian's \
                         default (rsgi) doesn't serve Django"
                    ),
                    hint: hint.to_owned(),
                });
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::backend::Field;
    use crate::plan::BackendKind::Granian;

    #[test]
    fn asgi_is_inferred_from_the_app() {
        let argv = In::new()
            .app("shop.asgi:application")
            .arg("host", "0.0.0.0")
            .arg("workers", 2)
            .argv(Granian);
        assert_eq!(
            argv,
            v(&[
                "granian",
                "--interface=asgi",
                "--host=0.0.0.0",
                "--workers=2",
                "shop.asgi:application"
            ])
        );
    }

    #[test]
    fn wsgi_is_inferred_from_the_app() {
        let argv = In::new().app("shop.WSGI:application").argv(Granian);
        assert_eq!(
            argv,
            v(&["granian", "--interface=wsgi", "shop.WSGI:application"])
        );
    }

    #[test]
    fn explicit_interface_is_emitted_once_first() {
        let argv = In::new()
            .app("shop.asgi:application")
            .arg("workers", 2)
            .arg("interface", "wsgi")
            .argv(Granian);
        assert_eq!(
            argv,
            v(&[
                "granian",
                "--interface=wsgi",
                "--workers=2",
                "shop.asgi:application"
            ])
        );
        let argv = In::new()
            .app("app:main")
            .arg("interface", "rsgi")
            .argv(Granian);
        assert_eq!(argv, v(&["granian", "--interface=rsgi", "app:main"]));
    }

    #[test]
    fn bad_interface_is_an_error() {
        let e = In::new()
            .app("shop.asgi:application")
            .arg("interface", "http")
            .error(Granian, Field::Arg("interface".into()));
        assert!(e.message.contains("\"http\""), "{}", e.message);
        assert!(e.hint.contains("interface = \"wsgi\""));
        In::new()
            .app("shop.asgi:application")
            .arg("interface", true)
            .error(Granian, Field::Arg("interface".into()));
    }

    #[test]
    fn uninferable_app_asks_for_interface() {
        let e = In::new()
            .app("shop.web:app")
            .error(Granian, Field::Arg("interface".into()));
        assert!(e.message.contains("shop.web:app"));
        assert!(
            e.hint.contains("args = { interface = \"wsgi\" }"),
            "{}",
            e.hint
        );
    }

    #[test]
    fn missing_app_reports_only_the_app() {
        let e = In::new().error(Granian, Field::App);
        assert!(e.hint.contains("app = \"proj.asgi:application\""));
    }
}
