//! `prodserver import procfile|supervisord|django-prodserver` through the
//! binary, on real-looking inputs (tests/import/): each written file is
//! pinned (tests/import/**/expected*.toml, with the scratch and project
//! paths as placeholders) and then passes `prodserver check`.
//! django-prodserver's settings are imported by the test venv's real
//! Python and Django, from a fake project holding django-prodserver's
//! documented "Full Stack", "Multiple Queues" and "Gevent Pool" examples.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/import")
}

/// A scratch folder whose name is a valid project name.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("import")
        .rand_bytes(8)
        .tempdir()
        .expect("tempdir")
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn prodserver(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(support::BIN);
    cmd.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("XDG_RUNTIME_DIR", dir)
        .env_remove("PRODSERVER_CONFIG")
        .env_remove("VIRTUAL_ENV")
        .env_remove("DJANGO_SETTINGS_MODULE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run prodserver");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
}

/// The expected file with its placeholders filled in.
fn expected(name: &str, subst: &[(&str, &Path)]) -> String {
    let mut text = std::fs::read_to_string(fixtures().join(name)).expect("expected file");
    for (placeholder, path) in subst {
        text = text.replace(placeholder, &path.display().to_string());
    }
    text
}

fn assert_checks(dir: &Path, config: &str) {
    assert_checks_with(dir, config, &[]);
}

