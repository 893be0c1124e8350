//! Signal names and sending signals to real processes.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use prodserver::os::{kill_group, send, signal_by_name, signal_name, spawn};
use support::{group_members, request, wait_until};

#[test]
fn names_round_trip() {
    let numbered = (1..=31).chain(libc::SIGRTMIN()..=libc::SIGRTMAX());
    for sig in numbered {
        let name = signal_name(sig);
        assert!(name.starts_with("SIG"), "{sig}: {name}");
        assert_eq!(signal_by_name(&name), Some(sig), "{name}");
        assert_eq!(signal_by_name(&name.to_lowercase()), Some(sig), "{name}");
        assert_eq!(signal_by_name(&name[3..]), Some(sig), "{name}");
        assert_eq!(signal_by_name(&sig.to_string()), Some(sig));
    }
}

#[test]
fn names_are_parsed_the_way_people_write_them() {
    assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
    assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
    for form in ["TERM", "SIGTERM", "term", "SigTerm", "15"] {
        assert_eq!(signal_by_name(form), Some(libc::SIGTERM), "{form}");
    }
    assert_eq!(signal_by_name("IOT"), Some(libc::SIGABRT));
    assert_eq!(signal_by_name("RTMIN+2"), Some(libc::SIGRTMIN() + 2));
    assert_eq!(signal_by_name("SIGRTMAX-1"), Some(libc::SIGRTMAX() - 1));
    for bad in [
        "", "SIG", "FOO", "0", "-15", "65", "RTMAX+1", "RTMIN-1", "TERM2", " TERM", "TERM ", "15 ",
        "RTMIN+ 1",
    ] {
        assert_eq!(signal_by_name(bad), None, "{bad}");
    }
    assert_eq!(signal_name(999), "signal 999");
}

/// The config and `check` named signals through nix before this module
/// was the only table: for every signal nix knows, it reads and prints the
/// same, so moving them over only adds the real-time signals and aliases.
#[test]
fn agrees_with_nix_on_every_signal_it_knows() {
    use nix::sys::signal::Signal;
    for sig in Signal::iterator() {
        let (n, name) = (sig as i32, sig.as_str());
        assert_eq!(signal_name(n), name);
        assert_eq!(signal_by_name(name), Some(n), "{name}");
        assert_eq!(signal_by_name(&name[3..]), Some(n), "{name}");
        assert_eq!(signal_by_name(&name.to_lowercase()), Some(n), "{name}");
        assert_eq!(signal_by_name(&n.to_string()), Some(n), "{name}");
    }
    for n in 1..=31 {
        assert!(Signal::try_from(n).is_ok(), "nix misses {n}");
    }
}

#[test]
fn dangerous_targets_are_refused() {
    for pgid in [-5, 0, 1, nix::unistd::getpgrp().as_raw()] {
        let err = kill_group(pgid).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{pgid}");
    }
    for pid in [0, -1] {
        let err = send(pid, libc::SIGTERM).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{pid}");
    }
}

#[tokio::test]
async fn send_reaches_the_main_process() {
    let spawned = spawn(&request(&["sleep", "300"])).unwrap();
    send(spawned.pid, libc::SIGTERM).unwrap();
    let status = spawned.child.wait_with_output().await.unwrap().status;
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}

#[tokio::test]
async fn kill_group_reaches_grandchildren_and_tolerates_a_gone_group() {
    let spawned = spawn(&request(&["sh", "-c", "sleep 300 & sleep 300 & wait"])).unwrap();
    let pgid = spawned.pid;
    let sleeps = || {
        group_members(pgid)
            .iter()
            .filter(|s| s.comm == "sleep")
            .count()
    };
    assert!(wait_until(Duration::from_secs(5), || sleeps() == 2));

    kill_group(pgid).unwrap();

    assert!(
        wait_until(Duration::from_secs(2), || group_members(pgid).is_empty()),
        "survivors: {:?}",
        group_members(pgid)
    );
    let status = spawned.child.wait_with_output().await.unwrap().status;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    // The group is gone now: ESRCH is not an error.
    kill_group(pgid).unwrap();
}
