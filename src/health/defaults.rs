//! The health of a process that has no `health` block: pure, from the
//! process spec (its argv is already built) and what [`World`] tells.
//!
//! | backend | default |
//! |---|---|
//! | gunicorn, uvicorn, granian | readiness: `GET /` on the bind address, any HTTP answer counts; no liveness restarts |
//! | the same, with TLS | readiness: TCP connect (the port is open) |
//! | the same on a unix socket or inherited fd | none: ready when spawned |
//! | celery-worker (integration on) | readiness: `READY=1`; liveness: watchdog 30 s |
//! | celery-beat (integration on) | ready when spawned; liveness: watchdog 30 s (beat ticks) |
//! | anything else | none: ready when spawned |
//!
//! Why "any HTTP answer": the question is "has a worker loaded the app",
//! and gunicorn accepts connections (and sends its own `READY=1`) before it
//! has. `/` of a Django project may well answer 404 (no root view), 400 (a
//! Host not in ALLOWED_HOSTS), a redirect to a login page, or 500 (the
//! database is down, which a restart would not fix): each of them proves
//! the app is serving. Only "no answer" does not.
//!
//! Why no liveness restarts by default: `/` may be an expensive page, and
//! a busy server (every worker occupied) answers late; restarting it for
//! that drops in-flight requests exactly when load is highest. Liveness is
//! opt-in, with a `health` block and a cheap endpoint.
//!
//! Where the bind address comes from, as each server reads it:
//! - gunicorn: `--bind`/`-b` (the first one), else `GUNICORN_CMD_ARGS`,
//!   else a config file would decide (`-c`, or `gunicorn.conf.py` in the
//!   working directory): then there is no default (we cannot read Python),
//!   else `$PORT` on 0.0.0.0, else 127.0.0.1:8000. `unix:` and `fd://`
//!   binds get no default probe.
//! - uvicorn: `--host`/`--port`, else `UVICORN_HOST`/`UVICORN_PORT`,
//!   else 127.0.0.1:8000; `--uds` or `--fd`: no default.
//! - granian: `--host`/`--port`, else `GRANIAN_HOST`/`GRANIAN_PORT`, else
//!   127.0.0.1:8000; `--uds`: no default.
//!
//! A wildcard address is probed on loopback (0.0.0.0 → 127.0.0.1,
//! :: → ::1).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use super::probe::{Accept, HttpProbe, Target, TcpProbe};
use super::tracker::{Readiness, Settings, START_INTERVAL};
use super::{Check, HealthPlan};
use crate::config::schema::{
    DEFAULT_HEALTH_INTERVAL, DEFAULT_HEALTH_RETRIES, DEFAULT_START_TIMEOUT,
};
use crate::plan::{BackendKind, HealthSpec, ProcessSpec};

/// Per-probe timeout of the default web probes: longer than the configured
/// default (2 s), since `/` can be slow on a cold worker.
pub const WEB_TIMEOUT: Duration = Duration::from_secs(5);
/// Celery beat imports the project (Django) before its first tick: the
/// watchdog does not expire within this much of the spawn.
pub const BEAT_START_PERIOD: Duration = Duration::from_secs(60);

/// What [`default_health`] may know of the world, passed in so it stays
/// pure.
pub struct World<'a> {
    /// The child's environment (`spec.env` over prodserver's own).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Whether a file exists (gunicorn's implicit config file).
    pub file_exists: &'a dyn Fn(&Path) -> bool,
}

/// The outcome for one process.
#[derive(Debug, Clone)]
pub enum DefaultHealth {
    /// Use this; `note` describes it for a one-time log line.
    Plan { plan: Box<HealthPlan>, note: String },
    /// Ready when spawned. `note`, when set, says why there is no better
    /// default (worth a one-time log line: the user may want a `health`).
    None { note: Option<String> },
}

