//! Every error class the loader reports, each asserting where it points
//! (line:col) and that it says how to fix it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{load_str, Diagnostic, LoadOptions, Loaded, Severity};
use crate::plan::{BackendKind, Condition, RestartPolicy};

fn opts() -> LoadOptions {
    let mut env = BTreeMap::new();
    env.insert("PATH".to_string(), "/usr/bin:/bin".to_string());
    LoadOptions {
        hold_sockets: true,
        env,
        runtime_dir: PathBuf::from("/run/user/1000/prodserver"),
        dev: false,
    }
}

fn root() -> PathBuf {
    std::env::temp_dir().join("prodserver-config-tests/shop")
}

fn load(text: &str) -> Result<Loaded, Vec<Found>> {
    load_in(&root(), text)
}

/// Loaded and resolved, as `check` and `start` both do: the errors of
/// either stage.
fn load_in(dir: &Path, text: &str) -> Result<Loaded, Vec<Found>> {
    let opts = opts();
    let loaded = load_str(&dir.join("prodserver.toml"), text.to_string(), &opts).map_err(|e| {
        e.diagnostics
            .iter()
            .map(|d| found(&e.sources, d))
            .collect::<Vec<_>>()
    })?;
    match crate::resolve::resolve(&loaded, &opts.runtime_dir) {
        Ok(_) => Ok(loaded),
        Err(errors) => Err(errors.iter().map(|d| found(&loaded.sources, d)).collect()),
    }
}

/// A diagnostic reduced to what tests assert on.
#[derive(Debug)]
struct Found {
    severity: Severity,
    file: String,
    line: usize,
    col: usize,
    message: String,
    hint: String,
}

fn found(sources: &super::Sources, d: &Diagnostic) -> Found {
    let (line, col) = d
        .span
        .as_ref()
        .map_or((0, 0), |s| sources.line_col(d.file, s.start));
    Found {
        severity: d.severity,
        file: sources
            .path(d.file)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        line,
        col,
        message: d.message.clone(),
        hint: d.hint.clone().unwrap_or_default(),
    }
}

fn errors(text: &str) -> Vec<Found> {
    match load(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(found) => found
            .into_iter()
            .filter(|f| f.severity == Severity::Error)
            .collect(),
    }
}

/// The single error of a file.
fn error(text: &str) -> Found {
    let mut all = errors(text);
    assert_eq!(all.len(), 1, "expected exactly one error, got {all:#?}");
    all.remove(0)
}

const WEB: &str = "[processes.web]\nbackend = \"gunicorn\"\napp = \"shop.wsgi:application\"\n";

#[test]
fn unknown_key_suggests_the_right_one() {
    let e = error("[processes.worker]\nbackend = \"celery-worker\"\napp = \"shop.celery.app\"\nmax_task_per_child = 100\n");
    assert_eq!((e.line, e.col), (4, 1));
    assert!(
        e.message
            .contains("unknown key `processes.worker.max_task_per_child`"),
        "{e:?}"
    );
    assert!(
        e.hint.contains("did you mean `max_tasks_per_child`?"),
        "{e:?}"
    );
}

#[test]
fn unknown_key_without_a_close_match_lists_the_keys() {
    let e = error(
        "[prodserver]\nbanana = 1\n[processes.a]\nbackend = \"command\"\ncommand = \"true\"\n",
    );
    assert_eq!((e.line, e.col), (2, 1));
    assert!(
        e.hint.contains("name, env_file, env, stop_timeout, queues"),
        "{e:?}"
    );
}

#[test]
fn wrong_type_quotes_what_was_found() {
    let e = error("[processes.worker]\nbackend = \"celery-worker\"\napp = \"shop.celery.app\"\nconcurrency = \"four\"\n");
    assert_eq!((e.line, e.col), (4, 15));
    assert!(
        e.message.contains(
            "`processes.worker.concurrency` must be a whole number, found the string \"four\""
        ),
        "{e:?}"
    );
    assert!(e.hint.contains("concurrency = 4"), "{e:?}");
}

#[test]
fn unknown_backend_lists_the_known_ones() {
    let e = error("[processes.web]\nbackend = \"gunicron\"\napp = \"x:y\"\n");
    assert_eq!((e.line, e.col), (2, 11));
    assert!(e.message.contains("unknown backend \"gunicron\""));
    assert!(e.hint.contains("did you mean \"gunicorn\"?"), "{e:?}");
    assert!(e.hint.contains("celery-worker, celery-beat"), "{e:?}");
}

#[test]
fn missing_backend() {
    let e = error("[processes.web]\napp = \"x:y\"\n");
    assert_eq!(e.line, 1);
    assert!(e.message.contains("has no `backend`"));
    assert!(e.hint.contains("backend = \"command\""));
}

#[test]
fn depends_on_unknown_process() {
    let text = format!("{WEB}depends_on = {{ migrat = \"completed\" }}\n[processes.migrate]\nbackend = \"command\"\ncommand = \"true\"\noneshot = true\n");
    let e = error(&text);
    assert_eq!((e.line, e.col), (4, 16));
    assert!(e
        .message
        .contains("`web` depends on `migrat`, which is not a process"));
    assert!(e.hint.contains("did you mean `migrate`?"), "{e:?}");
}

#[test]
fn depends_on_unknown_condition() {
    let text = format!("{WEB}depends_on = {{ db = \"ready\" }}\n[processes.db]\nbackend = \"command\"\ncommand = \"redis-server\"\n");
    let e = error(&text);
    assert_eq!((e.line, e.col), (4, 21));
    assert!(e.message.contains("unknown dependency condition \"ready\""));
    assert!(e.hint.contains("\"started\""), "{e:?}");
}

#[test]
fn completed_needs_a_oneshot() {
    let text = format!("{WEB}depends_on = {{ db = \"completed\" }}\n[processes.db]\nbackend = \"command\"\ncommand = \"redis-server\"\n");
    let e = error(&text);
    assert_eq!((e.line, e.col), (4, 16));
    assert!(e.message.contains("not a oneshot"));
    assert!(e.hint.contains("oneshot = true"));
}

