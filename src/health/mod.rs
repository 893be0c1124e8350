//! Health checks: readiness and liveness of each instance.
//!
//! Building blocks the engine wires together:
//! - [`plan_for`]: once per process, what to check (its `health` block, or
//!   the default for its backend from [`defaults`]), compiled: URLs parsed,
//!   regexes built.
//! - [`tracker`]: the pure per-instance state machine that turns probe
//!   results, `READY=1`, `WATCHDOG=1` and time into verdicts.
//! - [`probe`]: http, tcp and exec probes, each bounded by its timeout.
//! - [`log`]: the `log` probe's hook for the log pumps.
//! - [`owner`]: whether a passing http/tcp probe was answered by the
//!   instance's own listener, not another program on its address.
//!
//! `READY=1`, `WATCHDOG=1` and friends arrive through [`crate::notify`].
//!
//! Wiring, per instance (the engine's side): at spawn, `Tracker::new` with
//! the plan's settings (a `Ready` verdict means feed `Event::Ready`); arm
//! one timer at `next_deadline()` and call `on_timer` when it fires;
//! `RunProbe` → run the plan's `Check` with `timeout` as a task and hand
//! the result, tagged with the spawn's generation, to `probe_result`;
//! notify `READY=1` / a log match → `ready_message`, `WATCHDOG=1` →
//! `watchdog_ping`, `STOPPING=1` or our own stop → `stopping`;
//! `Unhealthy` → `Event::Unhealthy`, `StartTimeout` → a crash with
//! backoff. Drop the tracker when the process exits.

pub mod defaults;
pub mod log;
pub mod owner;
pub mod probe;
pub mod tracker;

use std::time::Duration;

pub use defaults::{default_health, DefaultHealth};
pub use owner::Outcome;
pub use probe::{Accept, HttpProbe, TcpProbe};
pub use tracker::{Readiness, Settings, Tracker, Verdict};

use crate::backend::DefaultReadiness;
use crate::plan::{HealthSpec, Holding, Probe, ProcessSpec};
use crate::units::format_duration;

/// What to observe for one process, decided once at start.
#[derive(Debug, Clone)]
pub struct HealthPlan {
    /// For each instance's [`Tracker`].
    pub settings: Settings,
    pub check: Check,
    /// Bound on each probe run ([`HttpProbe::check`], [`probe::exec`]...).
    pub timeout: Duration,
    /// With [`Readiness::GatedProbe`]: where the message that opens the
    /// gate comes from.
    pub gate: Option<Gate>,
}

/// The new generation's own word that its app is loaded, which must come
/// before its probe counts (see [`gated`]).
#[derive(Debug, Clone)]
pub enum Gate {
    /// `READY=1` from prodserver's gunicorn integration.
    Notify,
    /// An output line of the instance (uvicorn's startup line).
    Log(regex::bytes::Regex),
}

/// The probe to run when a tracker says [`Verdict::RunProbe`], or what
/// else feeds readiness.
#[derive(Debug, Clone)]
pub enum Check {
    /// Nothing: ready when spawned; a watchdog may still apply.
    None,
    /// `READY=1` on the instance's notify socket.
    Notify,
    Http(HttpProbe),
    Tcp(TcpProbe),
    /// Run with the instance's environment, working directory and user.
    Exec(Vec<String>),
    /// Give each spawn's pumps a [`log::line_hook`] with this regex.
    Log(regex::bytes::Regex),
}

/// [`plan_for`]'s answer.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// `None`: no health at all, ready once spawned.
    pub plan: Option<HealthPlan>,
    /// A line worth logging once at start (what a default checks, or why
    /// there is none); `None` for a configured `health` block.
    pub note: Option<String>,
}

/// The health plan of instance `n` of `spec` ([`plan_for`] with
/// `{instance}` expanded).
pub fn plan_for_instance(spec: &ProcessSpec, n: u32) -> Result<Resolved, String> {
    plan_for(&spec.for_instance(n))
}

