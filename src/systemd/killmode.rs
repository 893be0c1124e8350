//! The KillMode check: under systemd's default `KillMode=control-group`,
//! stopping the unit sends SIGTERM to every process in it at once, Celery
//! pool children included, so the graceful stop prodserver runs (one
//! signal to each main process, in dependency order) never happens.
//!
//! Decisions are pure ([`unit_of`], [`verdict`]); [`check`] runs
//! `systemctl show`.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

/// How long `systemctl show` may take before we give up on the check.
const SYSTEMCTL_LIMIT: Duration = Duration::from_secs(3);

/// The unit prodserver runs in, as its cgroup path names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// `app.service`.
    pub name: String,
    /// Run by a user's manager (`user@UID.service`): ask `systemctl --user`.
    pub user: bool,
}

/// True when systemd started us as a service: `NOTIFY_SOCKET` is set for
/// `Type=notify`; `INVOCATION_ID` for every unit, but it is inherited by
/// everything the unit runs (a CI runner's jobs, a shell), so it counts
/// only when our parent is a systemd manager itself (`parent_comm`, the
/// parent's `/proc/PID/comm`).
pub fn under_systemd(env: &BTreeMap<String, String>, parent_comm: Option<&str>) -> bool {
    let set = |k: &str| env.get(k).is_some_and(|v| !v.is_empty());
    set("NOTIFY_SOCKET") || (set("INVOCATION_ID") && parent_comm == Some("systemd"))
}

/// The unit from `/proc/self/cgroup`: the innermost `.service` or `.scope`
/// component of the unified (`0::`) hierarchy's path, so a service that
/// made sub-cgroups of its own is still named. `user@UID.service` is the
/// user manager itself, not a unit it runs.
pub fn unit_of(proc_self_cgroup: &str) -> Option<Unit> {
    let path = proc_self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        // cgroup v1 only: the name=systemd hierarchy carries the same path.
        .or_else(|| {
            proc_self_cgroup
                .lines()
                .find_map(|l| l.split_once(":name=systemd:").map(|(_, p)| p))
        })?;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let at = parts.iter().rposition(|p| {
        (p.ends_with(".service") || p.ends_with(".scope")) && !p.starts_with("user@")
    })?;
    let user = parts[..at].iter().any(|p| p.starts_with("user@"));
    Some(Unit {
        name: parts[at].to_string(),
        user,
    })
}

/// What `systemctl show -p KillMode --value` gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    KillMode(String),
    /// Why it could not be asked (no systemctl, an error, a timeout).
    Unknown(String),
}

/// The warning to log at start, if any.
pub fn verdict(unit: Option<&Unit>, lookup: &Lookup) -> Option<String> {
    let Some(unit) = unit else {
        return Some(
            "running under systemd, but its unit cannot be found in /proc/self/cgroup: cannot check its KillMode. It must be `KillMode=mixed`, or a stop of the unit sends SIGTERM to every process at once (Celery pool children too: a running task is lost with WorkerLostError)".into(),
        );
    };
    let fix = format!(
        "add `KillMode=mixed` to the [Service] section (systemctl{} edit {}), so that systemd signals prodserver alone and lets it stop the rest in order",
        if unit.user { " --user" } else { "" },
        unit.name
    );
    match lookup {
        Lookup::KillMode(mode) if mode == "mixed" => None,
        Lookup::KillMode(mode) => Some(format!(
            "unit {} has KillMode={mode}: on stop, systemd sends SIGTERM to every process of the unit at once, Celery pool children included, so a running task is lost with WorkerLostError and the graceful stop does not happen; {fix}",
            unit.name
        )),
        Lookup::Unknown(why) => Some(format!(
            "cannot check the KillMode of unit {} ({why}): it must be `KillMode=mixed`, or a stop sends SIGTERM to every process at once and a running Celery task is lost with WorkerLostError; {fix}",
            unit.name
        )),
    }
}

