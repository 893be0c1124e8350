//! `pip install prodserver`: the wheel that pyproject.toml describes is
//! built with the pinned maturin, installed into a fresh virtualenv, and
//! the `prodserver` it puts on that venv's PATH runs `--version` and
//! `check` on the demo. Everything lives under target/: maturin in its own
//! venv (pinned), its cargo build in its own target folder (the outer
//! `cargo test` may still hold target/debug).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The build backend pyproject.toml asks for, pinned for repeatable CI.
const MATURIN: &str = "maturin==1.16.0";
/// The PyPI classifiers list, to check pyproject.toml's classifiers.
const TROVE: &str = "trove-classifiers==2026.9.21.13";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
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

/// A venv at `root` with `requirements` installed, rebuilt only when they
/// change; a lock serialises concurrent test binaries.
fn venv(root: &Path, requirements: &[&str]) -> PathBuf {
    std::fs::create_dir_all(tmp()).expect("target tmp");
    let lock_path = root.with_extension("lock");
    let lock = std::fs::File::create(&lock_path).expect("lock file");
    lock.lock().expect("lock");
    let stamp = root.join("prodserver-requirements.txt");
    let wanted = requirements.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return root.join("bin");
    }
    let _ = std::fs::remove_dir_all(root);
    run_ok(Command::new("python3").args(["-m", "venv"]).arg(root));
    if !requirements.is_empty() {
        run_ok(
            Command::new(root.join("bin/pip"))
                .args(["install", "--disable-pip-version-check", "--no-input", "-q"])
                .args(requirements),
        );
    }
    std::fs::write(&stamp, wanted).expect("stamp");
    root.join("bin")
}

#[test]
fn the_wheel_installs_a_working_prodserver() {
    let tools = venv(&tmp().join("maturin-venv"), &[MATURIN]);
    let wheels = tempfile::tempdir().expect("tempdir");
    // The dev profile: the wheel's contents, not its speed, are under test
    // (a release build with fat LTO takes minutes on a small machine).
    run_ok(
        Command::new(tools.join("maturin"))
            .args(["build", "--profile", "dev", "--quiet", "--out"])
            .arg(wheels.path())
            .arg("--manifest-path")
            .arg(repo().join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", tmp().join("wheel-target"))
            .env("PATH", path_with(&tools)),
    );
    let wheel: Vec<PathBuf> = std::fs::read_dir(wheels.path())
        .expect("wheels")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(wheel.len(), 1, "{wheel:?}");
    let name = wheel[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        name.starts_with(&format!("prodserver-{version}-py3-none-")),
        "{name}: a binary wheel for any Python 3"
    );

    // A fresh venv, nothing else in it.
    let fresh = tempfile::tempdir().expect("tempdir");
    let bin = venv(&fresh.path().join("venv"), &[]);
    run_ok(
        Command::new(bin.join("pip"))
            .args([
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-q",
                "--no-index",
            ])
            .arg(&wheel[0]),
    );
    let prodserver = bin.join("prodserver");
    assert!(
        prodserver.is_file(),
        "pip put no prodserver in {}",
        bin.display()
    );

    let out = run_ok(Command::new(&prodserver).arg("--version"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("prodserver {version}")
    );
    // As a user would: the venv activated (its bin first on PATH), from the
    // project's folder, finding prodserver.toml there.
    let out = run_ok(
        Command::new("prodserver")
            .arg("check")
            .current_dir(repo())
            .env("PATH", path_with(&bin))
            .env("VIRTUAL_ENV", bin.parent().expect("venv"))
            .env("NO_COLOR", "1")
            .env_remove("PRODSERVER_CONFIG"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for process in ["migrate", "web", "worker-default", "beat"] {
        assert!(text.contains(process), "check shows no {process}:\n{text}");
    }
}

#[test]
fn pyproject_classifiers_are_known_to_pypi() {
    // PyPI rejects an upload with an unknown classifier: caught here, not
    // at release time.
    let bin = venv(&tmp().join("trove-venv"), &[TROVE]);
    let script = r#"
import sys, tomllib
from trove_classifiers import classifiers
with open(sys.argv[1], "rb") as f:
    project = tomllib.load(f)["project"]
unknown = [c for c in project["classifiers"] if c not in classifiers]
assert not unknown, unknown
"#;
    run_ok(
        Command::new(bin.join("python"))
            .args(["-c", script])
            .arg(repo().join("pyproject.toml")),
    );
}

fn path_with(bin: &Path) -> String {
    let rest = std::env::var("PATH").unwrap_or_default();
    format!("{}:{rest}", bin.display())
}
