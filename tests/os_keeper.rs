//! The keeper: groups registered by a supervisor that is SIGKILLed die with
//! it, grandchildren included.
//!
//! The "supervisor" is a child forked by the test: it is single-threaded
//! after fork, exactly as prodserver is when it calls start_keeper. It
//! starts the keeper, puts `sh -c 'sleep 300 & sleep 300'` in a group of its
//! own, (un)registers it, reports the pids and waits to be killed. The
//! tests of the handle alone run in a forked child too
//! ([`in_forked_child`]): start_keeper refuses a multi-threaded process,
//! and this test process has a thread per test.

mod support;

use std::ffi::CString;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::sync::Mutex;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe2, ForkResult, Pid};
use prodserver::os::{kill_group, start_keeper};
use support::{group_members, is_dead, wait_until};

/// Forks are process-wide events: a fork in one test would copy another
/// test's keeper socket and delay its EOF. Run these one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

struct Harness {
    supervisor: Pid,
    keeper: i32,
    pgid: i32,
}

/// What the forked supervisor does with the workload's group.
#[derive(Clone, Copy)]
enum Registration {
    Register,
    RegisterThenUnregister,
}

fn start_supervisor(registration: Registration) -> Harness {
    // Everything the child needs is allocated before fork.
    let sh = CString::new("/bin/sh").unwrap();
    let argv = [
        CString::new("sh").unwrap(),
        CString::new("-c").unwrap(),
        CString::new("sleep 300 & sleep 300").unwrap(),
    ];
    let (supervisor, report) =
        fork_reporting(|report| supervisor_main(report, &sh, &argv, registration));
    let mut buf = [0u8; 8];
    let n = nix::unistd::read(&report, &mut buf).unwrap();
    assert_eq!(n, 8, "the forked supervisor failed before reporting");
    Harness {
        supervisor,
        keeper: i32::from_ne_bytes(buf[..4].try_into().unwrap()),
        pgid: i32::from_ne_bytes(buf[4..].try_into().unwrap()),
    }
}

/// Forks a child of this test process, single-threaded as prodserver is
/// when it starts the keeper, to run `child` with the write end of a pipe
/// and exit with the code it returns; returns its pid and the read end.
fn fork_reporting(child: impl FnOnce(&OwnedFd) -> i32) -> (Pid, OwnedFd) {
    let (report_r, report_w) = pipe2(OFlag::O_CLOEXEC).unwrap();
    // SAFETY: `child` runs test code only (allocation is safe after fork
    // with the C libraries we build against, and the keeper's own fork
    // happens in this single-threaded child); the child leaves by _exit or
    // a signal, never returning into the test harness.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            drop(report_r);
            let code = child(&report_w);
            // SAFETY: as above.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => (child, report_r),
    }
}

fn supervisor_main(
    report: &OwnedFd,
    sh: &CString,
    argv: &[CString; 3],
    registration: Registration,
) -> ! {
    let Ok(keeper) = start_keeper() else {
        // SAFETY: leaving the forked child without running the test's
        // cleanup code.
        unsafe { libc::_exit(10) }
    };
    let argv_ptrs = [
        argv[0].as_ptr(),
        argv[1].as_ptr(),
        argv[2].as_ptr(),
        std::ptr::null(),
    ];
    // SAFETY: as above; the grandchild only calls setpgid and execv.
    let workload = match unsafe { fork() } {
        Ok(ForkResult::Child) => unsafe {
            libc::setpgid(0, 0);
            libc::execv(sh.as_ptr(), argv_ptrs.as_ptr());
            libc::_exit(127)
        },
        Ok(ForkResult::Parent { child }) => child.as_raw(),
        // SAFETY: as above.
        Err(_) => unsafe { libc::_exit(11) },
    };
    // Both sides set the group, so it exists before we register it.
    // SAFETY: setpgid on our own child; EACCES after its exec is fine.
    unsafe { libc::setpgid(workload, workload) };
    let registered = match registration {
        Registration::Register => keeper.register(workload),
        Registration::RegisterThenUnregister => keeper
            .register(workload)
            .and_then(|()| keeper.unregister(workload)),
    };
    if registered.is_err() {
        // SAFETY: as above.
        unsafe { libc::_exit(12) }
    }
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&keeper.pid().to_ne_bytes());
    msg[4..].copy_from_slice(&workload.to_ne_bytes());
    if nix::unistd::write(report, &msg) != Ok(8) {
        // SAFETY: as above.
        unsafe { libc::_exit(13) }
    }
    loop {
        // SAFETY: pause only waits for a signal (the test's SIGKILL).
        unsafe { libc::pause() };
    }
}

/// Runs `body` in a forked child of this test process, which then has a
/// single thread, as prodserver has when it starts the keeper. A panic in
/// the child fails the test with its message.
fn in_forked_child(body: impl FnOnce()) {
    let (child, report) = fork_reporting(|report| {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
        match outcome {
            Ok(()) => 0,
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                let _ = nix::unistd::write(report, msg.as_bytes());
                1
            }
        }
    });
    let mut msg = String::new();
    std::fs::File::from(report)
        .read_to_string(&mut msg)
        .unwrap();
    let status = waitpid(child, None).unwrap();
    assert_eq!(status, WaitStatus::Exited(child, 0), "{msg}");
}

