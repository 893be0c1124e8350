//! One resolved plan, shared by `check` and `start`: whatever `check`
//! accepts, `start` runs exactly, and whatever `start` would refuse,
//! `check` refuses first, with a located diagnostic.
//!
//! [`resolve`] takes the loaded file (already validated by `config/`,
//! which knows nothing of the engine) and decides, once, everything the
//! engine needs per process and per instance: credentials looked up,
//! `{instance}` expanded into each instance's launch, probes compiled and
//! health defaults chosen from the backend's typed launch, the Celery
//! integration's module folder.

use std::path::Path;

use crate::backend::{CeleryIntegration, DefaultReadiness, Launch};
use crate::config::{one_line, span_at, Diagnostic, LoadError, LoadOptions, Loaded, ProbeAt};
use crate::health;
use crate::os::Credentials;
use crate::plan::{Probe, ProcessSpec};

/// Everything `start` needs beyond the [`crate::plan::Plan`]; index
/// `processes` by process id.
#[derive(Debug, Clone)]
pub struct ResolvedPlan {
    pub processes: Vec<ResolvedProcess>,
}

#[derive(Debug, Clone)]
pub struct ResolvedProcess {
    /// `user`/`group`, looked up.
    pub credentials: Option<Credentials>,
    /// Why this process cannot start from here although its file is fine:
    /// it names a `user`/`group` and prodserver does not run as root. Not
    /// a file error (`check` on a workstation, `start` under systemd), so
    /// `check` passes and `start` refuses the process.
    pub needs_root: Option<String>,
    /// Instance `n` at index `n - 1`.
    pub instances: Vec<ResolvedInstance>,
}

#[derive(Debug, Clone)]
pub struct ResolvedInstance {
    /// The final argv and the env the process adds (backend and Celery
    /// integration included), `{instance}` expanded.
    pub launch: Launch,
    /// Its health block compiled, or its backend's default.
    pub health: health::Resolved,
}

impl ResolvedPlan {
    /// Resolves instances of `process` up to `number` that the plan did not
    /// have (a scale-up): launch and health exactly as at load.
    pub fn ensure_instance(
        &mut self,
        process: usize,
        spec: &ProcessSpec,
        number: u32,
        runtime_dir: &Path,
    ) -> Result<(), String> {
        let Some(p) = self.processes.get_mut(process) else {
            return Err(format!("no process {}", spec.name));
        };
        while (p.instances.len() as u32) < number {
            let one = spec.for_instance(p.instances.len() as u32 + 1);
            let health = health::plan_for(&one).map_err(|e| e.to_string())?;
            p.instances.push(ResolvedInstance {
                launch: launch_of(&one, runtime_dir),
                health,
            });
        }
        Ok(())
    }

    pub fn instance(&self, process: usize, number: u32) -> Option<&ResolvedInstance> {
        self.processes
            .get(process)?
            .instances
            .get(number.checked_sub(1)? as usize)
    }

    /// The folder the Celery integration's module must be written to
    /// before any of `selected` spawns, if one of them loads it.
    pub fn celery_module_dir(&self, selected: &[usize]) -> Option<&Path> {
        selected.iter().find_map(|id| {
            let first = self.processes.get(*id)?.instances.first()?;
            Some(first.launch.celery.as_ref()?.module_dir.as_path())
        })
    }
}

/// The file at `path`, loaded and resolved: what `check` and `start` both
/// call, so they accept and refuse the same files. When the file has
/// errors, its probes are still compiled, so one run reports those too.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<(Loaded, ResolvedPlan), LoadError> {
    let mut e = match crate::config::load(path, opts) {
        Ok(loaded) => {
            return match resolve(&loaded, &opts.runtime_dir) {
                Ok(resolved) => Ok((loaded, resolved)),
                Err(errors) => {
                    let mut diagnostics = loaded.warnings;
                    diagnostics.extend(errors);
                    sort(&mut diagnostics);
                    Err(LoadError {
                        sources: loaded.sources,
                        diagnostics,
                        probes: loaded.probes,
                    })
                }
            }
        }
        Err(e) => e,
    };
    e.diagnostics.extend(probe_errors(&e.probes));
    sort(&mut e.diagnostics);
    Err(e)
}

/// In file order, as the loader reports, so the user fixes them top to
/// bottom.
fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|d| (d.file, d.span.as_ref().map_or(usize::MAX, |s| s.start)));
}

/// Every probe of the file compiled as instance 1 runs it (`{instance}` may
/// stand for a port): a bad URL, address or regex, located where it is
/// written.
pub fn probe_errors(probes: &[ProbeAt]) -> Vec<Diagnostic> {
    probes
        .iter()
        .filter_map(|p| {
            let e = health::check_for(&p.probe.for_instance("1")).err()?;
            Some(
                Diagnostic::error(
                    0,
                    Some(p.span.clone()),
                    format!("`{}`: {}", p.table, one_line(&e)),
                )
                .with_hint(PROBE_HINT),
            )
        })
        .collect()
}

