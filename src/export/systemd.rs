//! systemd units: one unit running `prodserver start` (the default), or
//! one unit per process plus a target (`--per-process`, foreman's model).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{seconds, stop_budget, whole_stop_timeout, without_celery_integration, File};
use crate::check::{fds_needed, FDS_BASE, FDS_PER_INSTANCE};
use crate::plan::{BackendKind, Condition, Plan, ProcessSpec, RestartPolicy};
use crate::resolve::ResolvedPlan;
use crate::supervisor::order;

/// What the plan alone does not say.
pub struct Options<'a> {
    /// A `--user` unit (the user's own manager) rather than a system unit.
    pub user_unit: bool,
    /// The prodserver binary, absolute (the one running the export).
    pub exe: PathBuf,
    /// The user a system unit runs as when nothing in the plan needs root:
    /// the config file's owner, `None` when that is root.
    pub owner: Option<String>,
    /// A bare program name (`celery`) looked up on the `PATH` the child
    /// would get: the file's own `PATH` when it sets one (given), else the
    /// inherited one; `None` when not found.
    pub lookup: &'a dyn Fn(&str, Option<&str>) -> Option<PathBuf>,
}

/// systemd's soft `RLIMIT_NOFILE` for services: above it prodserver must
/// raise its own soft limit.
const SOFT_NOFILE: u64 = 1024;
/// systemd's default hard limit since v240: never lowered by an export,
/// since children inherit the hard limit and may raise their soft one.
const HARD_NOFILE: u64 = 524_288;

/// How often systemd expects a sign of life; prodserver sends one at half
/// of it from its main loop. The loop never blocks for long (it sleeps
/// until an event; a memory sweep of 1,000 trees takes ~100 ms), so 30 s
/// only fires for a loop that is really stuck, even on a swapping host.
pub const WATCHDOG_SEC: u64 = 30;

/// `LimitNOFILE=` for a plan that needs `needed` descriptors: `None` when
/// the default soft limit is enough. Otherwise the soft limit stays 1024
/// (prodserver gives its children the soft limit it was started with, as
/// `select()` needs) and the hard one is at least systemd's default.
pub fn limit_nofile(needed: u64) -> Option<String> {
    (needed > SOFT_NOFILE).then(|| {
        let hard = needed.next_power_of_two().max(HARD_NOFILE);
        format!("{SOFT_NOFILE}:{hard}")
    })
}

