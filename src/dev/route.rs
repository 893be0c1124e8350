//! Which processes a changed file restarts: each process's `watch` globs
//! (or its backend's default) plus `[dev] watch`, less `[dev] ignore` and
//! its own `.dev.ignore`. Paths are relative to the project root.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::plan::{BackendKind, DevSettings, ProcessSpec};

/// Python code is what a Python server has loaded: every Python backend
/// restarts on `.py` changes unless told otherwise.
const PYTHON: &[&str] = &["**/*.py"];

/// The globs a process watches when its file gives none. `command` runs
/// anything (a Node build, a Go binary): no guess. `django-runserver`
/// reloads itself on code changes; a oneshot (migrate, collectstatic) is a
/// release step, not something to rerun on every save.
pub fn default_watch(spec: &ProcessSpec) -> &'static [&'static str] {
    if spec.oneshot {
        return &[];
    }
    match spec.backend {
        BackendKind::Command | BackendKind::DjangoRunserver => &[],
        BackendKind::Gunicorn
        | BackendKind::Uvicorn
        | BackendKind::Granian
        | BackendKind::Waitress
        | BackendKind::Daphne
        | BackendKind::Flower
        | BackendKind::CeleryWorker
        | BackendKind::CeleryBeat
        | BackendKind::DjangoQ2
        | BackendKind::DjangoTasks => PYTHON,
    }
}

/// One process's interest in the tree.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    /// The globs as written, for the listing printed at start.
    pub globs: Vec<String>,
    watch: GlobSet,
    ignore: GlobSet,
}

impl Route {
    pub fn matches(&self, path: &Path) -> bool {
        self.watch.is_match(path) && !self.ignore.is_match(path)
    }
}

/// `*` stays within one folder, `**` crosses folders: the same reading as
/// `.gitignore` patterns with a slash.
fn set(globs: &[String]) -> Result<GlobSet, globset::Error> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(GlobBuilder::new(g).literal_separator(true).build()?);
    }
    b.build()
}

pub fn route(spec: &ProcessSpec, dev: &DevSettings) -> Result<Route, globset::Error> {
    let mut globs: Vec<String> = match &spec.watch {
        Some(w) => w.clone(),
        None => default_watch(spec).iter().map(|g| g.to_string()).collect(),
    };
    // `[dev] watch` adds to a process that watches something; a process
    // that watches nothing (a `command` without `watch`) stays untouched.
    if !globs.is_empty() {
        globs.extend(dev.watch.iter().cloned());
    }
    let ignore: Vec<String> = dev
        .ignore
        .iter()
        .chain(spec.dev.ignore.iter())
        .cloned()
        .collect();
    Ok(Route {
        name: spec.name.clone(),
        watch: set(&globs)?,
        ignore: set(&ignore)?,
        globs,
    })
}

/// For each route that one of `paths` matches: its index and the paths
/// that matched, in the given order.
pub fn affected(routes: &[Route], paths: &[PathBuf]) -> Vec<(usize, Vec<PathBuf>)> {
    routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let hits: Vec<PathBuf> = paths.iter().filter(|p| r.matches(p)).cloned().collect();
            (!hits.is_empty()).then_some((i, hits))
        })
        .collect()
}

/// The restart's reason as the log shows it: `orders/tasks.py changed`,
/// `orders/tasks.py changed and 3 more files`.
pub fn reason(paths: &[PathBuf]) -> String {
    let Some(first) = paths.first() else {
        return "files changed".into();
    };
    match paths.len() - 1 {
        0 => format!("{} changed", first.display()),
        1 => format!("{} changed and 1 more file", first.display()),
        n => format!("{} changed and {n} more files", first.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::reload::tests::plan;

    fn routes(text: &str) -> Vec<Route> {
        let p = plan(text);
        p.processes
            .iter()
            .map(|s| route(s, &p.dev).unwrap())
            .collect()
    }

    fn names(routes: &[Route], path: &str) -> Vec<String> {
        affected(routes, &[PathBuf::from(path)])
            .into_iter()
            .map(|(i, _)| routes[i].name.clone())
            .collect()
    }

    const STACK: &str = r#"
[processes.web]
backend = "gunicorn"
app = "shop.wsgi:application"
watch = ["shop/**/*.py", "templates/**"]

[processes.worker]
backend = "celery-worker"
app = "shop"

[processes.assets]
backend = "command"
command = "npm run watch"

[processes.migrate]
backend = "command"
command = "python manage.py migrate"
oneshot = true
"#;

    #[test]
    fn a_python_backend_watches_python_files_by_default() {
        let r = routes(STACK);
        assert_eq!(names(&r, "orders/tasks.py"), ["worker"]);
        assert_eq!(names(&r, "manage.py"), ["worker"]);
    }

    #[test]
    fn explicit_globs_replace_the_default() {
        let r = routes(STACK);
        assert_eq!(names(&r, "shop/settings.py"), ["web", "worker"]);
        assert_eq!(names(&r, "templates/orders/list.html"), ["web"]);
        assert!(names(&r, "README.md").is_empty());
    }

    #[test]
    fn a_star_stays_within_one_folder() {
        let r =
            routes("[processes.w]\nbackend = \"command\"\ncommand = \"x\"\nwatch = [\"*.py\"]\n");
        assert_eq!(names(&r, "manage.py"), ["w"]);
        assert!(names(&r, "orders/tasks.py").is_empty());
    }

    #[test]
    fn commands_and_oneshots_watch_nothing_by_default() {
        let r = routes(STACK);
        assert!(r[2].globs.is_empty());
        assert!(r[3].globs.is_empty());
    }

    #[test]
    fn dev_watch_adds_and_ignores_subtract() {
        let r = routes(
            r#"
[dev]
watch = ["**/*.html"]
ignore = ["**/migrations/**"]

[processes.worker]
backend = "celery-worker"
app = "shop"

[processes.web]
backend = "gunicorn"
app = "shop.wsgi:application"
dev = { ignore = ["orders/tasks.py"] }

[processes.assets]
backend = "command"
command = "npm run watch"
"#,
        );
        assert_eq!(names(&r, "orders/list.html"), ["worker", "web"]);
        assert!(names(&r, "orders/migrations/0001_initial.py").is_empty());
        assert_eq!(names(&r, "orders/tasks.py"), ["worker"]);
    }

    #[test]
    fn the_reason_names_the_first_file_and_counts_the_rest() {
        assert_eq!(
            reason(&["orders/tasks.py".into()]),
            "orders/tasks.py changed"
        );
        assert_eq!(
            reason(&["a.py".into(), "b.py".into()]),
            "a.py changed and 1 more file"
        );
        assert_eq!(
            reason(&["a.py".into(), "b.py".into(), "c.py".into(), "d.py".into()]),
            "a.py changed and 3 more files"
        );
    }
}
