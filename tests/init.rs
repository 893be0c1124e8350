//! `prodserver init` through the built binary, on real Django projects:
//! the shipped example (copied), and a fresh `django-admin startproject`
//! with a Celery app added, with the test virtualenv as the active
//! environment. What it writes must pass `check`, and the example's must
//! run.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::http::request;
use support::{ports, python, wait_until, Project, Running};

/// Importing Django settings and Celery takes a few seconds, more on a
/// loaded 2-core CI.
const T: Duration = Duration::from_secs(120);

/// `prodserver ARGS` in `project` with the test virtualenv active, as
/// `source .venv/bin/activate` would leave the shell.
fn activated(project: &Project, args: &[&str]) -> Command {
    let venv = python::venv();
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = project.command(args);
    cmd.env("VIRTUAL_ENV", venv).env("PATH", path);
    cmd
}

fn run(cmd: Command) -> (i32, String) {
    let mut running = Running::spawn(cmd);
    let code = running.wait_exit(T);
    (code, running.output())
}

/// Copies the example project as a user's checkout has it: no virtualenv,
/// no run-time files.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if matches!(
            name.as_ref(),
            ".venv" | ".venv.lock" | "var" | "__pycache__"
        ) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(name.as_ref()));
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy");
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The TOML lines of a written file, comments and blank lines dropped.
fn settings_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect()
}

/// The comments of a written file as one line of prose (they are wrapped
/// at word boundaries wherever the width falls).
fn prose(text: &str) -> String {
    let words: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .flat_map(str::split_whitespace)
        .collect();
    words.join(" ")
}

fn example() -> Project {
    let project = Project::new("");
    copy_tree(&python::project(), project.path());
    project
}

#[test]
fn on_the_example_it_refuses_to_overwrite_then_writes_a_file_that_checks_and_runs() {
    let project = example();
    let config = project.path().join("prodserver.toml");
    let shipped = read(&config);

    let (code, out) = run(activated(&project, &["init"]));
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("already exists") && out.contains("--force"),
        "{out}"
    );
    assert_eq!(read(&config), shipped, "the existing file was changed");

    let (code, out) = run(activated(&project, &["init", "--force"]));
    assert_eq!(code, 0, "{out}");
    let written = read(&config);
    assert_ne!(written, shipped);
    let lines = settings_lines(&written);
    for expected in [
        r#"name = "shop""#,
        r#"env = { DJANGO_SETTINGS_MODULE = "${DJANGO_SETTINGS_MODULE:-shop.settings}", PYTHONUNBUFFERED = "1" }"#,
        r#"queues = ["priority", "default"]"#,
        r#"command = ["python", "manage.py", "migrate", "--noinput"]"#,
        "[processes.web]",
        r#"backend = "gunicorn""#,
        r#"app = "shop.wsgi:application""#,
        "[processes.worker-priority]",
        "[processes.worker-default]",
        r#"app = "shop.celery.app""#,
        "[processes.beat]",
        r#"backend = "celery-beat""#,
    ] {
        assert!(lines.contains(&expected), "no `{expected}` in:\n{written}");
    }
    // Every process waits for migrate.
    assert_eq!(
        lines
            .iter()
            .filter(|l| **l == r#"depends_on = { migrate = "completed" }"#)
            .count(),
        4,
        "{written}"
    );
    // The queues came from the imported Celery app, and the file says so.
    let said = prose(&written);
    assert!(
        said.contains("read from the Celery app's configuration"),
        "{said}"
    );
    assert!(
        said.contains("Web servers installed: gunicorn, uvicorn;"),
        "{said}"
    );

    let (code, out) = run(activated(&project, &["check"]));
    assert_eq!(code, 0, "{out}");

    let ports = ports::reserve();
    let port = ports.port(0);
    let mut start = activated(&project, &["start", "--log-format", "json"]);
    start.env("PORT", port.to_string());
    let mut running = Running::spawn(start);
    running.wait_for_line(T, |l| {
        serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| {
            v["process"] == "web" && v["stream"] == "event" && v["message"] == "ready"
        })
    });
    let answered = wait_until(T, || {
        matches!(request("GET", port, "/healthz/"), Ok((200, _)))
    });
    assert!(answered, "web is not answering:\n{}", running.output());
    running.signal(libc::SIGTERM);
    let code = running.wait_exit(T);
    assert_eq!(code, 0, "{}", running.output());
}

