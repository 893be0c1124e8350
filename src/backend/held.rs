//! Held sockets: prodserver binds a web process's listening sockets once
//! and every generation inherits them, so a restart never closes the port.
//! This module decides, per backend, how a server is told to use the
//! sockets it finds at fd 3, 4, ... instead of binding, and rewrites its
//! argv accordingly; `supervisor::sockets` owns the sockets themselves.
//!
//! - gunicorn: systemd socket activation (`LISTEN_FDS`, `LISTEN_PID` set
//!   after fork). gunicorn then ignores its `bind` (kept in argv, harmless)
//!   and, having not created a unix socket itself, never unlinks it on
//!   stop; with `--bind fd://3` it would unlink a unix socket's file.
//! - uvicorn: `--fd=3`, one socket. uvicorn wraps the descriptor with
//!   `socket.fromfd(fd, AF_UNIX, ...)` whatever its real family
//!   (uvicorn#295): a TCP socket serves, but the app sees no client
//!   address (`scope["client"]` is None) unless `--proxy-headers` fills it
//!   from a trusted proxy. `check` says so.
//! - daphne: `--endpoint=fd:fileno=3:domain=INET|INET6|UNIX`, Twisted's
//!   adopted-socket endpoint, which is told the family (daphne's own
//!   `--fd` assumes IPv4).
//! - command: `LISTEN_FDS`, like gunicorn.
//! - granian takes no inherited socket (granian#786), nor does
//!   waitress-serve: they bind their own, and restart with a gap.

use super::{args, ArgValue, BackendInput, BackendKind, Launch, Listen};

/// How a server receives the sockets prodserver holds for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passing {
    /// `LISTEN_FDS=n` and `LISTEN_PID` (systemd socket activation).
    ListenFds,
    /// uvicorn's `--fd=3`.
    UvicornFd,
    /// daphne's `--endpoint=fd:fileno=N:domain=...`.
    DaphneEndpoint,
}

impl Passing {
    /// How `check` words it.
    pub fn describe(self) -> &'static str {
        match self {
            Passing::ListenFds => "LISTEN_FDS (systemd socket activation, from fd 3)",
            Passing::UvicornFd => "--fd=3",
            Passing::DaphneEndpoint => "--endpoint=fd:fileno=3",
        }
    }

    /// Whether the child's environment carries `LISTEN_FDS`/`LISTEN_PID`.
    pub fn listen_env(self) -> bool {
        matches!(self, Passing::ListenFds)
    }
}

/// What [`hold`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The launch binds nothing prodserver knows of: nothing to hold.
    Nothing,
    /// prodserver holds `launch.listen`, passed this way.
    Held(Passing),
    /// The server binds its own sockets, for this reason.
    Own(String),
}

