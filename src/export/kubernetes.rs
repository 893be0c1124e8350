//! Kubernetes manifests: the same process set for teams that outgrow one
//! machine, shaped the way Django and Celery are commonly run there.
//!
//! - a long-running process: a Deployment, `replicas = instances`;
//! - a singleton (celery-beat, or `singleton = true`): a StatefulSet of 1
//!   plus the headless Service it requires. A Deployment, even with the
//!   `Recreate` strategy, may run two pods at once: a pod on a node that
//!   stopped answering is replaced without waiting for it to be confirmed
//!   dead, and `kubectl rollout restart` or an eviction races likewise.
//!   A StatefulSet never creates a pod while one with the same identity may
//!   still run (at most one `beat-0`), which is what beat needs: two beats
//!   send every periodic task twice;
//! - a oneshot (`migrate`): a Job, to apply and wait for before the rest;
//! - the env (the file's, env files included) as a ConfigMap or a Secret
//!   per process, referenced with `envFrom`;
//! - the Celery integration as a ConfigMap holding its module, mounted into
//!   the Celery containers, with `PRODSERVER_HEARTBEAT_FILE` on an emptyDir:
//!   exec probes read that file's age (never `celery inspect ping`, which
//!   asks every worker through the broker and slows under load).
//!
//! Host paths under the config's folder become paths under the image's
//! working directory (`--workdir`, `/app` by default), paths under
//! prodserver's runtime directory become `/tmp` paths, and a server bound to
//! loopback binds every address instead: kubelet's probes and Services
//! reach the pod's IP, never its 127.0.0.1.
//!
//! The YAML is written here (see [`yaml`]): a small emitter for the JSON
//! values built below, double-quoting every string, so it needs no YAML
//! crate and can carry comments that explain each choice.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{stop_budget, File};
use crate::backend::{DefaultReadiness, Listen};
use crate::plan::{Plan, Probe, ProcessSpec, RolloutMode};

/// Where the env of a process goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvAs {
    ConfigMap,
    Secret,
}

/// What the plan alone does not say.
pub struct Options<'a> {
    /// The container image every process runs from.
    pub image: &'a str,
    /// The config's folder inside the image.
    pub workdir: &'a str,
    pub env_as: EnvAs,
    /// prodserver's runtime directory on this host (gunicorn's control
    /// socket lives there): mapped to `/tmp` in the pod.
    pub runtime_dir: &'a Path,
}

/// Where the Celery integration's module is mounted (read-only).
pub const MODULE_MOUNT: &str = "/opt/prodserver-celery";
/// The emptyDir the heartbeat file lives in.
pub const HEARTBEAT_DIR: &str = "/run/prodserver";
/// The file the integration rewrites at each heartbeat (every 10 s).
pub const HEARTBEAT_FILE: &str = "/run/prodserver/heartbeat";
/// A heartbeat older than this fails the probe: six missed periods, the
/// same patience prodserver gives a worker's missed broker heartbeats.
pub const HEARTBEAT_MAX_AGE: u64 = 60;
/// A Pod's grace beyond the process's own stop budget: the kubelet's
/// SIGKILL must not race the last lines of a clean exit.
pub const GRACE_MARGIN: Duration = Duration::from_secs(5);

/// Every file of the export: one per process (its env and workload), plus
/// `celery-integration.yaml` when a Celery process loads the integration.
pub fn export(plan: &Plan, opts: &Options) -> Result<Vec<File>, String> {
    let names = object_names(plan)?;
    let mut files = Vec::new();
    let mut integration = false;
    for (id, spec) in plan.processes.iter().enumerate() {
        let name = &names[id];
        let uses_integration = spec.celery.as_ref().is_some_and(|c| c.integration)
            && matches!(
                spec.readiness,
                DefaultReadiness::CeleryWorker | DefaultReadiness::CeleryBeat
            );
        integration |= uses_integration;
        files.push(File {
            name: format!("{}.yaml", spec.name),
            contents: process_file(plan, spec, name, uses_integration, opts),
        });
    }
    if integration {
        files.push(File {
            name: "celery-integration.yaml".into(),
            contents: integration_file(plan),
        });
    }
    Ok(files)
}

