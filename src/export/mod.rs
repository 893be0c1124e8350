//! `prodserver export`: the loaded plan written as files other tools run.
//!
//! Pure functions from a [`Plan`] (and its [`ResolvedPlan`]) to file
//! contents; `main.rs` does the writing. Two targets:
//! - [`systemd`]: one unit running `prodserver start` (the default), or
//!   one unit per process plus a target, for teams that want systemd to
//!   supervise each process;
//! - [`procfile`]: a Procfile for honcho and foreman;
//! - [`kubernetes`]: manifests for a cluster.

pub mod kubernetes;
pub mod procfile;
pub mod systemd;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::ExportTarget;
use crate::config::LoadOptions;
use crate::error::Error;
use crate::plan::{Plan, ProcessSpec};
use crate::supervisor::order;

/// `prodserver export ...`: loads the file as `start` would (so nothing is
/// exported that `start` refuses), renders, then prints or writes.
pub fn run(
    target: ExportTarget,
    path: &Path,
    opts: &LoadOptions,
    color: bool,
) -> Result<i32, Error> {
    // Only the single unit runs prodserver, which holds the sockets; a
    // Procfile line, a unit per process or a pod runs the server alone,
    // binding its own address (`--fd=3` would name nothing there).
    let opts = &LoadOptions {
        hold_sockets: matches!(
            target,
            ExportTarget::Systemd {
                per_process: false,
                ..
            }
        ),
        ..opts.clone()
    };
    let (loaded, resolved) =
        crate::resolve::load(path, opts).map_err(|e| Error::config(path, e))?;
    if !loaded.warnings.is_empty() {
        eprint!("{}", loaded.sources.render(&loaded.warnings, color));
    }
    let plan = &loaded.plan;
    let inherited_path = opts.env.get("PATH").cloned();
    let lookup =
        |name: &str, path: Option<&str>| find_program(name, path.or(inherited_path.as_deref())?);
    match target {
        ExportTarget::Systemd {
            user,
            per_process,
            output,
        } => {
            let exe = std::env::current_exe()
                .map_err(|e| Error::setup("find the prodserver binary's path", e))?;
            let owner = config_owner(&plan.config_path)
                .map_err(|e| Error::setup(format!("read {}", plan.config_path.display()), e))?;
            let options = systemd::Options {
                user_unit: user,
                exe,
                owner,
                lookup: &lookup,
            };
            let files = if per_process {
                systemd::per_process(plan, &resolved, &options)
            } else {
                systemd::single(plan, &options)
            }
            .map_err(Error::usage)?;
            write_or_print(output.as_deref(), &files)?;
        }
        ExportTarget::Kubernetes {
            image,
            workdir,
            env_as,
            output,
        } => {
            if !workdir.starts_with('/') {
                return Err(Error::usage(format!(
                    "--workdir {workdir:?}: must be an absolute path inside the image"
                )));
            }
            let options = kubernetes::Options {
                image: &image,
                workdir: &workdir,
                env_as: match env_as {
                    crate::cli::EnvAs::Configmap => kubernetes::EnvAs::ConfigMap,
                    crate::cli::EnvAs::Secret => kubernetes::EnvAs::Secret,
                },
                runtime_dir: &opts.runtime_dir,
            };
            let files = kubernetes::export(plan, &options).map_err(Error::usage)?;
            write_or_print(output.as_deref(), &files)?;
        }
        ExportTarget::Procfile { output } => {
            let text = procfile::procfile(plan, &resolved).map_err(Error::usage)?;
            match output {
                Some(file) => write_atomically(&file, &text)?,
                None => print!("{text}"),
            }
        }
    }
    Ok(crate::exit::OK)
}

/// The files into `dir` (created if needed), or printed one after the other.
fn write_or_print(dir: Option<&Path>, files: &[File]) -> Result<(), Error> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::setup(format!("create {}", dir.display()), e))?;
            for f in files {
                write_atomically(&dir.join(&f.name), &f.contents)?;
            }
        }
        None => print!("{}", concatenate(files)),
    }
    Ok(())
}

/// The config file's owner by name (its uid when it has no passwd entry),
/// or `None` when root owns it: a system unit's `User=`.
fn config_owner(config: &Path) -> std::io::Result<Option<String>> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata(config)?.uid();
    if uid == 0 {
        return Ok(None);
    }
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten();
    Ok(Some(user.map_or_else(|| uid.to_string(), |u| u.name)))
}

/// `name` on `path` as `execvp` would find it: the first executable file.
fn find_program(name: &str, path: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Written beside its final name, then renamed: a reader (systemd's
/// daemon-reload) never sees half a unit.
pub(crate) fn write_atomically(path: &Path, text: &str) -> Result<(), Error> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::setup(format!("write {}", path.display()), e)
        })?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// One exported file: its name (no folder) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub name: String,
    pub contents: String,
}