/// The default health of `spec` (which has no `health` block).
pub fn default_health(spec: &ProcessSpec, world: &World) -> DefaultHealth {
    let name = spec.backend.name();
    match spec.backend {
        BackendKind::Gunicorn | BackendKind::Uvicorn | BackendKind::Granian => {
            let found = match spec.backend {
                BackendKind::Gunicorn => gunicorn_address(spec, world),
                BackendKind::Uvicorn => host_port(spec, world, "UVICORN", &["uds", "fd"]),
                _ => host_port(spec, world, "GRANIAN", &["uds"]),
            };
            match found {
                Ok(address) => web_plan(spec, address),
                Err(why) => DefaultHealth::None {
                    note: Some(format!(
                        "no default readiness check: {why}; it counts as ready once spawned \
                         (add `health` to check it)"
                    )),
                },
            }
        }
        BackendKind::CeleryWorker | BackendKind::CeleryBeat => {
            if !spec.celery.as_ref().is_some_and(|c| c.integration) {
                return DefaultHealth::None {
                    note: Some(format!(
                        "celery_integration = false: no readiness or liveness check for this \
                         {name}; it counts as ready once spawned"
                    )),
                };
            }
            let worker = spec.backend == BackendKind::CeleryWorker;
            let settings = Settings {
                readiness: if worker {
                    Readiness::Message {
                        what: "READY=1".to_owned(),
                    }
                } else {
                    Readiness::AtSpawn
                },
                liveness: false,
                interval: DEFAULT_HEALTH_INTERVAL,
                start_interval: DEFAULT_HEALTH_INTERVAL,
                retries: DEFAULT_HEALTH_RETRIES,
                start_period: if worker {
                    Duration::ZERO
                } else {
                    BEAT_START_PERIOD
                },
                start_timeout: DEFAULT_START_TIMEOUT,
                watchdog: Some(crate::celery::WATCHDOG),
            };
            let note = if worker {
                "readiness: READY=1 from the Celery integration (worker_ready); liveness: \
                 WATCHDOG=1 at least every 30s while its event loop runs"
            } else {
                "liveness: WATCHDOG=1 from the Celery integration at least every 30s while \
                 beat ticks"
            };
            DefaultHealth::Plan {
                plan: Box::new(HealthPlan {
                    settings,
                    check: Check::Notify,
                    timeout: WEB_TIMEOUT,
                }),
                note: note.to_owned(),
            }
        }
        _ => DefaultHealth::None { note: None },
    }
}

/// `health = { path = "/healthz/" }` on a web backend: its default probe's
/// address with that path. Naming a health endpoint is opting in, so it
/// must answer 2xx/3xx and liveness is on, with the block's other keys.
pub fn web_path_plan(
    spec: &ProcessSpec,
    world: &World,
    h: &HealthSpec,
    path: &str,
) -> Result<(HealthPlan, String), String> {
    let found = match spec.backend {
        BackendKind::Gunicorn => gunicorn_address(spec, world),
        BackendKind::Uvicorn => host_port(spec, world, "UVICORN", &["uds", "fd"]),
        BackendKind::Granian => host_port(spec, world, "GRANIAN", &["uds"]),
        other => Err(format!("`path` needs a web backend, not {}", other.name())),
    };
    let address = found.map_err(|why| {
        format!("`path` needs the server's address, but {why}; write the whole URL: `http = \"http://HOST:PORT{path}\"`")
    })?;
    if address.tls {
        return Err(format!(
            "`path` needs plain HTTP, but this {} serves TLS; use `tcp = \"{}\"`",
            spec.backend.name(),
            address.target
        ));
    }
    let host = address.target.to_string();
    let probe = HttpProbe::from_parts(address.target, path, &host, Accept::Success)?;
    let note = format!("readiness and liveness: {} (2xx/3xx)", probe.describe());
    let settings = Settings {
        readiness: Readiness::Probe,
        liveness: true,
        interval: h.interval,
        start_interval: h.interval.min(START_INTERVAL),
        retries: h.retries,
        start_period: h.start_period,
        start_timeout: h.start_timeout,
        watchdog: h.watchdog,
    };
    let plan = HealthPlan {
        settings,
        check: Check::Http(probe),
        timeout: h.timeout,
    };
    Ok((plan, note))
}

/// Where a server listens, as read for its default probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// Wildcard addresses on loopback, as probed.
    Tcp(Target),
    Unix(String),
}

