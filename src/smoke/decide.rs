//! What smoke decides, as pure functions: a process's state from its
//! instances' status, whether the wait is over, the command's environment
//! and the exit code.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::backend::Listen;
use crate::plan::{Plan, Probe, ProcessId};
use crate::supervisor::core::InstanceStatus;

/// A process's state, from the states of its instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcState {
    /// Not ready yet: what it is doing (`starting`, `running`, `backoff`,
    /// `waiting`: its dependencies are not ready).
    Waiting(String),
    /// Every instance is ready (or a long-running one ended cleanly).
    Ready,
    /// A oneshot (every instance) completed.
    Completed,
    /// An instance FAILED: which ones.
    Failed(String),
}

impl ProcState {
    /// Ready or completed: this process has proved what smoke asks.
    pub fn is_done(&self) -> bool {
        matches!(self, ProcState::Ready | ProcState::Completed)
    }

    /// One word or phrase for progress lines and reports.
    pub fn describe(&self) -> String {
        match self {
            ProcState::Waiting(what) => what.clone(),
            ProcState::Ready => "ready".into(),
            ProcState::Completed => "completed".into(),
            ProcState::Failed(what) => format!("FAILED ({what})"),
        }
    }
}

/// The state of `process` from every instance's status (other processes'
/// instances are skipped).
pub fn process_state(process: &str, oneshot: bool, status: &[InstanceStatus]) -> ProcState {
    let mine: Vec<&InstanceStatus> = status.iter().filter(|s| s.id.process == process).collect();
    let failed: Vec<String> = mine
        .iter()
        .filter(|s| s.state == "failed")
        .map(|s| s.id.to_string())
        .collect();
    if !failed.is_empty() {
        return ProcState::Failed(format!("{} failed", failed.join(", ")));
    }
    if mine.is_empty() {
        return ProcState::Waiting("waiting".into());
    }
    // A oneshot is "ready" from its spawn (it has no health check): only
    // its successful end proves anything. A long-running process that
    // exited 0 (restart = "on-failure") ended as asked.
    let done = |s: &&&InstanceStatus| s.state == "completed" || (!oneshot && s.state == "ready");
    let ready = mine.iter().filter(done).count();
    if ready == mine.len() {
        return if oneshot {
            ProcState::Completed
        } else {
            ProcState::Ready
        };
    }
    let first = mine
        .iter()
        .find(|s| !done(s))
        .map_or("waiting", |s| s.state);
    let what = match first {
        "not started" | "pending" => "waiting",
        other => other,
    };
    if mine.len() > 1 {
        ProcState::Waiting(format!("{what}, {ready}/{} ready", mine.len()))
    } else {
        ProcState::Waiting(what.to_string())
    }
}

/// Where the wait for readiness stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    Waiting,
    AllReady,
    /// These processes failed.
    Failed(Vec<String>),
}

/// A failure ends the wait at once; otherwise it ends when every process
/// is done.
pub fn wait(states: &[(String, ProcState)]) -> Wait {
    let failed: Vec<String> = states
        .iter()
        .filter(|(_, s)| matches!(s, ProcState::Failed(_)))
        .map(|(n, _)| n.clone())
        .collect();
    if !failed.is_empty() {
        Wait::Failed(failed)
    } else if states.iter().all(|(_, s)| s.is_done()) {
        Wait::AllReady
    } else {
        Wait::Waiting
    }
}

/// How the wait for readiness ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    Ready,
    /// A process failed.
    Failed,
    /// Not every process was ready within the timeout.
    TimedOut,
}

/// How the command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandEnd {
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
    /// It could not be started (not found, not executable).
    NotStarted(String),
}

/// What a shell reports for a command that cannot be run.
pub const NOT_STARTED: i32 = 127;

impl CommandEnd {
    /// Its exit code as a shell reports it: 128+N for signal N.
    pub fn code(&self) -> i32 {
        match self {
            CommandEnd::Exited(code) => *code,
            CommandEnd::Signaled(sig) => 128 + sig,
            CommandEnd::NotStarted(_) => NOT_STARTED,
        }
    }
}

/// smoke's exit code. Precedence: an interruption (128+N, as a shell
/// reports a command stopped by signal N: the run proved nothing), then
/// a process that failed or was not ready (1), then the command's own
/// code when it failed, then the stop's (1 when it was not clean), else 0.
pub fn exit_code(
    interrupted: Option<i32>,
    startup: &Startup,
    command: Option<&CommandEnd>,
    stop: i32,
) -> i32 {
    if let Some(sig) = interrupted {
        return 128 + sig;
    }
    match startup {
        Startup::Failed | Startup::TimedOut => return crate::exit::PROCESS_FAILED,
        Startup::Ready => {}
    }
    match command.map(CommandEnd::code) {
        Some(code) if code != 0 => code,
        _ => stop,
    }
}