#[test]
fn dependency_cycle_prints_the_cycle() {
    let text = "[processes.a]\nbackend = \"command\"\ncommand = \"true\"\ndepends_on = { b = \"started\" }\n\
                [processes.b]\nbackend = \"command\"\ncommand = \"true\"\ndepends_on = { c = \"started\" }\n\
                [processes.c]\nbackend = \"command\"\ncommand = \"true\"\ndepends_on = { a = \"started\" }\n";
    let e = error(text);
    assert_eq!((e.line, e.col), (4, 16));
    assert!(
        e.message.contains("dependency cycle: a -> b -> c -> a"),
        "{e:?}"
    );
    assert!(e.hint.contains("remove one"));
}

#[test]
fn only_one_beat() {
    let e = error(
        "[processes.beat]\nbackend = \"celery-beat\"\napp = \"shop.celery.app\"\ninstances = 2\n",
    );
    assert_eq!((e.line, e.col), (4, 13));
    assert!(e.message.contains("celery-beat with instances = 2"));
    assert!(e.hint.contains("exactly one beat"));
}

#[test]
fn celery_needs_an_app() {
    let e = error("[processes.worker]\nbackend = \"celery-worker\"\nqueues = [\"default\"]\n");
    assert_eq!(e.line, 2, "{e:?}");
    assert!(e.message.contains("`processes.worker`"), "{e:?}");
    assert!(e.hint.contains("app"), "{e:?}");
}

#[test]
fn empty_command() {
    let e = error("[processes.job]\nbackend = \"command\"\ncommand = []\n");
    assert_eq!((e.line, e.col), (3, 11));
    assert!(!e.hint.is_empty());
}

#[test]
fn bad_duration_and_size_are_both_reported() {
    let all = errors("[processes.web]\nbackend = \"gunicorn\"\napp = \"x:y\"\nstop_timeout = \"30\"\nmax_memory_per_child = \"300 potatoes\"\n");
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!((all[0].line, all[0].col), (4, 16));
    assert!(all[0]
        .message
        .contains("bad duration for `processes.web.stop_timeout`: \"30\" has no unit"));
    assert!(all[0].hint.contains("\"30s\""));
    assert_eq!((all[1].line, all[1].col), (5, 24));
    assert!(all[1].message.contains("bad size"));
    assert!(all[1].hint.contains("MiB"));
}

#[test]
fn unreadable_env_file() {
    let e = error(&format!("[prodserver]\nenv_file = \"missing.env\"\n{WEB}"));
    assert_eq!((e.line, e.col), (2, 12));
    assert!(e.message.contains("cannot read env_file"));
    assert!(e.hint.contains("config file's folder"));
}

#[test]
fn env_file_errors_point_into_the_env_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), "OK=1\nthis is wrong\n").expect("write");
    let found = load_in(
        dir.path(),
        &format!("[prodserver]\nenv_file = \".env\"\n{WEB}"),
    )
    .err()
    .expect("errors");
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].file.as_str(), found[0].line, found[0].col),
        (".env", 2, 1)
    );
}

#[test]
fn no_processes() {
    let e = error("[prodserver]\nname = \"shop\"\n");
    assert!(e.message.contains("no processes"));
    assert!(e.hint.contains("[processes.web]"));
    let e = error("[processes]\n");
    assert_eq!(e.line, 1);
    assert!(e.message.contains("no processes"));
}

#[test]
fn syntax_errors_have_a_location() {
    let e = errors("[processes.web\nbackend = \"gunicorn\"\n").remove(0);
    assert_eq!(e.line, 1);
    assert!(e.message.starts_with("TOML syntax"), "{e:?}");
}

#[test]
fn every_error_in_the_file_is_reported() {
    let text = "[processes.a]\nbackend = \"nope\"\n[processes.b]\nbackend = \"command\"\ncommand = \"true\"\ninstances = 0\nrestart = \"sometimes\"\n[processes.c]\nbackend = \"celery-beat\"\n";
    let all = errors(text);
    assert_eq!(all.len(), 4, "{all:#?}");
    let lines: Vec<usize> = all.iter().map(|e| e.line).collect();
    assert!(
        lines.contains(&2) && lines.contains(&6) && lines.contains(&7) && lines.contains(&9),
        "{lines:?}"
    );
}

#[test]
fn keys_of_another_backend_are_rejected() {
    let e = error(&format!("{WEB}queues = [\"default\"]\n"));
    assert_eq!((e.line, e.col), (4, 1));
    assert!(e.message.contains("does not apply to backend \"gunicorn\""));
    assert!(e.hint.contains("celery-worker"));
}

#[test]
fn oneshot_cannot_restart_always() {
    let e = error("[processes.m]\nbackend = \"command\"\ncommand = \"true\"\noneshot = true\nrestart = \"always\"\n");
    assert_eq!((e.line, e.col), (5, 11));
    assert!(e.hint.contains("on-failure"));
}

#[test]
fn queue_routing_errors_and_warnings() {
    let text = "[prodserver]\nqueues = [\"default\", \"emails\"]\n\
                [processes.w]\nbackend = \"celery-worker\"\napp = \"a\"\nqueues = [\"default\", \"reports\"]\n";
    let found = load(text).err().expect("errors");
    let e: Vec<&Found> = found
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert_eq!(e.len(), 1, "{found:#?}");
    assert_eq!((e[0].line, e[0].col), (2, 22));
    assert!(e[0]
        .message
        .contains("queue \"emails\" is routed to but no celery-worker consumes it"));
    let w: Vec<&Found> = found
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .collect();
    assert_eq!(w.len(), 1);
    assert!(w[0].message.contains("consumes queue \"reports\""));
}

#[test]
fn a_good_file_resolves_with_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".env"), "export FROM_FILE=1\nSHARED=file\n").expect("write");
    let text = r#"
[prodserver]
name = "shop"
env_file = ".env"
env = { DJANGO_SETTINGS_MODULE = "shop.settings", SHARED = "global" }
stop_timeout = "20s"

[processes.migrate]
backend = "command"
command = ["python", "manage.py", "migrate", "--noinput"]
oneshot = true

[processes.web]
backend = "gunicorn"
app = "shop.wsgi:application"
args = { bind = "127.0.0.1:8000", workers = 4 }
depends_on = { migrate = "completed" }
env = { SHARED = "process" }
health = { http = "http://127.0.0.1:8000/healthz/", interval = "5s", timeout = "2s", retries = 3 }
max_memory_per_child = "512MiB"