/// `PROJECT-PROCESS` as an RFC 1123 label (lowercase, `-` for anything
/// else, at most 63 characters): refused when two processes map to one.
pub fn object_names(plan: &Plan) -> Result<Vec<String>, String> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    let mut names = Vec::new();
    for spec in &plan.processes {
        let name = label(&format!("{}-{}", plan.name, spec.name));
        if name.len() > 63 {
            return Err(format!(
                "process {:?}: the Kubernetes name {name:?} is longer than 63 characters; shorten the process or project name",
                spec.name
            ));
        }
        if let Some(other) = seen.insert(name.clone(), &spec.name) {
            return Err(format!(
                "processes {other:?} and {:?} both become {name:?} in Kubernetes (names are lowercase, with `-` for other characters); rename one",
                spec.name
            ));
        }
        names.push(name);
    }
    Ok(names)
}

fn label(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    mapped.trim_matches('-').to_owned()
}

/// The kind of workload a process becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Deployment,
    StatefulSet,
    Job,
}

pub fn workload(spec: &ProcessSpec) -> Workload {
    if spec.oneshot {
        Workload::Job
    } else if spec.singleton {
        Workload::StatefulSet
    } else {
        Workload::Deployment
    }
}

/// `terminationGracePeriodSeconds`: the process's own stop budget
/// (`stop_timeout`, plus `kill_timeout` when prodserver would escalate)
/// and [`GRACE_MARGIN`], whole seconds rounded up.
pub fn grace_seconds(spec: &ProcessSpec) -> u64 {
    let d = stop_budget(spec) + GRACE_MARGIN;
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A host path as the pod sees it: under the config's folder it moves to
/// `workdir`, under the runtime directory to `/tmp`; anything else stays.
pub fn pod_path(text: &str, root: &Path, runtime_dir: &Path, workdir: &str) -> String {
    let mut out = text.to_owned();
    for (from, to) in [
        (root.to_string_lossy(), workdir.trim_end_matches('/')),
        (runtime_dir.to_string_lossy(), "/tmp"),
    ] {
        if from.is_empty() || from == "/" {
            continue;
        }
        out = replace_path_prefix(&out, &from, to);
    }
    out
}

/// Replaces `from` where it starts a path (the text's start, or after `=`
/// or `:`) and is followed by `/` or the end of that path.
fn replace_path_prefix(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(from) {
        let before_ok = at == 0 || rest[..at].ends_with(['=', ':']);
        let after = &rest[at + from.len()..];
        let after_ok = after.is_empty() || after.starts_with(['/', ':', ',']);
        out.push_str(&rest[..at]);
        out.push_str(if before_ok && after_ok { to } else { from });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Loopback binds (`127.0.0.1:8000`, `localhost:8000`, `[::1]:8000`) in
/// argv, as `0.0.0.0:PORT` (`[::]:PORT`): returns the argv and what moved.
pub fn unbind_loopback(argv: &[String], listen: &[Listen]) -> (Vec<String>, Vec<String>) {
    let mut moved = Vec::new();
    let mut argv = argv.to_vec();
    for l in listen {
        let Listen::Tcp { host, port, .. } = l else {
            continue;
        };
        let (from, to) = match host.as_str() {
            "127.0.0.1" | "localhost" => (format!("{host}:{port}"), format!("0.0.0.0:{port}")),
            "::1" | "[::1]" => (format!("[::1]:{port}"), format!("[::]:{port}")),
            _ => continue,
        };
        let mut hit = false;
        for a in &mut argv {
            if a.contains(&from) {
                *a = a.replace(&from, &to);
                hit = true;
            }
        }
        if hit {
            moved.push(format!("{from} -> {to}"));
        }
    }
    (argv, moved)
}

/// One probe, by what the process's health means.
#[derive(Debug, Clone, PartialEq)]
pub struct Probes {
    /// The probe action (`httpGet`, `tcpSocket`, `exec`), `None` when
    /// nothing in Kubernetes can observe what prodserver did.
    pub action: Option<Value>,
    /// What the comment above the probes says.
    pub why: String,
    /// Readiness settings from the health block (or defaults).
    pub period: u64,
    pub timeout: u64,
    pub failures: u64,
    /// How long the startup probe allows before the container is restarted.
    pub start_within: u64,
}

fn secs_up(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// The probes of `spec` (instance 1's view): `python` runs the heartbeat
/// check of the Celery integration.
pub fn probes(spec: &ProcessSpec, integration: bool, python: &str) -> Probes {
    let (period, timeout, failures, start_within) = match &spec.health {
        Some(h) => (
            secs_up(h.interval),
            secs_up(h.timeout),
            u64::from(h.retries.max(1)),
            secs_up(h.start_timeout.max(h.start_period)),
        ),
        // prodserver's defaults: a probe every 10 s, 5 s each, 3 failures,
        // readiness within 2 minutes (a Django boot plus its imports).
        None => (10, 5, 3, 120),
    };
    let mut p = Probes {
        action: None,
        why: String::new(),
        period,
        timeout,
        failures,
        start_within,
    };
    let http_get = |path: &str, port: &str, host: Option<&str>| {
        let mut get = json!({ "path": path, "port": port_value(port) });
        if let Some(host) = host {
            // The Host prodserver sends: Django's ALLOWED_HOSTS accepts it,
            // and would answer 400 to the pod IP kubelet sends by default.
            get["httpHeaders"] = json!([{ "name": "Host", "value": host }]);
        }
        json!({ "httpGet": get })
    };
    if let Some(health) = &spec.health {
        match (&health.probe, &health.path) {
            (Some(Probe::Http { url, host, .. }), _) => {
                if let Ok(u) = crate::health::probe::parse_http_url(url) {
                    let port = u.authority.rsplit_once(':').map_or("80", |(_, p)| p);
                    let host_header = host.as_deref().unwrap_or(&u.authority);
                    p.action = Some(http_get(&u.path, port, Some(host_header)));
                    p.why = format!("health.http = {url:?}: the same request, on the pod.");
                }
            }
            (Some(Probe::Tcp { address }), _) => {
                let port = address.rsplit_once(':').map_or("", |(_, p)| p);
                p.action = Some(json!({ "tcpSocket": { "port": port_value(port) } }));
                p.why = format!("health.tcp = {address:?}: a connect to the same port.");
            }
            (Some(Probe::Exec { argv }), _) => {
                p.action = Some(json!({ "exec": { "command": argv } }));
                p.why = "health.exec: the same command, in the container.".into();
            }
            (None, Some(path)) => {
                if let Some(Listen::Tcp { host, port, .. }) = spec.listen.first() {
                    let authority = format!("{host}:{port}");
                    p.action = Some(http_get(path, port, Some(&authority)));
                    p.why = format!("health.path = {path:?} on the server's port {port}.");
                }
            }
            (Some(Probe::Notify), _) => {
                p.why = "health.notify: READY=1 has no Kubernetes equivalent; the container counts as ready once started.".into();
            }
            (Some(Probe::Log { .. }), _) => {
                p.why = "health.log: a log line has no Kubernetes equivalent; the container counts as ready once started.".into();
            }
            (None, None) => {}
        }
        if p.action.is_some() || !p.why.is_empty() {
            return p;
        }
    }
    match &spec.readiness {
        // Held-socket readiness needs prodserver; a pod's server binds its
        // own port, which a TCP probe can reach.
        DefaultReadiness::Serving
        | DefaultReadiness::AppLoaded { .. }
        | DefaultReadiness::OutputLine { .. } => match spec.listen.first() {
            Some(Listen::Tcp { port, .. }) => {
                p.action = Some(json!({ "tcpSocket": { "port": port_value(port) } }));
                p.why = format!(
                    "No health block: the server counts as ready once port {port} accepts (prodserver takes any HTTP answer; an httpGet would need a 2xx and a Host Django allows)."
                );
            }
            _ => p.why = "No health block and no TCP port: ready once started.".into(),
        },
        DefaultReadiness::CeleryWorker | DefaultReadiness::CeleryBeat if integration => {
            let what = if spec.readiness == DefaultReadiness::CeleryWorker {
                "worker_ready, then while its event loop runs"
            } else {
                "beat_init, then while the scheduler ticks"
            };
            p.action = Some(json!({ "exec": { "command": heartbeat_check(python) } }));
            p.why = format!(
                "The Celery integration rewrites {HEARTBEAT_FILE} every 10 s ({what}); the probe fails when it is missing or older than {HEARTBEAT_MAX_AGE} s. Never `celery inspect ping`: it goes through the broker to every worker and times out under load."
            );
            p.period = 10;
            p.timeout = 5;
            p.failures = 3;
        }
        DefaultReadiness::Unprobeable { why } => {
            p.why = format!("Not probed: {why}.");
        }
        DefaultReadiness::CeleryWorker
        | DefaultReadiness::CeleryBeat
        | DefaultReadiness::CeleryWithoutIntegration => {
            p.why = "celery_integration = false: nothing reports its health; ready once started."
                .into();
        }
        DefaultReadiness::AtSpawn => {}
    }
    p
}

/// `python -c` reading the heartbeat file's age: only the standard
/// library, so any interpreter in the image will do.
pub fn heartbeat_check(python: &str) -> Vec<String> {
    vec![
        python.to_owned(),
        "-c".to_owned(),
        format!(
            "import os, sys, time; sys.exit(time.time() - os.stat({HEARTBEAT_FILE:?}).st_mtime > {HEARTBEAT_MAX_AGE})"
        ),
    ]
}

fn port_value(port: &str) -> Value {
    port.parse::<u16>()
        .map_or_else(|_| Value::String(port.to_owned()), |n| json!(n))
}

fn labels(plan: &Plan, spec: &ProcessSpec) -> Value {
    json!({
        "app.kubernetes.io/name": label(&plan.name),
        "app.kubernetes.io/component": label(&spec.name),
        "app.kubernetes.io/managed-by": "prodserver-export",
    })
}

fn selector(plan: &Plan, spec: &ProcessSpec) -> Value {
    json!({
        "app.kubernetes.io/name": label(&plan.name),
        "app.kubernetes.io/component": label(&spec.name),
    })
}

fn process_file(
    plan: &Plan,
    spec: &ProcessSpec,
    name: &str,
    integration: bool,
    opts: &Options,
) -> String {
    let kind = workload(spec);
    let one = spec.for_instance(1);
    let map = |s: &str| pod_path(s, &plan.root, opts.runtime_dir, opts.workdir);
    let (argv, moved) = unbind_loopback(&one.argv, &one.listen);
    let argv: Vec<String> = argv.iter().map(|a| map(a)).collect();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &one.env {
        env.insert(k.clone(), map(v));
    }
    if integration {
        if let Some(p) = env.get_mut("PYTHONPATH") {
            let dir = crate::celery::module_dir(opts.runtime_dir);
            *p = replace_path_prefix(p, &map(&dir.to_string_lossy()), MODULE_MOUNT);
        }
    }
    let env_name = format!("{name}-env");
    let python = argv
        .first()
        .and_then(|p| p.rsplit_once('/'))
        .map_or_else(|| "python3".to_owned(), |(dir, _)| format!("{dir}/python"));
    let mut pr = probes(&one, integration, &python);
    // health.exec's command names host paths too.
    if let Some(Value::Array(words)) = pr
        .action
        .as_mut()
        .and_then(|a| a.pointer_mut("/exec/command"))
    {
        for w in words.iter_mut() {
            if let Value::String(text) = w {
                *text = map(text);
            }
        }
    }

    let mut out = String::new();
    out.push_str(&format!(
        "# {}: {} ({}), exported by `prodserver export kubernetes` from {}.\n",
        spec.name,
        kind_name(kind),
        spec.backend.name(),
        plan.config_path.display()
    ));
    // The env document.
    let env_doc = match opts.env_as {
        EnvAs::ConfigMap => json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": env_name, "labels": labels(plan, spec) },
            "data": env,
        }),
        EnvAs::Secret => json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": { "name": env_name, "labels": labels(plan, spec) },
            "type": "Opaque",
            "stringData": env,
        }),
    };
    let env_note = match opts.env_as {
        EnvAs::ConfigMap => "The file's env for this process (env files included), as exported: values a ConfigMap shows to anyone who can read it; use --env-as secret for secrets.",
        EnvAs::Secret => "The file's env for this process (env files included), as exported, in a Secret.",
    };
    out.push_str(&yaml::document(&[env_note], &env_doc));

    let mut notes: Vec<String> = Vec::new();
    match kind {
        Workload::Deployment => notes.push(format!(
            "A Deployment: replicas = instances ({}). rollout = \"{}\" as its rolling update.",
            spec.instances,
            match spec.rollout {
                RolloutMode::Replace => "replace",
                RolloutMode::Surge => "surge",
            }
        )),
        Workload::StatefulSet => notes.push("A singleton: a StatefulSet of 1 never starts a second pod while the first may still run (a Deployment, even with Recreate, may: a pod on an unreachable node is replaced before it is known dead). Two beats would send every periodic task twice.".into()),
        Workload::Job => notes.push(format!(
            "A oneshot: a Job, run once per release. Apply it and wait for it (`kubectl wait --for=condition=complete job/{name} --timeout=-1s`) before the rest; delete it before the next release (a Job's pod template cannot change). For Helm, annotate it `helm.sh/hook: pre-install,pre-upgrade` instead."
        )),
    }
    if spec.instances > 1 && one.argv != spec.for_instance(2).argv {
        notes.push("{instance} differs per instance under prodserver; every replica runs instance 1's command line (each pod has its own network, so the same port is fine).".into());
    }
    if !moved.is_empty() {
        notes.push(format!(
            "Bound to every address ({}): probes and Services reach the pod's IP, not its loopback.",
            moved.join(", ")
        ));
    }
    if !spec.depends_on.is_empty() {
        let deps = crate::check::dependencies(plan, spec);
        notes.push(format!(
            "depends_on {}: Kubernetes starts everything at once; Jobs go first (see their comment), and a pod whose dependency is not up yet fails and is restarted.",
            deps.join(", ")
        ));
    }
    notes.push(format!(
        "terminationGracePeriodSeconds: stop_timeout {}s{} + {}s margin.",
        secs_up(spec.stop_timeout),
        match spec.escalate_signal {
            Some(sig) => format!(
                " + kill_timeout {}s (prodserver would send {} in between; here SIGKILL comes at the end)",
                secs_up(spec.kill_timeout),
                crate::signals::signal_name(sig)
            ),
            None => String::new(),
        },
        GRACE_MARGIN.as_secs()
    ));
    if spec.stop_signal != libc::SIGTERM {
        notes.push(format!(
            "stop_signal is {}: Kubernetes sends SIGTERM (or the image's STOPSIGNAL); build the image with `STOPSIGNAL {}`.",
            crate::signals::signal_name(spec.stop_signal),
            crate::signals::signal_name(spec.stop_signal)
        ));
    }
    if spec.user.is_some() || spec.group.is_some() {
        notes.push("user/group: set securityContext.runAsUser/runAsGroup to their numeric ids in the image.".into());
    }
    if spec.limits.max_memory_per_child.is_some() || spec.limits.max_tasks_per_child.is_some() {
        notes.push("Recycling (max_memory_per_child, max_tasks_per_child) is prodserver's: not done here (resources.limits.memory only kills).".into());
    }
    if !pr.why.is_empty() {
        notes.push(format!("Probes: {}", pr.why));
    }

    let mut container = json!({
        "name": label(&spec.name),
        "image": opts.image,
        "command": argv,
        "workingDir": map(&one.cwd.to_string_lossy()),
        "envFrom": [match opts.env_as {
            EnvAs::ConfigMap => json!({ "configMapRef": { "name": env_name } }),
            EnvAs::Secret => json!({ "secretRef": { "name": env_name } }),
        }],
        "env": [
            { "name": "PRODSERVER_PROCESS", "value": spec.name },
            { "name": "PRODSERVER_INSTANCE", "value": "1" },
        ],
    });
    if integration {
        if let Some(Value::Array(vars)) = container.get_mut("env") {
            vars.push(json!({ "name": "PRODSERVER_HEARTBEAT_FILE", "value": HEARTBEAT_FILE }));
        }
    }
    if let Some(action) = &pr.action {
        if kind != Workload::Job {
            let probe = |extra: Value| {
                let mut p = action.clone();
                if let (Value::Object(p), Value::Object(extra)) = (&mut p, extra) {
                    p.extend(extra);
                }
                p
            };
            container["startupProbe"] = probe(json!({
                "periodSeconds": 5,
                "timeoutSeconds": pr.timeout,
                "failureThreshold": pr.start_within.div_ceil(5).max(1),
            }));
            container["readinessProbe"] = probe(json!({
                "periodSeconds": pr.period,
                "timeoutSeconds": pr.timeout,
                "failureThreshold": pr.failures,
            }));
            // Conservative: a restart is the last resort, so it takes
            // twice the readiness patience at a slower pace.
            container["livenessProbe"] = probe(json!({
                "periodSeconds": pr.period.max(20),
                "timeoutSeconds": pr.timeout.max(5),
                "failureThreshold": (pr.failures * 2).max(6),
            }));
        }
    }
    if let Some(Listen::Tcp { port, .. }) = one.listen.first() {
        if let Ok(n) = port.parse::<u16>() {
            container["ports"] = json!([{ "name": "http", "containerPort": n }]);
        }
    }
    let mut volumes = Vec::new();
    if integration {
        container["volumeMounts"] = json!([
            { "name": "celery-integration", "mountPath": MODULE_MOUNT, "readOnly": true },
            { "name": "heartbeat", "mountPath": HEARTBEAT_DIR },
        ]);
        volumes.push(json!({
            "name": "celery-integration",
            "configMap": { "name": format!("{}-celery-integration", label(&plan.name)) },
        }));
        volumes.push(json!({ "name": "heartbeat", "emptyDir": {} }));
    }
    let mut pod_spec = json!({
        "terminationGracePeriodSeconds": grace_seconds(spec),
        "containers": [container],
    });
    if !volumes.is_empty() {
        pod_spec["volumes"] = Value::Array(volumes);
    }
    let template = |pod_spec: Value| {
        json!({
            "metadata": { "labels": labels(plan, spec) },
            "spec": pod_spec,
        })
    };
    let metadata = json!({ "name": name, "labels": labels(plan, spec) });
    let note_refs: Vec<&str> = notes.iter().map(String::as_str).collect();
    match kind {
        Workload::Deployment => {
            let strategy = match spec.rollout {
                RolloutMode::Replace => json!({ "maxSurge": 0, "maxUnavailable": 1 }),
                RolloutMode::Surge => json!({ "maxSurge": 1, "maxUnavailable": 0 }),
            };
            let doc = json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": metadata,
                "spec": {
                    "replicas": spec.instances,
                    "selector": { "matchLabels": selector(plan, spec) },
                    "strategy": { "type": "RollingUpdate", "rollingUpdate": strategy },
                    "template": template(pod_spec),
                },
            });
            out.push_str(&yaml::document(&note_refs, &doc));
        }
        Workload::StatefulSet => {
            let service = json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata.clone(),
                "spec": { "clusterIP": "None", "selector": selector(plan, spec) },
            });
            out.push_str(&yaml::document(
                &["The headless Service a StatefulSet names (it routes nothing)."],
                &service,
            ));
            let doc = json!({
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": metadata,
                "spec": {
                    "replicas": 1,
                    "serviceName": name,
                    "selector": { "matchLabels": selector(plan, spec) },
                    "template": template(pod_spec),
                },
            });
            out.push_str(&yaml::document(&note_refs, &doc));
        }
        Workload::Job => {
            pod_spec["restartPolicy"] = json!("Never");
            let doc = json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": metadata,
                "spec": {
                    // A failed migration is not retried blindly, as under
                    // prodserver: the release stops there.
                    "backoffLimit": 0,
                    "template": template(pod_spec),
                },
            });
            out.push_str(&yaml::document(&note_refs, &doc));
        }
    }
    out
}

