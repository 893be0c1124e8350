//! `check` and `start` share one resolved plan: a file `start` would refuse
//! for a health, credential or launch reason, `check` refuses the same way
//! (exit 2, the same located error), and `start` starts nothing.

use std::path::Path;
use std::process::Command;

fn run(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_prodserver"))
        .args(args)
        .arg("-c")
        .arg(dir.join("prodserver.toml"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("XDG_RUNTIME_DIR", dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run prodserver");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_and_start_refuse_the_same_files() {
    let cases = [
        // A health path on a server that binds a unix socket.
        "[processes.web]\nbackend = \"gunicorn\"\napp = \"a:b\"\nargs = { bind = \"unix:/tmp/x.sock\" }\nhealth = { path = \"/x\" }\n",
        // A probe that only fails to compile once `{instance}` is expanded.
        "[processes.web]\nbackend = \"command\"\ncommand = \"sleep 60\"\ninstances = 7\nhealth = { tcp = \"127.0.0.1:6553{instance}\" }\n",
    ];
    for text in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("started");
        let text = text.replace("sleep 60", &format!("touch {}", marker.display()));
        std::fs::write(dir.path().join("prodserver.toml"), &text).expect("write");
        let (check_code, check_err) = run(dir.path(), &["check"]);
        let (start_code, start_err) = run(dir.path(), &["start"]);
        assert_eq!(check_code, 2, "check:\n{check_err}");
        assert_eq!(start_code, 2, "start:\n{start_err}");
        let first = |s: &str| s.lines().next().unwrap_or_default().to_owned();
        assert!(
            first(&check_err).starts_with("error: `processes.web.health`"),
            "{check_err}"
        );
        assert_eq!(first(&check_err), first(&start_err));
        assert!(!marker.exists(), "start spawned a process");
    }
}