/// The default export: `PROJECT.service`, running the whole plan.
pub fn single(plan: &Plan, opts: &Options) -> Result<Vec<File>, String> {
    let root_needed = needs_root(plan);
    if opts.user_unit && !root_needed.is_empty() {
        return Err(user_unit_refusal(&root_needed));
    }
    let name = format!("{}.service", plan.name);
    let mut u = Unit::default();
    u.comment(&format!(
        "{name}: runs {}'s processes under prodserver. Exported by `prodserver export systemd{}` from:",
        plan.name,
        if opts.user_unit { " --user" } else { "" },
    ));
    u.verbatim(&format!("  {}", plan.config_path.display()));
    u.comment("TimeoutStopSec and LimitNOFILE come from the file's stop timeouts and instances: export again after changing those; `systemctl reload` applies any other change.");
    u.comment("prodserver reads the file itself: variables it expands (${NAME}) come from this unit's environment (add Environment= or EnvironmentFile= for them).");
    u.section("Unit");
    let names: Vec<&str> = plan.processes.iter().map(|p| p.name.as_str()).collect();
    u.set(
        "Description",
        &format!("prodserver: {} ({})", plan.name, names.join(", ")),
    );
    if !opts.user_unit {
        u.set("Wants", "network-online.target");
        u.set("After", "network-online.target");
    }
    u.section("Service");
    u.comment("prodserver sends READY=1 once every process is ready (oneshots completed, health checks passed); only its own notifications count.");
    u.set("Type", "notify");
    u.set("NotifyAccess", "main");
    let exe = opts.exe.to_string_lossy();
    let config = plan.config_path.to_string_lossy();
    u.set(
        "ExecStart",
        &exec_line(&[exe.as_ref(), "start", "-c", config.as_ref()]),
    );
    u.comment("HUP: re-read the file and apply the difference (unchanged processes keep running).");
    u.set("ExecReload", "/bin/kill -HUP $MAINPID");
    u.set("WorkingDirectory", &path_value(&plan.root));
    u.comment("mixed: the stop signal goes to prodserver alone, which stops the processes in order and lets Celery workers finish their running tasks. The default (control-group) sends TERM to every process at once, Celery's pool children included: their running tasks die with WorkerLostError. What is left after TimeoutStopSec gets SIGKILL.");
    u.set("KillMode", "mixed");
    u.comment(&format!(
        "A graceful stop, wave after wave: {}; plus {} for prodserver's own exit (writing the children's last log lines).",
        stop_breakdown(plan),
        seconds(super::STOP_MARGIN),
    ));
    u.set("TimeoutStopSec", &seconds(whole_stop_timeout(plan)));
    u.comment("Readiness waits for oneshots (a migration) that take as long as they take; prodserver bounds each process's own readiness with start_timeout.");
    u.set("TimeoutStartSec", "infinity");
    u.set("Restart", "on-failure");
    u.set("RestartSec", "5s");
    u.comment("Exit 2 is an invalid config file: restarting cannot fix it.");
    u.set("RestartPreventExitStatus", &crate::exit::CONFIG.to_string());
    u.comment(&format!(
        "prodserver sends WATCHDOG=1 every {}s from its main loop: a loop stuck for {WATCHDOG_SEC}s is aborted and restarted.",
        WATCHDOG_SEC / 2
    ));
    u.set("WatchdogSec", &format!("{WATCHDOG_SEC}s"));
    let needed = fds_needed(plan);
    let instances: u64 = plan.processes.iter().map(|p| u64::from(p.instances)).sum();
    match limit_nofile(needed) {
        Some(limit) => {
            u.comment(&format!(
                "{instances} instances need about {needed} descriptors ({FDS_BASE} + {FDS_PER_INSTANCE} per instance: log pipes, notify socket, pidfd, a probe), more than the soft limit of {SOFT_NOFILE}. prodserver raises its own soft limit to the hard one and starts its children with the soft {SOFT_NOFILE} (select() breaks above it)."
            ));
            u.set("LimitNOFILE", &limit);
        }
        None => u.comment(&format!(
            "{instances} instances need about {needed} descriptors: the default LimitNOFILE is enough."
        )),
    }
    if !opts.user_unit {
        if !root_needed.is_empty() {
            u.comment(&format!(
                "Runs as root: {} drop to their own `user`, which needs root.",
                root_needed.join(", ")
            ));
        } else if let Some(owner) = &opts.owner {
            u.comment("The config file's owner; no process needs root.");
            u.set("User", owner);
        } else {
            u.comment("Runs as root (the config file's owner): set User= to run as someone else.");
        }
    }
    u.section("Install");
    u.set("WantedBy", wanted_by(opts.user_unit));
    Ok(vec![File {
        name,
        contents: u.text,
    }])
}

/// `--per-process`: a unit per process (a template `PROJECT-NAME@.service`
/// for several instances, `%i` standing for `{instance}`) and
/// `PROJECT.target` pulling them all in.
pub fn per_process(
    plan: &Plan,
    resolved: &ResolvedPlan,
    opts: &Options,
) -> Result<Vec<File>, String> {
    let root_needed = needs_root(plan);
    if opts.user_unit && !root_needed.is_empty() {
        return Err(user_unit_refusal(&root_needed));
    }
    let target = format!("{}.target", plan.name);
    let before = oneshot_before(plan);
    let mut files = Vec::new();
    for (id, spec) in plan.processes.iter().enumerate() {
        let module_dir = super::celery_module_dir(resolved, id);
        let unit = process_unit(plan, id, spec, module_dir, &before[id], &target, opts);
        files.push(File {
            name: unit_file_name(plan, spec),
            contents: unit,
        });
    }
    let mut t = Unit::default();
    t.comment(&format!(
        "{target}: starts and stops {}'s processes together (`systemctl start {target}`). Exported by `prodserver export systemd --per-process{}` from:",
        plan.name,
        if opts.user_unit { " --user" } else { "" },
    ));
    t.verbatim(&format!("  {}", plan.config_path.display()));
    t.section("Unit");
    t.set(
        "Description",
        &format!("{} (exported from prodserver)", plan.name),
    );
    let all: Vec<String> = (0..plan.processes.len())
        .flat_map(|id| instance_units(plan, id))
        .collect();
    t.set("Wants", &all.join(" "));
    t.section("Install");
    t.set("WantedBy", wanted_by(opts.user_unit));
    files.push(File {
        name: target,
        contents: t.text,
    });
    Ok(files)
}