/// One line saying what a plan checks, for `check`.
pub fn describe(resolved: &Resolved) -> String {
    if let Some(note) = &resolved.note {
        return note.clone();
    }
    let Some(plan) = &resolved.plan else {
        return "none: ready once spawned".to_string();
    };
    let mut text = match &plan.check {
        Check::None => "ready once spawned".to_string(),
        Check::Notify => "readiness: READY=1 on NOTIFY_SOCKET".to_string(),
        Check::Http(p) => format!(
            "{} every {}",
            p.describe(),
            format_duration(plan.settings.interval)
        ),
        Check::Tcp(p) => format!(
            "{} every {}",
            p.describe(),
            format_duration(plan.settings.interval)
        ),
        Check::Exec(argv) => format!(
            "exec {} every {}",
            shell_words::join(argv),
            format_duration(plan.settings.interval)
        ),
        Check::Log(re) => format!("readiness: an output line matching {:?}", re.as_str()),
    };
    if let Some(gate) = gate_text(plan) {
        text.push_str(&gate);
    }
    if plan.settings.liveness {
        text.push_str(&format!(
            ", unhealthy after {} failures in a row",
            plan.settings.retries
        ));
    }
    if let Some(w) = plan.settings.watchdog {
        text.push_str(&format!(
            ", WATCHDOG=1 at least every {}",
            format_duration(w)
        ));
    }
    text
}

/// What `describe` adds for a gated probe.
fn gate_text(plan: &HealthPlan) -> Option<String> {
    let (Some(gate), Readiness::GatedProbe { what }) = (&plan.gate, &plan.settings.readiness)
    else {
        return None;
    };
    let from = match gate {
        Gate::Notify => "from prodserver's gunicorn integration",
        Gate::Log(_) => "of the new generation",
    };
    Some(format!(
        ", probed only after {what} {from} (its socket is held and shared by every \
         generation: either one may answer the probe)"
    ))
}

/// The health plan of `spec`: its `health` block if any, else
/// [`default_health`]. `Err` when a configured probe cannot be used (bad
/// URL, address or regex), with a message for the user.
pub fn plan_for(spec: &ProcessSpec) -> Result<Resolved, String> {
    match &spec.health {
        Some(h) if h.probe.is_none() && h.path.is_some() => {
            let path = h.path.as_deref().unwrap_or("/");
            let (plan, note) = defaults::web_path_plan(spec, h, path)?;
            let plan = gated(spec, plan)?;
            let note = note + gate_text(&plan).as_deref().unwrap_or("");
            Ok(Resolved {
                plan: Some(plan),
                note: Some(note),
            })
        }
        Some(h) => Ok(Resolved {
            plan: Some(gated(spec, configured(h)?)?),
            note: None,
        }),
        None => Ok(match default_health(spec) {
            DefaultHealth::Plan { plan, note } => Resolved {
                plan: Some(*plan),
                note: Some(note),
            },
            DefaultHealth::None { note } => Resolved { plan: None, note },
        }),
    }
}

/// A configured probe of a process whose socket prodserver holds reaches
/// whichever generation accepts first: during a surge restart the old one
/// would pass it for the new one. When the backend has a per-generation
/// signal that its app is loaded (the gunicorn integration's `READY=1`,
/// uvicorn's startup line), that signal gates the probe: the instance is
/// ready once it came and the probe passed after it.
pub fn gated(spec: &ProcessSpec, mut plan: HealthPlan) -> Result<HealthPlan, String> {
    if !matches!(spec.holding, Holding::Held { .. }) || plan.settings.readiness != Readiness::Probe
    {
        return Ok(plan);
    }
    let (gate, what) = match &spec.readiness {
        DefaultReadiness::AppLoaded { .. } => (Gate::Notify, "READY=1".to_owned()),
        DefaultReadiness::OutputLine { pattern, .. } => (
            Gate::Log(log::compile(pattern)?),
            format!("output line matching {pattern:?}"),
        ),
        _ => return Ok(plan),
    };
    plan.settings.readiness = Readiness::GatedProbe { what };
    plan.gate = Some(gate);
    Ok(plan)
}

/// The plan of a configured `health` block.
pub fn configured(h: &HealthSpec) -> Result<HealthPlan, String> {
    let check = match &h.probe {
        None => Check::None,
        Some(probe) => check_for(probe)?,
    };
    Ok(HealthPlan {
        settings: Settings::from_spec(h),
        check,
        timeout: h.timeout,
        gate: None,
    })
}

