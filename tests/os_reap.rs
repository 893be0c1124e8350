//! Orphan reaping. These tests make the test process a child subreaper, a
//! process-wide setting, so they live in their own test binary; they run
//! one at a time because reap_orphans in one test would reap the other's
//! children.

mod support;

use std::fs::OpenOptions;
use std::time::Duration;

use nix::sys::stat::Mode;
use prodserver::os::{live_orphans, reap_orphans, set_child_subreaper, spawn};
use support::{request, stat, wait_until};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn orphans_are_adopted_and_reaped_by_pid() {
    let _serial = SERIAL.lock().await;
    set_child_subreaper().unwrap();

    // The orphan blocks reading a FIFO until we close our end: it exits on
    // our signal, not after some delay.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("hold");
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
    // O_RDWR opens a FIFO without waiting for a reader; std adds O_CLOEXEC.
    let holder = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();

    // The shell leaves `cat` behind and exits: `cat` is re-parented to us.
    let wrapper = spawn(&request(&[
        "sh",
        "-c",
        r#"cat "$0" >/dev/null 2>&1 & echo $!"#,
        fifo.to_str().unwrap(),
    ]))
    .unwrap();
    let wrapper_pid = wrapper.pid;
    let out = wrapper.child.wait_with_output().await.unwrap();
    assert!(out.status.success());
    let orphan: i32 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let known = |pid: i32| pid == wrapper_pid;
    assert!(
        wait_until(Duration::from_secs(5), || live_orphans(&known)
            .contains(&orphan)),
        "orphan {orphan} not adopted: {:?}",
        stat(orphan)
    );
    assert!(
        reap_orphans(&known).iter().all(|(pid, _)| *pid != orphan),
        "a live orphan cannot be reaped"
    );

    // Only once `cat` has the FIFO open does closing our end give it EOF;
    // before that, its open() would wait for a writer forever.
    assert!(
        wait_until(Duration::from_secs(5), || {
            std::fs::read_dir(format!("/proc/{orphan}/fd"))
                .map(|fds| {
                    fds.flatten()
                        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == fifo))
                })
                .unwrap_or(false)
        }),
        "cat never opened the FIFO: {:?}",
        stat(orphan)
    );
    drop(holder);

    let mut reaped = Vec::new();
    assert!(
        wait_until(Duration::from_secs(5), || {
            reaped.extend(reap_orphans(&known));
            reaped.iter().any(|(pid, _)| *pid == orphan)
        }),
        "orphan {orphan} not reaped: {:?}",
        stat(orphan)
    );
    let (_, status) = reaped.iter().find(|(pid, _)| *pid == orphan).unwrap();
    assert!(status.success(), "{status:?}");
    assert!(stat(orphan).is_none(), "zombie left behind");
    assert!(!live_orphans(&known).contains(&orphan));
}

#[tokio::test]
async fn tokio_children_are_not_stolen() {
    let _serial = SERIAL.lock().await;
    set_child_subreaper().unwrap();

    let spawned = spawn(&request(&["sh", "-c", "exit 7"])).unwrap();
    let pid = spawned.pid;
    // Nothing awaits, so tokio cannot reap it meanwhile: it stays a zombie
    // that reap_orphans must leave alone because it is known.
    assert!(wait_until(Duration::from_secs(5), || {
        stat(pid).is_some_and(|s| s.state == 'Z')
    }));
    let known = |p: i32| p == pid;
    assert!(reap_orphans(&known).iter().all(|(p, _)| *p != pid));
    assert!(!live_orphans(&known).contains(&pid));

    let status = spawned.child.wait_with_output().await.unwrap().status;
    assert_eq!(status.code(), Some(7), "exit status stolen: {status:?}");
}