/// Asks systemd for the unit's KillMode. Bounded by [`SYSTEMCTL_LIMIT`]:
/// a wedged D-Bus must not hold up the start.
pub fn lookup(unit: &Unit) -> Lookup {
    let mut cmd = Command::new("systemctl");
    if unit.user {
        cmd.arg("--user");
    }
    cmd.args(["show", "-p", "KillMode", "--value", &unit.name]);
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("systemctl".into())
        .spawn(move || {
            let _ = tx.send(cmd.output());
        });
    if let Err(e) = spawned {
        return Lookup::Unknown(format!("cannot start a thread: {e}"));
    }
    match rx.recv_timeout(SYSTEMCTL_LIMIT) {
        Ok(Ok(out)) if out.status.success() => {
            let mode = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if mode.is_empty() {
                Lookup::Unknown("systemctl show printed nothing".into())
            } else {
                Lookup::KillMode(mode)
            }
        }
        Ok(Ok(out)) => Lookup::Unknown(format!(
            "systemctl show failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            Lookup::Unknown("systemctl is not installed".into())
        }
        Ok(Err(e)) => Lookup::Unknown(format!("cannot run systemctl: {e}")),
        Err(_) => Lookup::Unknown(format!(
            "systemctl did not answer within {}s",
            SYSTEMCTL_LIMIT.as_secs()
        )),
    }
}

/// The whole check: `None` when not under systemd or the unit is fine.
pub fn check(env: &BTreeMap<String, String>) -> Option<String> {
    let parent =
        std::fs::read_to_string(format!("/proc/{}/comm", nix::unistd::getppid().as_raw())).ok();
    if !under_systemd(env, parent.as_deref().map(str::trim_end)) {
        return None;
    }
    let unit = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|s| unit_of(&s));
    let lookup = match &unit {
        Some(u) => lookup(u),
        None => Lookup::Unknown("no unit".into()),
    };
    verdict(unit.as_ref(), &lookup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str, user: bool) -> Option<Unit> {
        Some(Unit {
            name: name.into(),
            user,
        })
    }

    #[test]
    fn only_under_systemd() {
        let env = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let systemd = Some("systemd");
        assert!(!under_systemd(&env(&[("HOME", "/root")]), systemd));
        assert!(!under_systemd(&env(&[("INVOCATION_ID", "")]), systemd));
        assert!(under_systemd(&env(&[("INVOCATION_ID", "2f1c")]), systemd));
        assert!(
            !under_systemd(&env(&[("INVOCATION_ID", "2f1c")]), Some("bash")),
            "inherited from a unit that runs a shell (a CI runner)"
        );
        assert!(!under_systemd(&env(&[("INVOCATION_ID", "2f1c")]), None));
        assert!(under_systemd(
            &env(&[("NOTIFY_SOCKET", "/run/systemd/notify")]),
            Some("bash")
        ));
        assert_eq!(check(&env(&[("HOME", "/")])), None);
    }

    #[test]
    fn the_unit_from_the_cgroup() {
        assert_eq!(
            unit_of("0::/system.slice/app.service\n"),
            unit("app.service", false)
        );
        assert_eq!(
            unit_of("0::/system.slice/app.service/payload\n"),
            unit("app.service", false),
            "a sub-cgroup of the service"
        );
        assert_eq!(
            unit_of("0::/user.slice/user-1000.slice/user@1000.service/app.slice/app.service\n"),
            unit("app.service", true)
        );
        assert_eq!(
            unit_of("0::/system.slice/run-r1.scope\n"),
            unit("run-r1.scope", false)
        );
        assert_eq!(
            unit_of("12:pids:/\n1:name=systemd:/system.slice/old.service\n"),
            unit("old.service", false),
            "cgroup v1"
        );
        assert_eq!(unit_of("0::/\n"), None, "a container's root");
        assert_eq!(
            unit_of("0::/user.slice/user-1000.slice/user@1000.service\n"),
            None
        );
        assert_eq!(unit_of(""), None);
    }

    #[test]
    fn warns_unless_mixed() {
        let app = unit("app.service", false);
        let mixed = Lookup::KillMode("mixed".into());
        assert_eq!(verdict(app.as_ref(), &mixed), None);
        for mode in ["control-group", "process", "none"] {
            let w = verdict(app.as_ref(), &Lookup::KillMode(mode.into())).unwrap();
            assert!(w.contains(&format!("KillMode={mode}")), "{w}");
            assert!(w.contains("WorkerLostError"), "{w}");
            assert!(w.contains("`KillMode=mixed`"), "{w}");
            assert!(w.contains("systemctl edit app.service"), "{w}");
        }
        let user = unit("app.service", true);
        let w = verdict(user.as_ref(), &Lookup::KillMode("control-group".into())).unwrap();
        assert!(w.contains("systemctl --user edit app.service"), "{w}");
        let w = verdict(
            app.as_ref(),
            &Lookup::Unknown("systemctl is not installed".into()),
        )
        .unwrap();
        assert!(
            w.starts_with(
                "cannot check the KillMode of unit app.service (systemctl is not installed)"
            ),
            "{w}"
        );
        let w = verdict(None, &mixed).unwrap();
        assert!(w.contains("cannot check its KillMode"), "{w}");
    }
}