/// Decides whether `launch`'s sockets are held (`wanted` is the process's
/// `hold_socket`) and, when they are, rewrites its argv so the server
/// uses the inherited descriptors.
pub fn hold(
    kind: BackendKind,
    input: &BackendInput,
    launch: &mut Launch,
    wanted: bool,
) -> Decision {
    if launch.listen.is_empty() {
        return Decision::Nothing;
    }
    if !wanted {
        return Decision::Own(
            "hold_socket = false: the server binds its own socket, and a restart closes the port until the new one listens".to_owned(),
        );
    }
    let gap = "a restart stops the old process before the new one listens, so the port is closed in between";
    let passing = match kind {
        BackendKind::Gunicorn => {
            if args::values(input.args, &["bind", "b"])
                .iter()
                .any(|b| b.starts_with("fd://"))
            {
                return Decision::Own(format!(
                    "it already serves an inherited fd:// socket; {gap}"
                ));
            }
            if args::is_set(input.args, &["reuse-port"]) {
                return Decision::Own(format!(
                    "with reuse-port gunicorn binds its own sockets; {gap}"
                ));
            }
            super::gunicorn::ready_when_held(input, launch);
            Passing::ListenFds
        }
        BackendKind::Command => Passing::ListenFds,
        BackendKind::Uvicorn => {
            if launch.listen.len() != 1 {
                return Decision::Own(format!("uvicorn takes one socket; {gap}"));
            }
            let kept = without(input.args, &["host", "port", "uds", "fd"]);
            let mut argv = rebuild(input, &kept, super::uvicorn::argv);
            insert_before_app(&mut argv, vec!["--fd=3".to_owned()]);
            launch.argv = argv;
            super::uvicorn::ready_when_held(input, launch);
            Passing::UvicornFd
        }
        BackendKind::Daphne => {
            let kept = without(
                input.args,
                &[
                    "bind",
                    "b",
                    "port",
                    "p",
                    "unix-socket",
                    "u",
                    "fd",
                    "endpoint",
                    "e",
                ],
            );
            let mut argv = rebuild(input, &kept, super::daphne::argv);
            let endpoints = launch
                .listen
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    format!(
                        "--endpoint=fd:fileno={}:domain={}",
                        3 + i,
                        twisted_domain(l)
                    )
                })
                .collect();
            insert_before_app(&mut argv, endpoints);
            launch.argv = argv;
            Passing::DaphneEndpoint
        }
        BackendKind::Granian => {
            return Decision::Own(format!(
                "granian cannot take an inherited socket (granian#786); {gap}"
            ))
        }
        BackendKind::Waitress => {
            return Decision::Own(format!(
                "waitress-serve cannot take an inherited socket; {gap}"
            ))
        }
        BackendKind::Flower
        | BackendKind::CeleryWorker
        | BackendKind::CeleryBeat
        | BackendKind::DjangoQ2
        | BackendKind::DjangoTasks
        | BackendKind::DjangoRunserver => {
            return Decision::Own(format!("the {} backend binds its own socket", kind.name()))
        }
    };
    Decision::Held(passing)
}

/// One element of a command's `listen`: `"HOST:PORT"` (IPv6 in brackets)
/// or `"unix:PATH"`. `{instance}` may stand in the port or path.
pub fn parse_listen(text: &str) -> Result<Listen, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        if path.is_empty() {
            return Err("\"unix:\" needs a path".to_owned());
        }
        return Ok(Listen::Unix(path.to_owned()));
    }
    let listen = super::launch::host_port(text, "", false);
    let Listen::Tcp { port, .. } = &listen else {
        return Err(format!("{text:?} is not an address"));
    };
    if port.is_empty() {
        return Err(format!("{text:?} has no port"));
    }
    match port.replace("{instance}", "1").parse::<u16>() {
        Ok(p) if p != 0 => Ok(listen),
        _ => Err(format!(
            "{text:?}: the port must be a number from 1 to 65535"
        )),
    }
}

/// Twisted's `domain=` for a socket bound at `listen`. A host name (not an
/// IP literal) is bound to its first address, IPv4 for the usual
/// `localhost`.
fn twisted_domain(listen: &Listen) -> &'static str {
    match listen {
        Listen::Unix(_) => "UNIX",
        Listen::Tcp { host, .. } => {
            let bare = host.trim().trim_start_matches('[').trim_end_matches(']');
            match bare.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V6(_)) => "INET6",
                _ => "INET",
            }
        }
    }
}

fn without(all: &[(String, ArgValue)], drop: &[&str]) -> Vec<(String, ArgValue)> {
    all.iter()
        .filter(|(k, _)| !drop.contains(&k.as_str()))
        .cloned()
        .collect()
}

/// The backend's argv built again from `kept` args, with the entry's
/// `program` override (applied by `resolve` to the first build).
fn rebuild(
    input: &BackendInput,
    kept: &[(String, ArgValue)],
    argv: fn(&BackendInput, &mut Vec<super::BackendError>) -> Vec<String>,
) -> Vec<String> {
    let again = BackendInput {
        args: kept,
        ..input.clone()
    };
    // The entry was checked by the first build; the same errors again
    // would only be duplicates.
    let mut ignored = Vec::new();
    let mut out = argv(&again, &mut ignored);
    if let (Some(program), Some(first)) = (input.program, out.first_mut()) {
        program.clone_into(first);
    }
    out
}

