//! A Procfile for honcho and foreman: `NAME: command line` per process.

use std::fmt::Write as _;

use super::without_celery_integration;
use crate::plan::{Plan, ProcessSpec};
use crate::resolve::ResolvedPlan;

/// The Procfile of `plan`. Refused when an argument holds a line break,
/// which a Procfile line cannot carry.
pub fn procfile(plan: &Plan, resolved: &ResolvedPlan) -> Result<String, String> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Procfile exported from {} by `prodserver export procfile`.",
        plan.config_path.display()
    );
    out.push_str(
        "# Paths are absolute, as resolved on this host. honcho and foreman start\n\
         # every line at once and stop them all when one exits: no depends_on\n\
         # order, health checks, restarts, recycling or graceful Celery stop.\n",
    );
    for (id, spec) in plan.processes.iter().enumerate() {
        let module_dir = super::celery_module_dir(resolved, id);
        let line = |n: u32| -> Result<String, String> {
            let one = spec.for_instance(n);
            let (argv, env) = without_celery_integration(&one.argv, &one.env, module_dir);
            command_line(plan, spec, &argv, &env)
        };
        if spec.oneshot {
            let _ = writeln!(
                out,
                "# {} is a oneshot: prodserver runs it to completion before what depends on it. Run it\n\
                 # before `honcho start` / `foreman start` (on Heroku, as the `release:` process type):\n\
                 #   {}",
                spec.name,
                line(1)?
            );
            continue;
        }
        let per_instance = spec.instances > 1 && line(1)? != line(2)?;
        if per_instance {
            let _ = writeln!(
                out,
                "# {}: {} instances, each with its own command line ({{instance}}).",
                spec.name, spec.instances
            );
            for n in 1..=spec.instances {
                let _ = writeln!(out, "{}-{n}: {}", spec.name, line(n)?);
            }
            continue;
        }
        if spec.instances > 1 {
            let _ = writeln!(
                out,
                "# {}: {} instances under prodserver: `honcho start -c {}={}`, `foreman start -m {}={}`.",
                spec.name, spec.instances, spec.name, spec.instances, spec.name, spec.instances
            );
        }
        let _ = writeln!(out, "{}: {}", spec.name, line(1)?);
    }
    Ok(out)
}

/// `[cd DIR && ]exec [env K=V ...] ARGV`, each word shell-quoted (both
/// tools run the line with `sh -c`).
fn command_line(
    plan: &Plan,
    spec: &ProcessSpec,
    argv: &[String],
    env: &std::collections::BTreeMap<String, String>,
) -> Result<String, String> {
    let mut words: Vec<String> = Vec::new();
    if spec.cwd != plan.root {
        words.push("cd".into());
        words.push(quote(&spec.cwd.to_string_lossy()));
        words.push("&&".into());
    }
    words.push("exec".into());
    if !env.is_empty() {
        words.push("env".into());
        words.extend(env.iter().map(|(k, v)| quote(&format!("{k}={v}"))));
    }
    words.extend(argv.iter().map(|a| quote(a)));
    let line = words.join(" ");
    if line.contains(['\n', '\r']) {
        return Err(format!(
            "`processes.{}`: a line break in its command or env cannot be written on a Procfile line",
            spec.name
        ));
    }
    Ok(line)
}

fn quote(word: &str) -> String {
    shell_words::quote(word).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::BackendKind;
    use crate::resolve::ResolvedPlan;
    use crate::supervisor::order::tests::{plan, spec};

    fn none() -> ResolvedPlan {
        ResolvedPlan { processes: vec![] }
    }

    #[test]
    fn one_line_per_process_shell_quoted_with_env_and_cwd() {
        let mut web = spec("web", BackendKind::Gunicorn, &[]);
        web.argv = vec!["/v/bin/gunicorn".into(), "a b".into(), "it's".into()];
        web.env.insert("K".into(), "v w".into());
        web.cwd = "/p/site".into();
        let mut migrate = spec("migrate", BackendKind::Command, &[]);
        migrate.oneshot = true;
        migrate.argv = vec!["python".into(), "manage.py".into(), "migrate".into()];
        migrate.cwd = "/p".into();
        let text = procfile(&plan(vec![migrate, web]), &none()).unwrap();
        assert!(
            text.contains(
                "\nweb: cd /p/site && exec env 'K=v w' /v/bin/gunicorn 'a b' 'it'\\''s'\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("#   exec python manage.py migrate\n"),
            "{text}"
        );
        assert!(!text.contains("\nmigrate:"), "{text}");
    }

    #[test]
    fn instances_are_a_concurrency_note_or_one_line_each() {
        let mut worker = spec("worker", BackendKind::CeleryWorker, &[]);
        worker.instances = 2;
        worker.cwd = "/p".into();
        let mut web = spec("web", BackendKind::Gunicorn, &[]);
        web.instances = 2;
        web.cwd = "/p".into();
        web.argv = vec!["serve".into(), "--port=800{instance}".into()];
        let text = procfile(&plan(vec![worker, web]), &none()).unwrap();
        assert!(text.contains("honcho start -c worker=2"), "{text}");
        assert!(text.contains("\nworker: exec true\n"), "{text}");
        assert!(
            text.contains("\nweb-1: exec serve '--port=8001'\nweb-2: exec serve '--port=8002'\n"),
            "{text}"
        );
    }

    #[test]
    fn a_line_break_is_refused() {
        let mut web = spec("web", BackendKind::Command, &[]);
        web.argv = vec!["sh".into(), "-c".into(), "a\nb".into()];
        let e = procfile(&plan(vec![web]), &none()).unwrap_err();
        assert!(e.contains("processes.web"), "{e}");
    }
}