/// Every address a web server (gunicorn, uvicorn, granian, daphne,
/// waitress) binds, read from its argv and environment the way the
/// default probe reads them; empty for other backends and when prodserver
/// cannot tell (a gunicorn config file, an inherited fd). `check` uses it
/// to refuse two processes or instances binding the same address.
pub fn listen_addresses(spec: &ProcessSpec, world: &World) -> Vec<Listen> {
    let args = args_of(spec);
    let last = |long: &str, short: Option<&str>| option_values(args, long, short).pop();
    let tcp = |bind: &str| gunicorn_bind(bind).ok().map(Listen::Tcp);
    match spec.backend {
        BackendKind::Gunicorn => {
            let env_args: Vec<String> = (world.env)("GUNICORN_CMD_ARGS")
                .and_then(|s| shell_words::split(&s).ok())
                .unwrap_or_default();
            let mut binds = option_values(args, "bind", Some("b"));
            if binds.is_empty() {
                binds = option_values(&env_args, "bind", Some("b"));
            }
            if binds.is_empty() {
                return gunicorn_address(spec, world)
                    .map(|a| vec![Listen::Tcp(a.target)])
                    .unwrap_or_default();
            }
            binds
                .iter()
                .filter_map(|b| match b.strip_prefix("unix:") {
                    Some(path) => Some(Listen::Unix(path.to_owned())),
                    None => tcp(b),
                })
                .collect()
        }
        BackendKind::Uvicorn | BackendKind::Granian => {
            if let Some(path) = last("uds", None) {
                return vec![Listen::Unix(path)];
            }
            let prefix = if spec.backend == BackendKind::Uvicorn {
                "UVICORN"
            } else {
                "GRANIAN"
            };
            host_port(spec, world, prefix, &["uds", "fd"])
                .map(|a| vec![Listen::Tcp(a.target)])
                .unwrap_or_default()
        }
        BackendKind::Daphne => {
            if let Some(path) = last("unix-socket", Some("u")) {
                return vec![Listen::Unix(path)];
            }
            if has_option(args, "endpoint")
                || has_option(args, "fd")
                || last("endpoint", Some("e")).is_some()
            {
                return Vec::new();
            }
            let host = last("bind", Some("b")).unwrap_or_else(|| "127.0.0.1".to_owned());
            let port = last("port", Some("p")).unwrap_or_else(|| "8000".to_owned());
            let host = host.trim_start_matches('[').trim_end_matches(']');
            loopback_target(host, &port)
                .map(|t| vec![Listen::Tcp(t)])
                .unwrap_or_default()
        }
        BackendKind::Waitress => {
            if let Some(path) = last("unix-socket", None) {
                return vec![Listen::Unix(path)];
            }
            let listen = option_values(args, "listen", None);
            if !listen.is_empty() {
                return listen.iter().filter_map(|l| tcp(l)).collect();
            }
            let host = last("host", None).unwrap_or_else(|| "0.0.0.0".to_owned());
            let port = last("port", None).unwrap_or_else(|| "8080".to_owned());
            let host = host.trim_start_matches('[').trim_end_matches(']');
            loopback_target(host, &port)
                .map(|t| vec![Listen::Tcp(t)])
                .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// A web server's address, and whether it speaks TLS there.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Address {
    target: Target,
    tls: bool,
}

fn web_plan(spec: &ProcessSpec, address: Address) -> DefaultHealth {
    let name = spec.backend.name();
    let settings = Settings {
        readiness: Readiness::Probe,
        liveness: false,
        interval: DEFAULT_HEALTH_INTERVAL,
        start_interval: START_INTERVAL,
        retries: DEFAULT_HEALTH_RETRIES,
        start_period: Duration::ZERO,
        start_timeout: DEFAULT_START_TIMEOUT,
        watchdog: None,
    };
    let (check, note) = if address.tls {
        let probe = TcpProbe::from_target(address.target);
        let note = format!(
            "readiness: {} (default for {name} with TLS: the port accepts)",
            probe.describe()
        );
        (Check::Tcp(probe), note)
    } else {
        let host = address.target.to_string();
        match HttpProbe::from_parts(address.target, "/", &host, Accept::AnyResponse) {
            Ok(probe) => {
                let note = format!(
                    "readiness: {} (default for {name}: any HTTP answer)",
                    probe.describe()
                );
                (Check::Http(probe), note)
            }
            Err(why) => return DefaultHealth::None { note: Some(why) },
        }
    };
    DefaultHealth::Plan {
        plan: Box::new(HealthPlan {
            settings,
            check,
            timeout: WEB_TIMEOUT,
        }),
        note,
    }
}

/// Values of an option in `args` (program excluded), in order:
/// `--long=V`, `--long V`, `-s V`, `-sV`.
fn option_values(args: &[String], long: &str, short: Option<&str>) -> Vec<String> {
    let long_eq = format!("--{long}=");
    let long_flag = format!("--{long}");
    let short_flag = short.map(|s| format!("-{s}"));
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if let Some(v) = a.strip_prefix(&long_eq) {
            out.push(v.to_owned());
        } else if *a == long_flag || Some(a) == short_flag.as_ref() {
            if let Some(v) = args.get(i + 1) {
                out.push(v.clone());
                i += 1;
            }
        } else if let Some(v) = short_flag
            .as_deref()
            .and_then(|s| a.strip_prefix(s))
            .filter(|v| !v.is_empty() && !a.starts_with("--"))
        {
            out.push(v.to_owned());
        }
        i += 1;
    }
    out
}

fn has_option(args: &[String], long: &str) -> bool {
    let eq = format!("--{long}=");
    let flag = format!("--{long}");
    args.iter().any(|a| *a == flag || a.starts_with(&eq))
}

fn args_of(spec: &ProcessSpec) -> &[String] {
    spec.argv.get(1..).unwrap_or(&[])
}

fn gunicorn_address(spec: &ProcessSpec, world: &World) -> Result<Address, String> {
    let args = args_of(spec);
    let env_args: Vec<String> = (world.env)("GUNICORN_CMD_ARGS")
        .and_then(|s| shell_words::split(&s).ok())
        .unwrap_or_default();
    let tls = [args, &env_args[..]]
        .iter()
        .any(|a| has_option(a, "certfile") || has_option(a, "keyfile"));
    let bind = option_values(args, "bind", Some("b"))
        .into_iter()
        .next()
        .or_else(|| {
            option_values(&env_args, "bind", Some("b"))
                .into_iter()
                .next()
        });
    let bind = match bind {
        Some(b) => b,
        None => {
            let config = option_values(args, "config", Some("c")).into_iter().next();
            let implicit = spec.cwd.join("gunicorn.conf.py");
            if let Some(config) = config {
                return Err(format!(
                    "gunicorn reads its bind address from {config:?}, which prodserver cannot \
                     evaluate; pass `bind` in args"
                ));
            }
            if (world.file_exists)(&implicit) {
                return Err(format!(
                    "gunicorn may read its bind address from {}, which prodserver cannot \
                     evaluate; pass `bind` in args",
                    implicit.display()
                ));
            }
            match (world.env)("PORT") {
                Some(port) => format!("0.0.0.0:{port}"),
                None => "127.0.0.1:8000".to_owned(),
            }
        }
    };
    Ok(Address {
        target: gunicorn_bind(&bind)?,
        tls,
    })
}

/// gunicorn's `parse_address`: `HOST`, `HOST:PORT`, `[V6]:PORT`, `:PORT`,
/// `tcp://...`; `unix:` and `fd://` are not TCP.
fn gunicorn_bind(bind: &str) -> Result<Target, String> {
    if bind.starts_with("unix:") {
        return Err(format!("gunicorn binds a unix socket ({bind})"));
    }
    if bind.starts_with("fd://") {
        return Err(format!("gunicorn serves an inherited socket ({bind})"));
    }
    let bind = bind.strip_prefix("tcp://").unwrap_or(bind);
    let (host, port) = if let Some(rest) = bind.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':').unwrap_or("8000")),
            None => return Err(format!("cannot read gunicorn's bind address {bind:?}")),
        }
    } else {
        match bind.split_once(':') {
            Some((host, port)) => (host, port),
            None => (bind, "8000"),
        }
    };
    loopback_target(host, port).map_err(|_| format!("cannot read gunicorn's bind address {bind:?}"))
}