/// Compiles one configured probe (also usable by `config` to report a bad
/// URL, address or regex at load time).
pub fn check_for(probe: &Probe) -> Result<Check, String> {
    Ok(match probe {
        Probe::Http { url, status, host } => {
            Check::Http(HttpProbe::new(url, *status, host.as_deref())?)
        }
        Probe::Tcp { address } => Check::Tcp(TcpProbe::new(address)?),
        Probe::Exec { argv } => Check::Exec(argv.clone()),
        Probe::Notify => Check::Notify,
        Probe::Log { pattern } => Check::Log(log::compile(pattern)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::BackendKind;

    fn health(probe: Option<Probe>) -> HealthSpec {
        HealthSpec {
            probe,
            path: None,
            watchdog: None,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            retries: 3,
            start_period: Duration::ZERO,
            start_timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_health_block_wins_over_the_default() {
        let mut spec = crate::supervisor::order::tests::spec("web", BackendKind::Gunicorn, &[]);
        spec.listen = vec![crate::backend::Listen::Tcp {
            host: "127.0.0.1".into(),
            port: "8000".into(),
            tls: false,
        }];
        spec.readiness = crate::backend::DefaultReadiness::Serving;
        let r = plan_for(&spec).unwrap();
        assert!(matches!(r.plan.unwrap().check, Check::Http(_)));
        assert!(r.note.unwrap().contains("default for gunicorn"));

        spec.health = Some(health(Some(Probe::Tcp {
            address: "127.0.0.1:9".into(),
        })));
        let r = plan_for(&spec).unwrap();
        let plan = r.plan.unwrap();
        assert!(matches!(plan.check, Check::Tcp(_)));
        assert_eq!(plan.timeout, Duration::from_secs(2));
        assert!(r.note.is_none());

        spec.health = Some(health(Some(Probe::Log {
            pattern: "(".into(),
        })));
        assert!(plan_for(&spec).unwrap_err().contains("`log` pattern"));

        spec.backend = BackendKind::Command;
        spec.readiness = crate::backend::DefaultReadiness::AtSpawn;
        spec.health = None;
        let r = plan_for(&spec).unwrap();
        assert!(r.plan.is_none() && r.note.is_none());
    }

    #[test]
    fn a_probe_through_a_held_socket_waits_for_the_generations_own_signal() {
        use crate::backend::held::Passing;
        use crate::backend::DefaultReadiness as D;
        let mut spec = crate::supervisor::order::tests::spec("web", BackendKind::Gunicorn, &[]);
        spec.health = Some(health(Some(Probe::Http {
            url: "http://127.0.0.1:8000/healthz/".into(),
            status: None,
            host: None,
        })));
        spec.readiness = D::AppLoaded { why: "held".into() };
        let held = Holding::Held {
            passing: Passing::ListenFds,
            backlog: 2048,
            reuse_port: false,
        };
        // Bound by the server itself: only this generation answers.
        let plan = plan_for(&spec).unwrap().plan.unwrap();
        assert_eq!(plan.settings.readiness, Readiness::Probe);

        spec.holding = held.clone();
        let r = plan_for(&spec).unwrap();
        let plan = r.plan.as_ref().unwrap();
        assert_eq!(
            plan.settings.readiness,
            Readiness::GatedProbe {
                what: "READY=1".into()
            }
        );
        assert!(matches!(plan.gate, Some(Gate::Notify)));
        assert!(plan.settings.liveness);
        assert!(
            describe(&r)
                .contains("probed only after READY=1 from prodserver's gunicorn integration"),
            "{}",
            describe(&r)
        );

        spec.backend = BackendKind::Uvicorn;
        spec.readiness = D::OutputLine {
            pattern: "Application startup complete".into(),
            why: "held".into(),
        };
        let plan = plan_for(&spec).unwrap().plan.unwrap();
        assert!(
            matches!(&plan.gate, Some(Gate::Log(re)) if re.as_str() == "Application startup complete")
        );

        // No per-generation signal: the probe stays as configured.
        spec.readiness = D::Serving;
        let plan = plan_for(&spec).unwrap().plan.unwrap();
        assert_eq!(plan.settings.readiness, Readiness::Probe);
        assert!(plan.gate.is_none());

        // A readiness message of the user's own is left alone.
        spec.readiness = D::AppLoaded { why: "held".into() };
        spec.health = Some(health(Some(Probe::Notify)));
        let plan = plan_for(&spec).unwrap().plan.unwrap();
        assert!(plan.gate.is_none());
    }

    #[test]
    fn probes_compile() {
        assert!(matches!(
            check_for(&Probe::Http {
                url: "http://[::1]:8000/healthz/".into(),
                status: Some(204),
                host: Some("shop.example.com".into()),
            }),
            Ok(Check::Http(_))
        ));
        assert!(check_for(&Probe::Http {
            url: "http://h:bad/".into(),
            status: None,
            host: None
        })
        .is_err());
        assert!(check_for(&Probe::Tcp {
            address: "::1:80".into()
        })
        .is_err());
        assert!(matches!(check_for(&Probe::Notify), Ok(Check::Notify)));
        assert!(matches!(
            configured(&health(None)).unwrap().check,
            Check::None
        ));
    }
}