[processes.beat]
backend = "celery-beat"
app = "shop.celery.app"
"#;
    let loaded = load_in(dir.path(), text).expect("loads");
    let plan = &loaded.plan;
    assert_eq!(plan.name, "shop");
    assert_eq!(plan.processes.len(), 3);
    let migrate = &plan.processes[0];
    assert!(migrate.oneshot);
    assert_eq!(migrate.restart, RestartPolicy::Never);
    assert_eq!(migrate.stop_timeout, Duration::from_secs(20));
    let web = &plan.processes[1];
    assert_eq!(web.backend, BackendKind::Gunicorn);
    assert_eq!(web.restart, RestartPolicy::Always);
    assert_eq!(web.depends_on[0].process, 0);
    assert_eq!(web.depends_on[0].condition, Condition::Completed);
    assert_eq!(web.env.get("SHARED").map(String::as_str), Some("process"));
    assert_eq!(web.env.get("FROM_FILE").map(String::as_str), Some("1"));
    assert_eq!(web.limits.max_memory_per_child, Some(512 << 20));
    assert_eq!(web.cwd, dir.path());
    assert_eq!(
        migrate.env.get("SHARED").map(String::as_str),
        Some("file"),
        "env_file overrides [prodserver].env"
    );
    let beat = &plan.processes[2];
    assert!(beat.singleton);
    assert_eq!(beat.instances, 1);
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let text = "[processes.web]\nbackend = \"gunicorn\"\napp = \"a:b\"\nprogram = \".venv/bin/gunicorn\"\ncwd = \"src\"\n";
    let loaded = load(text).expect("loads");
    let web = &loaded.plan.processes[0];
    assert_eq!(
        web.argv[0],
        root().join(".venv/bin/gunicorn").display().to_string()
    );
    assert_eq!(web.cwd, root().join("src"));
}

#[test]
fn command_strings_split_like_a_shell_without_one() {
    let loaded = load("[processes.j]\nbackend = \"command\"\ncommand = \"python -c 'print(1)'\"\n")
        .expect("loads");
    assert_eq!(
        loaded.plan.processes[0].argv,
        vec!["python", "-c", "print(1)"]
    );
}

#[test]
fn bad_probes_are_config_errors() {
    let e = error(&format!("{WEB}health = {{ log = \"(unclosed\" }}\n"));
    assert_eq!((e.line, e.col), (4, 18));
    assert!(e.message.contains("processes.web.health"), "{e:?}");
    assert!(e.hint.contains("regex"), "{e:?}");
    let e = error(&format!("{WEB}health = {{ tcp = \"localhost:99999\" }}\n"));
    assert_eq!(e.line, 4, "{e:?}");
}

#[test]
fn health_path_belongs_to_web_backends_default_probe() {
    let e = error("[processes.job]\nbackend = \"command\"\ncommand = \"true\"\nhealth = { path = \"/healthz/\" }\n");
    assert!(
        e.message
            .contains("only applies to gunicorn, uvicorn and granian"),
        "{e:?}"
    );
    assert_eq!((e.line, e.col), (4, 19));
    let e = error(&format!(
        "{WEB}health = {{ path = \"/x\", http = \"http://127.0.0.1:1/\" }}\n"
    ));
    assert!(e.hint.contains("put the path in its URL"), "{e:?}");
    let e = error(&format!("{WEB}health = {{ path = \"healthz\" }}\n"));
    assert!(e.message.contains("must be a URL path"), "{e:?}");
    assert!(load(&format!("{WEB}health = {{ path = \"/healthz/\" }}\n")).is_ok());
}

/// The single error of a file, asserting its line and column.
fn error_at(text: &str, line: usize, col: usize) -> Found {
    let e = error(text);
    assert_eq!((e.line, e.col), (line, col), "{e:#?}");
    assert!(!e.hint.is_empty(), "{e:#?}");
    e
}

#[test]
fn durations_are_bounded_and_months_refused() {
    let e = error_at(
        &format!("{WEB}health = {{ log = \"x\", start_timeout = \"300000000000y\" }}\n"),
        4,
        39,
    );
    assert!(e.message.contains("maximum of 1 year"), "{e:?}");
    let e = error_at(
        &format!("{WEB}[processes.web.health]\nlog = \"x\"\ninterval = \"500000000000y\"\n"),
        6,
        12,
    );
    assert!(e.message.contains("processes.web.health.interval"), "{e:?}");
    let e = error_at(&format!("{WEB}stop_timeout = \"5M\"\n"), 4, 16);
    assert!(e.message.contains("`5m` or `5min`"), "{e:?}");
    let e = error_at(&format!("{WEB}backoff = \"5M\"\n"), 4, 11);
    assert!(e.message.contains("months"), "{e:?}");
    // Sizes keep M = MiB.
    let loaded = load(&format!("{WEB}max_memory_per_child = \"5M\"\n")).expect("loads");
    assert_eq!(
        loaded.plan.processes[0].limits.max_memory_per_child,
        Some(5 << 20)
    );
}

#[test]
fn instances_are_bounded() {
    let e = error_at(&format!("{WEB}instances = 100000000\n"), 4, 13);
    assert!(e.message.contains("maximum of 1000"), "{e:?}");
    assert!(load(&format!(
        "{WEB}instances = 1000\nargs = {{ bind = \"127.0.0.1:{{instance}}\" }}\n"
    ))
    .is_ok());
}

#[test]
fn users_and_groups_must_exist() {
    let e = error_at(&format!("{WEB}user = \"no-such-user-prodserver\"\n"), 4, 8);
    assert!(e.message.contains("does not exist"), "{e:?}");
    assert!(e.hint.contains("useradd"), "{e:?}");
    let e = error_at(&format!("{WEB}user = \"\"\n"), 4, 8);
    assert!(e.message.contains("empty"), "{e:?}");
    let e = error_at(
        &format!("{WEB}group = \"no-such-group-prodserver\"\n"),
        4,
        9,
    );
    assert!(e.message.contains("does not exist"), "{e:?}");
    let e = error_at(&format!("{WEB}user = \"4242424\"\n"), 4, 8);
    assert!(e.hint.contains("group"), "{e:?}");
    assert!(load(&format!("{WEB}user = \"4242424\"\ngroup = \"4242424\"\n")).is_ok());
    assert!(load(&format!("{WEB}user = \"root\"\n")).is_ok());
}