fn kind_name(kind: Workload) -> &'static str {
    match kind {
        Workload::Deployment => "Deployment",
        Workload::StatefulSet => "StatefulSet",
        Workload::Job => "Job",
    }
}

fn integration_file(plan: &Plan) -> String {
    let doc = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": format!("{}-celery-integration", label(&plan.name)),
            "labels": {
                "app.kubernetes.io/name": label(&plan.name),
                "app.kubernetes.io/managed-by": "prodserver-export",
            },
        },
        "data": { format!("{}.py", crate::celery::MODULE): crate::celery::SOURCE },
    });
    yaml::document(
        &[
            "prodserver's Celery integration (the module prodserver loads into its workers and beat), mounted at /opt/prodserver-celery and first on PYTHONPATH.",
            "With PRODSERVER_HEARTBEAT_FILE it rewrites that file at each heartbeat: the exec probes read its age.",
        ],
        &doc,
    )
}

/// A YAML emitter for JSON values: block style, every string
/// double-quoted with JSON's escapes (a subset of YAML's double-quoted
/// scalars), so no value is ever read as another type (`"1"`, `"on"`).
pub mod yaml {
    use super::{Map, Value};

    /// `---`, the comment lines, then the value.
    pub fn document(comments: &[&str], value: &Value) -> String {
        let mut out = String::from("---\n");
        for c in comments {
            for line in wrap(c, 98) {
                out.push_str("# ");
                out.push_str(&line);
                out.push('\n');
            }
        }
        emit(value, 0, &mut out);
        out
    }

