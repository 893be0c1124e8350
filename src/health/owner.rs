//! Did the instance itself answer its probe?
//!
//! An http or tcp probe proves only that *something* answers at an
//! address. When the instance failed to bind (gunicorn's "Connection in
//! use") while another program holds the port, or a probe points at a
//! sibling's port, that answer would make the instance ready. So a passing
//! probe counts only when the listener that accepted it belongs to the
//! instance: its inode (/proc/net/tcp, tcp6) is among the descriptors of
//! the instance's main process or a descendant, or of a member of its
//! process group (every instance leads one).
//!
//! The check reads /proc, so it runs on tokio's blocking pool, and only
//! after a probe passed: a refused or failing probe fails anyway.

use std::net::SocketAddr;

use crate::os::proc;

/// What a probe run amounts to for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// The probe's own failure (`GET / -> 503`, `connection refused`).
    Fail(String),
    /// Something answered, but not the instance: the reason names the
    /// holder (`127.0.0.1:8000 is held by pid 4242 (gunicorn), not by
    /// web.1`). A failure, worth logging once per change.
    HeldByOther(String),
}

/// Who holds the listener that answered at an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// The instance's main process, a descendant or its process group.
    Own,
    /// Another process (`None`: one we cannot inspect).
    Other {
        pid: Option<i32>,
        comm: Option<String>,
    },
    /// No listener for the address in this network namespace: the answer
    /// came from another host or namespace.
    NoListener,
    /// /proc could not be read.
    Unknown(String),
}

/// Finds who holds the listener that a connection to `to` reached, for the
/// instance whose main process is `main_pid`. Blocking.
pub fn holder(to: SocketAddr, main_pid: i32) -> Holder {
    let inodes = match proc::listeners_for(to) {
        Ok(inodes) => inodes,
        Err(e) => return Holder::Unknown(e.to_string()),
    };
    if inodes.is_empty() {
        return Holder::NoListener;
    }
    if proc::tree_holds(main_pid, &inodes) {
        return Holder::Own;
    }
    // Not below the main process: a stranger, or one of ours that lost its
    // parent (re-parented to us) but kept the instance's process group.
    match proc::socket_holder(&inodes) {
        Some(pid) if crate::notify::sender_belongs(pid, main_pid) => Holder::Own,
        pid => Holder::Other {
            pid,
            comm: pid.and_then(proc::comm),
        },
    }
}

/// The probe outcome for a probe that passed against `to`, given its
/// listener's holder; `label` names the instance (`web.1`).
pub fn judge(to: SocketAddr, holder: Holder, label: &str) -> Outcome {
    match holder {
        Holder::Own => Outcome::Pass,
        Holder::Other {
            pid: Some(pid),
            comm,
        } => {
            let name = comm.map(|c| format!(" ({c})")).unwrap_or_default();
            Outcome::HeldByOther(format!("{to} is held by pid {pid}{name}, not by {label}"))
        }
        Holder::Other { pid: None, .. } => Outcome::HeldByOther(format!(
            "{to} is held by a process prodserver cannot inspect, not by {label}"
        )),
        // Another host answered (a probe aimed at a remote address): its
        // processes are out of sight, so the answer is taken as it is. On
        // loopback, no listener of ours means another network namespace.
        Holder::NoListener if !to.ip().is_loopback() && !to.ip().is_unspecified() => Outcome::Pass,
        Holder::NoListener => Outcome::HeldByOther(format!(
            "{to} answered, but no listener of this host holds it: only {label}'s own listener counts"
        )),
        Holder::Unknown(e) => Outcome::Fail(format!(
            "{to} answered, but who holds it cannot be read: {e}"
        )),
    }
}

/// A probe's result, checked for ownership when it passed: `Ok(peer)` is
/// the address the probe connected to. `main_pid` is the instance's main
/// process (`None`: it has exited, nothing of it can answer).
pub async fn outcome(
    result: Result<SocketAddr, String>,
    main_pid: Option<i32>,
    label: String,
) -> Outcome {
    let to = match result {
        Ok(to) => to,
        Err(reason) => return Outcome::Fail(reason),
    };
    let Some(pid) = main_pid else {
        return Outcome::Fail(format!("{to} answered, but {label} has no running process"));
    };
    match tokio::task::spawn_blocking(move || holder(to, pid)).await {
        Ok(holder) => judge(to, holder, &label),
        Err(e) => Outcome::Fail(format!("{to}: the ownership check failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to() -> SocketAddr {
        "127.0.0.1:8000".parse().unwrap()
    }

    #[test]
    fn verdicts_name_the_holder() {
        assert_eq!(judge(to(), Holder::Own, "web.1"), Outcome::Pass);
        assert_eq!(
            judge(
                to(),
                Holder::Other {
                    pid: Some(4242),
                    comm: Some("gunicorn".into())
                },
                "web.1"
            ),
            Outcome::HeldByOther(
                "127.0.0.1:8000 is held by pid 4242 (gunicorn), not by web.1".into()
            )
        );
        assert_eq!(
            judge(
                to(),
                Holder::Other {
                    pid: Some(7),
                    comm: None
                },
                "web.1"
            ),
            Outcome::HeldByOther("127.0.0.1:8000 is held by pid 7, not by web.1".into())
        );
        assert!(matches!(
            judge(to(), Holder::NoListener, "web.1"),
            Outcome::HeldByOther(m) if m.contains("only web.1's own listener counts")
        ));
        // A remote address: nothing of it can be inspected from here.
        let remote: SocketAddr = "203.0.113.7:5432".parse().unwrap();
        assert_eq!(judge(remote, Holder::NoListener, "db.1"), Outcome::Pass);
        assert!(matches!(
            judge(to(), Holder::Unknown("x".into()), "web.1"),
            Outcome::Fail(_)
        ));
    }

    #[test]
    fn a_listener_in_our_own_process_is_ours_and_a_strangers_is_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let me = std::process::id() as i32;
        assert_eq!(holder(addr, me), Holder::Own);
        // Our child does not inherit the listener (close-on-exec): to it,
        // we are a stranger holding the address.
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let verdict = holder(addr, child.id() as i32);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            verdict,
            Holder::Other {
                pid: Some(me),
                comm: proc::comm(me)
            }
        );
        drop(listener);
        assert_eq!(holder(addr, me), Holder::NoListener);
    }
}