/// `django-admin startproject mysite site` in the project folder, with a
/// Celery app whose settings route tasks to two queues.
fn startproject(project: &Project) -> PathBuf {
    let site = project.path().join("site");
    std::fs::create_dir(&site).expect("mkdir site");
    let out = Command::new(python::bin("django-admin"))
        .args(["startproject", "mysite"])
        .arg(&site)
        .output()
        .expect("django-admin");
    assert!(out.status.success(), "{out:?}");
    std::fs::write(
        site.join("mysite/celery.py"),
        "import os\n\nfrom celery import Celery\n\n\
         os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"mysite.settings\")\n\n\
         app = Celery(\"mysite\")\n\
         app.config_from_object(\"django.conf:settings\", namespace=\"CELERY\")\n\
         app.autodiscover_tasks()\n",
    )
    .expect("celery.py");
    let settings = site.join("mysite/settings.py");
    let mut text = read(&settings);
    text.push_str(
        "\nCELERY_BROKER_URL = \"memory://\"\n\
         CELERY_TASK_ROUTES = {\n    \"mysite.tasks.send_email\": {\"queue\": \"emails\"},\n    \"mysite.tasks.report\": \"reports\",\n}\n",
    );
    std::fs::write(&settings, text).expect("settings");
    site
}

#[test]
fn on_a_fresh_startproject_with_celery_it_finds_the_queues_and_passes_check() {
    let project = Project::new("");
    let site = startproject(&project);
    let config = site.join("prodserver.toml");

    let (code, out) = run(activated(&project, &["init", "site"]));
    assert_eq!(code, 0, "{out}");
    let written = read(&config);
    let lines = settings_lines(&written);
    for expected in [
        r#"name = "mysite""#,
        // The string route ("reports") only an import can see; "celery" is
        // the default queue, where unrouted tasks go.
        r#"queues = ["emails", "reports", "celery"]"#,
        r#"app = "mysite.wsgi:application""#,
        "[processes.worker-emails]",
        "[processes.worker-reports]",
        "[processes.worker-celery]",
        r#"app = "mysite.celery.app""#,
    ] {
        assert!(lines.contains(&expected), "no `{expected}` in:\n{written}");
    }
    // No periodic tasks, no django-celery-beat: beat is offered, switched off.
    assert!(written.contains("\n# [processes.beat]\n"), "{written}");
    assert!(!lines.contains(&"[processes.beat]"), "{written}");
    let (code, out) = run(activated(
        &project,
        &["check", "-c", "site/prodserver.toml"],
    ));
    assert_eq!(code, 0, "{out}");

    // Refuses without --force, and leaves the file as it was.
    std::fs::write(&config, "# mine\n").expect("write");
    let (code, out) = run(activated(&project, &["init", "site"]));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("already exists"), "{out}");
    assert_eq!(read(&config), "# mine\n");
    // --force replaces it.
    let (code, out) = run(activated(&project, &["init", "--force", "site"]));
    assert_eq!(code, 0, "{out}");
    assert_eq!(read(&config), written);
}

#[test]
fn django_celery_beat_in_installed_apps_gets_its_database_scheduler() {
    let project = Project::new("");
    let site = startproject(&project);
    // A stand-in for the installed package: the probe finds it through
    // find_spec (the project folder is on sys.path) and the settings name
    // it, which is all init looks at.
    std::fs::create_dir(site.join("django_celery_beat")).expect("mkdir");
    std::fs::write(site.join("django_celery_beat/__init__.py"), "").expect("stub");
    let settings = site.join("mysite/settings.py");
    let text = read(&settings).replace(
        "INSTALLED_APPS = [\n",
        "INSTALLED_APPS = [\n    \"django_celery_beat\",\n",
    );
    std::fs::write(&settings, text).expect("settings");

    let (code, out) = run(activated(&project, &["init", "site"]));
    assert_eq!(code, 0, "{out}");
    let written = read(&site.join("prodserver.toml"));
    let lines = settings_lines(&written);
    assert!(lines.contains(&"[processes.beat]"), "{written}");
    assert!(
        lines.contains(
            &r#"args = { loglevel = "info", scheduler = "django_celery_beat.schedulers:DatabaseScheduler" }"#
        ),
        "{written}"
    );
    let (code, out) = run(activated(
        &project,
        &["check", "-c", "site/prodserver.toml"],
    ));
    assert_eq!(code, 0, "{out}");
}