/// `web-api` → `WEB_API`: process names are letters, digits, `-`, `_`.
pub fn env_name(process: &str) -> String {
    process
        .chars()
        .map(|c| match c {
            'a'..='z' => c.to_ascii_uppercase(),
            c if c.is_ascii_alphanumeric() || c == '_' => c,
            _ => '_',
        })
        .collect()
}

/// `host:port` to connect to a server bound to `host`: a wildcard bind is
/// reached on loopback, an IPv6 address in brackets.
pub fn connect_address(host: &str, port: &str) -> String {
    let bare = host.trim().trim_start_matches('[').trim_end_matches(']');
    let host = match bare.parse::<IpAddr>() {
        _ if bare.is_empty() => "127.0.0.1".to_string(),
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => "127.0.0.1".to_string(),
        Ok(IpAddr::V6(ip)) if ip.is_unspecified() => "[::1]".to_string(),
        Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
        Ok(IpAddr::V4(ip)) => ip.to_string(),
        Err(_) => bare.to_string(),
    };
    format!("{host}:{}", port.trim())
}

/// The environment of smoke's command: prodserver's own (`base`), what
/// `[prodserver]` gives every process, and where the processes are:
/// `PRODSERVER_PROJECT`, `PRODSERVER_PROCESSES` (comma-separated, in file
/// order), and for each process with an address (its first instance's)
/// `PRODSERVER_<NAME>_ADDRESS` (`host:port` to connect to, or the unix
/// socket's path) and, for HTTP, `PRODSERVER_<NAME>_URL` (its HTTP health
/// check's URL, else `http://host:port/`).
pub fn command_env(
    base: &[(String, String)],
    plan: &Plan,
    selected: &[ProcessId],
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = base.iter().cloned().collect();
    env.extend(plan.env.clone());
    env.insert("PRODSERVER_PROJECT".into(), plan.name.clone());
    let mut ids = selected.to_vec();
    ids.sort_unstable();
    let names: Vec<&str> = ids
        .iter()
        .map(|id| plan.processes[*id].name.as_str())
        .collect();
    env.insert("PRODSERVER_PROCESSES".into(), names.join(","));
    for id in ids {
        let spec = plan.processes[id].for_instance(1);
        let key = env_name(&spec.name);
        let probe_url = spec.health.as_ref().and_then(|h| match &h.probe {
            Some(Probe::Http { url, .. }) => Some(url.clone()),
            _ => None,
        });
        let path = spec.health.as_ref().and_then(|h| h.path.clone());
        match spec.listen.first() {
            Some(Listen::Tcp { host, port, tls }) => {
                let address = connect_address(host, port);
                let scheme = if *tls { "https" } else { "http" };
                let url = probe_url.unwrap_or_else(|| {
                    format!("{scheme}://{address}{}", path.as_deref().unwrap_or("/"))
                });
                env.insert(format!("PRODSERVER_{key}_ADDRESS"), address);
                env.insert(format!("PRODSERVER_{key}_URL"), url);
            }
            Some(Listen::Unix(socket)) => {
                let socket = spec.cwd.join(socket);
                env.insert(
                    format!("PRODSERVER_{key}_ADDRESS"),
                    socket.display().to_string(),
                );
                if let Some(url) = probe_url {
                    env.insert(format!("PRODSERVER_{key}_URL"), url);
                }
            }
            None => {
                if let Some(url) = probe_url {
                    env.insert(format!("PRODSERVER_{key}_URL"), url);
                }
            }
        }
    }
    env.into_iter().collect()
}

