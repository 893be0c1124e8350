//! Where the web servers listen, read from their typed args and
//! environment as each server reads them (gunicorn's own rules are in
//! `gunicorn.rs`):
//! - uvicorn: `--host`/`--port`, else `UVICORN_HOST`/`UVICORN_PORT`, else
//!   127.0.0.1:8000; `--uds` or `--fd`: not a TCP port of ours.
//! - granian: the same with `GRANIAN_*`; `--uds`.
//! - daphne: `--unix-socket`/`-u`; `--endpoint`/`--fd`: unknown; else
//!   `--bind`/`-b` (127.0.0.1) and `--port`/`-p` (8000).
//! - waitress: `--unix-socket`; every `--listen`; else `--host` (0.0.0.0)
//!   and `--port` (8080).
//!
//! Only gunicorn, uvicorn and granian get a default readiness probe (see
//! `health::defaults`); daphne's and waitress's addresses serve `check`'s
//! bind-conflict test.

use super::launch::host_port;
use super::{args, BackendInput, DefaultReadiness, Listen};

/// uvicorn and granian: `--host`, `--port`, their env fallbacks, and the
/// options that mean "not a TCP port of ours" (`--fd` for uvicorn only).
pub(super) fn host_port_server(
    input: &BackendInput,
    name: &str,
    env_prefix: &str,
    has_fd: bool,
) -> (Vec<Listen>, DefaultReadiness) {
    if let Some(path) = args::last(input.args, &["uds"]) {
        let why = format!("{name} serves --uds, not a TCP port");
        return (
            vec![Listen::Unix(path)],
            DefaultReadiness::Unprobeable { why },
        );
    }
    if has_fd && args::is_set(input.args, &["fd"]) {
        let why = format!("{name} serves --fd, not a TCP port");
        return (Vec::new(), DefaultReadiness::Unprobeable { why });
    }
    let env = |key: &str| input.env.get(&format!("{env_prefix}_{key}")).cloned();
    let host = args::last(input.args, &["host"])
        .or_else(|| env("HOST"))
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = args::last(input.args, &["port"])
        .or_else(|| env("PORT"))
        .unwrap_or_else(|| "8000".to_owned());
    let tls = args::is_set(
        input.args,
        &["ssl-keyfile", "ssl-certfile", "ssl-certificate"],
    );
    (
        vec![Listen::Tcp { host, port, tls }],
        DefaultReadiness::Serving,
    )
}

pub(super) fn daphne(input: &BackendInput) -> (Vec<Listen>, DefaultReadiness) {
    let at_spawn = DefaultReadiness::AtSpawn;
    if let Some(path) = args::last(input.args, &["unix-socket", "u"]) {
        return (vec![Listen::Unix(path)], at_spawn);
    }
    if args::is_set(input.args, &["endpoint", "e", "fd"]) {
        return (Vec::new(), at_spawn);
    }
    let host = args::last(input.args, &["bind", "b"]).unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = args::last(input.args, &["port", "p"]).unwrap_or_else(|| "8000".to_owned());
    let tls = false;
    (vec![Listen::Tcp { host, port, tls }], at_spawn)
}

pub(super) fn waitress(input: &BackendInput) -> (Vec<Listen>, DefaultReadiness) {
    let at_spawn = DefaultReadiness::AtSpawn;
    if let Some(path) = args::last(input.args, &["unix-socket"]) {
        return (vec![Listen::Unix(path)], at_spawn);
    }
    let listen = args::values(input.args, &["listen"]);
    if !listen.is_empty() {
        let listen = listen.iter().map(|l| host_port(l, "8000", false)).collect();
        return (listen, at_spawn);
    }
    let host = args::last(input.args, &["host"]).unwrap_or_else(|| "0.0.0.0".to_owned());
    let port = args::last(input.args, &["port"]).unwrap_or_else(|| "8080".to_owned());
    let tls = false;
    (vec![Listen::Tcp { host, port, tls }], at_spawn)
}