fn process_unit(
    plan: &Plan,
    id: usize,
    spec: &ProcessSpec,
    module_dir: Option<&Path>,
    before: &[usize],
    target: &str,
    opts: &Options,
) -> String {
    let template = spec.instances > 1;
    let file = unit_file_name(plan, spec);
    let mut u = Unit::default();
    let what = if template {
        format!(
            "{} ({}), one unit per instance: {}",
            spec.name,
            spec.backend.name(),
            instance_units(plan, id).join(" ")
        )
    } else {
        format!("{} ({})", spec.name, spec.backend.name())
    };
    u.comment(&format!(
        "{file}: {what}. Exported by `prodserver export systemd --per-process{}` from:",
        if opts.user_unit { " --user" } else { "" },
    ));
    u.verbatim(&format!("  {}", plan.config_path.display()));
    u.comment(&lost_without_prodserver(spec));
    u.comment("Environment= holds the values as they were when exported, env_file secrets included, and unit files are world-readable: move secrets to an EnvironmentFile= of mode 0600.");
    u.section("Unit");
    let description = if template {
        format!("{} {} (instance %i)", plan.name, spec.name)
    } else {
        format!("{} {}", plan.name, spec.name)
    };
    u.set("Description", &description);
    u.set("PartOf", target);
    if !spec.depends_on.is_empty() {
        u.comment("depends_on: `completed` and `healthy` become Requires= (systemd knows no health: a dependency counts once started, or for a oneshot once exited 0), `started` becomes Wants=; all of them After=.");
    }
    let mut after = Vec::new();
    let mut requires = Vec::new();
    let mut wants = Vec::new();
    for d in &spec.depends_on {
        let units = instance_units(plan, d.process);
        after.extend(units.iter().cloned());
        match d.condition {
            Condition::Completed | Condition::Healthy => requires.extend(units),
            Condition::Started => wants.extend(units),
        }
    }
    if !after.is_empty() {
        u.set("After", &after.join(" "));
    }
    if !requires.is_empty() {
        u.set("Requires", &requires.join(" "));
    }
    if !wants.is_empty() {
        u.set("Wants", &wants.join(" "));
    }
    if !before.is_empty() {
        u.comment("A oneshot (a release step) runs before the long-running processes that do not lead to it.");
        let units: Vec<String> = before
            .iter()
            .flat_map(|&b| instance_units(plan, b))
            .collect();
        u.set("Before", &units.join(" "));
    }
    if !spec.oneshot {
        u.comment("max_restarts within restart_window.");
        u.set(
            "StartLimitIntervalSec",
            &if spec.max_restarts == 0 {
                "0".to_owned()
            } else {
                seconds(spec.restart_window)
            },
        );
        if spec.max_restarts > 0 {
            u.set("StartLimitBurst", &spec.max_restarts.to_string());
        }
    }

    u.section("Service");
    if spec.oneshot {
        u.set("Type", "oneshot");
        u.set("RemainAfterExit", "yes");
        u.comment("A release step takes as long as it takes.");
        u.set("TimeoutStartSec", "infinity");
    } else if notifies_readiness(spec) {
        u.comment("health = { notify = true }: the process says READY=1 on $NOTIFY_SOCKET, to systemd now.");
        u.set("Type", "notify");
        u.set("NotifyAccess", "main");
    } else {
        u.set("Type", "exec");
    }
    if let Some(watchdog) = spec.health.as_ref().and_then(|h| h.watchdog) {
        u.comment("health.watchdog: the process sends WATCHDOG=1 at least this often.");
        u.set("WatchdogSec", &seconds(watchdog));
        if spec.oneshot || !notifies_readiness(spec) {
            u.set("NotifyAccess", "main");
        }
    }
    let (argv, env) = if template {
        (spec.argv.clone(), spec.env.clone())
    } else {
        let one = spec.for_instance(1);
        (one.argv, one.env)
    };
    let (mut argv, env) = without_celery_integration(&argv, &env, module_dir);
    if let Some(program) = argv.first_mut() {
        if !program.contains('/') {
            match (opts.lookup)(program, env.get("PATH").map(String::as_str)) {
                Some(found) => *program = found.to_string_lossy().into_owned(),
                None => u.comment(&format!(
                    "`{program}` was not on PATH when exported: systemd looks it up in its own search path."
                )),
            }
        }
    }
    let words: Vec<String> = argv.iter().map(|a| exec_word(a, template)).collect();
    u.set("ExecStart", &words.join(" "));
    u.set("WorkingDirectory", &path_value(&spec.cwd));
    let mut all = env;
    all.insert("PRODSERVER_PROCESS".into(), spec.name.clone());
    all.insert(
        "PRODSERVER_INSTANCE".into(),
        if template {
            "{instance}".into()
        } else {
            "1".into()
        },
    );
    for (k, v) in &all {
        u.set("Environment", &env_assignment(k, v, template));
    }
    if !opts.user_unit {
        if let Some(user) = &spec.user {
            u.set("User", user);
        }
        if let Some(group) = &spec.group {
            u.set("Group", group);
        }
    }
    u.comment("The stop signal to the main pid only; after TimeoutStopSec, SIGKILL to every process left.");
    u.set("KillMode", "mixed");
    u.set("KillSignal", &crate::signals::signal_name(spec.stop_signal));
    u.set("TimeoutStopSec", &seconds(spec.stop_timeout));
    if !spec.oneshot {
        u.comment(&format!(
            "restart = \"{}\"; backoff starts at RestartSec but does not double here.",
            spec.restart.name()
        ));
        u.set("Restart", restart_value(spec.restart));
        u.set("RestartSec", &seconds(spec.backoff.initial));
    }
    u.section("Install");
    u.set("WantedBy", target);
    u.text
}