/// Several files as one text for stdout: each preceded by a comment line
/// naming it, so the output can still be split by hand.
pub fn concatenate(files: &[File]) -> String {
    match files {
        [one] => one.contents.clone(),
        _ => files
            .iter()
            .map(|f| format!("# ==> {} <==\n{}", f.name, f.contents))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// What prodserver added for its Celery integration (the `--include` of
/// its module, the module's folder on `PYTHONPATH`), removed: a unit or a
/// Procfile runs the process without prodserver, so nothing writes that
/// module and nothing reads the messages it sends.
/// Where the Celery integration's module lives for process `id`, if it
/// loads it (what [`without_celery_integration`] takes out again).
pub fn celery_module_dir(resolved: &crate::resolve::ResolvedPlan, id: usize) -> Option<&Path> {
    resolved
        .processes
        .get(id)
        .and_then(|p| p.instances.first())
        .and_then(|i| i.launch.celery.as_ref())
        .map(|c| c.module_dir.as_path())
}

pub fn without_celery_integration(
    argv: &[String],
    env: &std::collections::BTreeMap<String, String>,
    module_dir: Option<&std::path::Path>,
) -> (Vec<String>, std::collections::BTreeMap<String, String>) {
    let (argv, env) = without_gunicorn_integration(argv, env);
    let Some(dir) = module_dir else {
        return (argv, env);
    };
    let module = crate::celery::MODULE;
    let mut env = env;
    // A beat runs `-A MODULE` with the real app in an env variable.
    let app = env.remove(crate::celery::APP_ENV);
    let argv = argv
        .iter()
        .filter_map(|a| match a.strip_prefix("--include=") {
            None if a == module && app.is_some() => app.clone(),
            Some(list) => {
                let kept: Vec<&str> = list.split(',').filter(|m| *m != module).collect();
                (!kept.is_empty()).then(|| format!("--include={}", kept.join(",")))
            }
            None => Some(a.clone()),
        })
        .collect();
    let dir = dir.to_string_lossy();
    if let Some(path) = env.get("PYTHONPATH").cloned() {
        if path == dir {
            env.remove("PYTHONPATH");
        } else if let Some(rest) = path.strip_prefix(&format!("{dir}:")) {
            env.insert("PYTHONPATH".into(), rest.to_owned());
        }
    }
    (argv, env)
}

/// The gunicorn integration (`--config=python:prodserver_gunicorn`, its
/// folder on `PYTHONPATH`) taken out again, the user's own `--config`
/// back in its place: an exported unit runs without prodserver's module.
fn without_gunicorn_integration(
    argv: &[String],
    env: &std::collections::BTreeMap<String, String>,
) -> (Vec<String>, std::collections::BTreeMap<String, String>) {
    let ours = format!("--config=python:{}", crate::gunicorn::MODULE);
    let mut env = env.clone();
    if !argv.contains(&ours) {
        return (argv.to_vec(), env);
    }
    let user = env.remove(crate::gunicorn::CONFIG_ENV);
    let argv = argv
        .iter()
        .filter_map(|a| match (a == &ours, &user) {
            (true, Some(config)) => Some(format!("--config={config}")),
            (true, None) => None,
            (false, _) => Some(a.clone()),
        })
        .collect();
    let dir = crate::gunicorn::module_dir(Path::new("/"));
    let folder = dir.file_name().map(|f| f.to_string_lossy().into_owned());
    if let (Some(path), Some(folder)) = (env.get("PYTHONPATH").cloned(), folder) {
        let kept: Vec<&str> = path
            .split(':')
            .filter(|p| !p.ends_with(&format!("/{folder}")))
            .collect();
        if kept.is_empty() {
            env.remove("PYTHONPATH");
        } else {
            env.insert("PYTHONPATH".into(), kept.join(":"));
        }
    }
    (argv, env)
}

/// How long one process may take to stop: `stop_timeout`, plus
/// `kill_timeout` when it is escalated (Celery's cold shutdown) before the
/// SIGKILL.
pub fn stop_budget(spec: &ProcessSpec) -> Duration {
    match spec.escalate_signal {
        Some(_) => spec.stop_timeout + spec.kill_timeout,
        None => spec.stop_timeout,
    }
}

/// What prodserver needs after its last child stopped: it waits up to 5 s
/// for the children's last log lines to reach a stalled stdout, plus 5 s
/// for the keeper, reaping and the exit summary on a loaded machine.
pub const STOP_MARGIN: Duration = Duration::from_secs(10);

/// The longest a graceful stop of the whole plan can take. Stop waves run
/// one after the other (dependents first, then what they depend on; web
/// and beat before workers), the processes of one wave in parallel: so the
/// long-running processes take the sum over the waves of each wave's
/// largest [`stop_budget`]. A oneshot still running (a migration) adds its
/// own budget: while it runs, what depends on it has not started, so one
/// oneshot at a time is assumed. Then [`STOP_MARGIN`]. A unit's
/// `TimeoutStopSec=` shorter than that would SIGKILL workers that are
/// still finishing their tasks.
pub fn whole_stop_timeout(plan: &Plan) -> Duration {
    let waves: Duration = order::stop_waves(plan)
        .iter()
        .map(|wave| {
            wave.iter()
                .map(|&p| &plan.processes[p])
                .filter(|p| !p.oneshot)
                .map(stop_budget)
                .max()
                .unwrap_or_default()
        })
        .sum();
    let oneshot = plan
        .processes
        .iter()
        .filter(|p| p.oneshot)
        .map(stop_budget)
        .max()
        .unwrap_or_default();
    waves + oneshot + STOP_MARGIN
}

/// A duration as systemd reads it, whole seconds rounded up (`30s`,
/// `1min 30s` are both accepted; plain seconds keep the unit short and the
/// arithmetic visible).
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    format!("{s}s")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::BackendKind;
    use crate::supervisor::order::tests::{plan, spec};
    use std::collections::BTreeMap;
    use std::path::Path;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn stop_budget_adds_kill_timeout_only_when_escalated() {
        let mut s = spec("w", BackendKind::CeleryWorker, &[]);
        s.stop_timeout = secs(30);
        s.kill_timeout = secs(10);
        assert_eq!(stop_budget(&s), secs(30));
        s.escalate_signal = Some(libc::SIGQUIT);
        assert_eq!(stop_budget(&s), secs(40));
    }

    #[test]
    fn waves_add_up_and_a_wave_takes_its_longest_process() {
        // web and beat stop first (wave 1), then the workers (wave 2).
        let mut web = spec("web", BackendKind::Gunicorn, &[]);
        web.stop_timeout = secs(30);
        let mut beat = spec("beat", BackendKind::CeleryBeat, &[]);
        beat.stop_timeout = secs(5);
        let mut worker = spec("worker", BackendKind::CeleryWorker, &[]);
        worker.stop_timeout = secs(60);
        worker.escalate_signal = Some(libc::SIGQUIT);
        worker.kill_timeout = secs(10);
        let mut fast = spec("fast", BackendKind::CeleryWorker, &[]);
        fast.stop_timeout = secs(1);
        let p = plan(vec![web, beat, worker, fast]);
        assert_eq!(whole_stop_timeout(&p), secs(30 + 70) + STOP_MARGIN);
    }

    #[test]
    fn a_dependency_chain_stops_one_after_the_other() {
        let mut redis = spec("redis", BackendKind::Command, &[]);
        redis.stop_timeout = secs(7);
        let mut web = spec("web", BackendKind::Gunicorn, &[0]);
        web.stop_timeout = secs(11);
        let p = plan(vec![redis, web]);
        assert_eq!(whole_stop_timeout(&p), secs(18) + STOP_MARGIN);
    }

    #[test]
    fn the_longest_oneshot_is_added_once() {
        let mut setup = spec("setup", BackendKind::Command, &[]);
        setup.oneshot = true;
        setup.stop_timeout = secs(5);
        let mut migrate = spec("migrate", BackendKind::Command, &[0]);
        migrate.oneshot = true;
        migrate.stop_timeout = secs(20);
        let mut web = spec("web", BackendKind::Gunicorn, &[1]);
        web.stop_timeout = secs(30);
        let p = plan(vec![setup, migrate, web]);
        assert_eq!(whole_stop_timeout(&p), secs(30 + 20) + STOP_MARGIN);
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(seconds(secs(30)), "30s");
        assert_eq!(seconds(Duration::from_millis(1500)), "2s");
        assert_eq!(seconds(Duration::ZERO), "0s");
    }

    #[test]
    fn the_celery_integration_is_removed() {
        let dir = Path::new("/run/ps/py-1");
        let argv: Vec<String> = ["celery", "worker", "--include=a,prodserver_celery"]
            .map(String::from)
            .to_vec();
        let env = BTreeMap::from([("PYTHONPATH".to_owned(), "/run/ps/py-1:/src".to_owned())]);
        let (a, e) = without_celery_integration(&argv, &env, Some(dir));
        assert_eq!(a, ["celery", "worker", "--include=a"]);
        assert_eq!(e["PYTHONPATH"], "/src");
        let only: Vec<String> = ["celery", "--include=prodserver_celery"]
            .map(String::from)
            .to_vec();
        let env = BTreeMap::from([("PYTHONPATH".to_owned(), "/run/ps/py-1".to_owned())]);
        let (a, e) = without_celery_integration(&only, &env, Some(dir));
        assert_eq!(a, ["celery"]);
        assert!(e.is_empty());
        assert_eq!(without_celery_integration(&only, &env, None).0, only);
        let beat: Vec<String> = ["celery", "-A", "prodserver_celery", "beat"]
            .map(String::from)
            .to_vec();
        let env = BTreeMap::from([
            ("PYTHONPATH".to_owned(), "/run/ps/py-1".to_owned()),
            (
                crate::celery::APP_ENV.to_owned(),
                "shop.celery.app".to_owned(),
            ),
        ]);
        let (a, e) = without_celery_integration(&beat, &env, Some(dir));
        assert_eq!(a, ["celery", "-A", "shop.celery.app", "beat"]);
        assert!(e.is_empty(), "{e:?}");
    }
}
