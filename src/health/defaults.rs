//! The health of a process that has no `health` block: pure, from the
//! process spec (its argv is already built) and what [`World`] tells.
//!
//! | backend | default |
//! |---|---|
//! | gunicorn, uvicorn, granian | readiness: `GET /` on the bind address, any HTTP answer counts; no liveness restarts |
//! | the same, with TLS | readiness: TCP connect (the port is open) |
//! | gunicorn on a unix socket, an inherited fd or a config-file bind | readiness: `READY=1` from the gunicorn integration's `post_worker_init` |
//! | uvicorn on `uds` or `fd` | readiness: its own "Application startup complete." line |
//! | others on a unix socket or inherited fd | none: ready when spawned |
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
                gate: None,
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
        DefaultReadiness::AppLoaded { why } => app_loaded_plan(
            Check::Notify,
            format!(
                "readiness: READY=1 from prodserver's gunicorn integration once a worker has \
                 loaded the app ({why}; gunicorn's own READY=1 only means bound)"
            ),
        ),
        DefaultReadiness::OutputLine { pattern, why } => match super::log::compile(pattern) {
            Ok(regex) => app_loaded_plan(
                Check::Log(regex),
                format!(
                    "readiness: its own output line matching {pattern:?}, once the app is \
                     loaded ({why})"
                ),
            ),
            Err(e) => DefaultHealth::None { note: Some(e) },
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
        // Asked for by name: probed where it listens, if prodserver knows.
        DefaultReadiness::AppLoaded { .. } | DefaultReadiness::OutputLine { .. } => address(spec),
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
        gate: None,
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

/// Readiness from the server's own word that the app is loaded (`READY=1`
/// from prodserver's gunicorn integration, or an output line); no
/// liveness, as for the probed web servers.
fn app_loaded_plan(check: Check, note: String) -> DefaultHealth {
    let settings = Settings {
        readiness: Readiness::Message {
            what: match &check {
                Check::Log(re) => format!("output line matching {:?}", re.as_str()),
                _ => "READY=1".to_owned(),
            },
        },
        liveness: false,
        interval: DEFAULT_HEALTH_INTERVAL,
        start_interval: DEFAULT_HEALTH_INTERVAL,
        retries: DEFAULT_HEALTH_RETRIES,
        start_period: Duration::ZERO,
        start_timeout: DEFAULT_START_TIMEOUT,
        watchdog: None,
    };
    DefaultHealth::Plan {
        plan: Box::new(HealthPlan {
            settings,
            check,
            timeout: WEB_TIMEOUT,
            gate: None,
        }),
        note,
    }
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
            gate: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::BackendKind::{self, CeleryBeat, CeleryWorker, Command, Granian, Gunicorn};

    fn spec(backend: BackendKind, listen: Vec<Listen>, readiness: DefaultReadiness) -> ProcessSpec {
        let mut s = crate::supervisor::order::tests::spec("web", backend, &[]);
        s.listen = listen;
        s.readiness = readiness;
        s
    }

    fn tcp(host: &str, port: &str, tls: bool) -> Vec<Listen> {
        vec![Listen::Tcp {
            host: host.into(),
            port: port.into(),
            tls,
        }]
    }

    /// The default probe as `describe()`, or `none: NOTE`.
    fn probe_of(s: &ProcessSpec) -> String {
        match default_health(s) {
            DefaultHealth::Plan { plan, .. } => match plan.check {
                Check::Http(p) => {
                    assert_eq!(p.accept(), Accept::AnyResponse);
                    assert_eq!(plan.settings.readiness, Readiness::Probe);
                    assert!(!plan.settings.liveness, "readiness only");
                    assert_eq!(plan.timeout, WEB_TIMEOUT);
                    p.describe()
                }
                Check::Tcp(p) => p.describe(),
                other => panic!("{other:?}"),
            },
            DefaultHealth::None { note } => format!("none: {}", note.unwrap_or_default()),
        }
    }

    #[test]
    fn a_serving_web_server_is_probed_on_its_first_address() {
        let serving = |host, port, tls| {
            probe_of(&spec(
                Gunicorn,
                tcp(host, port, tls),
                DefaultReadiness::Serving,
            ))
        };
        assert_eq!(
            serving("127.0.0.1", "8001", false),
            "GET http://127.0.0.1:8001/"
        );
        assert_eq!(
            serving("0.0.0.0", "9000", false),
            "GET http://127.0.0.1:9000/"
        );
        assert_eq!(serving("::", "8002", false), "GET http://[::1]:8002/");
        assert_eq!(serving("[::1]", "8000", false), "GET http://[::1]:8000/");
        assert_eq!(
            serving("localhost", "8000", false),
            "GET http://localhost:8000/"
        );
        assert_eq!(serving("", "7000", false), "GET http://127.0.0.1:7000/");
        assert_eq!(serving("127.0.0.1", "8443", true), "connect 127.0.0.1:8443");
        assert_eq!(
            serving("h", "x", false),
            "none: no default readiness check: cannot read gunicorn's address \"h\" port \"x\"; \
             it counts as ready once spawned (add `health` to check it)"
        );
        assert!(serving("127.0.0.1", "0", false).starts_with("none: "));
        let mut both = tcp("127.0.0.2", "8100", false);
        both.push(Listen::Unix("/x".into()));
        assert_eq!(
            probe_of(&spec(Granian, both, DefaultReadiness::Serving)),
            "GET http://127.0.0.2:8100/"
        );
    }

    #[test]
    fn an_unprobeable_server_says_why() {
        let s = spec(
            Gunicorn,
            vec![Listen::Unix("/run/web.sock".into())],
            DefaultReadiness::Unprobeable {
                why: "gunicorn binds a unix socket (unix:/run/web.sock)".into(),
            },
        );
        assert_eq!(
            probe_of(&s),
            "none: no default readiness check: gunicorn binds a unix socket (unix:/run/web.sock); \
             it counts as ready once spawned (add `health` to check it)"
        );
    }

    #[test]
    fn celery_with_and_without_the_integration() {
        let DefaultHealth::Plan { plan, note } =
            default_health(&spec(CeleryWorker, vec![], DefaultReadiness::CeleryWorker))
        else {
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

        let DefaultHealth::Plan { plan, .. } =
            default_health(&spec(CeleryBeat, vec![], DefaultReadiness::CeleryBeat))
        else {
            panic!()
        };
        assert_eq!(plan.settings.readiness, Readiness::AtSpawn);
        assert_eq!(plan.settings.watchdog, Some(Duration::from_secs(30)));
        assert_eq!(plan.settings.start_period, BEAT_START_PERIOD);

        for kind in [CeleryWorker, CeleryBeat] {
            let s = spec(kind, vec![], DefaultReadiness::CeleryWithoutIntegration);
            let DefaultHealth::None { note: Some(note) } = default_health(&s) else {
                panic!()
            };
            assert!(note.starts_with("celery_integration = false"), "{note}");
        }
    }

    #[test]
    fn ready_at_spawn_has_no_plan_and_no_note_even_with_an_address() {
        let s = spec(
            BackendKind::Daphne,
            tcp("127.0.0.1", "8000", false),
            DefaultReadiness::AtSpawn,
        );
        assert!(matches!(
            default_health(&s),
            DefaultHealth::None { note: None }
        ));
        let s = spec(Command, vec![], DefaultReadiness::AtSpawn);
        assert!(matches!(
            default_health(&s),
            DefaultHealth::None { note: None }
        ));
    }

    #[test]
    fn a_health_path_uses_the_default_address_with_liveness() {
        let h = HealthSpec {
            probe: None,
            path: Some("/healthz/".into()),
            watchdog: None,
            interval: Duration::from_secs(7),
            timeout: Duration::from_secs(2),
            retries: 4,
            start_period: Duration::ZERO,
            start_timeout: Duration::from_secs(60),
        };
        let s = spec(
            Gunicorn,
            tcp("0.0.0.0", "8000", false),
            DefaultReadiness::Serving,
        );
        let (plan, note) = web_path_plan(&s, &h, "/healthz/").unwrap();
        let Check::Http(p) = &plan.check else {
            panic!()
        };
        assert_eq!(p.accept(), Accept::Success);
        assert_eq!(p.describe(), "GET http://127.0.0.1:8000/healthz/");
        assert!(plan.settings.liveness);
        assert_eq!(plan.settings.retries, 4);
        assert_eq!(
            note,
            "readiness and liveness: GET http://127.0.0.1:8000/healthz/ (2xx/3xx)"
        );

        let s = spec(
            Gunicorn,
            tcp("127.0.0.1", "8443", true),
            DefaultReadiness::Serving,
        );
        let e = web_path_plan(&s, &h, "/healthz/").unwrap_err();
        assert_eq!(
            e,
            "`path` needs plain HTTP, but this gunicorn serves TLS; use `tcp = \"127.0.0.1:8443\"`"
        );
        let s = spec(Command, vec![], DefaultReadiness::AtSpawn);
        let e = web_path_plan(&s, &h, "/healthz/").unwrap_err();
        assert!(e.contains("`path` needs a web backend, not command"), "{e}");
    }
}