/// uvicorn and granian: `--host`, `--port`, their env fallbacks, and the
/// options that mean "not a TCP port of ours".
fn host_port(
    spec: &ProcessSpec,
    world: &World,
    env_prefix: &str,
    not_tcp: &[&str],
) -> Result<Address, String> {
    let name = spec.backend.name();
    let args = args_of(spec);
    if let Some(opt) = not_tcp.iter().find(|o| has_option(args, o)) {
        return Err(format!("{name} serves --{opt}, not a TCP port"));
    }
    let last = |opt: &str| option_values(args, opt, None).into_iter().last();
    let host = last("host")
        .or_else(|| (world.env)(&format!("{env_prefix}_HOST")))
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = last("port")
        .or_else(|| (world.env)(&format!("{env_prefix}_PORT")))
        .unwrap_or_else(|| "8000".to_owned());
    let tls = ["ssl-keyfile", "ssl-certfile", "ssl-certificate"]
        .iter()
        .any(|o| has_option(args, o));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let target = loopback_target(host, &port)
        .map_err(|_| format!("cannot read {name}'s address {host:?} port {port:?}"))?;
    Ok(Address { target, tls })
}

/// A target for `host:port`, with wildcard addresses mapped to loopback.
fn loopback_target(host: &str, port: &str) -> Result<Target, ()> {
    let port: u16 = port.trim().parse().map_err(|_| ())?;
    if port == 0 {
        return Err(());
    }
    let host = host.trim();
    if host.is_empty() {
        return Ok(Target::ip(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => {
            Ok(Target::ip(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
        }
        Ok(IpAddr::V6(ip)) if ip.is_unspecified() => {
            Ok(Target::ip(IpAddr::V6(Ipv6Addr::LOCALHOST), port))
        }
        Ok(ip) => Ok(Target::ip(ip, port)),
        Err(_) => Target::parse(&format!("{host}:{port}"), None).map_err(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::CeleryInfo;
    use std::collections::BTreeMap;

    fn spec(backend: BackendKind, argv: &[&str]) -> ProcessSpec {
        let mut s = crate::supervisor::order::tests::spec("web", backend, &[]);
        s.cwd = "/srv/shop".into();
        s.argv = argv.iter().map(|a| a.to_string()).collect();
        s
    }

    fn world_with<'a>(
        env: &'a BTreeMap<&'static str, &'static str>,
        files: &'a [&'static str],
    ) -> (
        impl Fn(&str) -> Option<String> + 'a,
        impl Fn(&Path) -> bool + 'a,
    ) {
        (
            move |k: &str| env.get(k).map(|v| v.to_string()),
            move |p: &Path| files.iter().any(|f| p == Path::new(f)),
        )
    }

    /// The default for `argv`, as `probe.describe()` or the note of None.
    fn probe_of(
        backend: BackendKind,
        argv: &[&str],
        env: &[(&'static str, &'static str)],
        files: &[&'static str],
    ) -> String {
        let env: BTreeMap<_, _> = env.iter().copied().collect();
        let (e, f) = world_with(&env, files);
        let world = World {
            env: &e,
            file_exists: &f,
        };
        match default_health(&spec(backend, argv), &world) {
            DefaultHealth::Plan { plan, .. } => match plan.check {
                Check::Http(p) => {
                    assert_eq!(p.accept(), Accept::AnyResponse);
                    assert_eq!(plan.settings.readiness, Readiness::Probe);
                    assert!(!plan.settings.liveness, "readiness only");
                    p.describe()
                }
                Check::Tcp(p) => p.describe(),
                other => panic!("{other:?}"),
            },
            DefaultHealth::None { note } => format!("none: {}", note.unwrap_or_default()),
        }
    }

    use BackendKind::{CeleryBeat, CeleryWorker, Granian, Gunicorn, Uvicorn};

    #[test]
    fn gunicorn_binds() {
        let g = |argv: &[&str]| probe_of(Gunicorn, argv, &[], &[]);
        let ctl = "--control-socket=/run/x.ctl";
        assert_eq!(
            g(&[
                "gunicorn",
                ctl,
                "--bind=127.0.0.1:8001",
                "--workers=4",
                "app:wsgi"
            ]),
            "GET http://127.0.0.1:8001/"
        );
        assert_eq!(
            g(&["gunicorn", "--bind=0.0.0.0:9000", "--bind=unix:/x", "a"]),
            "GET http://127.0.0.1:9000/",
            "the first bind, wildcard on loopback"
        );
        assert_eq!(
            g(&["gunicorn", "-b", "[::]:8002", "a"]),
            "GET http://[::1]:8002/"
        );
        assert_eq!(g(&["gunicorn", "-b[::1]", "a"]), "GET http://[::1]:8000/");
        assert_eq!(
            g(&["gunicorn", "--bind", "localhost", "a"]),
            "GET http://localhost:8000/"
        );
        assert_eq!(
            g(&["gunicorn", "--bind=:7000", "a"]),
            "GET http://127.0.0.1:7000/"
        );
        assert_eq!(
            g(&["gunicorn", "--bind=tcp://10.1.2.3:80", "a"]),
            "GET http://10.1.2.3:80/"
        );
        assert_eq!(
            g(&["gunicorn", ctl, "app:wsgi"]),
            "GET http://127.0.0.1:8000/",
            "gunicorn's default"
        );
        assert!(g(&["gunicorn", "--bind=unix:/run/web.sock", "a"]).starts_with("none: no default readiness check: gunicorn binds a unix socket (unix:/run/web.sock)"));
        assert!(g(&["gunicorn", "--bind=fd://3", "a"]).contains("inherited socket"));
        assert!(g(&["gunicorn", "--bind=h:x", "a"]).contains("cannot read gunicorn's bind address"));
    }

    #[test]
    fn gunicorn_env_config_and_tls() {
        assert_eq!(
            probe_of(Gunicorn, &["gunicorn", "a"], &[("PORT", "5000")], &[]),
            "GET http://127.0.0.1:5000/"
        );
        assert_eq!(
            probe_of(
                Gunicorn,
                &["gunicorn", "a"],
                &[("GUNICORN_CMD_ARGS", "--workers 3 --bind 127.0.0.1:6000")],
                &[]
            ),
            "GET http://127.0.0.1:6000/"
        );
        // The command line beats GUNICORN_CMD_ARGS and a config file.
        assert_eq!(
            probe_of(
                Gunicorn,
                &["gunicorn", "-c", "conf.py", "-b", "127.0.0.1:1", "a"],
                &[("GUNICORN_CMD_ARGS", "-b 127.0.0.1:2")],
                &["/srv/shop/gunicorn.conf.py"]
            ),
            "GET http://127.0.0.1:1/"
        );
        let n = probe_of(Gunicorn, &["gunicorn", "-c", "conf.py", "a"], &[], &[]);
        assert!(
            n.contains("\"conf.py\", which prodserver cannot evaluate"),
            "{n}"
        );
        let n = probe_of(
            Gunicorn,
            &["gunicorn", "a"],
            &[],
            &["/srv/shop/gunicorn.conf.py"],
        );
        assert!(n.contains("/srv/shop/gunicorn.conf.py"), "{n}");
        assert_eq!(
            probe_of(
                Gunicorn,
                &[
                    "gunicorn",
                    "--bind=127.0.0.1:8443",
                    "--certfile=c",
                    "--keyfile=k",
                    "a"
                ],
                &[],
                &[]
            ),
            "connect 127.0.0.1:8443"
        );
    }

    #[test]
    fn uvicorn_and_granian() {
        assert_eq!(
            probe_of(Uvicorn, &["uvicorn", "m:app"], &[], &[]),
            "GET http://127.0.0.1:8000/"
        );
        assert_eq!(
            probe_of(
                Uvicorn,
                &[
                    "uvicorn",
                    "--host=0.0.0.0",
                    "--port=8080",
                    "--proxy-headers",
                    "m:app"
                ],
                &[],
                &[]
            ),
            "GET http://127.0.0.1:8080/"
        );
        assert_eq!(
            probe_of(
                Uvicorn,
                &["uvicorn", "--host", "::", "m:app"],
                &[("UVICORN_PORT", "9001")],
                &[]
            ),
            "GET http://[::1]:9001/"
        );
        assert!(probe_of(
            Uvicorn,
            &["uvicorn", "--uds=/run/u.sock", "m:app"],
            &[],
            &[]
        )
        .contains("uvicorn serves --uds"));
        assert!(probe_of(Uvicorn, &["uvicorn", "--fd", "3", "m:app"], &[], &[]).contains("--fd"));
        assert!(
            probe_of(Uvicorn, &["uvicorn", "--port=0", "m:app"], &[], &[]).starts_with("none: ")
        );
        assert_eq!(
            probe_of(
                Uvicorn,
                &[
                    "uvicorn",
                    "--port=8443",
                    "--ssl-keyfile=k",
                    "--ssl-certfile=c",
                    "m:app"
                ],
                &[],
                &[]
            ),
            "connect 127.0.0.1:8443"
        );
        assert_eq!(
            probe_of(
                Granian,
                &[
                    "granian",
                    "--interface=asgi",
                    "--host=0.0.0.0",
                    "--port=8100",
                    "m:app"
                ],
                &[],
                &[]
            ),
            "GET http://127.0.0.1:8100/"
        );
        assert_eq!(
            probe_of(
                Granian,
                &["granian", "--interface=wsgi", "m:app"],
                &[("GRANIAN_HOST", "127.0.0.2")],
                &[]
            ),
            "GET http://127.0.0.2:8000/"
        );
        assert!(
            probe_of(Granian, &["granian", "--uds", "/x", "m:app"], &[], &[])
                .contains("granian serves --uds")
        );
    }

    fn celery_default(backend: BackendKind, integration: bool) -> DefaultHealth {
        let mut s = spec(backend, &["celery", "-A", "shop", "worker"]);
        s.celery = Some(CeleryInfo {
            app: "shop".into(),
            queues: vec![],
            integration,
        });
        let world = World {
            env: &|_| None,
            file_exists: &|_| false,
        };
        default_health(&s, &world)
    }

    #[test]
    fn celery_with_and_without_the_integration() {
        let DefaultHealth::Plan { plan, note } = celery_default(CeleryWorker, true) else {
            panic!()
        };
        assert!(matches!(plan.check, Check::Notify));
        assert_eq!(
            plan.settings.readiness,
            Readiness::Message {
                what: "READY=1".into()
            }
        );
        assert_eq!(plan.settings.watchdog, Some(Duration::from_secs(30)));
        assert!(note.contains("worker_ready"), "{note}");

        let DefaultHealth::Plan { plan, .. } = celery_default(CeleryBeat, true) else {
            panic!()
        };
        assert_eq!(plan.settings.readiness, Readiness::AtSpawn);
        assert_eq!(plan.settings.watchdog, Some(Duration::from_secs(30)));
        assert_eq!(plan.settings.start_period, BEAT_START_PERIOD);

        for kind in [CeleryWorker, CeleryBeat] {
            let DefaultHealth::None { note: Some(note) } = celery_default(kind, false) else {
                panic!()
            };
            assert!(note.starts_with("celery_integration = false"), "{note}");
        }
    }

    #[test]
    fn other_backends_have_none() {
        let world = World {
            env: &|_| None,
            file_exists: &|_| false,
        };
        for kind in [
            BackendKind::Command,
            BackendKind::Waitress,
            BackendKind::DjangoQ2,
        ] {
            assert!(matches!(
                default_health(&spec(kind, &["x"]), &world),
                DefaultHealth::None { note: None }
            ));
        }
    }

    #[test]
    fn option_forms() {
        let a: Vec<String> = [
            "-b",
            "x",
            "-by",
            "--bind=z",
            "--bind",
            "w",
            "--binder=q",
            "-b",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(option_values(&a, "bind", Some("b")), ["x", "y", "z", "w"]);
    }
}