/// The process reports its own readiness with the child protocol, which
/// is sd_notify's: under systemd that makes a `Type=notify` unit.
fn notifies_readiness(spec: &ProcessSpec) -> bool {
    !spec.oneshot
        && spec
            .health
            .as_ref()
            .is_some_and(|h| matches!(h.probe, Some(crate::plan::Probe::Notify)))
}

/// What a unit does not do that prodserver did for this process.
fn lost_without_prodserver(spec: &ProcessSpec) -> String {
    let mut lost = vec![
        "log prefixes (output goes to the journal as is)",
        if notifies_readiness(spec) {
            "health checks beyond its READY=1"
        } else {
            "health checks and readiness gates beyond start order"
        },
        "restart backoff growth",
    ];
    if spec.limits.max_memory_per_child.is_some() || spec.limits.max_tasks_per_child.is_some() {
        lost.push("recycling (max_memory_per_child, max_tasks_per_child)");
    }
    if spec.celery.as_ref().is_some_and(|c| c.integration) {
        lost.push("the Celery integration (readiness, task counts)");
    }
    if spec.escalate_signal.is_some() {
        lost.push("the escalation signal before SIGKILL (Celery's cold shutdown, which puts unacknowledged messages back on the broker)");
    }
    if spec.singleton {
        lost.push("the host-wide lock (never start this unit twice)");
    }
    lost.push("the variables of prodserver's own environment (only the file's are set here)");
    format!("Without prodserver this unit loses: {}.", lost.join("; "))
}

fn restart_value(r: RestartPolicy) -> &'static str {
    match r {
        RestartPolicy::Always => "always",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Never => "no",
    }
}

fn wanted_by(user_unit: bool) -> &'static str {
    if user_unit {
        "default.target"
    } else {
        "multi-user.target"
    }
}

