//! os::spawn with real children: process group, descriptors, signals,
//! environment, exec failures, credentials.

mod support;

use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;

use nix::unistd::{getpgid, getpgrp, Pid, Uid};
use prodserver::os::{
    kill_group, resolve_credentials, scrub_inherited_env, spawn, SpawnError, SpawnRequest,
};
use support::request;

/// Runs `req` to completion; returns its stdout. Panics on failure.
async fn output_of(req: &SpawnRequest) -> String {
    let spawned = spawn(req).unwrap_or_else(|e| panic!("spawn {:?}: {e}", req.argv));
    let out = spawned.child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {:?}, stderr {}",
        req.argv,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn child_leads_its_own_process_group() {
    let spawned = spawn(&request(&["sleep", "300"])).unwrap();
    let pgid = getpgid(Some(Pid::from_raw(spawned.pid))).unwrap();
    assert_eq!(pgid.as_raw(), spawned.pid);
    assert_ne!(pgid, getpgrp());

    kill_group(spawned.pid).unwrap();
    let status = spawned.child.wait_with_output().await.unwrap().status;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

#[tokio::test]
async fn descriptors_beyond_stdio_are_not_inherited() {
    let file = tempfile::tempfile().unwrap();
    // SAFETY: dup of a descriptor we own; the copy is closed below.
    let leaked = unsafe { libc::dup(file.as_raw_fd()) };
    assert!(leaked >= 3);
    // SAFETY: F_GETFD on our own descriptor.
    let flags = unsafe { libc::fcntl(leaked, libc::F_GETFD) };
    assert_eq!(
        flags & libc::FD_CLOEXEC,
        0,
        "dup() must give a non-CLOEXEC fd"
    );

    let listing = output_of(&request(&["ls", "/proc/self/fd"])).await;

    // SAFETY: closing the descriptor we duplicated above.
    unsafe { libc::close(leaked) };
    // 0-2 plus the directory ls itself opened to list them.
    let fds: Vec<&str> = listing.lines().collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "fd {leaked} leaked? {listing}");
}

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no {key} in {status}"))
}

#[tokio::test]
async fn signal_mask_and_ignored_signals_are_reset() {
    // SIG_IGN survives exec unless we reset it; a blocked mask is inherited
    // through fork. Set both up here, on the thread that spawns.
    // SAFETY: SIG_IGN for SIGUSR1 in a test process that never uses it.
    unsafe { libc::signal(libc::SIGUSR1, libc::SIG_IGN) };
    let mut block = nix::sys::signal::SigSet::empty();
    block.add(nix::sys::signal::Signal::SIGUSR2);
    let mut old = nix::sys::signal::SigSet::empty();
    nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&block),
        Some(&mut old),
    )
    .unwrap();

    // `cat` directly, not `sh`: a shell may change its own dispositions.
    let status = output_of(&request(&["cat", "/proc/self/status"])).await;

    nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&old), None)
        .unwrap();
    assert_eq!(status_field(&status, "SigBlk:"), "0000000000000000");
    assert_eq!(status_field(&status, "SigIgn:"), "0000000000000000");
}

#[tokio::test]
async fn environment_is_exactly_the_requested_one() {
    let mut req = request(&["env"]);
    req.env
        .push(("ONLY_THIS".to_owned(), "yes it is".to_owned()));
    let out = output_of(&req).await;
    let mut vars: Vec<&str> = out.lines().collect();
    vars.sort_unstable();
    assert_eq!(vars, ["ONLY_THIS=yes it is", "PATH=/usr/bin:/bin"]);
}

#[tokio::test]
async fn working_directory_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(&["pwd"]);
    req.cwd = dir.path().to_owned();
    let out = output_of(&req).await;
    assert_eq!(
        std::fs::canonicalize(out.trim()).unwrap(),
        std::fs::canonicalize(dir.path()).unwrap()
    );
}

fn permanent_error(req: &SpawnRequest) -> String {
    match spawn(req) {
        Ok(_) => panic!("{:?} should not start", req.argv),
        Err(e @ SpawnError::CannotExecute { .. }) => {
            assert!(e.is_permanent());
            e.to_string()
        }
        Err(e) => panic!("expected a permanent error, got {e:?}"),
    }
}

#[tokio::test]
async fn missing_program_is_a_permanent_error_naming_it() {
    let msg = permanent_error(&request(&["gunicornn", "--bind", "x"]));
    assert_eq!(
        msg,
        r#"cannot execute "gunicornn": not found on PATH (/usr/bin:/bin)"#
    );

    let mut req = request(&["gunicornn"]);
    req.env.clear();
    let msg = permanent_error(&req);
    assert!(msg.contains("PATH is unset"), "{msg}");

    let msg = permanent_error(&request(&["/nonexistent/bin/celery"]));
    assert!(
        msg.contains("\"/nonexistent/bin/celery\" does not exist"),
        "{msg}"
    );

    let msg = permanent_error(&request(&[]));
    assert!(msg.contains("empty"), "{msg}");
}

