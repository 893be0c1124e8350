//! Is our output journald's? systemd sets `JOURNAL_STREAM=DEV:INODE` for a
//! service whose stdout or stderr is connected to the journal; the value
//! only counts if it names the stream we write to (a child of such a
//! service inherits the variable while its output may go elsewhere).

use std::os::fd::AsFd;

/// True when `journal_stream` (`JOURNAL_STREAM`'s value) names the stream
/// whose device and inode are `ours`.
pub fn matches(journal_stream: Option<&str>, ours: Option<(u64, u64)>) -> bool {
    let (Some(value), Some(ours)) = (journal_stream, ours) else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    match (dev.parse::<u64>(), ino.parse::<u64>()) {
        (Ok(dev), Ok(ino)) => (dev, ino) == ours,
        _ => false,
    }
}

/// The device and inode of stdout, where the log goes.
pub fn stdout_id() -> Option<(u64, u64)> {
    let st = nix::sys::stat::fstat(std::io::stdout().as_fd()).ok()?;
    Some((st.st_dev as u64, st.st_ino as u64))
}

/// True when stdout goes to the journal: lines then carry syslog
/// priority prefixes instead of colours and timestamps.
pub fn stdout_is_journal(journal_stream: Option<&str>) -> bool {
    matches(journal_stream, stdout_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_must_be_ours() {
        assert!(matches(Some("8:12345"), Some((8, 12345))));
        assert!(
            !matches(Some("8:12345"), Some((8, 12346))),
            "another stream"
        );
        assert!(!matches(Some("9:12345"), Some((8, 12345))));
        assert!(!matches(None, Some((8, 12345))));
        assert!(!matches(Some("8:12345"), None));
        assert!(!matches(Some("812345"), Some((8, 12345))));
        assert!(!matches(Some("x:y"), Some((8, 12345))));
        assert!(!matches(Some(""), Some((0, 0))));
        assert!(stdout_id().is_some());
    }
}
