//! `backend = "gunicorn"`: `gunicorn [args...] APP`.

use super::{args, require_app, BackendError, BackendInput, BackendKind};

pub(super) const PROGRAM: &str = "gunicorn";

pub(super) const SHAPE: &str =
    "gunicorn --control-socket=RUNTIME/PROJECT.NAME.{instance}.gunicorn.ctl ARGS APP";

/// TERM is gunicorn's graceful stop: the arbiter closes its listeners and
/// lets workers finish in-flight requests for `graceful_timeout`. INT and
/// QUIT are the quick stops.
pub(super) const STOP_SIGNAL: i32 = libc::SIGTERM;

/// Unix socket paths are limited to 107 bytes (`sun_path`); stay clear of
/// it. Measured with the literal `{instance}` (10 bytes), which is at least
/// as long as any instance number it becomes.
const MAX_SOCKET_PATH: usize = 100;

pub(super) fn argv(input: &BackendInput, errs: &mut Vec<BackendError>) -> Vec<String> {
    let app = require_app(BackendKind::Gunicorn, input, "proj.wsgi:application", errs);
    super::forbid_args(input, &["daemon", "D"], super::DAEMON_WHY, errs);
    let mut argv = vec![PROGRAM.to_owned()];
    // gunicorn 25+ creates `$XDG_RUNTIME_DIR/gunicorn.ctl` and unlinks an
    // existing one, so a second gunicorn (another process or instance)
    // would silently take the first one's control socket away.
    if !args::is_set(input.args, &["control-socket", "no-control-socket"]) {
        argv.push(control_socket(input));
    }
    argv.extend(args::render(input.args, &[], errs));
    argv.push(app.unwrap_or_default().to_owned());
    argv
}

fn control_socket(input: &BackendInput) -> String {
    let path = input.runtime_dir.to_str().map(|dir| {
        format!(
            "{}/{}.{}.{{instance}}.gunicorn.ctl",
            dir.trim_end_matches('/'),
            input.project,
            input.process
        )
    });
    match path {
        Some(path) if path.len() <= MAX_SOCKET_PATH => format!("--control-socket={path}"),
        // A path that doesn't fit in sun_path (or can't go into argv) would
        // make gunicorn fail at start; no control socket loses only the
        // optional `gunicornc` tool.
        _ => "--no-control-socket".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::backend::Field;
    use crate::plan::BackendKind::Gunicorn;

    const CTL: &str = "--control-socket=/run/user/1000/prodserver/shop.web.{instance}.gunicorn.ctl";

    #[test]
    fn typical() {
        let argv = In::new()
            .app("shop.wsgi:application")
            .arg("bind", "127.0.0.1:8000")
            .arg("workers", 4)
            .argv(Gunicorn);
        assert_eq!(
            argv,
            v(&[
                "gunicorn",
                CTL,
                "--bind=127.0.0.1:8000",
                "--workers=4",
                "shop.wsgi:application"
            ])
        );
    }

    #[test]
    fn app_comes_last_after_every_arg() {
        let argv = In::new()
            .app("shop.wsgi:application")
            .arg("b", "0.0.0.0:80")
            .arg("preload", true)
            .arg("reload", false)
            .arg("bind", list(vec![s("[::]:80"), s("unix:/tmp/s")]))
            .argv(Gunicorn);
        assert_eq!(
            argv,
            v(&[
                "gunicorn",
                CTL,
                "-b",
                "0.0.0.0:80",
                "--preload",
                "--bind=[::]:80",
                "--bind=unix:/tmp/s",
                "shop.wsgi:application"
            ])
        );
    }

    #[test]
    fn user_control_socket_wins() {
        let argv = In::new()
            .app("a:b")
            .arg("control-socket", "/tmp/g.ctl")
            .argv(Gunicorn);
        assert_eq!(argv, v(&["gunicorn", "--control-socket=/tmp/g.ctl", "a:b"]));
        let argv = In::new()
            .app("a:b")
            .arg("no-control-socket", true)
            .argv(Gunicorn);
        assert_eq!(argv, v(&["gunicorn", "--no-control-socket", "a:b"]));
    }

    #[test]
    fn a_false_no_control_socket_still_gets_a_distinct_socket() {
        let argv = In::new()
            .app("a:b")
            .arg("no-control-socket", false)
            .argv(Gunicorn);
        assert_eq!(argv, v(&["gunicorn", CTL, "a:b"]));
    }

    #[test]
    fn trailing_slash_of_runtime_dir_is_not_doubled() {
        let argv = In::new().app("a:b").runtime_dir("/run/ps/").argv(Gunicorn);
        assert_eq!(
            argv[1],
            "--control-socket=/run/ps/shop.web.{instance}.gunicorn.ctl"
        );
    }

    #[test]
    fn long_socket_path_falls_back_to_no_control_socket() {
        // 100 bytes exactly still fits.
        let dir = format!(
            "/{}",
            "d".repeat(100 - "/".len() - "/shop.web.{instance}.gunicorn.ctl".len())
        );
        let argv = In::new().app("a:b").runtime_dir(&dir).argv(Gunicorn);
        let path = argv[1].trim_start_matches("--control-socket=");
        assert_eq!(path.len(), 100);
        let longer = format!("{dir}x");
        let argv = In::new().app("a:b").runtime_dir(&longer).argv(Gunicorn);
        assert_eq!(argv, v(&["gunicorn", "--no-control-socket", "a:b"]));
    }

    #[test]
    fn socket_is_named_after_project_and_process() {
        let argv = In::new()
            .app("a:b")
            .project("blog")
            .process("api")
            .runtime_dir("/tmp/ps")
            .argv(Gunicorn);
        assert_eq!(
            argv,
            v(&[
                "gunicorn",
                "--control-socket=/tmp/ps/blog.api.{instance}.gunicorn.ctl",
                "a:b"
            ])
        );
    }

    #[test]
    fn long_process_name_falls_back_too() {
        let name = "p".repeat(80);
        let argv = In::new().app("a:b").process(&name).argv(Gunicorn);
        assert_eq!(argv[1], "--no-control-socket");
    }

    #[test]
    fn missing_app_is_an_error_with_a_wsgi_example() {
        let e = In::new().arg("workers", 2).error(Gunicorn, Field::App);
        assert!(
            e.hint.contains("app = \"proj.wsgi:application\""),
            "{}",
            e.hint
        );
        let e = In::new().app("").error(Gunicorn, Field::App);
        assert!(e.message.contains("non-empty"));
    }

    #[test]
    fn daemon_is_rejected() {
        let e = In::new()
            .app("a:b")
            .arg("daemon", true)
            .error(Gunicorn, Field::Arg("daemon".into()));
        assert!(e.message.contains("background"));
        assert!(e.hint.contains("remove `daemon`"));
        In::new()
            .app("a:b")
            .arg("D", true)
            .error(Gunicorn, Field::Arg("D".into()));
    }

    #[test]
    fn nested_list_is_an_error() {
        In::new()
            .app("a:b")
            .arg("bind", list(vec![list(vec![s("x")])]))
            .error(Gunicorn, Field::Arg("bind".into()));
    }
}