#[test]
fn names_are_bounded() {
    let long = "a".repeat(5000);
    let e = error_at(&format!("[prodserver]\nname = \"{long}\"\n{WEB}"), 2, 8);
    assert!(e.message.contains("more than 64"), "{e:?}");
    let e = error_at(
        &format!("[processes.{long}]\nbackend = \"command\"\ncommand = \"true\"\n"),
        1,
        12,
    );
    assert!(e.message.contains("more than 64"), "{e:?}");
    assert!(load(&format!(
        "[prodserver]\nname = \"{}\"\n{WEB}",
        "a".repeat(64)
    ))
    .is_ok());
}

#[test]
fn strings_the_kernel_would_refuse_at_exec() {
    let big = "x".repeat(super::load::MAX_ARG_STRLEN);
    let e = error_at(&format!("{WEB}env = {{ BIG = \"{big}\" }}\n"), 4, 15);
    assert!(e.message.contains("environment variable BIG"), "{e:?}");
    let e = error_at(&format!("{WEB}args = {{ name = \"{big}\" }}\n"), 4, 8);
    assert!(e.message.contains("kernel refuses"), "{e:?}");
    // Many strings each under the limit, together over ARG_MAX.
    let part = "y".repeat(100_000);
    let count = super::load::arg_max() / 100_000 + 2;
    let vars: Vec<String> = (0..count).map(|i| format!("V{i} = \"{part}\"")).collect();
    let e = error(&format!("{WEB}env = {{ {} }}\n", vars.join(", ")));
    assert!(e.message.contains("ARG_MAX"), "{e:?}");
}

#[test]
fn stop_signals_that_do_not_stop_are_refused() {
    for sig in [
        "CHLD", "WINCH", "CONT", "STOP", "PIPE", "URG", "TSTP", "TTIN", "TTOU", "SIGCHLD", "17",
    ] {
        let e = error_at(&format!("{WEB}stop_signal = \"{sig}\"\n"), 4, 15);
        assert!(
            e.message.contains("cannot be a stop signal"),
            "{sig}: {e:?}"
        );
    }
    for sig in ["TERM", "INT", "QUIT", "HUP", "KILL", "USR1"] {
        assert!(
            load(&format!("{WEB}stop_signal = \"{sig}\"\n")).is_ok(),
            "{sig}"
        );
    }
}

#[test]
fn values_that_could_never_work_are_refused_with_the_reason() {
    let cases: &[(&str, (usize, usize), &str)] = &[
        (
            "health = { log = \"x\", start_timeout = \"0s\" }",
            (4, 39),
            "longer than zero",
        ),
        (
            "health = { log = \"x\", interval = \"0s\" }",
            (4, 34),
            "longer than zero",
        ),
        (
            "health = { log = \"x\", timeout = \"0s\" }",
            (4, 33),
            "longer than zero",
        ),
        ("health = { exec = [\"\"] }", (4, 19), "non-empty command"),
        ("health = { exec = \"\" }", (4, 19), "non-empty command"),
        (
            "health = { http = \"http://127.0.0.1:1/\", status = 99999 }",
            (4, 51),
            "not an HTTP status",
        ),
        (
            "health = { http = \"http://127.0.0.1:1/\", status = 600 }",
            (4, 51),
            "not an HTTP status",
        ),
        ("restart_window = \"0s\"", (4, 18), "longer than zero"),
        ("max_memory_per_child = \"1B\"", (4, 24), "minimum of 1MiB"),
    ];
    for (line, at, what) in cases {
        let e = error(&format!("{WEB}{line}\n"));
        assert_eq!((e.line, e.col), *at, "{line}: {e:#?}");
        assert!(e.message.contains(what), "{line}: {e:#?}");
        assert!(!e.hint.is_empty());
    }
}

#[test]
fn cwd_that_is_a_file_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("afile"), "").expect("write");
    let found = load_in(dir.path(), &format!("{WEB}cwd = \"afile\"\n"))
        .err()
        .expect("errors");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].severity, Severity::Error);
    assert_eq!((found[0].line, found[0].col), (4, 7));
    assert!(found[0].message.contains("is not a directory"), "{found:?}");
}

#[test]
fn health_is_planned_as_start_plans_it() {
    let e = error_at(
        "[processes.web]\nbackend = \"gunicorn\"\napp = \"a:b\"\nargs = { bind = \"unix:/tmp/x.sock\" }\nhealth = { path = \"/x\" }\n",
        5,
        1,
    );
    assert!(e.message.contains("unix socket"), "{e:?}");
}

#[test]
fn a_non_utf8_file_is_located_at_its_first_bad_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("prodserver.toml");
    std::fs::write(&path, b"[processes.web]\nbackend = \"comm\xe9nd\"\n").expect("write");
    let e = super::load(&path, &opts()).err().expect("error");
    let found: Vec<Found> = e.diagnostics.iter().map(|d| found(&e.sources, d)).collect();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!((found[0].line, found[0].col), (2, 16));
    assert!(found[0].message.contains("not valid UTF-8"), "{found:?}");
    assert!(!found[0].message.contains(&*path.display().to_string()));
}

#[test]
fn a_regex_error_is_one_line() {
    let e = error(&format!("{WEB}health = {{ log = \"(unclosed\" }}\n"));
    assert!(!e.message.contains('\n'), "{e:?}");
    assert!(e.message.contains("unclosed group"), "{e:?}");
}

