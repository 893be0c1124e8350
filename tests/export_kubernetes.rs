//! `prodserver export kubernetes` through the binary: every manifest
//! exported from the shipped configs (the demo and its container version,
//! the layouts, the check corpus's good files), as ConfigMaps and as Secrets, passes
//! `kubernetes-validate --strict` (Kubernetes' own schemas, offline), and the
//! demo maps as documented: beat a StatefulSet of 1, migrate a Job, workers
//! probed on the integration's heartbeat file, which a real Celery worker
//! writes and the exported probe command reads.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use support::wait_until;

/// The validator, pinned: its schemas are the Kubernetes release it names.
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tomls(folder: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(folder))
        .unwrap_or_else(|e| panic!("{folder}: {e}"))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no configs in {folder}");
    files
}

fn configs() -> Vec<PathBuf> {
    let mut files = vec![
        repo().join("prodserver.toml"),
        repo().join("examples/docker/prodserver.toml"),
    ];
    files.extend(tomls("examples/layouts"));
    files.extend(tomls("tests/corpus/good"));
    files
}

/// A virtualenv under target/ holding the pinned validator, built once
/// (several test binaries may race: a lock file serialises them). Never
/// skipped: without it the manifests are unverified, so the test fails
/// with pip's own words.
fn validator() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let root = tmp.join("kubernetes-validate-venv");
    std::fs::create_dir_all(tmp).expect("target tmp");
    let lock = std::fs::File::create(tmp.join("kubernetes-validate-venv.lock")).expect("lock");
    lock.lock().expect("lock");
    let stamp = root.join("prodserver-requirement.txt");
    let exe = root.join("bin/kubernetes-validate");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(KUBERNETES_VALIDATE) {
        return exe;
    }
    let _ = std::fs::remove_dir_all(&root);
    run_ok(Command::new("python3").args(["-m", "venv"]).arg(&root));
    run_ok(
        Command::new(root.join("bin/pip"))
            .args(["install", "--disable-pip-version-check", "--no-input", "-q"])
            .arg(KUBERNETES_VALIDATE),
    );
    std::fs::write(&stamp, KUBERNETES_VALIDATE).expect("stamp");
    exe
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (python3 with venv and pip is required)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn export(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_prodserver"))
        .args(["export", "kubernetes"])
        .args(args)
        .arg("-c")
        .arg(config)
        .env("NO_COLOR", "1")
        .output()
        .expect("run prodserver export kubernetes")
}

fn export_to(config: &Path, dir: &Path, extra: &[&str]) -> Vec<PathBuf> {
    let mut args = vec!["--image", "registry.example/shop:1.2.3", "-o"];
    args.push(dir.to_str().expect("utf-8"));
    args.extend(extra);
    let out = export(config, &args);
    assert!(
        out.status.success(),
        "{}: {}",
        config.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("output dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: nothing exported", config.display());
    files
}

#[test]
fn every_exported_manifest_passes_the_kubernetes_schemas() {
    let validate = validator();
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for (n, config) in configs().iter().enumerate() {
        for env_as in ["configmap", "secret"] {
            let dir = scratch.path().join(format!("{n}-{env_as}"));
            files.extend(export_to(config, &dir, &["--env-as", env_as]));
        }
    }
    // One run for every file: the validator loads its schemas once.
    let out = Command::new(&validate)
        .args(["--strict", "--no-warn"])
        .args(&files)
        .output()
        .expect("run kubernetes-validate");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "validation failed:\n{report}");
    // Every document was read (an unparsed one would pass vacuously): one
    // per top-level `kind:` line.
    let docs: usize = files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .expect("read")
                .lines()
                .filter(|l| l.starts_with("kind: "))
                .count()
        })
        .sum();
    let passed = report
        .lines()
        .filter(|l| l.contains(" passed for resource "))
        .count();
    assert_eq!(passed, docs, "not every document was validated:\n{report}");
}

