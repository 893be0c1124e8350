//! Runs the built binary's `check` on every file under tests/corpus/ and
//! snapshots what a user would see. Good files must exit 0, bad ones 2.

use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// `check` output with machine-specific paths replaced.
fn check(file: &Path, json: bool) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_prodserver"));
    cmd.arg("check").arg("-c").arg(file);
    if json {
        cmd.arg("--json");
    }
    let out = cmd
        .env_clear()
        .env("PATH", "/nonexistent")
        .env("XDG_RUNTIME_DIR", "/run/user/1000")
        .env("NO_COLOR", "1")
        .output()
        .expect("run prodserver");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = text.replace(&corpus().display().to_string(), "$CORPUS");
    (out.status.code().unwrap_or(-1), text)
}

fn files(kind: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus().join(kind))
        .expect("corpus folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no files in tests/corpus/{kind}");
    files
}

fn name(file: &Path) -> String {
    file.file_stem()
        .expect("stem")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn good_files_pass_and_show_what_would_run() {
    for file in files("good") {
        let (code, text) = check(&file, false);
        assert_eq!(code, 0, "{}:\n{text}", file.display());
        insta::assert_snapshot!(format!("good-{}", name(&file)), text);
    }
}

#[test]
fn bad_files_fail_with_every_error_located() {
    for file in files("bad") {
        let (code, text) = check(&file, false);
        assert_eq!(code, 2, "{}:\n{text}", file.display());
        assert!(text.contains("error"), "{text}");
        insta::assert_snapshot!(format!("bad-{}", name(&file)), text);
    }
}

#[test]
fn json_output_is_machine_readable() {
    for (kind, code) in [("good", 0), ("bad", 2)] {
        for file in files(kind) {
            let (got, text) = check(&file, true);
            assert_eq!(got, code, "{text}");
            let v: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: {e}\n{text}", file.display()));
            assert_eq!(v["ok"], serde_json::json!(code == 0));
            if code == 2 {
                let errors = v["errors"].as_array().expect("errors");
                assert!(!errors.is_empty());
                assert!(
                    errors
                        .iter()
                        .all(|e| e["hint"].is_string() && e["file"].is_string()),
                    "{text}"
                );
            }
        }
    }
}

/// Every shipped example and layout passes `check`, and its resolved
/// command lines are pinned: a change to a backend shows up here.
#[test]
fn shipped_layouts_resolve_to_the_expected_command_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![
        root.join("prodserver.toml"),
        root.join("examples/minimal/prodserver.toml"),
        root.join("examples/django-celery/prodserver.toml"),
    ];
    let mut layouts: Vec<PathBuf> = std::fs::read_dir(root.join("examples/layouts"))
        .expect("layouts")
        .map(|e| e.expect("entry").path())
        .collect();
    layouts.sort();
    assert!(layouts.len() >= 6, "{layouts:?}");
    files.extend(layouts);
    let mut summary = String::new();
    for file in files {
        let (code, text) = check(&file, true);
        assert_eq!(code, 0, "{}:\n{text}", file.display());
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let rel = file
            .strip_prefix(root)
            .expect("inside the repo")
            .display()
            .to_string();
        summary.push_str(&format!("# {rel}\n"));
        for p in v["processes"].as_array().expect("processes") {
            let line = p["command_line"]
                .as_str()
                .expect("command_line")
                .replace(&root.display().to_string(), "$REPO");
            summary.push_str(&format!(
                "{} (x{}): {line}\n",
                p["name"].as_str().expect("name"),
                p["instances"]
            ));
        }
        summary.push('\n');
    }
    insta::assert_snapshot!("shipped-layouts", summary);
}

/// The hosted layout takes worker concurrency from the platform's
/// CELERYD_CONCURRENCY, defaulting to 2 when the platform sets none.
#[test]
fn hosted_layout_concurrency_comes_from_the_platform() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/layouts/hosted.toml");
    let worker_line = |platform: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_prodserver"));
        cmd.args(["check", "--json", "-c"])
            .arg(&file)
            .env_clear()
            .env("PATH", "/nonexistent")
            .env("XDG_RUNTIME_DIR", "/run/user/1000");
        if let Some(n) = platform {
            cmd.env("CELERYD_CONCURRENCY", n);
        }
        let out = cmd.output().expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let worker = v["processes"]
            .as_array()
            .expect("processes")
            .iter()
            .find(|p| p["name"] == "worker")
            .expect("worker")
            .clone();
        worker["command_line"].as_str().expect("line").to_string()
    };
    assert!(
        worker_line(None).contains("--concurrency=2"),
        "{}",
        worker_line(None)
    );
    assert!(
        worker_line(Some("8")).contains("--concurrency=8"),
        "{}",
        worker_line(Some("8"))
    );
}