#[test]
fn variables_expand_in_every_string() {
    let mut o = opts();
    o.env.insert("PORT".into(), "9001".into());
    o.env.insert("APP".into(), "shop.wsgi:application".into());
    let text = "[processes.web]\nbackend = \"gunicorn\"\napp = \"${APP}\"\nprogram = \"${BIN:-/usr/bin}/gunicorn\"\nargs = { bind = \"127.0.0.1:${PORT}\", name = \"$${X} $$\" }\ncwd = \"${HOME:-/tmp}\"\nhealth = { http = \"http://127.0.0.1:${PORT}/\" }\n\
                [processes.job]\nbackend = \"command\"\ncommand = \"echo ${PORT} '${UNSET:-a b}'\"\n";
    let loaded = load_str(&root().join("prodserver.toml"), text.into(), &o).expect("loads");
    let web = &loaded.plan.processes[0];
    assert_eq!(web.argv[0], "/usr/bin/gunicorn");
    assert!(
        web.argv.contains(&"--bind=127.0.0.1:9001".to_string()),
        "{:?}",
        web.argv
    );
    assert!(
        web.argv.contains(&"--name=${X} $$".to_string()),
        "{:?}",
        web.argv
    );
    assert!(web.argv.contains(&"shop.wsgi:application".to_string()));
    assert_eq!(web.cwd, Path::new("/tmp"));
    let desc = crate::health::describe(&crate::health::plan_for_instance(web, 1).expect("plan"));
    assert!(desc.contains("127.0.0.1:9001"), "{desc}");
    assert_eq!(loaded.plan.processes[1].argv, ["echo", "9001", "a b"]);
    let e = error_at(&format!("{WEB}args = {{ bind = \"${{NOPE}}\" }}\n"), 4, 17);
    assert!(e.message.contains("NOPE is not set"), "{e:?}");
}

#[test]
fn two_binds_of_one_address_are_refused() {
    // uvicorn's default 127.0.0.1:8000 is inside gunicorn's 0.0.0.0:8000.
    let e = error_at(
        &format!("{WEB}args = {{ bind = \"0.0.0.0:8000\" }}\n[processes.api]\nbackend = \"uvicorn\"\napp = \"a:b\"\n"),
        5,
        12,
    );
    assert_eq!(e.message, "`api` binds 127.0.0.1:8000, as `web` does");
    let e = error_at(
        &format!("{WEB}instances = 2\nargs = {{ bind = \"127.0.0.1:8000\" }}\n"),
        5,
        17,
    );
    assert_eq!(
        e.message,
        "`web` instance 2 binds 127.0.0.1:8000, as `web` instance 1 does"
    );
    assert!(e.hint.contains("{instance}"), "{e:?}");
    let e = error_at(
        "[processes.a]\nbackend = \"daphne\"\napp = \"a:b\"\nargs = { u = \"/tmp/s\" }\n[processes.b]\nbackend = \"gunicorn\"\napp = \"a:b\"\nargs = { bind = \"unix:/tmp/s\" }\n",
        8,
        17,
    );
    assert!(e.message.contains("unix:/tmp/s"), "{e:?}");
    // Per-instance ports, a health URL (not a bind), and distinct ports pass.
    assert!(load(&format!(
        "{WEB}instances = 2\nargs = {{ bind = \"127.0.0.1:800{{instance}}\" }}\n"
    ))
    .is_ok());
    assert!(load(&format!("{WEB}[processes.w]\nbackend = \"waitress\"\napp = \"a:b\"\nhealth = {{ http = \"http://127.0.0.1:8000/\" }}\n")).is_ok());
    assert!(load(&format!(
        "{WEB}[processes.d]\nbackend = \"daphne\"\napp = \"a:b\"\nargs = {{ p = 8001 }}\n"
    ))
    .is_ok());
}

#[test]
fn queues_in_args_are_refused() {
    for key in ["queues", "Q"] {
        let text = format!("[prodserver]\nqueues = [\"a\", \"b\"]\n[processes.w]\nbackend = \"celery-worker\"\napp = \"shop\"\nargs = {{ {key} = \"a,b\" }}\n");
        let all = errors(&text);
        let e = all
            .iter()
            .find(|e| e.message.contains("gives its queues in"))
            .unwrap_or_else(|| panic!("{all:#?}"));
        assert_eq!((e.line, e.col), (6, 11 + key.len() + 1 + 1), "{e:?}");
        assert!(e.hint.contains("`queues` key"), "{e:?}");
    }
}

#[test]
fn uvicorn_with_a_wsgi_app_warns() {
    for app in ["shop.wsgi:application", "wsgi:app"] {
        let text = format!("[processes.web]\nbackend = \"uvicorn\"\napp = \"{app}\"\n");
        let loaded = load(&text).expect("loads");
        let w = &loaded.warnings;
        assert_eq!(w.len(), 1, "{app}");
        assert_eq!(w[0].severity, Severity::Warning);
        assert_eq!(
            loaded
                .sources
                .line_col(0, w[0].span.clone().expect("span").start),
            (3, 7)
        );
        assert!(w[0]
            .hint
            .as_deref()
            .unwrap_or("")
            .contains("interface = \"wsgi\""));
    }
    let text = "[processes.web]\nbackend = \"uvicorn\"\napp = \"shop.wsgi:application\"\nargs = { interface = \"wsgi\" }\n";
    assert!(load(text).expect("loads").warnings.is_empty());
    let text = "[processes.web]\nbackend = \"uvicorn\"\napp = \"shop.asgi:application\"\n";
    assert!(load(text).expect("loads").warnings.is_empty());
}

#[test]
fn queues_without_a_consumer_among_the_selected() {
    let text = "[prodserver]\nqueues = [\"celery\", \"emails\"]\n\
                [processes.w1]\nbackend = \"celery-worker\"\napp = \"shop\"\n\
                [processes.w2]\nbackend = \"celery-worker\"\napp = \"shop\"\nqueues = [\"emails\"]\n\
                [processes.web]\nbackend = \"command\"\ncommand = \"true\"\n";
    let plan = load(text).expect("loads").plan;
    assert_eq!(
        super::unconsumed_queues(&plan, &[0, 1, 2]),
        Vec::<String>::new()
    );
    assert_eq!(super::unconsumed_queues(&plan, &[0]), ["emails"]);
    assert_eq!(super::unconsumed_queues(&plan, &[2]), ["celery", "emails"]);
}

// ---- recycling keys ----

fn loads(text: &str) -> crate::plan::ProcessSpec {
    match load(text) {
        Ok(loaded) => loaded.plan.processes[0].clone(),
        Err(found) => panic!("expected a plan, got {found:#?}"),
    }
}

fn warnings(text: &str) -> Vec<String> {
    load(text)
        .unwrap_or_else(|f| panic!("{f:#?}"))
        .warnings
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| d.message.clone())
        .collect()
}