/// Processes whose `user`/`group` need prodserver to run as root.
fn needs_root(plan: &Plan) -> Vec<String> {
    plan.processes
        .iter()
        .filter(|p| p.user.is_some() || p.group.is_some())
        .map(|p| p.name.clone())
        .collect()
}

fn user_unit_refusal(names: &[String]) -> String {
    format!(
        "a --user unit runs as you, but {} set `user`/`group`, which needs root: export a system unit (without --user)",
        names.join(", ")
    )
}

/// `PROJECT-NAME.service`, or the template `PROJECT-NAME@.service`.
fn unit_file_name(plan: &Plan, spec: &ProcessSpec) -> String {
    if spec.instances > 1 {
        format!("{}-{}@.service", plan.name, spec.name)
    } else {
        format!("{}-{}.service", plan.name, spec.name)
    }
}

/// The units a process runs as: one, or one per instance of its template.
fn instance_units(plan: &Plan, id: usize) -> Vec<String> {
    let spec = &plan.processes[id];
    if spec.instances > 1 {
        (1..=spec.instances)
            .map(|n| format!("{}-{}@{n}.service", plan.name, spec.name))
            .collect()
    } else {
        vec![format!("{}-{}.service", plan.name, spec.name)]
    }
}

/// For each process: when it is a oneshot (a release step such as
/// `migrate`), the processes it is ordered `Before=`: the Django side (web
/// servers, workers, beat) that does not lead to it and is not already
/// after it, unless that would close a cycle through other dependencies.
/// `command` processes (a broker, a helper) keep running beside it, as
/// under prodserver.
pub fn oneshot_before(plan: &Plan) -> Vec<Vec<usize>> {
    let n = plan.processes.len();
    // edges[a] holds b when a must start before b.
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (b, spec) in plan.processes.iter().enumerate() {
        for d in &spec.depends_on {
            if d.process < n {
                edges[d.process].push(b);
            }
        }
    }
    let mut before = vec![Vec::new(); n];
    for o in (0..n).filter(|&o| plan.processes[o].oneshot) {
        let leads_to_o = order::closure(plan, &[o]);
        let django = |x: &usize| {
            let p = &plan.processes[*x];
            !p.oneshot && p.backend != BackendKind::Command
        };
        for x in (0..n).filter(django).filter(|x| !leads_to_o.contains(x)) {
            if reaches(&edges, o, x) || reaches(&edges, x, o) {
                continue;
            }
            edges[o].push(x);
            before[o].push(x);
        }
    }
    before
}

fn reaches(edges: &[Vec<usize>], from: usize, to: usize) -> bool {
    let mut seen = vec![false; edges.len()];
    let mut stack = vec![from];
    while let Some(v) = stack.pop() {
        if v == to {
            return true;
        }
        if !std::mem::replace(&mut seen[v], true) {
            stack.extend(edges[v].iter().copied());
        }
    }
    false
}

/// Each stop wave's processes and budget, for the TimeoutStopSec comment.
fn stop_breakdown(plan: &Plan) -> String {
    let mut parts: Vec<String> = order::stop_waves(plan)
        .iter()
        .filter_map(|wave| {
            let running: Vec<&ProcessSpec> = wave
                .iter()
                .map(|&p| &plan.processes[p])
                .filter(|p| !p.oneshot)
                .collect();
            let longest = running.iter().max_by_key(|p| stop_budget(p))?;
            let names: Vec<&str> = running.iter().map(|p| p.name.as_str()).collect();
            let how = match longest.escalate_signal {
                Some(sig) => format!(
                    "{} stop_timeout + {} kill_timeout after {}",
                    seconds(longest.stop_timeout),
                    seconds(longest.kill_timeout),
                    crate::signals::signal_name(sig)
                ),
                None => seconds(longest.stop_timeout),
            };
            Some(format!("{} {how}", names.join(", ")))
        })
        .collect();
    if let Some(o) = plan
        .processes
        .iter()
        .filter(|p| p.oneshot)
        .max_by_key(|p| stop_budget(p))
    {
        parts.push(format!(
            "a oneshot still running ({}) {}",
            o.name,
            seconds(stop_budget(o))
        ));
    }
    if parts.is_empty() {
        "nothing runs".to_owned()
    } else {
        parts.join("; then ")
    }
}

