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

/// Switching to `user` needs root: a property of where `start` runs, not of
/// the file, so `check` (a workstation, CI) passes and `start` refuses.
#[test]
fn a_user_needs_root_at_start_but_not_at_check() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: switching to another uid needs root");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let config = dir.path().join("prodserver.toml");
    std::fs::write(
        &config,
        "[processes.job]\nbackend = \"command\"\ncommand = \"true\"\nuser = \"nobody\"\n",
    )
    .expect("write");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let as_nobody = |sub: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_prodserver"))
            .arg(sub)
            .arg("-c")
            .arg(&config)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("XDG_RUNTIME_DIR", dir.path())
            .env("NO_COLOR", "1")
            .uid(65534)
            .gid(65534)
            .output()
            .expect("run prodserver");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = as_nobody("check");
    assert_eq!(code, 0, "check:\n{err}");
    let (code, err) = as_nobody("start");
    assert_eq!(code, 2, "start:\n{err}");
    assert!(
        err.contains("[processes.job] user/group need prodserver to run as root"),
        "{err}"
    );
}