const PROBE_HINT: &str = "fix the probe: `http = \"http://127.0.0.1:8000/healthz/\"`, `tcp = \"127.0.0.1:6379\"`, `log = \"^Listening\"` (a Rust regex)";

/// The one function that turns a loaded file into what runs. Every error
/// is a located diagnostic; all of them are reported, not just the first.
pub fn resolve(loaded: &Loaded, runtime_dir: &Path) -> Result<ResolvedPlan, Vec<Diagnostic>> {
    let text = loaded.sources.text(0);
    let mut errors = probe_errors(&loaded.probes);
    let bad_probes: Vec<String> = loaded
        .probes
        .iter()
        .filter(|p| health::check_for(&p.probe.for_instance("1")).is_err())
        .map(|p| p.table.clone())
        .collect();
    let mut processes = Vec::with_capacity(loaded.plan.processes.len());
    for spec in &loaded.plan.processes {
        let wants_identity = spec.user.is_some() || spec.group.is_some();
        let mut needs_root = None;
        let credentials =
            match crate::os::resolve_credentials(spec.user.as_deref(), spec.group.as_deref()) {
                Ok(c) => c,
                // The loader has checked the names exist; only the privilege
                // to switch to them is missing here.
                Err(e) if wants_identity && !nix::unistd::Uid::effective().is_root() => {
                    needs_root = Some(e);
                    None
                }
                Err(e) => {
                    let key = if spec.user.is_some() { "user" } else { "group" };
                    errors.push(
                        Diagnostic::error(
                            0,
                            span_at(text, &spec.name, &[key], false),
                            format!("`processes.{}`: {e}", spec.name),
                        )
                        .with_hint(
                            "fix `user`/`group` to name an existing account (`getent passwd NAME`)",
                        ),
                    );
                    None
                }
            };
        let mut instances = Vec::with_capacity(spec.instances as usize);
        for n in 1..=spec.instances {
            let one = spec.for_instance(n);
            match health::plan_for(&one) {
                Ok(resolved) => instances.push(ResolvedInstance {
                    launch: launch_of(&one, runtime_dir),
                    health: resolved,
                }),
                Err(e) => {
                    // Instance 1's probe error is reported above, at the probe.
                    let table = format!("processes.{}.health", spec.name);
                    if !bad_probes.contains(&table) {
                        errors.push(health_error(text, spec, n, &e));
                    }
                    break;
                }
            }
        }
        processes.push(ResolvedProcess {
            credentials,
            needs_root,
            instances,
        });
    }
    if errors.is_empty() {
        Ok(ResolvedPlan { processes })
    } else {
        Err(errors)
    }
}

fn launch_of(spec: &ProcessSpec, runtime_dir: &Path) -> Launch {
    // The integration is loaded exactly when its readiness was chosen:
    // both come from the backend's launch.
    let celery = match spec.readiness {
        DefaultReadiness::CeleryWorker | DefaultReadiness::CeleryBeat => Some(CeleryIntegration {
            module_dir: crate::celery::module_dir(runtime_dir),
        }),
        DefaultReadiness::AtSpawn
        | DefaultReadiness::Serving
        | DefaultReadiness::Unprobeable { .. }
        | DefaultReadiness::AppLoaded { .. }
        | DefaultReadiness::OutputLine { .. }
        | DefaultReadiness::CeleryWithoutIntegration => None,
    };
    Launch {
        argv: spec.argv.clone(),
        env: spec.env.clone(),
        listen: spec.listen.clone(),
        readiness: spec.readiness.clone(),
        celery,
    }
}