/// The app is the servers' last argument (see `args_then_app`).
fn insert_before_app(argv: &mut Vec<String>, flags: Vec<String>) {
    let at = argv.len().saturating_sub(1).max(1);
    argv.splice(at..at, flags);
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::plan::BackendKind as K;

    fn held(kind: K, input: &In) -> (Decision, Vec<String>) {
        let mut launch = input.launch(kind);
        let d = input.with(|i| hold(kind, i, &mut launch, true));
        (d, launch.argv)
    }

    #[test]
    fn gunicorn_keeps_its_argv_and_takes_listen_fds() {
        let input = In::new()
            .app("shop.wsgi:application")
            .arg("bind", "unix:/run/shop.sock");
        let before = input.argv(K::Gunicorn);
        let (d, argv) = held(K::Gunicorn, &input);
        assert_eq!(d, Decision::Held(Passing::ListenFds));
        assert_eq!(argv, before);
        let fd = In::new().app("shop.wsgi:application").arg("bind", "fd://5");
        assert_eq!(held(K::Gunicorn, &fd).0, Decision::Nothing);
    }

    #[test]
    fn uvicorn_gets_fd_3_instead_of_its_address() {
        let input = In::new()
            .app("shop.asgi:application")
            .program("/venv/bin/uvicorn")
            .arg("host", "0.0.0.0")
            .arg("port", 8000)
            .arg("workers", 2);
        let (d, argv) = held(K::Uvicorn, &input);
        assert_eq!(d, Decision::Held(Passing::UvicornFd));
        assert_eq!(
            argv,
            v(&[
                "/venv/bin/uvicorn",
                "--workers=2",
                "--fd=3",
                "shop.asgi:application"
            ])
        );
        let uds = In::new()
            .app("shop.asgi:application")
            .arg("uds", "/run/shop.sock");
        assert_eq!(
            held(K::Uvicorn, &uds).1,
            v(&["uvicorn", "--fd=3", "shop.asgi:application"])
        );
    }

    #[test]
    fn daphne_gets_an_endpoint_with_the_family() {
        let v6 = In::new()
            .app("shop.asgi:application")
            .arg("bind", "::1")
            .arg("port", 9000);
        let (d, argv) = held(K::Daphne, &v6);
        assert_eq!(d, Decision::Held(Passing::DaphneEndpoint));
        assert_eq!(
            argv,
            v(&[
                "daphne",
                "--endpoint=fd:fileno=3:domain=INET6",
                "shop.asgi:application"
            ])
        );
        let unix = In::new()
            .app("shop.asgi:application")
            .arg("u", "/run/d.sock");
        assert_eq!(
            held(K::Daphne, &unix).1,
            v(&[
                "daphne",
                "--endpoint=fd:fileno=3:domain=UNIX",
                "shop.asgi:application"
            ])
        );
    }

    #[test]
    fn granian_and_waitress_bind_their_own_and_say_why() {
        for kind in [K::Granian, K::Waitress] {
            let input = In::new().app("shop.wsgi:application");
            let before = input.argv(kind);
            let (d, argv) = held(kind, &input);
            let Decision::Own(why) = d else {
                panic!("{kind:?}: {d:?}")
            };
            assert!(why.contains("inherited socket"), "{why}");
            assert_eq!(argv, before);
        }
    }

    #[test]
    fn opting_out_keeps_the_argv() {
        let input = In::new().app("shop.asgi:application");
        let mut launch = input.launch(K::Uvicorn);
        let before = launch.argv.clone();
        let d = input.with(|i| hold(K::Uvicorn, i, &mut launch, false));
        assert!(matches!(d, Decision::Own(why) if why.contains("hold_socket = false")));
        assert_eq!(launch.argv, before);
    }
}