    fn wrap(text: &str, width: usize) -> Vec<String> {
        let mut lines = vec![String::new()];
        for word in text.split(' ') {
            let last = lines.last_mut().expect("one line at least");
            if !last.is_empty() && last.len() + 1 + word.len() > width {
                lines.push(word.to_owned());
            } else {
                if !last.is_empty() {
                    last.push(' ');
                }
                last.push_str(word);
            }
        }
        lines
    }

    fn scalar(v: &Value) -> String {
        // serde_json writes strings with JSON escapes and numbers, bools
        // and null as YAML reads them.
        v.to_string()
    }

    fn key(k: &str) -> String {
        let plain = !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
            && !matches!(
                k.to_ascii_lowercase().as_str(),
                "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
            )
            && !k.starts_with(['-', '.'])
            && k.parse::<f64>().is_err();
        if plain {
            k.to_owned()
        } else {
            Value::String(k.to_owned()).to_string()
        }
    }

    fn is_empty_collection(v: &Value) -> Option<&'static str> {
        match v {
            Value::Object(m) if m.is_empty() => Some("{}"),
            Value::Array(a) if a.is_empty() => Some("[]"),
            _ => None,
        }
    }

    fn emit(v: &Value, indent: usize, out: &mut String) {
        match v {
            Value::Object(m) => emit_map(m, indent, out),
            Value::Array(items) => {
                for item in items {
                    out.push_str(&" ".repeat(indent));
                    out.push('-');
                    if !matches!(item, Value::Array(a) if !a.is_empty()) {
                        out.push(' ');
                    }
                    match item {
                        Value::Object(m) if !m.is_empty() => {
                            // The first key on the dash's line, the rest
                            // aligned under it.
                            let mut first = String::new();
                            emit_map(m, indent + 2, &mut first);
                            out.push_str(&first[indent + 2..]);
                        }
                        Value::Array(a) if !a.is_empty() => {
                            out.push('\n');
                            emit(item, indent + 2, out);
                        }
                        _ => {
                            out.push_str(is_empty_collection(item).unwrap_or(&scalar(item)));
                            out.push('\n');
                        }
                    }
                }
            }
            _ => {
                out.push_str(&" ".repeat(indent));
                out.push_str(&scalar(v));
                out.push('\n');
            }
        }
    }

    /// Kubernetes' customary order: these first, the rest alphabetical.
    const FIRST: [&str; 4] = ["apiVersion", "kind", "name", "metadata"];

    fn emit_map(m: &Map<String, Value>, indent: usize, out: &mut String) {
        let first = FIRST.iter().filter_map(|k| m.get_key_value(*k));
        let rest = m.iter().filter(|(k, _)| !FIRST.contains(&k.as_str()));
        for (k, v) in first.chain(rest) {
            out.push_str(&" ".repeat(indent));
            out.push_str(&key(k));
            out.push(':');
            match v {
                Value::Object(inner) if !inner.is_empty() => {
                    out.push('\n');
                    emit_map(inner, indent + 2, out);
                }
                Value::Array(items) if !items.is_empty() => {
                    out.push('\n');
                    emit(v, indent, out);
                }
                _ => {
                    out.push(' ');
                    out.push_str(is_empty_collection(v).unwrap_or(&scalar(v)));
                    out.push('\n');
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::BackendKind;
    use crate::supervisor::order::tests::spec;
    use std::path::PathBuf;

    #[test]
    fn yaml_quotes_strings_and_nests_blocks() {
        let v = json!({
            "a": "on",
            "n": 3,
            "list": [{ "x": "1", "y": [] }, "s", [1, 2]],
            "empty": {},
            "app.kubernetes.io/name": "shop",
            "yes": true,
            "multi": "line\none",
        });
        let text = yaml::document(&["why"], &v);
        // `n`, `y`, `yes` are booleans to a YAML 1.1 reader: quoted.
        assert_eq!(
            text,
            "---\n# why\na: \"on\"\napp.kubernetes.io/name: \"shop\"\nempty: {}\nlist:\n- x: \"1\"\n  \"y\": []\n- \"s\"\n-\n  - 1\n  - 2\nmulti: \"line\\none\"\n\"n\": 3\n\"yes\": true\n"
        );
    }

    #[test]
    fn yaml_round_trips_through_json_semantics() {
        // Every string stays a string: the emitter's output parsed back by
        // a YAML reader would give the same value (checked end to end by
        // tests/export_kubernetes.rs with a real validator).
        let v = json!({ "s": "0777", "t": "true", "u": "ü\t\"q\"" });
        let text = yaml::document(&[], &v);
        assert!(text.contains("s: \"0777\""), "{text}");
        assert!(text.contains("t: \"true\""), "{text}");
        assert!(text.contains("u: \"ü\\t\\\"q\\\"\""), "{text}");
    }

    #[test]
    fn workloads_by_kind() {
        let mut s = spec("web", BackendKind::Gunicorn, &[]);
        assert_eq!(workload(&s), Workload::Deployment);
        s.singleton = true;
        assert_eq!(workload(&s), Workload::StatefulSet);
        s.oneshot = true;
        assert_eq!(workload(&s), Workload::Job);
    }

    #[test]
    fn grace_covers_the_escalation() {
        let mut s = spec("w", BackendKind::CeleryWorker, &[]);
        s.stop_timeout = Duration::from_secs(30);
        s.kill_timeout = Duration::from_secs(10);
        assert_eq!(grace_seconds(&s), 35);
        s.escalate_signal = Some(libc::SIGQUIT);
        assert_eq!(grace_seconds(&s), 45);
        s.stop_timeout = Duration::from_millis(30_500);
        assert_eq!(grace_seconds(&s), 46);
    }

    #[test]
    fn paths_move_into_the_image() {
        let root = PathBuf::from("/home/me/shop");
        let rt = PathBuf::from("/run/user/1000/prodserver");
        let m = |s: &str| pod_path(s, &root, &rt, "/app");
        assert_eq!(m("/home/me/shop/.venv/bin/celery"), "/app/.venv/bin/celery");
        assert_eq!(m("/home/me/shop"), "/app");
        assert_eq!(m("/home/me/shopping/x"), "/home/me/shopping/x");
        assert_eq!(
            m("--control-socket=/run/user/1000/prodserver/shop.web.1.ctl"),
            "--control-socket=/tmp/shop.web.1.ctl"
        );
        assert_eq!(m("/home/me/shop/src:/opt/lib"), "/app/src:/opt/lib");
        assert_eq!(m("/opt/x:/home/me/shop/src"), "/opt/x:/app/src");
        assert_eq!(m("x/home/me/shop"), "x/home/me/shop");
    }

    #[test]
    fn loopback_binds_open_up() {
        let argv: Vec<String> = ["gunicorn", "--bind=127.0.0.1:8000", "app"]
            .map(String::from)
            .to_vec();
        let listen = vec![Listen::Tcp {
            host: "127.0.0.1".into(),
            port: "8000".into(),
            tls: false,
        }];
        let (a, moved) = unbind_loopback(&argv, &listen);
        assert_eq!(a[1], "--bind=0.0.0.0:8000");
        assert_eq!(moved, ["127.0.0.1:8000 -> 0.0.0.0:8000"]);
        let public = vec![Listen::Tcp {
            host: "0.0.0.0".into(),
            port: "8000".into(),
            tls: false,
        }];
        assert_eq!(unbind_loopback(&argv, &public).0, argv);
    }

    #[test]
    fn names_are_labels_and_collisions_are_refused() {
        let mut p = crate::supervisor::order::tests::plan(vec![
            spec("Web_1", BackendKind::Gunicorn, &[]),
            spec("worker", BackendKind::CeleryWorker, &[]),
        ]);
        p.name = "My.Shop".into();
        assert_eq!(
            object_names(&p).unwrap(),
            ["my-shop-web-1", "my-shop-worker"]
        );
        p.processes[1].name = "web-1".into();
        let err = object_names(&p).unwrap_err();
        assert!(err.contains("both become \"my-shop-web-1\""), "{err}");
    }

    #[test]
    fn celery_probes_read_the_heartbeat_never_inspect_ping() {
        let mut s = spec("worker", BackendKind::CeleryWorker, &[]);
        s.readiness = DefaultReadiness::CeleryWorker;
        let p = probes(&s, true, "/app/.venv/bin/python");
        let action = p.action.expect("a probe");
        let cmd = action["exec"]["command"].as_array().expect("exec");
        assert_eq!(cmd[0], "/app/.venv/bin/python");
        assert!(cmd[2].as_str().unwrap().contains(HEARTBEAT_FILE));
        assert!(!action.to_string().contains("inspect"));
        // Without the integration nothing can be probed.
        assert!(probes(&s, false, "python3").action.is_none());
    }

    #[test]
    fn an_exec_probe_runs_the_image_s_paths() {
        let mut s = spec("web", BackendKind::Command, &[]);
        s.argv = vec!["/p/bin/serve".into()];
        s.cwd = PathBuf::from("/p");
        s.health = Some(crate::plan::HealthSpec {
            probe: Some(Probe::Exec {
                argv: vec!["/p/bin/ok".into(), "--quiet".into()],
            }),
            path: None,
            watchdog: None,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            retries: 3,
            start_period: Duration::ZERO,
            start_timeout: Duration::from_secs(60),
        });
        let p = crate::supervisor::order::tests::plan(vec![s]);
        let opts = Options {
            image: "img",
            workdir: "/app",
            env_as: EnvAs::ConfigMap,
            runtime_dir: Path::new("/run/ps"),
        };
        let files = export(&p, &opts).unwrap();
        let text = &files[0].contents;
        assert!(text.contains("- \"/app/bin/ok\""), "{text}");
        assert!(text.contains("- \"/app/bin/serve\""), "{text}");
        assert!(!text.contains("\"/p/"), "{text}");
    }

    #[test]
    fn a_default_web_probe_is_a_connect() {
        let mut s = spec("web", BackendKind::Gunicorn, &[]);
        s.readiness = DefaultReadiness::Serving;
        s.listen = vec![Listen::Tcp {
            host: "127.0.0.1".into(),
            port: "8000".into(),
            tls: false,
        }];
        let p = probes(&s, false, "python3");
        assert_eq!(p.action, Some(json!({ "tcpSocket": { "port": 8000 } })));
    }
}
