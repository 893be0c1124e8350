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