/// A health plan that cannot be built: at the probe that does not compile,
/// else at the `health` block (or the backend, for a default).
fn health_error(text: &str, spec: &ProcessSpec, n: u32, e: &str) -> Diagnostic {
    let name = &spec.name;
    let which = if spec.instances > 1 {
        format!(" (instance {n})")
    } else {
        String::new()
    };
    let probe_key = spec.health.as_ref().and_then(|h| match h.probe.as_ref()? {
        Probe::Http { .. } => Some("http"),
        Probe::Tcp { .. } => Some("tcp"),
        Probe::Exec { .. } => Some("exec"),
        Probe::Log { .. } => Some("log"),
        Probe::Notify => None,
    });
    let message = format!("`processes.{name}.health`{which}: {}", one_line(e));
    match probe_key {
        Some(key) => Diagnostic::error(0, span_at(text, name, &["health", key], false), message)
            .with_hint(PROBE_HINT),
        None => {
            let span = span_at(text, name, &["health"], true)
                .or_else(|| span_at(text, name, &["backend"], false));
            Diagnostic::error(0, span, message).with_hint(
                "give the probe explicitly (`http = \"http://127.0.0.1:8000/healthz/\"`), or bind the server to a TCP address",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_examples_resolve_with_one_launch_per_instance() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let opts = crate::config::LoadOptions {
            hold_sockets: true,
            env: [("PATH".to_owned(), "/usr/bin:/bin".to_owned())].into(),
            runtime_dir: "/run/user/1000/prodserver".into(),
            dev: false,
        };
        for file in ["prodserver.toml", "examples/minimal/prodserver.toml"] {
            let loaded = crate::config::load(&root.join(file), &opts).expect(file);
            let resolved = resolve(&loaded, &opts.runtime_dir).expect(file);
            for (id, spec) in loaded.plan.processes.iter().enumerate() {
                let p = &resolved.processes[id];
                assert_eq!(p.instances.len(), spec.instances as usize, "{file}");
                let first = &p.instances[0].launch;
                assert!(
                    !first.argv.iter().any(|a| a.contains("{instance}")),
                    "{file}: {first:?}"
                );
            }
        }
    }

    fn resolved(text: &str) -> ResolvedPlan {
        let opts = crate::config::LoadOptions {
            hold_sockets: true,
            env: [("PATH".to_owned(), "/usr/bin:/bin".to_owned())].into(),
            runtime_dir: "/run/ps".into(),
            dev: false,
        };
        let path = std::env::temp_dir().join("prodserver-resolve-tests/prodserver.toml");
        let loaded = crate::config::load_str(&path, text.to_owned(), &opts).expect("loads");
        resolve(&loaded, &opts.runtime_dir).expect("resolves")
    }

    #[test]
    fn a_scaled_up_instance_resolves_like_the_others() {
        let text = "[processes.web]\nbackend = \"gunicorn\"\napp = \"a:b\"\n\
             args = { bind = \"127.0.0.1:800{instance}\" }\n";
        let opts = crate::config::LoadOptions {
            hold_sockets: true,
            env: [("PATH".to_owned(), "/usr/bin:/bin".to_owned())].into(),
            runtime_dir: "/run/ps".into(),
            dev: false,
        };
        let path = std::env::temp_dir().join("prodserver-resolve-tests/prodserver.toml");
        let loaded = crate::config::load_str(&path, text.to_owned(), &opts).expect("loads");
        let mut r = resolve(&loaded, &opts.runtime_dir).expect("resolves");
        assert!(r.instance(0, 3).is_none());
        r.ensure_instance(0, &loaded.plan.processes[0], 3, &opts.runtime_dir)
            .expect("resolves instance 3");
        let three = r.instance(0, 3).expect("instance 3");
        assert!(
            three
                .launch
                .argv
                .contains(&"--bind=127.0.0.1:8003".to_owned()),
            "{:?}",
            three.launch.argv
        );
        assert!(three.health.plan.is_some(), "the web default probe");
        assert!(r.instance(0, 2).is_some(), "filled in order");
    }

    #[test]
    fn each_instance_gets_its_own_launch_and_health() {
        let r = resolved(
            "[processes.web]\nbackend = \"gunicorn\"\napp = \"a:b\"\ninstances = 2\n\
             args = { bind = \"127.0.0.1:800{instance}\" }\n\
             [processes.worker]\nbackend = \"celery-worker\"\napp = \"shop\"\n",
        );
        let two = r.instance(0, 2).expect("instance 2");
        assert!(
            two.launch
                .argv
                .contains(&"--bind=127.0.0.1:8002".to_owned()),
            "{:?}",
            two.launch.argv
        );
        assert_eq!(
            two.launch.listen,
            [crate::backend::Listen::Tcp {
                host: "127.0.0.1".into(),
                port: "8002".into(),
                tls: false
            }]
        );
        assert_eq!(
            health::describe(&two.health),
            "readiness: READY=1 from prodserver's gunicorn integration once a worker has loaded \
             the app (its socket is held and shared by every generation: either one may answer a \
             probe; gunicorn's own READY=1 only means bound)"
        );
        assert!(r.instance(0, 3).is_none());
        assert_eq!(r.celery_module_dir(&[0]), None);
        let dir = crate::celery::module_dir(Path::new("/run/ps"));
        assert_eq!(r.celery_module_dir(&[0, 1]), Some(dir.as_path()));
        let worker = &r.instance(1, 1).expect("worker").launch;
        assert_eq!(worker.env["PYTHONPATH"], dir.to_string_lossy());
        assert!(worker
            .argv
            .contains(&"--include=prodserver_celery".to_owned()));
        assert!(r.processes[0].credentials.is_none());
    }
}
