//! The sd_notify wire format: a datagram of `KEY=VALUE` lines.

/// Longest `STATUS=` text kept (in bytes, cut at a character boundary).
pub const MAX_STATUS: usize = 1024;

/// One line of a notification datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `READY=1`.
    Ready,
    /// `STATUS=...`: free text for logs and `status`.
    Status(String),
    /// `WATCHDOG=1`: liveness heartbeat.
    Watchdog,
    /// `WATCHDOG=trigger`: the process reports its own failure.
    WatchdogTrigger,
    /// `STOPPING=1`: the process is shutting down on its own terms.
    Stopping,
    /// `TASKS_DONE=N` (prodserver's extension): N more tasks finished.
    TasksDone(u64),
    /// Any other well-formed line (`MAINPID=`, `RELOADING=1`, `READY=0`,
    /// ...), by key: not acted upon.
    Other(String),
}

/// Parses one datagram. Lines without `=` and empty lines are skipped, as
/// is a `TASKS_DONE` whose value is not a positive integer (digits only).
/// Bytes that are not UTF-8 become U+FFFD.
pub fn parse(datagram: &[u8]) -> Vec<Message> {
    let text = String::from_utf8_lossy(datagram);
    text.split('\n').filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Message> {
    let (key, value) = line.split_once('=')?;
    if key.is_empty() {
        return None;
    }
    Some(match (key, value) {
        ("READY", "1") => Message::Ready,
        ("STOPPING", "1") => Message::Stopping,
        ("WATCHDOG", "1") => Message::Watchdog,
        ("WATCHDOG", "trigger") => Message::WatchdogTrigger,
        ("STATUS", text) => Message::Status(cut(text, MAX_STATUS).to_owned()),
        ("TASKS_DONE", n) => {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            match n.parse::<u64>() {
                Ok(n) if n > 0 => Message::TasksDone(n),
                _ => return None,
            }
        }
        (key, _) => Message::Other(key.to_owned()),
    })
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys() {
        assert_eq!(
            parse(b"READY=1\nSTATUS=Processing 3 tasks\nWATCHDOG=1\nSTOPPING=1\nTASKS_DONE=2"),
            vec![
                Message::Ready,
                Message::Status("Processing 3 tasks".into()),
                Message::Watchdog,
                Message::Stopping,
                Message::TasksDone(2),
            ]
        );
        assert_eq!(parse(b"WATCHDOG=trigger"), vec![Message::WatchdogTrigger]);
        assert_eq!(parse(b"STATUS="), vec![Message::Status(String::new())]);
        assert_eq!(
            parse(b"STATUS=a=b"),
            vec![Message::Status("a=b".into())],
            "only the first = splits"
        );
    }

    #[test]
    fn other_and_malformed_lines() {
        assert_eq!(
            parse(b"MAINPID=42\nREADY=0\n\nnonsense\n=x\nRELOADING=1\n"),
            vec![
                Message::Other("MAINPID".into()),
                Message::Other("READY".into()),
                Message::Other("RELOADING".into()),
            ]
        );
    }

    #[test]
    fn tasks_done_must_be_a_positive_integer() {
        for bad in [
            "TASKS_DONE=0",
            "TASKS_DONE=-1",
            "TASKS_DONE=+1",
            "TASKS_DONE=1.5",
            "TASKS_DONE=",
            "TASKS_DONE= 1",
            "TASKS_DONE=99999999999999999999999",
        ] {
            assert_eq!(parse(bad.as_bytes()), vec![], "{bad}");
        }
        assert_eq!(
            parse(b"TASKS_DONE=18446744073709551615"),
            vec![Message::TasksDone(u64::MAX)]
        );
    }

    #[test]
    fn status_is_cut_and_lossy() {
        let long = format!("STATUS={}", "é".repeat(MAX_STATUS));
        match &parse(long.as_bytes())[..] {
            [Message::Status(s)] => assert!(s.len() <= MAX_STATUS && s.len() >= MAX_STATUS - 1),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse(b"STATUS=a\xffb"),
            vec![Message::Status("a\u{fffd}b".into())]
        );
    }
}