fn assert_checks_with(dir: &Path, config: &str, env: &[(&str, &str)]) {
    let out = prodserver(dir, &["check", "-c", config], env);
    assert_eq!(out.code, 0, "check failed:\n{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("ok: "), "{}", out.stdout);
}

#[test]
fn a_procfile_becomes_backends_with_release_first() {
    let dir = scratch();
    copy(
        &fixtures().join("procfile/Procfile"),
        &dir.path().join("Procfile"),
    );
    copy(&fixtures().join("procfile/.env"), &dir.path().join(".env"));
    let out = prodserver(
        dir.path(),
        &["import", "procfile", "-o", "prodserver.toml"],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let written = std::fs::read_to_string(dir.path().join("prodserver.toml")).expect("written");
    let dir_path = std::fs::canonicalize(dir.path()).expect("canonical");
    assert_eq!(
        written,
        expected("procfile/expected.toml", &[("@SRC@", &dir_path)])
    );
    assert_checks(dir.path(), "prodserver.toml");
}

#[test]
fn the_default_is_stdout_and_a_file_is_never_replaced_without_force() {
    let dir = scratch();
    copy(
        &fixtures().join("procfile/Procfile"),
        &dir.path().join("Procfile"),
    );
    let out = prodserver(dir.path(), &["import", "procfile"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("# Imported from the Procfile Procfile by"),
        "{}",
        out.stdout
    );
    let config = dir.path().join("prodserver.toml");
    std::fs::write(&config, "# mine\n").expect("write");
    let out = prodserver(
        dir.path(),
        &["import", "procfile", "-o", "prodserver.toml"],
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("pass --force"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&config).expect("read"), "# mine\n");
    let out = prodserver(
        dir.path(),
        &["import", "procfile", "-o", "prodserver.toml", "--force"],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_checks(dir.path(), "prodserver.toml");
}

#[test]
fn supervisord_programs_map_and_the_rest_is_warned_about() {
    let dir = scratch();
    copy(
        &fixtures().join("supervisord/shop.conf"),
        &dir.path().join("shop.conf"),
    );
    let out = prodserver(
        dir.path(),
        &[
            "import",
            "supervisord",
            "shop.conf",
            "-o",
            "prodserver.toml",
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let written = std::fs::read_to_string(dir.path().join("prodserver.toml")).expect("written");
    let dir_path = std::fs::canonicalize(dir.path()).expect("canonical");
    assert_eq!(
        written,
        expected("supervisord/expected.toml", &[("@SRC@", &dir_path)])
    );
    for warning in [
        "warning: gunicorn: redirect_stderr, stdout_logfile:",
        "warning: celery: process_name=",
        "warning: celery: exitcodes=0,2",
        "warning: celery: stopasgroup=true",
        "warning: celerybeat: user=celerybeat-no-such-user: no such user on this host",
        "warning: celerybeat: autostart=false",
        "warning: [group:shop]",
        "warning: [include] files=",
        "warning: SHOP_SECRET_KEY is not set here; set it where prodserver runs",
    ] {
        assert!(out.stderr.contains(warning), "{warning}\n{}", out.stderr);
    }
    // `%(ENV_X)s` became `${X}`: needed where the file runs, as it was
    // for supervisord.
    let unset = prodserver(dir.path(), &["check"], &[]);
    assert_eq!(unset.code, 2, "{}", unset.stdout);
    assert_checks_with(
        dir.path(),
        "prodserver.toml",
        &[("SHOP_SECRET_KEY", "s3cret")],
    );
}

#[test]
fn an_import_that_would_not_pass_check_writes_nothing() {
    let dir = scratch();
    std::fs::write(
        dir.path().join("bad.conf"),
        "[program:web]\ncommand=python -m http.server\nstopsignal=CHLD\n",
    )
    .expect("write");
    let out = prodserver(
        dir.path(),
        &["import", "supervisord", "bad.conf", "-o", "prodserver.toml"],
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    // The generated text's own located error, as `check` would print it.
    assert!(out.stderr.contains("prodserver.toml:"), "{}", out.stderr);
    assert!(
        out.stderr.contains("stop_signal = \"CHLD\""),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "the imported file would not pass `check` (1 error above); nothing was written"
        ),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("prodserver.toml").exists());
}

fn django_project() -> PathBuf {
    fixtures().join("django")
}

/// Imports one settings module of the fake project with the test venv's
/// Python, pins the result, and checks it.
fn import_settings(settings: Option<&str>, expected_file: &str) {
    let venv = support::python::venv();
    let dir = scratch();
    let project = django_project().display().to_string();
    let mut args = vec!["import", "django-prodserver"];
    if let Some(s) = settings {
        args.extend(["--settings", s]);
    }
    args.extend([project.as_str(), "-o", "prodserver.toml"]);
    let venv_str = venv.display().to_string();
    let out = prodserver(dir.path(), &args, &[("VIRTUAL_ENV", &venv_str)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let written = std::fs::read_to_string(dir.path().join("prodserver.toml")).expect("written");
    assert_eq!(
        written,
        expected(
            expected_file,
            &[("@PROJECT@", &django_project()), ("@VENV@", venv)]
        )
    );
    assert_checks(dir.path(), "prodserver.toml");
}

#[test]
fn django_prodserver_full_stack_with_2x_paths_and_manage_py_settings() {
    import_settings(None, "django/expected-full-stack.toml");
}

#[test]
fn django_prodserver_multiple_queues_with_3x_paths() {
    import_settings(
        Some("myproject.settings_queues"),
        "django/expected-multiple-queues.toml",
    );
}

#[test]
fn django_prodserver_gevent_pool_and_string_flags() {
    import_settings(
        Some("myproject.settings_gevent"),
        "django/expected-gevent.toml",
    );
}

#[test]
fn settings_that_fail_to_import_are_reported_with_python_s_error() {
    let venv = support::python::venv().display().to_string();
    let dir = scratch();
    let project = django_project().display().to_string();
    let out = prodserver(
        dir.path(),
        &[
            "import",
            "django-prodserver",
            "--settings",
            "myproject.settings_broken",
            &project,
            "-o",
            "prodserver.toml",
        ],
        &[("VIRTUAL_ENV", &venv)],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("could not import the settings myproject.settings_broken"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("NameError: name 'undefined_name' is not defined"),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("prodserver.toml").exists());
}

#[test]
fn a_folder_name_that_is_no_project_name_gets_a_name_key() {
    let dir = scratch();
    let site = dir.path().join("my.site");
    std::fs::create_dir(&site).expect("mkdir");
    copy(
        &fixtures().join("procfile/Procfile"),
        &site.join("Procfile"),
    );
    let out = prodserver(&site, &["import", "procfile", "-o", "prodserver.toml"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let written = std::fs::read_to_string(site.join("prodserver.toml")).expect("written");
    assert!(
        written.contains("[prodserver]\n# the folder's name, `my.site`, is not a valid project name\nname = \"my-site\"\n"),
        "{written}"
    );
    assert_checks(&site, "prodserver.toml");
}

#[test]
fn config_flag_is_refused_rather_than_ignored() {
    let dir = scratch();
    copy(
        &fixtures().join("procfile/Procfile"),
        &dir.path().join("Procfile"),
    );
    let out = prodserver(dir.path(), &["import", "procfile", "-c", "x.toml"], &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("name it with -o FILE"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}
