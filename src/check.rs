//! `prodserver check`: validate the file and show, per process, exactly
//! what would run. Text for people, `--json` for machines.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use crate::config;
use crate::config::{Diagnostic, Loaded, Severity, Sources};
use crate::plan::{MemoryScope, Plan, ProcessSpec};
use crate::resolve::ResolvedPlan;
use crate::signals::signal_name;
use crate::supervisor::order;
use crate::units::format_duration;

/// Warnings `check` adds to the loader's: things that are not errors in
/// the file but will likely fail at start on this machine.
pub fn environment_warnings(
    plan: &Plan,
    supervisor_env: &BTreeMap<String, String>,
    sources: &Sources,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for spec in &plan.processes {
        let Some(program) = spec.argv.first() else {
            continue;
        };
        let path = spec
            .env
            .get("PATH")
            .or_else(|| supervisor_env.get("PATH"))
            .cloned()
            .unwrap_or_default();
        if !program_exists(program, &path, &spec.cwd) {
            let (message, hint) =
                if program.contains('/') {
                    (
                    format!("`{}`: \"{program}\" is not an executable file (yet)", spec.name),
                    "fine if an earlier oneshot (a venv setup) creates it; otherwise fix the path",
                )
                } else {
                    (
                        format!(
                            "`{}`: program \"{program}\" is not on PATH ({path})",
                            spec.name
                        ),
                        "install it, activate the virtualenv, or set `program = \".venv/bin/...\"`",
                    )
                };
            out.push(Diagnostic::warning(0, None, message).with_hint(hint));
        }
    }
    out.extend(bind_warnings(plan, sources));
    if let Some(hard) = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| hard_nofile(&l))
    {
        out.extend(fd_warning(plan, hard, sources));
    }
    out
}

/// Addresses already taken on this host: a warning, not an error, since
/// the taker may be this very stack, already running.
fn bind_warnings(plan: &Plan, sources: &Sources) -> Vec<Diagnostic> {
    use std::net::ToSocketAddrs;
    let mut out = Vec::new();
    for spec in &plan.processes {
        for n in 1..=spec.instances {
            for address in config::listen_addresses(spec, n) {
                if address.starts_with("unix:") {
                    continue;
                }
                let Ok(addrs) = address.to_socket_addrs() else {
                    continue;
                };
                let in_use = addrs.into_iter().any(|a| {
                    matches!(std::net::TcpListener::bind(a), Err(e) if e.kind() == std::io::ErrorKind::AddrInUse)
                });
                if in_use {
                    let span = config::span_in(sources.text(0), &spec.name, None);
                    out.push(
                        Diagnostic::warning(
                            0,
                            span,
                            format!("`{}` binds {address}, which is already in use on this host", spec.name),
                        )
                        .with_hint("fine if this stack is already running; otherwise stop what listens there or change the address"),
                    );
                }
            }
        }
    }
    out
}

/// File descriptors the supervisor itself keeps open (stdio, runtime
/// directory, lock files, the keeper's pipe, signal and timer handles).
pub const FDS_BASE: u64 = 32;
/// Per instance: the read ends of its stdout and stderr pipes, its notify
/// socket, its pidfd, and two for a probe in flight (a connection, or an
/// exec probe's pipes).
pub const FDS_PER_INSTANCE: u64 = 6;

/// Descriptors the plan needs, estimated as documented in the README.
pub fn fds_needed(plan: &Plan) -> u64 {
    let instances: u64 = plan.processes.iter().map(|p| u64::from(p.instances)).sum();
    FDS_BASE + FDS_PER_INSTANCE * instances
}

/// The hard `Max open files` limit from `/proc/self/limits`; `None` when
/// unlimited or unreadable.
pub fn hard_nofile(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let _soft = fields.next()?;
    fields.next()?.parse().ok()
}

fn fd_warning(plan: &Plan, hard: u64, sources: &Sources) -> Option<Diagnostic> {
    let needed = fds_needed(plan);
    if needed <= hard {
        return None;
    }
    let biggest = plan.processes.iter().max_by_key(|p| p.instances)?;
    let instances: u64 = plan.processes.iter().map(|p| u64::from(p.instances)).sum();
    let span = config::span_in(sources.text(0), &biggest.name, Some("instances"));
    Some(
        Diagnostic::warning(
            0,
            span,
            format!(
                "{instances} instances need about {needed} file descriptors ({FDS_BASE} + {FDS_PER_INSTANCE} per instance), more than the hard limit of {hard} (RLIMIT_NOFILE)"
            ),
        )
        .with_hint("raise the limit (systemd `LimitNOFILE=`, `ulimit -Hn`, docker `--ulimit nofile=`) or run fewer instances"),
    )
}