#[test]
fn settings_that_cannot_be_imported_are_read_as_text_and_said_so() {
    let project = Project::new("");
    let site = startproject(&project);
    let settings = site.join("mysite/settings.py");
    let mut text = read(&settings);
    text.push_str("\nimport a_module_this_machine_lacks\n");
    std::fs::write(&settings, text).expect("settings");

    // Written elsewhere: the processes run in the project folder.
    let (code, out) = run(activated(
        &project,
        &["init", "-o", "elsewhere.toml", "site"],
    ));
    assert_eq!(code, 0, "{out}");
    let written = read(&project.path().join("elsewhere.toml"));
    let said = prose(&written);
    assert!(
        said.contains("They were read from the source text"),
        "{said}"
    );
    assert!(
        said.contains("No module named 'a_module_this_machine_lacks'"),
        "{said}"
    );
    let lines = settings_lines(&written);
    // Only the literal `{"queue": ...}` route is seen without importing.
    assert!(
        lines.contains(&r#"queues = ["emails", "celery"]"#),
        "{written}"
    );
    assert!(
        lines.contains(&r#"cwd = "site"  # the project folder, where manage.py is"#),
        "{written}"
    );
    let (code, out) = run(activated(&project, &["check", "-c", "elsewhere.toml"]));
    assert_eq!(code, 0, "{out}");
}

#[test]
fn outside_a_django_project_it_is_a_usage_error_and_writes_nothing() {
    let project = Project::new("");
    std::fs::remove_file(project.path().join("prodserver.toml")).expect("rm");
    let (code, out) = run(activated(&project, &["init"]));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("no manage.py"), "{out}");
    assert!(!project.path().join("prodserver.toml").exists());
}

#[test]
fn a_queue_name_that_cannot_be_passed_to_q_gets_no_worker_and_a_comment() {
    let project = Project::new("");
    let site = startproject(&project);
    let settings = site.join("mysite/settings.py");
    let mut text = read(&settings);
    text.push_str("CELERY_TASK_ROUTES[\"mysite.tasks.bulk\"] = {\"queue\": \"bulk mail\"}\n");
    std::fs::write(&settings, text).expect("settings");

    let (code, out) = run(activated(&project, &["init", "site"]));
    assert_eq!(code, 0, "{out}");
    let written = read(&site.join("prodserver.toml"));
    let lines = settings_lines(&written);
    assert!(
        lines.contains(&r#"queues = ["emails", "reports", "celery"]"#),
        "{written}"
    );
    let said = prose(&written);
    assert!(said.contains(r#"No worker for "bulk mail""#), "{said}");
    let (code, out) = run(activated(
        &project,
        &["check", "-c", "site/prodserver.toml"],
    ));
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_virtualenv_in_the_project_is_named_by_its_path_and_needs_no_activation() {
    let project = Project::new("");
    let site = startproject(&project);
    std::os::unix::fs::symlink(python::venv(), site.join(".venv")).expect("symlink .venv");
    let mut init = project.command(&["init", "site"]);
    init.env_remove("VIRTUAL_ENV");
    let (code, out) = run(init);
    assert_eq!(code, 0, "{out}");
    let written = read(&site.join("prodserver.toml"));
    let lines = settings_lines(&written);
    for expected in [
        r#"command = [".venv/bin/python", "manage.py", "migrate", "--noinput"]"#,
        r#"program = ".venv/bin/gunicorn""#,
        r#"program = ".venv/bin/celery""#,
    ] {
        assert!(lines.contains(&expected), "no `{expected}` in:\n{written}");
    }
    // Found through the file's own paths: no warning about PATH.
    let mut check = project.command(&["check", "-c", "site/prodserver.toml"]);
    check.env_remove("VIRTUAL_ENV").env("PATH", "/usr/bin:/bin");
    let (code, out) = run(check);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(", 0 warnings"), "{out}");
}

#[test]
fn a_config_flag_is_refused_rather_than_ignored() {
    let project = example();
    std::fs::remove_file(project.path().join("prodserver.toml")).expect("rm");
    let (code, out) = run(activated(&project, &["init", "-c", "mine.toml"]));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("-o FILE"), "{out}");
    assert!(!project.path().join("prodserver.toml").exists());
    assert!(!project.path().join("mine.toml").exists());
}