#[test]
fn memory_defaults_react_within_750ms_and_recycling_is_not_called_unenforced() {
    use crate::plan::{MemoryMetric, MemoryScope};
    let text = format!("{WEB}max_memory_per_child = \"300MiB\"\nmax_tasks_per_child = 10\n");
    let web = loads(&text);
    assert_eq!(web.limits.memory_metric, MemoryMetric::Pss);
    assert_eq!(web.limits.memory_interval, Duration::from_millis(250));
    assert_eq!(web.limits.memory_samples, 3);
    assert_eq!(
        web.limits.memory_interval * web.limits.memory_samples,
        Duration::from_millis(750)
    );
    assert_eq!(web.limits.memory_scope, MemoryScope::Child);
    assert!(
        !warnings(&text).iter().any(|w| w.contains("not enforced")),
        "{:?}",
        warnings(&text)
    );
}

#[test]
fn memory_interval_and_samples_are_bounded() {
    let cases: &[(&str, (usize, usize), &str)] = &[
        ("memory_interval = \"49ms\"", (4, 19), "minimum of 50ms"),
        ("memory_interval = \"61s\"", (4, 19), "maximum of 1m"),
        ("memory_samples = 0", (4, 18), "1 or more"),
        ("memory_samples = 101", (4, 18), "maximum of 100"),
        ("memory_scope = \"tree\"", (4, 16), "unknown memory scope"),
        ("memory_metric = \"vsz\"", (4, 17), "unknown memory metric"),
    ];
    for (line, at, what) in cases {
        let e = error(&format!("{WEB}{line}\n"));
        assert_eq!((e.line, e.col), *at, "{line}: {e:#?}");
        assert!(e.message.contains(what), "{line}: {e:#?}");
        assert!(!e.hint.is_empty());
    }
    let web = loads(&format!(
        "{WEB}memory_interval = \"50ms\"\nmemory_samples = 100\n"
    ));
    assert_eq!(web.limits.memory_interval, Duration::from_millis(50));
    assert_eq!(web.limits.memory_samples, 100);
    let web = loads(&format!("{WEB}memory_interval = \"1m\"\n"));
    assert_eq!(web.limits.memory_interval, Duration::from_secs(60));
}

#[test]
fn memory_scope_defaults_per_backend() {
    use crate::plan::MemoryScope;
    let worker = loads(
        "[processes.w]\nbackend = \"celery-worker\"\napp = \"shop.celery.app\"\nmax_memory_per_child = \"300MiB\"\n",
    );
    assert_eq!(worker.limits.memory_scope, MemoryScope::Instance);
    let api = loads(
        "[processes.api]\nbackend = \"uvicorn\"\napp = \"shop.asgi:application\"\nargs = { workers = 3 }\nmax_memory_per_child = \"300MiB\"\nmemory_scope = \"child\"\n",
    );
    assert_eq!(api.limits.memory_scope, MemoryScope::Child);
    let web = loads(&format!(
        "{WEB}memory_scope = \"instance\"\nmax_memory_per_child = \"1GiB\"\n"
    ));
    assert_eq!(web.limits.memory_scope, MemoryScope::Instance);
}

#[test]
fn child_scope_on_celery_worker_is_refused_with_both_ways_out() {
    let e = error(
        "[processes.w]\nbackend = \"celery-worker\"\napp = \"shop.celery.app\"\nmax_memory_per_child = \"300MiB\"\nmemory_scope = \"child\"\n",
    );
    assert_eq!((e.line, e.col), (5, 16), "{e:#?}");
    assert!(e.message.contains("task is lost"), "{e:#?}");
    assert!(e.hint.contains("remove `memory_scope`"), "{e:#?}");
    assert!(e.hint.contains("max-memory-per-child"), "{e:#?}");
}

#[test]
fn child_scope_where_nothing_replaces_a_child_is_refused() {
    for (backend, app) in [
        ("command", "command = \"python job.py\""),
        ("celery-beat", "app = \"shop.celery.app\""),
        ("uvicorn", "app = \"shop.asgi:application\""),
        ("granian", "app = \"shop.asgi:application\""),
        ("daphne", "app = \"shop.asgi:application\""),
        ("waitress", "app = \"shop.wsgi:application\""),
    ] {
        let e = error(&format!(
            "[processes.p]\nbackend = \"{backend}\"\n{app}\nmemory_scope = \"child\"\nmax_memory_per_child = \"300MiB\"\n"
        ));
        assert_eq!((e.line, e.col), (4, 16), "{backend}: {e:#?}");
        assert!(e.message.contains(backend), "{e:#?}");
        assert!(e.hint.contains("remove `memory_scope`"), "{e:#?}");
    }
}

#[test]
fn uvicorn_workers_from_the_environment_allow_child_scope() {
    let api = loads(
        "[processes.api]\nbackend = \"uvicorn\"\napp = \"shop.asgi:application\"\nenv = { WEB_CONCURRENCY = \"4\" }\nmax_memory_per_child = \"300MiB\"\nmemory_scope = \"child\"\n",
    );
    assert_eq!(api.limits.memory_scope, crate::plan::MemoryScope::Child);
}

#[test]
fn memory_scope_without_a_limit_warns() {
    let w = warnings(&format!("{WEB}memory_scope = \"instance\"\n"));
    assert!(
        w.iter()
            .any(|m| m.contains("no effect without `max_memory_per_child`")),
        "{w:?}"
    );
}

#[test]
fn max_tasks_on_gunicorn_becomes_max_requests_with_jitter() {
    let web = loads(&format!("{WEB}max_tasks_per_child = 1000\n"));
    let n = web.argv.len();
    assert_eq!(
        web.argv[n - 3..],
        [
            "--max-requests=1000",
            "--max-requests-jitter=100",
            "shop.wsgi:application"
        ]
    );
    // The server recycles: prodserver counts nothing, and `check` says why.
    assert_eq!(web.limits.max_tasks_per_child, None);
    let note = web.limits.server_recycling.expect("a note for check");
    assert!(
        note.contains("--max-requests=1000 --max-requests-jitter=100"),
        "{note}"
    );
    let web = loads(&format!("{WEB}max_tasks_per_child = 5\n"));
    assert!(
        web.argv.contains(&"--max-requests-jitter=1".to_owned()),
        "{:?}",
        web.argv
    );
}