#[tokio::test]
async fn unset_path_falls_back_to_the_default_search() {
    let mut req = request(&["sh", "-c", "exit 0"]);
    req.env.clear();
    output_of(&req).await;
}

#[tokio::test]
async fn unusable_programs_are_permanent_errors_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let msg = permanent_error(&request(&[plain.to_str().unwrap()]));
    assert!(msg.contains("permission denied"), "{msg}");

    let script = dir.path().join("manage.py");
    std::fs::write(&script, "#!/nonexistent/venv/bin/python\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let msg = permanent_error(&request(&[script.to_str().unwrap()]));
    assert!(msg.contains("interpreter"), "{msg}");

    // Found on PATH, bad interpreter: the message says where it was found.
    let mut req = request(&["manage.py"]);
    req.env = vec![("PATH".to_owned(), dir.path().to_str().unwrap().to_owned())];
    let msg = permanent_error(&req);
    assert!(
        msg.contains("manage.py\" exists") && msg.contains("interpreter"),
        "{msg}"
    );
}

#[tokio::test]
async fn missing_working_directory_is_reported_as_such() {
    let mut req = request(&["true"]);
    req.cwd = PathBuf::from("/nonexistent/project");
    let msg = permanent_error(&req);
    assert!(
        msg.contains("working directory \"/nonexistent/project\" does not exist"),
        "{msg}"
    );
}

#[test]
fn systemd_handoff_variables_are_scrubbed() {
    let inherited = [
        ("HOME", "/root"),
        ("NOTIFY_SOCKET", "/run/systemd/notify"),
        ("WATCHDOG_USEC", "30000000"),
        ("WATCHDOG_PID", "1"),
        ("LISTEN_FDS", "1"),
        ("LISTEN_PID", "1"),
        ("LISTEN_FDNAMES", "web"),
        ("PATH", "/usr/bin"),
        ("MY_NOTIFY_SOCKET", "kept: not systemd's"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let kept = scrub_inherited_env(inherited);
    let keys: Vec<&str> = kept.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["HOME", "PATH", "MY_NOTIFY_SOCKET"]);
}

#[test]
fn no_user_or_group_means_no_credentials() {
    assert_eq!(resolve_credentials(None, None), Ok(None));
}

#[test]
fn credentials_need_root_or_name_what_to_fix() {
    let unknown = resolve_credentials(Some("no-such-user-xyz"), None).unwrap_err();
    if !Uid::effective().is_root() {
        assert!(
            unknown.contains("need prodserver to run as root"),
            "{unknown}"
        );
        return;
    }
    assert!(
        unknown.contains("\"no-such-user-xyz\" does not exist"),
        "{unknown}"
    );
    let unknown = resolve_credentials(None, Some("no-such-group-xyz")).unwrap_err();
    assert!(
        unknown.contains("\"no-such-group-xyz\" does not exist"),
        "{unknown}"
    );

    // A numeric uid without a passwd entry has no primary group to use...
    let bare = resolve_credentials(Some("54321"), None).unwrap_err();
    assert!(bare.contains("set \"group\""), "{bare}");
    // ...unless one is given.
    let creds = resolve_credentials(Some("54321"), Some("54322"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (creds.uid, creds.gid, creds.groups),
        (54321, 54322, vec![54322])
    );
}

#[tokio::test]
async fn privileges_are_dropped_completely() {
    if !Uid::effective().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let creds = resolve_credentials(Some("nobody"), None).unwrap().unwrap();
    assert_eq!(creds.uid, nobody.uid.as_raw());
    assert_eq!(creds.gid, nobody.gid.as_raw());
    assert!(creds.groups.contains(&creds.gid));

    let mut req = request(&["sh", "-c", "id -u; id -g; id -G"]);
    req.creds = Some(creds.clone());
    let out = output_of(&req).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], creds.uid.to_string());
    assert_eq!(lines[1], creds.gid.to_string());
    let mut groups: Vec<u32> = lines[2]
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    groups.sort_unstable();
    let mut want = creds.groups.clone();
    want.sort_unstable();
    want.dedup();
    // Root's own groups (gid 0) must be gone.
    assert_eq!(groups, want);
}

/// PR_SET_PDEATHSIG fires when the thread that forked the child ends. Spawn
/// from a short-lived thread and watch the child die with it; as root, do
/// it with a privilege drop, which clears the setting if done in the wrong
/// order.
#[test]
fn child_dies_with_the_thread_that_spawned_it() {
    let creds = if Uid::effective().is_root() {
        resolve_credentials(Some("nobody"), None).unwrap()
    } else {
        None
    };
    let pid = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut req = request(&["sleep", "300"]);
            req.creds = creds;
            spawn(&req).unwrap().pid
        })
    })
    .join()
    .unwrap();
    let died = support::wait_until(std::time::Duration::from_secs(2), || support::is_dead(pid));
    if !died {
        let _ = kill_group(pid);
    }
    assert!(died, "child {pid} outlived the thread that spawned it");
}
