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
//! The address and the default readiness come from the backend's typed
//! launch (`spec.listen`, `spec.readiness`: see `backend/`), never from
//! argv.
//!
//! A wildcard address is probed on loopback (0.0.0.0 → 127.0.0.1,
//! :: → ::1).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::probe::{Accept, HttpProbe, Target, TcpProbe};
use super::tracker::{Readiness, Settings, START_INTERVAL};
use super::{Check, HealthPlan};
use crate::backend::{DefaultReadiness, Listen};
use crate::config::schema::{
    DEFAULT_HEALTH_INTERVAL, DEFAULT_HEALTH_RETRIES, DEFAULT_START_TIMEOUT,
};
use crate::plan::{HealthSpec, ProcessSpec};

/// Per-probe timeout of the default web probes: longer than the configured
/// default (2 s), since `/` can be slow on a cold worker.
pub const WEB_TIMEOUT: Duration = Duration::from_secs(5);
/// Celery beat imports the project (Django) before its first tick: the
/// watchdog does not expire within this much of the spawn.
pub const BEAT_START_PERIOD: Duration = Duration::from_secs(60);

/// The outcome for one process.
#[derive(Debug, Clone)]
pub enum DefaultHealth {
    /// Use this; `note` describes it for a one-time log line.
    Plan { plan: Box<HealthPlan>, note: String },
    /// Ready when spawned. `note`, when set, says why there is no better
    /// default (worth a one-time log line: the user may want a `health`).
    None { note: Option<String> },
}

/// The default health of `spec` (which has no `health` block; `{instance}`
/// already expanded).
pub fn default_health(spec: &ProcessSpec) -> DefaultHealth {
    let name = spec.backend.name();
    let celery = |worker: bool| {
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
    };
    match &spec.readiness {
        DefaultReadiness::AtSpawn => DefaultHealth::None { note: None },
        DefaultReadiness::Serving | DefaultReadiness::Unprobeable { .. } => match address(spec) {
            Ok(address) => web_plan(spec, address),
            Err(why) => DefaultHealth::None {
                note: Some(format!(
                    "no default readiness check: {why}; it counts as ready once spawned \
                         (add `health` to check it)"
                )),
            },
        },
        DefaultReadiness::CeleryWorker => celery(true),
        DefaultReadiness::CeleryBeat => celery(false),
        DefaultReadiness::CeleryWithoutIntegration => DefaultHealth::None {
            note: Some(format!(
                "celery_integration = false: no readiness or liveness check for this \
                 {name}; it counts as ready once spawned"
            )),
        },
    }
}

/// `health = { path = "/healthz/" }` on a web backend: its default probe's
/// address with that path. Naming a health endpoint is opting in, so it
/// must answer 2xx/3xx and liveness is on, with the block's other keys.
pub fn web_path_plan(
    spec: &ProcessSpec,
    h: &HealthSpec,
    path: &str,
) -> Result<(HealthPlan, String), String> {
    let found = match &spec.readiness {
        DefaultReadiness::Serving | DefaultReadiness::Unprobeable { .. } => address(spec),
        DefaultReadiness::AtSpawn
        | DefaultReadiness::CeleryWorker
        | DefaultReadiness::CeleryBeat
        | DefaultReadiness::CeleryWithoutIntegration => Err(format!(
            "`path` needs a web backend, not {}",
            spec.backend.name()
        )),
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

/// The address a web server's default probe uses: its first listen
/// address, when the backend says it can be probed.
fn address(spec: &ProcessSpec) -> Result<Address, String> {
    if let DefaultReadiness::Unprobeable { why } = &spec.readiness {
        return Err(why.clone());
    }
    match spec.listen.first() {
        Some(Listen::Tcp { host, port, tls }) => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let target = loopback_target(host, port).map_err(|_| {
                format!(
                    "cannot read {}'s address {host:?} port {port:?}",
                    spec.backend.name()
                )
            })?;
            Ok(Address { target, tls: *tls })
        }
        Some(Listen::Unix(path)) => Err(format!(
            "{} binds a unix socket ({path})",
            spec.backend.name()
        )),
        None => Err(format!("{} binds no address", spec.backend.name())),
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