#[test]
fn a_jitter_in_args_wins_over_ours() {
    let web = loads(
        "[processes.web]\nbackend = \"gunicorn\"\napp = \"a:b\"\nargs = { max-requests-jitter = 7 }\nmax_tasks_per_child = 1000\n",
    );
    let jitters: Vec<_> = web.argv.iter().filter(|a| a.contains("jitter")).collect();
    assert_eq!(jitters, ["--max-requests-jitter=7"]);
}

#[test]
fn the_servers_own_limit_in_args_too_is_two_sources_of_truth() {
    let e = error(
        "[processes.web]\nbackend = \"gunicorn\"\napp = \"a:b\"\nargs = { max-requests = 500 }\nmax_tasks_per_child = 1000\n",
    );
    assert_eq!((e.line, e.col), (4, 25), "{e:#?}");
    assert!(e.message.contains("both set"), "{e:#?}");
    let e = error(
        "[processes.api]\nbackend = \"uvicorn\"\napp = \"a:b\"\nargs = { limit-max-requests = 500 }\nmax_tasks_per_child = 1000\n",
    );
    assert_eq!((e.line, e.col), (4, 31), "{e:#?}");
}

#[test]
fn max_tasks_on_uvicorn_becomes_limit_max_requests() {
    let one =
        loads("[processes.api]\nbackend = \"uvicorn\"\napp = \"a:b\"\nmax_tasks_per_child = 300\n");
    assert_eq!(
        one.argv,
        ["uvicorn", "--limit-max-requests=300", "--fd=3", "a:b"]
    );
    let note = one.limits.server_recycling.expect("note");
    assert!(note.contains("prodserver restarts it"), "{note}");
    assert!(note.contains("refusing connections"), "{note}");
    let many = loads(
        "[processes.api]\nbackend = \"uvicorn\"\napp = \"a:b\"\nargs = { workers = 2 }\nmax_tasks_per_child = 300\n",
    );
    let note = many.limits.server_recycling.expect("note");
    assert!(note.contains("each uvicorn worker"), "{note}");
}

#[test]
fn single_process_uvicorn_that_would_not_be_restarted_is_refused() {
    let e = error(
        "[processes.api]\nbackend = \"uvicorn\"\napp = \"a:b\"\nrestart = \"on-failure\"\nmax_tasks_per_child = 300\n",
    );
    assert_eq!((e.line, e.col), (5, 23), "{e:#?}");
    assert!(e.message.contains("status 0"), "{e:#?}");
}

#[test]
fn max_tasks_where_no_one_counts_is_refused() {
    for (backend, app, what) in [
        (
            "granian",
            "app = \"shop.asgi:application\"",
            "workers-lifetime",
        ),
        (
            "daphne",
            "app = \"shop.asgi:application\"",
            "max_memory_per_child",
        ),
        (
            "waitress",
            "app = \"shop.wsgi:application\"",
            "max_memory_per_child",
        ),
        ("celery-beat", "app = \"shop.celery.app\"", "celery-worker"),
    ] {
        let e = error(&format!(
            "[processes.p]\nbackend = \"{backend}\"\n{app}\nmax_tasks_per_child = 10\n"
        ));
        assert_eq!((e.line, e.col), (4, 23), "{backend}: {e:#?}");
        assert!(e.hint.contains(what), "{backend}: {e:#?}");
    }
}

#[test]
fn max_tasks_stays_prodserver_s_where_tasks_done_is_counted() {
    let w = loads(
        "[processes.w]\nbackend = \"celery-worker\"\napp = \"shop.celery.app\"\nmax_tasks_per_child = 1000\n",
    );
    assert_eq!(w.limits.max_tasks_per_child, Some(1000));
    assert_eq!(w.limits.server_recycling, None);
    assert!(!w.argv.iter().any(|a| a.contains("max")), "{:?}", w.argv);
    let c = loads("[processes.c]\nbackend = \"command\"\ncommand = \"python job.py\"\nmax_tasks_per_child = 5\n");
    assert_eq!(c.limits.max_tasks_per_child, Some(5));
}

const WORKER: &str = "[processes.worker]\nbackend = \"celery-worker\"\napp = \"shop.celery.app\"\n";

fn only_process(text: &str) -> crate::plan::ProcessSpec {
    let loaded = load(text).unwrap_or_else(|e| panic!("{e:#?}"));
    loaded.plan.processes[0].clone()
}

#[test]
fn escalation_defaults_per_backend_and_kill_timeout_from_the_project() {
    let worker = only_process(WORKER);
    assert_eq!(worker.escalate_signal, Some(libc::SIGQUIT));
    assert_eq!(worker.kill_timeout, Duration::from_secs(10));
    assert_eq!(only_process(WEB).escalate_signal, None);

    let worker = only_process(&format!("[prodserver]\nkill_timeout = \"20s\"\n{WORKER}"));
    assert_eq!(worker.kill_timeout, Duration::from_secs(20));
    let loaded = load(&format!(
        "[prodserver]\nkill_timeout = \"20s\"\n{WORKER}kill_timeout = \"3s\"\nescalate_signal = \"none\"\n"
    ))
    .unwrap_or_else(|e| panic!("{e:#?}"));
    let worker = &loaded.plan.processes[0];
    assert_eq!(
        (worker.escalate_signal, worker.kill_timeout),
        (None, Duration::from_secs(3))
    );
    // A kill_timeout that nothing uses is said, where it is written.
    let warnings: Vec<Found> = loaded
        .warnings
        .iter()
        .map(|d| found(&loaded.sources, d))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!((warnings[0].line, warnings[0].col), (6, 16));
    assert!(
        warnings[0].message.contains("has no effect"),
        "{warnings:#?}"
    );
    for (text, sig) in [
        ("INT", libc::SIGINT),
        ("SIGQUIT", libc::SIGQUIT),
        ("15", libc::SIGTERM),
    ] {
        let web = only_process(&format!("{WEB}escalate_signal = \"{text}\"\n"));
        assert_eq!(web.escalate_signal, Some(sig), "{text}");
    }
}

