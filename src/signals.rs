//! Signal names: the crate's one table, real-time signals included, for
//! everything that reads or prints one: the config's `stop_signal`, the
//! `check` listing, log lines. Pure, so `config/` can use it without
//! depending on the OS layer.

/// Canonical names first: [`signal_name`] returns the first match, while
/// [`signal_by_name`] also accepts the aliases that follow.
const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
    // Aliases.
    ("IOT", libc::SIGABRT),
    ("CLD", libc::SIGCHLD),
    ("POLL", libc::SIGIO),
];

/// Parses a signal as written in `prodserver.toml` or on the command line:
/// `"TERM"`, `"SIGTERM"`, `"term"`, `"15"`, and the real-time forms
/// `"RTMIN"`, `"RTMIN+3"`, `"RTMAX-1"`. Returns `None` for anything else,
/// including numbers outside `1..=SIGRTMAX` and names with spaces around
/// them (a value in the config is taken as written, not guessed at).
pub fn signal_by_name(name: &str) -> Option<i32> {
    if let Ok(n) = name.parse::<i32>() {
        return (1..=libc::SIGRTMAX()).contains(&n).then_some(n);
    }
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().find(|(s, _)| *s == bare) {
        return Some(n);
    }
    realtime_by_name(bare)
}

fn realtime_by_name(bare: &str) -> Option<i32> {
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let n = if let Some(rest) = bare.strip_prefix("RTMIN") {
        min + offset(rest, '+')?
    } else if let Some(rest) = bare.strip_prefix("RTMAX") {
        max - offset(rest, '-')?
    } else {
        return None;
    };
    (min..=max).contains(&n).then_some(n)
}

/// `""` → 0, `"+3"` (with `sign` '+') → 3; anything else → None.
fn offset(rest: &str, sign: char) -> Option<i32> {
    if rest.is_empty() {
        return Some(0);
    }
    rest.strip_prefix(sign)?.parse::<i32>().ok()
}

/// The conventional name of a signal, `"SIGTERM"`; real-time signals are
/// named `"SIGRTMIN+N"`; anything unknown is `"signal N"`.
/// `signal_by_name(&signal_name(n)) == Some(n)` for every valid signal.
pub fn signal_name(sig: i32) -> String {
    if let Some((name, _)) = NAMES.iter().find(|(_, n)| *n == sig) {
        return format!("SIG{name}");
    }
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    if sig == min {
        "SIGRTMIN".to_owned()
    } else if sig > min && sig <= max {
        format!("SIGRTMIN+{}", sig - min)
    } else {
        format!("signal {sig}")
    }
}