/// A unit file being written: sections, settings and wrapped comments.
#[derive(Default)]
struct Unit {
    text: String,
}

impl Unit {
    fn section(&mut self, name: &str) {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        let _ = writeln!(self.text, "[{name}]");
    }

    fn set(&mut self, key: &str, value: &str) {
        let _ = writeln!(self.text, "{key}={value}");
    }

    /// A comment line kept whole (a path: wrapping it would depend on
    /// where the project lives).
    fn verbatim(&mut self, line: &str) {
        let _ = writeln!(self.text, "#{line}");
    }

    fn comment(&mut self, text: &str) {
        for line in wrap(text, 76) {
            let _ = writeln!(self.text, "# {line}");
        }
    }
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// `%` is systemd's specifier character in every setting: written `%%`.
/// In a template, the literal `{instance}` becomes `%i` (the instance
/// name, `1` in `NAME@1.service`).
fn specifiers(text: &str, template: bool) -> String {
    let escape = |s: &str| s.replace('%', "%%");
    if template {
        text.split("{instance}")
            .map(escape)
            .collect::<Vec<_>>()
            .join("%i")
    } else {
        escape(text)
    }
}

/// A path setting (`WorkingDirectory=`): taken as the rest of the line,
/// only specifiers are expanded.
fn path_value(path: &Path) -> String {
    specifiers(&path.to_string_lossy(), false)
}

/// One word of `ExecStart=`: specifiers escaped, `$` doubled (systemd
/// expands `$NAME` there), and quoted with C escapes when a bare word could
/// not hold it (blanks, quotes, backslashes, control characters, a lone
/// `;` that would separate commands, the empty word).
pub fn exec_word(arg: &str, template: bool) -> String {
    let word = specifiers(arg, template).replace('$', "$$");
    let bare = !word.is_empty()
        && word != ";"
        && !word
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\'));
    if bare {
        word
    } else {
        quote(&word)
    }
}

fn exec_line(argv: &[&str]) -> String {
    argv.iter()
        .map(|a| exec_word(a, false))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One `Environment=` assignment, always quoted: systemd unquotes it and
/// reads C escapes; `$` is literal there, `%` is a specifier.
pub fn env_assignment(key: &str, value: &str, template: bool) -> String {
    quote(&specifiers(&format!("{key}={value}"), template))
}

fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::BackendKind;
    use crate::supervisor::order::tests::{plan, spec};

    #[test]
    fn nofile_is_raised_only_above_the_soft_limit_and_never_lowers_the_hard_one() {
        assert_eq!(limit_nofile(1024), None);
        assert_eq!(limit_nofile(1025).as_deref(), Some("1024:524288"));
        assert_eq!(limit_nofile(600_000).as_deref(), Some("1024:1048576"));
    }

    #[test]
    fn exec_words_escape_what_systemd_would_expand_or_split() {
        assert_eq!(
            exec_word("--bind=127.0.0.1:8000", false),
            "--bind=127.0.0.1:8000"
        );
        assert_eq!(exec_word("a b", false), "\"a b\"");
        assert_eq!(exec_word("", false), "\"\"");
        assert_eq!(exec_word(";", false), "\";\"");
        assert_eq!(exec_word("a;b", false), "a;b");
        assert_eq!(exec_word("$HOME", false), "$$HOME");
        assert_eq!(exec_word("100%", false), "100%%");
        assert_eq!(exec_word("say \"hi\"\\", false), "\"say \\\"hi\\\"\\\\\"");
        assert_eq!(exec_word("a\nb", false), "\"a\\nb\"");
        assert_eq!(exec_word("800{instance}", true), "800%i");
        assert_eq!(exec_word("800{instance}", false), "800{instance}");
    }

    #[test]
    fn env_assignments_are_quoted_and_keep_dollars() {
        assert_eq!(env_assignment("A", "b c", false), "\"A=b c\"");
        assert_eq!(env_assignment("A", "$x%", false), "\"A=$x%%\"");
        assert_eq!(env_assignment("P", "80{instance}", true), "\"P=80%i\"");
        assert_eq!(env_assignment("Q", "\"\\", false), "\"Q=\\\"\\\\\"");
    }

    #[test]
    fn a_oneshot_runs_before_what_does_not_lead_to_it() {
        use BackendKind::{CeleryWorker as Worker, Command as Cmd, Gunicorn as Web};
        let mut migrate = spec("migrate", Cmd, &[1]); // depends on redis
        migrate.oneshot = true;
        let p = plan(vec![
            migrate,
            spec("redis", Cmd, &[]),
            spec("web", Web, &[]),
            spec("worker", Worker, &[1]),
            spec("helper", Cmd, &[]),
            spec("api", Web, &[0]),
        ]);
        let before = oneshot_before(&p);
        // Not redis (it leads to migrate), not helper (a command), not api
        // (already after migrate).
        assert_eq!(before[0], vec![2, 3]);
        assert!(before[1..].iter().all(|b| b.is_empty()));
    }

    #[test]
    fn oneshot_ordering_never_closes_a_cycle() {
        use BackendKind::{Command as Cmd, Gunicorn as Web};
        // a depends on y, b depends on z: a before z and b before y would
        // make a -> z -> b -> y -> a.
        let mut a = spec("a", Cmd, &[2]);
        a.oneshot = true;
        let mut b = spec("b", Cmd, &[3]);
        b.oneshot = true;
        let p = plan(vec![a, b, spec("y", Web, &[]), spec("z", Web, &[])]);
        let before = oneshot_before(&p);
        assert_eq!(before[0], vec![3]);
        assert!(before[1].is_empty(), "{before:?}");
    }

    fn options(user_unit: bool, owner: Option<&str>) -> Options<'static> {
        Options {
            user_unit,
            exe: "/usr/bin/prodserver".into(),
            owner: owner.map(String::from),
            lookup: &|_: &str, _: Option<&str>| None,
        }
    }