#[test]
fn escalation_signals_that_cannot_work_are_refused_where_written() {
    let e = error_at(&format!("{WORKER}escalate_signal = \"KILL\"\n"), 4, 19);
    assert!(
        e.message.contains("KILL cannot be the escalation signal"),
        "{e:?}"
    );
    assert!(e.hint.contains("escalate_signal = \"none\""), "{e:?}");
    for sig in ["STOP", "CHLD", "CONT", "PIPE"] {
        let e = error_at(&format!("{WORKER}escalate_signal = \"{sig}\"\n"), 4, 19);
        assert!(
            e.message.contains("cannot be the escalation signal"),
            "{sig}: {e:?}"
        );
    }
    let e = error_at(&format!("{WORKER}escalate_signal = \"QUITE\"\n"), 4, 19);
    assert!(e.message.contains("unknown signal \"QUITE\""), "{e:?}");
    let e = error_at(&format!("{WORKER}escalate_signal = 3\n"), 4, 19);
    assert!(e.message.contains("escalate_signal"), "{e:?}");
    let e = error_at(&format!("{WORKER}kill_timeout = \"10\"\n"), 4, 16);
    assert!(e.message.contains("kill_timeout"), "{e:?}");
    let e = error_at("[prodserver]\nkill_timeout = \"soon\"\n[processes.a]\nbackend = \"command\"\ncommand = \"true\"\n", 2, 16);
    assert!(e.message.contains("kill_timeout"), "{e:?}");
}

fn load_dev(text: &str) -> Result<Loaded, Vec<Found>> {
    let opts = LoadOptions {
        hold_sockets: true,
        dev: true,
        ..opts()
    };
    load_str(&root().join("prodserver.toml"), text.to_string(), &opts).map_err(|e| {
        e.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| found(&e.sources, d))
            .collect()
    })
}

const DEV_STACK: &str = r#"[processes.web]
backend = "gunicorn"
app = "shop.wsgi:application"
env = { LEVEL = "info", KEEP = "1" }
instances = 3
args = { bind = "127.0.0.1:800{instance}" }

[processes.web.dev]
backend = "django-runserver"
instances = 1
env = { LEVEL = "debug" }

[processes.flower]
backend = "flower"
app = "shop"
dev = { enabled = false }
"#;

#[test]
fn dev_overrides_replace_keys_and_merge_env_only_under_dev() {
    let plain = load(DEV_STACK).unwrap().plan;
    assert_eq!(plain.processes.len(), 2);
    assert_eq!(plain.processes[0].backend, BackendKind::Gunicorn);
    assert_eq!(plain.processes[0].instances, 3);
    assert_eq!(plain.processes[0].env["LEVEL"], "info");
    assert_eq!(
        plain.processes[0].stop_timeout,
        super::schema::DEFAULT_STOP_TIMEOUT
    );

    let dev = load_dev(DEV_STACK).unwrap().plan;
    let names: Vec<&str> = dev.processes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web"], "enabled = false leaves flower out");
    let web = &dev.processes[0];
    assert_eq!(web.backend, BackendKind::DjangoRunserver);
    assert_eq!(web.instances, 1);
    assert_eq!(web.env["LEVEL"], "debug");
    assert_eq!(web.env["KEEP"], "1", "dev env adds to env, not replaces it");
    assert_eq!(web.stop_timeout, super::schema::DEFAULT_DEV_STOP_TIMEOUT);
}

#[test]
fn an_explicit_stop_timeout_wins_over_the_dev_default() {
    let text = "[prodserver]\nstop_timeout = \"20s\"\n[processes.w]\nbackend = \"command\"\ncommand = \"x\"\n\
                [processes.v]\nbackend = \"command\"\ncommand = \"x\"\nstop_timeout = \"9s\"\ndev = { stop_timeout = \"1s\" }\n";
    let plan = load_dev(text).unwrap().plan;
    assert_eq!(plan.processes[0].stop_timeout, Duration::from_secs(20));
    assert_eq!(plan.processes[1].stop_timeout, Duration::from_secs(1));
}

#[test]
fn an_error_in_a_dev_override_is_located_at_the_override() {
    let text = "[processes.web]\nbackend = \"gunicorn\"\napp = \"a:b\"\n\n\
                [processes.web.dev]\ninstances = \"two\"\n";
    // `start` does not read the override's value...
    assert!(load(text).is_ok());
    // ...`dev` (and `check --dev`) does, and points at it.
    let Err(e) = load_dev(text) else {
        panic!("the override's error is not reported")
    };
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].line, e[0].col), (6, 13), "{e:?}");
    assert!(e[0].message.contains("instances"), "{e:?}");
}

#[test]
fn unknown_dev_keys_and_bad_globs_are_located() {
    let text = "[processes.web]\nbackend = \"command\"\ncommand = \"x\"\nwatch = [\"src/[.py\"]\n\
                [processes.web.dev]\nenabeld = false\n";
    let e = errors(text);
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!((e[0].line, e[0].col), (4, 10), "{e:?}");
    assert!(e[0].message.contains("not a glob"), "{e:?}");
    assert!(!e[0].hint.is_empty());
    assert_eq!(e[1].line, 6, "{e:?}");
    assert!(e[1].hint.contains("enabled"), "{e:?}");
}

#[test]
fn dev_debounce_defaults_to_50ms() {
    let plan = load("[processes.w]\nbackend = \"command\"\ncommand = \"x\"\n")
        .unwrap()
        .plan;
    assert_eq!(plan.dev.debounce, Duration::from_millis(50));
    let plan = load(
        "[dev]\ndebounce = \"300ms\"\n[processes.w]\nbackend = \"command\"\ncommand = \"x\"\n",
    )
    .unwrap()
    .plan;
    assert_eq!(plan.dev.debounce, Duration::from_millis(300));
}

#[test]
fn a_dev_backend_starts_from_a_fresh_launch() {
    let text = r#"[processes.web]
backend = "gunicorn"
app = "shop.wsgi:application"
args = { bind = "127.0.0.1:8000", workers = 4 }
dev = { backend = "django-runserver", args = { addrport = "8000" } }
"#;
    let plan = load_dev(text).unwrap().plan;
    let argv = &plan.processes[0].argv;
    assert_eq!(argv[1..], ["manage.py", "runserver", "8000"], "{argv:?}");
}
