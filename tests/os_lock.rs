//! Singleton locks and the runtime directory.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use nix::unistd::Uid;
use prodserver::os::{ensure_runtime_dir, try_lock, LockOutcome};

fn own_pid() -> i32 {
    i32::try_from(std::process::id()).unwrap()
}

#[test]
fn second_lock_is_held_by_us_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let LockOutcome::Acquired(lock) = try_lock(dir.path(), "shop", "beat").unwrap() else {
        panic!("a fresh lock must be acquired");
    };
    assert_eq!(lock.path(), dir.path().join("shop.beat.lock"));
    let content = std::fs::read_to_string(lock.path()).unwrap();
    assert_eq!(content.trim(), own_pid().to_string());

    // Another descriptor, even in the same process, is refused and learns
    // who holds it.
    match try_lock(dir.path(), "shop", "beat").unwrap() {
        LockOutcome::Held { pid } => assert_eq!(pid, Some(own_pid())),
        LockOutcome::Acquired(_) => panic!("lock acquired twice"),
    }
    // Other processes, other projects: other locks.
    assert!(matches!(
        try_lock(dir.path(), "shop", "worker").unwrap(),
        LockOutcome::Acquired(_)
    ));
    assert!(matches!(
        try_lock(dir.path(), "blog", "beat").unwrap(),
        LockOutcome::Acquired(_)
    ));

    let path = lock.path().to_owned();
    drop(lock);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "",
        "stale pid left"
    );
    assert!(matches!(
        try_lock(dir.path(), "shop", "beat").unwrap(),
        LockOutcome::Acquired(_)
    ));
}

#[test]
fn lock_descriptor_is_close_on_exec() {
    let dir = tempfile::tempdir().unwrap();
    let LockOutcome::Acquired(lock) = try_lock(dir.path(), "shop", "cloexec").unwrap() else {
        panic!("a fresh lock must be acquired");
    };
    let fd = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .find(|e| std::fs::read_link(e.path()).ok().as_deref() == Some(lock.path()))
        .map(|e| e.file_name().into_string().unwrap())
        .expect("the lock's descriptor");
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .map(|v| u32::from_str_radix(v.trim(), 8).unwrap())
        .unwrap();
    assert_ne!(flags & libc::O_CLOEXEC as u32, 0, "flags {flags:o}");
}

#[test]
fn names_cannot_escape_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    for (project, process) in [("../x", "beat"), ("shop", ""), ("shop", "a/b"), ("..", "x")] {
        let err = try_lock(dir.path(), project, process).unwrap_err();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::InvalidInput,
            "{project} {process}"
        );
    }
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o777
}

#[test]
fn runtime_dir_is_created_private_and_tightened() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("prodserver");
    ensure_runtime_dir(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700);
    ensure_runtime_dir(&dir).unwrap(); // idempotent

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    ensure_runtime_dir(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700);
}

#[test]
fn runtime_dir_refuses_symlinks_and_files() {
    let base = tempfile::tempdir().unwrap();
    let target = base.path().join("elsewhere");
    std::fs::create_dir(&target).unwrap();
    let link = base.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert!(ensure_runtime_dir(&link).is_err());

    let file = base.path().join("file");
    std::fs::write(&file, "").unwrap();
    assert!(ensure_runtime_dir(&file).is_err());
}

#[test]
fn runtime_dir_owned_by_someone_else_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let dir = if Uid::effective().is_root() {
        let dir = base.path().join("planted");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(12345), Some(12345)).unwrap();
        dir
    } else {
        // Owned by root, and we are not root.
        std::path::PathBuf::from("/")
    };
    let err = ensure_runtime_dir(&dir).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("refusing"), "{err}");
}