fn program_exists(program: &str, path: &str, cwd: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        return executable(&cwd.join(program));
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .any(|dir| executable(&Path::new(dir).join(program)))
}

/// Start waves by process name.
pub fn start_order(plan: &Plan) -> Vec<Vec<&str>> {
    order::start_ranks(plan)
        .into_iter()
        .map(|wave| {
            wave.into_iter()
                .map(|i| plan.processes[i].name.as_str())
                .collect()
        })
        .collect()
}

pub fn command_line(spec: &ProcessSpec) -> String {
    shell_words::join(&spec.argv)
}

/// What `start` will check of instance 1.
fn health_line(resolved: &ResolvedPlan, id: usize) -> String {
    resolved
        .instance(id, 1)
        .map(|i| crate::health::describe(&i.health))
        .unwrap_or_default()
}

/// What recycles an instance, one line each: prodserver's memory and task
/// limits, and `max_tasks_per_child` translated into the web server's own
/// flag (named, so the user sees what the server was told).
pub fn recycling_lines(spec: &ProcessSpec) -> Vec<String> {
    let limits = &spec.limits;
    let mut out = Vec::new();
    if let Some(bytes) = limits.max_memory_per_child {
        let what = match limits.memory_scope {
            MemoryScope::Instance => "the instance's whole process tree",
            MemoryScope::Child => "each child of the main process, recycled alone",
        };
        out.push(format!(
            "memory     recycle above {} ({} of {what}; {} samples {} apart)",
            crate::units::format_size(bytes),
            limits.memory_metric.name(),
            limits.memory_samples,
            format_duration(limits.memory_interval)
        ));
    }
    if let Some(n) = limits.max_tasks_per_child {
        out.push(format!("tasks      recycle after {n} tasks (TASKS_DONE)"));
    }
    if let Some(note) = &limits.server_recycling {
        out.push(format!("requests   {note}"));
    }
    if spec.rollout == crate::plan::RolloutMode::Surge {
        out.push(
            "rollout    surge: a replacement starts beside the old instance, which stops once the new one is ready"
                .to_string(),
        );
    }
    out
}

/// Whether prodserver holds the process's listening socket and how the
/// server receives it, for every process that binds an address.
pub fn socket_line(spec: &ProcessSpec) -> Option<String> {
    use crate::plan::Holding;
    let addresses: Vec<String> = spec
        .listen
        .iter()
        .map(|l| match l {
            crate::backend::Listen::Tcp { host, port, .. } if host.contains(':') => {
                format!("[{host}]:{port}")
            }
            crate::backend::Listen::Tcp { host, port, .. } => format!("{host}:{port}"),
            crate::backend::Listen::Unix(path) => format!("unix:{path}"),
        })
        .collect();
    let at = addresses.join(", ");
    match &spec.holding {
        Holding::Nothing => None,
        Holding::Held {
            passing,
            backlog,
            reuse_port,
        } => {
            let mut line = format!(
                "socket     held by prodserver: {at}, passed as {} (backlog {backlog}{}); restarts surge on it",
                passing.describe(),
                if *reuse_port { ", SO_REUSEPORT" } else { "" },
            );
            if !spec.surges_on_held_socket() {
                line = line.replace(
                    "restarts surge on it",
                    "restarts replace (the address depends on {instance})",
                );
            }
            if *passing == crate::backend::held::Passing::UvicornFd
                && spec
                    .listen
                    .iter()
                    .any(|l| matches!(l, crate::backend::Listen::Tcp { .. }))
            {
                line.push_str(
                    "; uvicorn reads it as AF_UNIX (uvicorn#295): the app sees no client address unless proxy headers give one",
                );
            }
            Some(line)
        }
        Holding::Own { why } => Some(format!(
            "socket     not held: {at} is bound by the server ({why})"
        )),
    }
}

