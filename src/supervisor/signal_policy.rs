//! What each signal means to prodserver: a pure table, so that no signal
//! keeps its default action (which for most of them kills prodserver on
//! the spot, leaving the keeper to SIGKILL every child and cut off running
//! tasks).
//!
//! | signal | meaning |
//! |---|---|
//! | INT (Ctrl-C), TERM, QUIT (Ctrl-\\) | graceful stop; a second one kills what is left |
//! | HUP | the terminal hung up: graceful stop; otherwise (`kill -HUP`, systemd `ExecReload=`): reload |
//! | XCPU | the CPU-time soft limit was reached and the hard one follows: graceful stop |
//! | USR1 | log every instance's state |
//! | USR2, ALRM, VTALRM, PROF, IO, PWR, STKFLT, XFSZ, RTMIN..RTMAX | logged and ignored |
//!
//! Not caught: KILL and STOP cannot be; SEGV, BUS, ILL, FPE, TRAP, ABRT and
//! SYS report a fault in prodserver itself (the keeper then kills every
//! child); TSTP/TTIN/TTOU/CONT keep job control working; CHLD, WINCH and URG
//! are ignored by default.

/// What to do about a signal that arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalMeaning {
    /// Stop everything gracefully (or, the second time, at once).
    Stop { cause: StopCause },
    /// Re-read the file and apply it.
    Reload,
    /// Log every instance's state.
    Status,
    /// Log that it was received and carry on.
    Ignore,
}

/// Why a stop was requested: the message (and its hint) depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// SIGINT: Ctrl-C in a terminal.
    Interrupt,
    /// SIGTERM, SIGQUIT, SIGXCPU: a service manager, `kill`, `docker stop`.
    Terminate(i32),
    /// SIGHUP with the controlling terminal gone.
    Hangup,
}

/// Every signal prodserver handles (see the table above).
pub fn handled() -> Vec<i32> {
    let mut sigs = vec![
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGXCPU,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGIO,
        libc::SIGPWR,
        libc::SIGSTKFLT,
        libc::SIGXFSZ,
    ];
    sigs.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    sigs
}

/// The meaning of `sig`; `terminal_hung_up` tells a hangup from a reload
/// request (see `os::terminal`).
pub fn meaning(sig: i32, terminal_hung_up: bool) -> SignalMeaning {
    match sig {
        libc::SIGINT => SignalMeaning::Stop {
            cause: StopCause::Interrupt,
        },
        libc::SIGTERM | libc::SIGQUIT | libc::SIGXCPU => SignalMeaning::Stop {
            cause: StopCause::Terminate(sig),
        },
        libc::SIGHUP if terminal_hung_up => SignalMeaning::Stop {
            cause: StopCause::Hangup,
        },
        libc::SIGHUP => SignalMeaning::Reload,
        libc::SIGUSR1 => SignalMeaning::Status,
        _ => SignalMeaning::Ignore,
    }
}

impl StopCause {
    /// How the stop is announced: what happened, and how to hurry it.
    pub fn describe(self) -> String {
        match self {
            StopCause::Interrupt => {
                "SIGINT received: stopping everything (a second Ctrl-C kills at once)".into()
            }
            StopCause::Terminate(sig) => {
                let name = crate::os::signal_name(sig);
                format!("{name} received: stopping everything (a second {name} kills at once)")
            }
            StopCause::Hangup => "the terminal hung up (SIGHUP): stopping everything".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hup_is_a_stop_only_when_the_terminal_is_gone() {
        assert_eq!(
            meaning(libc::SIGHUP, true),
            SignalMeaning::Stop {
                cause: StopCause::Hangup
            }
        );
        assert_eq!(meaning(libc::SIGHUP, false), SignalMeaning::Reload);
    }

    #[test]
    fn stop_signals_and_the_rest() {
        for sig in [libc::SIGTERM, libc::SIGQUIT, libc::SIGXCPU] {
            assert_eq!(
                meaning(sig, false),
                SignalMeaning::Stop {
                    cause: StopCause::Terminate(sig)
                }
            );
        }
        assert_eq!(
            meaning(libc::SIGINT, false),
            SignalMeaning::Stop {
                cause: StopCause::Interrupt
            }
        );
        assert_eq!(meaning(libc::SIGUSR1, false), SignalMeaning::Status);
        for sig in [libc::SIGUSR2, libc::SIGALRM, libc::SIGPWR, libc::SIGRTMIN()] {
            assert_eq!(meaning(sig, false), SignalMeaning::Ignore);
        }
    }

    #[test]
    fn only_ctrl_c_mentions_ctrl_c() {
        assert!(StopCause::Interrupt.describe().contains("Ctrl-C"));
        assert!(!StopCause::Terminate(libc::SIGTERM)
            .describe()
            .contains("Ctrl-C"));
        assert!(StopCause::Terminate(libc::SIGTERM)
            .describe()
            .contains("a second SIGTERM"));
        assert!(!StopCause::Hangup.describe().contains("Ctrl-C"));
    }

    #[test]
    fn every_terminating_signal_is_handled() {
        // Signals whose default action ends the process, minus those that
        // report a fault of our own (or cannot be caught).
        let handled = handled();
        for sig in [
            libc::SIGHUP,
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGTERM,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGALRM,
            libc::SIGVTALRM,
            libc::SIGPROF,
            libc::SIGIO,
            libc::SIGPWR,
            libc::SIGSTKFLT,
            libc::SIGXCPU,
            libc::SIGXFSZ,
        ] {
            assert!(handled.contains(&sig), "{sig} not handled");
        }
        assert!(handled.contains(&libc::SIGRTMAX()));
    }
}