/// `2.3s`: one decimal is what a person compares between runs.
pub fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::core::InstanceId;

    fn st(id: &str, state: &'static str) -> InstanceStatus {
        let (p, n) = id.split_once('.').unwrap();
        InstanceStatus {
            id: InstanceId::new(p, n.parse().unwrap()),
            state,
            pid: None,
            restarts: 0,
            last_restart: None,
            last_exit: None,
            usage: None,
            tasks: 0,
            tasks_total: 0,
            recycles: 0,
            last_recycle: None,
            since: None,
        }
    }

    #[test]
    fn a_process_is_ready_when_every_instance_is() {
        let s = [
            st("web.1", "ready"),
            st("web.2", "starting"),
            st("db.1", "failed"),
        ];
        assert_eq!(
            process_state("web", false, &s),
            ProcState::Waiting("starting, 1/2 ready".into())
        );
        let s = [st("web.1", "ready"), st("web.2", "ready")];
        assert_eq!(process_state("web", false, &s), ProcState::Ready);
        assert_eq!(
            process_state("web", false, &[st("web.1", "not started")]),
            ProcState::Waiting("waiting".into())
        );
    }

    #[test]
    fn a_oneshot_is_done_once_completed_and_a_failure_names_the_instance() {
        assert_eq!(
            process_state("migrate", true, &[st("migrate.1", "completed")]),
            ProcState::Completed
        );
        assert_eq!(
            process_state("migrate", true, &[st("migrate.1", "running")]),
            ProcState::Waiting("running".into())
        );
        // Ready at its spawn, as every process without a health check.
        assert_eq!(
            process_state("migrate", true, &[st("migrate.1", "ready")]),
            ProcState::Waiting("ready".into())
        );
        assert_eq!(
            process_state("web", false, &[st("web.1", "ready"), st("web.2", "failed")]),
            ProcState::Failed("web.2 failed".into())
        );
    }

    #[test]
    fn the_wait_ends_on_the_first_failure_or_when_all_are_done() {
        let w = |s: &[(&str, ProcState)]| {
            wait(
                &s.iter()
                    .map(|(n, s)| (n.to_string(), s.clone()))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            w(&[("a", ProcState::Ready), ("b", ProcState::Completed)]),
            Wait::AllReady
        );
        assert_eq!(
            w(&[
                ("a", ProcState::Ready),
                ("b", ProcState::Waiting("running".into()))
            ]),
            Wait::Waiting
        );
        assert_eq!(
            w(&[
                ("a", ProcState::Waiting("running".into())),
                ("b", ProcState::Failed("b.1 failed".into()))
            ]),
            Wait::Failed(vec!["b".into()])
        );
    }

    #[test]
    fn exit_codes_follow_the_documented_precedence() {
        let ok = Some(CommandEnd::Exited(0));
        assert_eq!(exit_code(None, &Startup::Ready, ok.as_ref(), 0), 0);
        assert_eq!(exit_code(None, &Startup::Ready, None, 0), 0);
        // An unclean stop never passes.
        assert_eq!(exit_code(None, &Startup::Ready, ok.as_ref(), 1), 1);
        let seven = Some(CommandEnd::Exited(7));
        assert_eq!(exit_code(None, &Startup::Ready, seven.as_ref(), 1), 7);
        let killed = Some(CommandEnd::Signaled(9));
        assert_eq!(exit_code(None, &Startup::Ready, killed.as_ref(), 0), 137);
        let missing = Some(CommandEnd::NotStarted("no such file".into()));
        assert_eq!(exit_code(None, &Startup::Ready, missing.as_ref(), 0), 127);
        assert_eq!(exit_code(None, &Startup::Failed, None, 0), 1);
        assert_eq!(exit_code(None, &Startup::TimedOut, None, 0), 1);
        assert_eq!(
            exit_code(Some(libc::SIGINT), &Startup::Ready, ok.as_ref(), 0),
            130
        );
    }

    #[test]
    fn addresses_are_connectable_and_names_are_env_safe() {
        assert_eq!(connect_address("0.0.0.0", "8000"), "127.0.0.1:8000");
        assert_eq!(connect_address("", "8000"), "127.0.0.1:8000");
        assert_eq!(connect_address("::", "8000"), "[::1]:8000");
        assert_eq!(connect_address("[::]", "8000"), "[::1]:8000");
        assert_eq!(connect_address("::1", "80"), "[::1]:80");
        assert_eq!(connect_address("10.0.0.2", "80"), "10.0.0.2:80");
        assert_eq!(connect_address("localhost", "80"), "localhost:80");
        assert_eq!(env_name("web-api_2"), "WEB_API_2");
    }

    #[test]
    fn the_command_env_has_the_project_env_and_the_addresses() {
        use crate::plan::BackendKind;
        use crate::supervisor::order::tests::{plan, spec};
        let mut web = spec("web", BackendKind::Gunicorn, &[]);
        web.listen = vec![Listen::Tcp {
            host: "0.0.0.0".into(),
            port: "80{instance}".into(),
            tls: false,
        }];
        let worker = spec("worker", BackendKind::CeleryWorker, &[]);
        let mut p = plan(vec![worker, web]);
        p.env
            .insert("DJANGO_SETTINGS_MODULE".into(), "shop.settings".into());
        let base = vec![
            ("PATH".to_string(), "/bin".to_string()),
            ("DJANGO_SETTINGS_MODULE".to_string(), "mine".to_string()),
        ];
        let env: BTreeMap<String, String> = command_env(&base, &p, &[1, 0]).into_iter().collect();
        assert_eq!(env["PATH"], "/bin");
        assert_eq!(env["DJANGO_SETTINGS_MODULE"], "shop.settings");
        assert_eq!(env["PRODSERVER_PROCESSES"], "worker,web");
        assert_eq!(env["PRODSERVER_WEB_ADDRESS"], "127.0.0.1:801");
        assert_eq!(env["PRODSERVER_WEB_URL"], "http://127.0.0.1:801/");
        assert!(!env.contains_key("PRODSERVER_WORKER_ADDRESS"));
    }
}