pub fn render_text(
    loaded: &Loaded,
    resolved: &ResolvedPlan,
    extra: &[Diagnostic],
    color: bool,
) -> String {
    let plan = &loaded.plan;
    let mut out = String::new();
    let n = plan.processes.len();
    out.push_str(&format!(
        "{}: project \"{}\", {n} process{}\n\n",
        plan.config_path.display(),
        plan.name,
        if n == 1 { "" } else { "es" }
    ));
    for (id, spec) in plan.processes.iter().enumerate() {
        let mut kind = vec![spec.backend.name().to_string()];
        if spec.oneshot {
            kind.push("oneshot".into());
        }
        if spec.singleton {
            kind.push("singleton".into());
        }
        out.push_str(&format!("[{}] {}\n", spec.name, kind.join(", ")));
        out.push_str(&format!("  command    {}\n", command_line(spec)));
        if !spec.env.is_empty() {
            let vars: Vec<String> = spec
                .env
                .iter()
                .map(|(k, v)| format!("{k}={}", shell_words::quote(v)))
                .collect();
            out.push_str(&format!("  env        {}\n", vars.join(" ")));
        }
        if spec.cwd != plan.root {
            out.push_str(&format!("  cwd        {}\n", spec.cwd.display()));
        }
        out.push_str(&format!("  instances  {}\n", spec.instances));
        out.push_str(&format!("  health     {}\n", health_line(resolved, id)));
        if let Some(line) = socket_line(spec) {
            out.push_str(&format!("  {line}\n"));
        }
        for line in recycling_lines(spec) {
            out.push_str(&format!("  {line}\n"));
        }
        if !spec.depends_on.is_empty() {
            let deps = dependencies(plan, spec);
            out.push_str(&format!("  depends on {}\n", deps.join(", ")));
        }
        // Without an escalation the line reads as it always has.
        let then = match spec.escalate_signal {
            Some(sig) => format!(
                ", then {} after {}, then SIGKILL after {} more",
                signal_name(sig),
                format_duration(spec.stop_timeout),
                format_duration(spec.kill_timeout)
            ),
            None => format!(" then SIGKILL after {}", format_duration(spec.stop_timeout)),
        };
        out.push_str(&format!(
            "  restart    {}, stop with {}{then}\n\n",
            spec.restart.name(),
            signal_name(spec.stop_signal),
        ));
    }
    out.push_str("start order\n");
    for (i, wave) in start_order(plan).iter().enumerate() {
        out.push_str(&format!("  {}. {}\n", i + 1, wave.join(", ")));
    }
    let warnings: Vec<Diagnostic> = loaded.warnings.iter().chain(extra).cloned().collect();
    if !warnings.is_empty() {
        out.push('\n');
        out.push_str(&loaded.sources.render(&warnings, color));
    }
    let count = warnings
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    out.push_str(&format!(
        "\nok: {n} process{}, {count} warning{}\n",
        if n == 1 { "" } else { "es" },
        if count == 1 { "" } else { "s" }
    ));
    out
}

pub fn render_json(
    loaded: &Loaded,
    resolved: &ResolvedPlan,
    extra: &[Diagnostic],
) -> serde_json::Value {
    let plan = &loaded.plan;
    let processes: Vec<serde_json::Value> = plan
        .processes
        .iter()
        .enumerate()
        .map(|(id, spec)| {
            json!({
                "name": spec.name,
                "backend": spec.backend.name(),
                "argv": spec.argv,
                "command_line": command_line(spec),
                "env": spec.env,
                "cwd": spec.cwd,
                "instances": spec.instances,
                "health": health_line(resolved, id),
                "socket": socket_line(spec)
                    .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")),
                "oneshot": spec.oneshot,
                "singleton": spec.singleton,
                "restart": spec.restart.name(),
                "stop_signal": signal_name(spec.stop_signal),
                "stop_timeout_ms": spec.stop_timeout.as_millis() as u64,
                "recycling": recycling_lines(spec)
                    .iter()
                    .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                    .collect::<Vec<_>>(),
                "depends_on": spec.depends_on.iter().map(|d| json!({
                    "process": plan.processes[d.process].name,
                    "condition": d.condition.name(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let warnings: Vec<serde_json::Value> = loaded
        .warnings
        .iter()
        .chain(extra)
        .map(|d| loaded.sources.to_json(d))
        .collect();
    json!({
        "ok": true,
        "config": plan.config_path,
        "project": plan.name,
        "processes": processes,
        "start_order": start_order(plan),
        "warnings": warnings,
        "errors": [],
    })
}

pub fn render_errors_json(sources: &Sources, diagnostics: &[Diagnostic]) -> serde_json::Value {
    let (errors, warnings): (Vec<&Diagnostic>, Vec<&Diagnostic>) = diagnostics
        .iter()
        .partition(|d| d.severity == Severity::Error);
    json!({
        "ok": false,
        "errors": errors.iter().map(|d| sources.to_json(d)).collect::<Vec<_>>(),
        "warnings": warnings.iter().map(|d| sources.to_json(d)).collect::<Vec<_>>(),
    })
}

/// `spec`'s dependencies as `NAME (condition)`, for `check` and exports.
pub(crate) fn dependencies(plan: &Plan, spec: &ProcessSpec) -> Vec<String> {
    spec.depends_on
        .iter()
        .map(|d| {
            format!(
                "{} ({})",
                plan.processes[d.process].name,
                d.condition.name()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_nofile_is_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63413                63413                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(hard_nofile(limits), Some(524288));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(hard_nofile(unlimited), None);
        assert_eq!(hard_nofile(""), None);
    }
}
