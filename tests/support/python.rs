//! The Python virtualenv the end-to-end tests run the real Django, Celery
//! and gunicorn from. Created once under `target/` (keyed by the pinned
//! requirements), shared by every test and test binary, and never skipped:
//! if it cannot be built, the tests fail with pip's own words.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The example project the tests run.
pub fn project() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/django-celery")
}

/// The venv's root, created or refreshed on first use.
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| match build() {
        Ok(path) => path,
        Err(e) => panic!("cannot create the test virtualenv: {e}"),
    })
}

pub fn bin(name: &str) -> String {
    venv().join("bin").join(name).display().to_string()
}

fn build() -> Result<PathBuf, String> {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let root = tmp.join("e2e-venv");
    let requirements_path = project().join("requirements.txt");
    let requirements = std::fs::read_to_string(&requirements_path)
        .map_err(|e| format!("{}: {e}", requirements_path.display()))?;
    let stamp = root.join("prodserver-requirements.txt");
    // Several test binaries may get here at once: one builds, others wait.
    std::fs::create_dir_all(tmp).map_err(|e| e.to_string())?;
    let lock = File::create(tmp.join("e2e-venv.lock")).map_err(|e| e.to_string())?;
    lock.lock().map_err(|e| format!("lock: {e}"))?;
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(requirements.as_str()) {
        return Ok(root);
    }
    let _ = std::fs::remove_dir_all(&root);
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&root),
        "python3 -m venv",
    )?;
    run(
        Command::new(root.join("bin/pip"))
            .args([
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-q",
                "-r",
            ])
            .arg(&requirements_path),
        "pip install -r examples/django-celery/requirements.txt",
    )?;
    std::fs::write(&stamp, requirements).map_err(|e| e.to_string())?;
    Ok(root)
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