/// The YAML documents of one exported file as JSON, read by PyYAML (the
/// validator's own parser), so assertions see what Kubernetes would.
fn documents(file: &Path) -> Vec<serde_json::Value> {
    let venv = validator().parent().expect("bin").to_owned();
    let out = run_ok(
        Command::new(venv.join("python"))
            .args([
                "-c",
                "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
            ])
            .arg(file),
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

fn workload<'a>(docs: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {docs:#?}"))
}

#[test]
fn the_demo_maps_by_meaning() {
    let dir = tempfile::tempdir().expect("tempdir");
    export_to(&repo().join("prodserver.toml"), dir.path(), &[]);
    let read = |name: &str| documents(&dir.path().join(name));

    let beat = read("beat.yaml");
    let sts = workload(&beat, "StatefulSet");
    assert_eq!(sts["spec"]["replicas"], 1);
    assert_eq!(workload(&beat, "Service")["spec"]["clusterIP"], "None");

    let migrate = read("migrate.yaml");
    let job = workload(&migrate, "Job");
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(
        pod["containers"][0]["command"],
        serde_json::json!([
            "/app/examples/django-celery/.venv/bin/python",
            "manage.py",
            "migrate",
            "--noinput"
        ])
    );

    let web = read("web.yaml");
    let deploy = workload(&web, "Deployment");
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example/shop:1.2.3");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/healthz/");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], 8000);
    assert!(c["startupProbe"]["httpGet"].is_object(), "{c:#}");
    assert!(c["livenessProbe"]["failureThreshold"].as_u64() >= Some(6));
    let argv: Vec<&str> = c["command"]
        .as_array()
        .expect("command")
        .iter()
        .map(|a| a.as_str().expect("str"))
        .collect();
    assert!(argv.contains(&"--bind=0.0.0.0:8000"), "{argv:?}");
    assert!(
        !argv.iter().any(|a| a.contains(env!("CARGO_MANIFEST_DIR"))),
        "a host path left in {argv:?}"
    );
    assert_eq!(
        workload(&web, "ConfigMap")["data"]["DJANGO_SETTINGS_MODULE"],
        "shop.settings"
    );

    let worker = read("worker-default.yaml");
    let deploy = workload(&worker, "Deployment");
    let pod = &deploy["spec"]["template"]["spec"];
    // stop_timeout 30 s + kill_timeout (the escalation) + margin.
    assert!(
        pod["terminationGracePeriodSeconds"].as_u64() > Some(30),
        "{pod:#}"
    );
    let c = &pod["containers"][0];
    let probe = c["livenessProbe"]["exec"]["command"].to_string();
    assert!(probe.contains("/run/prodserver/heartbeat"), "{probe}");
    assert!(!c.to_string().contains("inspect"), "{c:#}");
    let integration = documents(&dir.path().join("celery-integration.yaml"));
    let module = integration[0]["data"]["prodserver_celery.py"]
        .as_str()
        .expect("module");
    assert_eq!(module, prodserver::celery::SOURCE);
}

#[test]
fn env_as_secret_and_an_image_are_required_choices() {
    let demo = repo().join("prodserver.toml");
    let out = export(&demo, &[]);
    assert_eq!(out.status.code(), Some(2), "--image is required");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--image"));

    let dir = tempfile::tempdir().expect("tempdir");
    export_to(&demo, dir.path(), &["--env-as", "secret"]);
    let web = documents(&dir.path().join("web.yaml"));
    assert_eq!(
        workload(&web, "Secret")["stringData"]["PYTHONUNBUFFERED"],
        "1"
    );
    let c = &workload(&web, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "shop-web-env");

    let out = export(&demo, &["--image", "x", "--workdir", "app"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("absolute"));
}

/// A Celery worker as the Deployment runs it (integration module on
/// PYTHONPATH, PRODSERVER_HEARTBEAT_FILE set, no NOTIFY_SOCKET), killed
/// when dropped.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const TESTAPP: &str = r#"
from celery import Celery
app = Celery("testapp", broker="memory://")
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False)
"#;

#[test]
fn a_real_worker_feeds_the_exported_heartbeat_probe() {
    let venv = support::python::venv();
    let scratch = tempfile::tempdir().expect("tempdir");
    let project = scratch.path().join("project");
    std::fs::create_dir(&project).expect("mkdir");
    std::fs::write(project.join("testapp.py"), TESTAPP).expect("app");
    let runtime = scratch.path().join("runtime");
    std::fs::create_dir(&runtime).expect("mkdir");
    let module_dir = prodserver::celery::install(&runtime).expect("module");
    let heartbeat = scratch.path().join("heartbeat");
    let python = venv.join("bin/python").to_string_lossy().into_owned();
    // The exported probe, aimed at this test's file.
    let check: Vec<String> = prodserver::export::kubernetes::heartbeat_check(&python)
        .into_iter()
        .map(|a| {
            a.replace(
                prodserver::export::kubernetes::HEARTBEAT_FILE,
                &heartbeat.to_string_lossy(),
            )
        })
        .collect();
    let probe = || {
        Command::new(&check[0])
            .args(&check[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run the probe")
            .success()
    };
    assert!(!probe(), "no heartbeat yet, yet the probe passed");

    let child = Command::new(venv.join("bin/celery"))
        .args([
            "-A",
            "testapp",
            "worker",
            "--pool=solo",
            "--include=prodserver_celery",
        ])
        .current_dir(&project)
        .env(
            "PYTHONPATH",
            format!("{}:{}", module_dir.display(), project.display()),
        )
        .env("PRODSERVER_HEARTBEAT_FILE", &heartbeat)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn celery");
    let worker = Worker(child);
    assert!(
        wait_until(Duration::from_secs(60), || heartbeat.exists()),
        "the worker never wrote {}",
        heartbeat.display()
    );
    assert!(probe(), "a fresh heartbeat fails the probe");
    drop(worker);

    // A heartbeat older than the limit fails it.
    let old = SystemTime::now()
        - Duration::from_secs(prodserver::export::kubernetes::HEARTBEAT_MAX_AGE + 30);
    std::fs::File::options()
        .write(true)
        .open(&heartbeat)
        .expect("open")
        .set_modified(old)
        .expect("age the heartbeat");
    assert!(!probe(), "a stale heartbeat passes the probe");
}