    #[test]
    fn a_system_unit_runs_as_the_files_owner_unless_root_is_needed() {
        let p = plan(vec![spec("web", BackendKind::Gunicorn, &[])]);
        let unit = &single(&p, &options(false, Some("deploy"))).unwrap()[0].contents;
        assert!(unit.contains("\nUser=deploy\n"), "{unit}");
        let unit = &single(&p, &options(false, None)).unwrap()[0].contents;
        assert!(!unit.contains("\nUser="), "{unit}");
        let unit = &single(&p, &options(true, Some("deploy"))).unwrap()[0].contents;
        assert!(!unit.contains("\nUser="), "{unit}");
        assert!(unit.contains("WantedBy=default.target"), "{unit}");
    }

    #[test]
    fn many_instances_raise_the_hard_nofile_limit() {
        let mut web = spec("web", BackendKind::Gunicorn, &[]);
        let unit = &single(&plan(vec![web.clone()]), &options(false, None)).unwrap()[0].contents;
        assert!(!unit.contains("LimitNOFILE="), "{unit}");
        web.instances = 200; // 32 + 6 * 200 = 1232 descriptors
        let unit = &single(&plan(vec![web]), &options(false, None)).unwrap()[0].contents;
        assert!(unit.contains("\nLimitNOFILE=1024:524288\n"), "{unit}");
    }

    #[test]
    fn a_user_unit_refuses_processes_that_need_root() {
        let mut web = spec("web", BackendKind::Gunicorn, &[]);
        web.user = Some("www-data".into());
        let p = plan(vec![web]);
        let lookup = |_: &str, _: Option<&str>| None;
        let opts = Options {
            user_unit: true,
            exe: "/usr/bin/prodserver".into(),
            owner: None,
            lookup: &lookup,
        };
        let e = single(&p, &opts).unwrap_err();
        assert!(e.contains("web set `user`/`group`"), "{e}");
        let system = Options {
            user_unit: false,
            ..opts
        };
        let unit = &single(&p, &system).unwrap()[0].contents;
        assert!(!unit.contains("\nUser="), "{unit}");
        assert!(unit.contains("WantedBy=multi-user.target"), "{unit}");
    }
}