fn sleeps_in_group(pgid: i32) -> usize {
    group_members(pgid)
        .iter()
        .filter(|s| s.comm == "sleep")
        .count()
}

fn kill_supervisor(h: &Harness) {
    kill(h.supervisor, Signal::SIGKILL).unwrap();
    waitpid(h.supervisor, None).unwrap();
}

#[test]
fn registered_groups_die_with_a_sigkilled_supervisor() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let h = start_supervisor(Registration::Register);
    assert!(
        wait_until(Duration::from_secs(5), || sleeps_in_group(h.pgid) >= 2),
        "workload never started: {:?}",
        group_members(h.pgid)
    );
    // A terminal Ctrl-C or a `kill` of the foreground group must not take
    // the keeper down with the supervisor: it ignores these.
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        kill(Pid::from_raw(h.keeper), sig).unwrap();
    }

    kill_supervisor(&h);

    let gone = wait_until(Duration::from_secs(2), || group_members(h.pgid).is_empty());
    let survivors = group_members(h.pgid);
    // Do not leave sleeps behind for the next test run if we failed.
    let _ = kill_group(h.pgid);
    assert!(gone, "survivors in group {}: {survivors:?}", h.pgid);
    assert!(
        wait_until(Duration::from_secs(2), || is_dead(h.keeper)),
        "keeper {} did not exit",
        h.keeper
    );
}

#[test]
fn unregistered_groups_are_left_alone() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let h = start_supervisor(Registration::RegisterThenUnregister);
    assert!(wait_until(Duration::from_secs(5), || sleeps_in_group(
        h.pgid
    ) >= 2));

    kill_supervisor(&h);

    // The keeper kills (or not) before it exits: once it is gone, the
    // verdict is in.
    assert!(wait_until(Duration::from_secs(2), || is_dead(h.keeper)));
    let survivors = sleeps_in_group(h.pgid);
    kill_group(h.pgid).unwrap();
    assert!(survivors >= 2, "the keeper killed an unregistered group");
    assert!(wait_until(Duration::from_secs(2), || group_members(h.pgid).is_empty()));
}

#[test]
fn shutdown_waits_for_the_keeper_and_kills_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    in_forked_child(shutdown_waits);
}

fn shutdown_waits() {
    let keeper = start_keeper().unwrap();
    let keeper_pid = keeper.pid();
    let mut sleeper = std::process::Command::new("sleep")
        .arg("300")
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = i32::try_from(sleeper.id()).unwrap();
    keeper.register(pgid).unwrap();

    keeper.shutdown().unwrap();

    // shutdown reaped the keeper: no such process any more.
    assert!(support::stat(keeper_pid).is_none());
    assert!(!is_dead(pgid), "shutdown killed a registered group");
    kill_group(pgid).unwrap();
    sleeper.wait().unwrap();
}

#[test]
fn a_dead_keeper_is_reported_once_and_never_raises_sigpipe() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    in_forked_child(a_dead_keeper);
}

fn a_dead_keeper() {
    let keeper = start_keeper().unwrap();
    assert!(keeper.register(1).is_err(), "kill(-1) must never be armed");
    assert!(keeper.register(0).is_err());

    kill(Pid::from_raw(keeper.pid()), Signal::SIGKILL).unwrap();
    assert!(wait_until(Duration::from_secs(2), || is_dead(keeper.pid())));

    // With SIGPIPE at its default, a plain write to the dead keeper would
    // kill this test process.
    // SAFETY: restoring default/ignore dispositions; no handler code runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let first = keeper.register(4242).unwrap_err();
    let second = keeper.unregister(4242).unwrap_err();
    // SAFETY: as above.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };

    assert!(first.first_report, "{first}");
    assert!(!second.first_report);
    assert_eq!(first.source.raw_os_error(), Some(libc::EPIPE));
    keeper.shutdown().unwrap();
}

#[test]
fn keeper_names_itself_and_holds_no_inherited_descriptors() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    in_forked_child(keeper_names_itself);
}

fn keeper_names_itself() {
    // An open descriptor the keeper would inherit through fork.
    let _file = tempfile::tempfile().unwrap();
    let keeper = start_keeper().unwrap();
    let pid = keeper.pid();
    // The name is set right after fork: poll for it.
    assert!(wait_until(Duration::from_secs(2), || {
        support::stat(pid).is_some_and(|s| s.comm == "prodserver-keep")
    }));
    assert!(wait_until(Duration::from_secs(2), || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count() == 2)
            .unwrap_or(false)
    }));
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(fds, ["0", "2"], "keeper fds besides its socket and stderr");
    keeper.shutdown().unwrap();
}

#[test]
fn start_keeper_refuses_a_multi_threaded_process() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Besides the harness's threads, one of our own for certain.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || stopped.recv());
    let err = start_keeper().unwrap_err();
    drop(stop);
    let _ = other.join();
    assert!(
        err.to_string()
            .contains("the keeper must be forked before any thread starts"),
        "{err}"
    );
    // And a failing body does fail the test that forked it.
    let failed = std::panic::catch_unwind(|| in_forked_child(|| panic!("told to fail")));
    let msg = failed.unwrap_err();
    let msg = msg.downcast_ref::<String>().unwrap();
    assert!(msg.contains("told to fail"), "{msg}");
}
