//! Durations (`250ms`, `30s`, `5m`) and sizes (`300MiB`, `1G`, `512M`).
//!
//! Sizes are binary throughout: `M`, `MB` and `MiB` all mean 2^20 bytes, as
//! in systemd's `MemoryMax=`. Memory limits are where people think in MiB
//! whatever they type, and a limit silently 5% off because of a unit
//! convention is a bug nobody wants. A bare number is refused: Celery's own
//! `--max-memory-per-child` counts KiB, so `300000` is ambiguous.

use std::time::Duration;

/// The longest duration a file may give. Every duration is a timeout, a
/// period or a delay that the supervisor adds to "now"; past a year none of
/// them means anything, and far past it the addition overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses `250ms`, `30s`, `5m`, `1h 30m`. The unit is required, and at most
/// [`MAX_DURATION`]. `M` is refused: humantime reads `5M` as five months,
/// which nobody writing a timeout means.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if t.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("\"{t}\" has no unit"));
    }
    if let Some(number) = months_unit(t) {
        return Err(format!(
            "\"{t}\": `M` would mean months; did you mean `{number}m` or `{number}min` (minutes)?"
        ));
    }
    let d = humantime::parse_duration(t).map_err(|e| format!("\"{t}\" is not a duration ({e})"))?;
    if d > MAX_DURATION {
        return Err(format!("\"{t}\" is longer than the maximum of 1 year"));
    }
    Ok(d)
}

/// The number before a bare `M` unit (`5M`, `1h 5M`), if any.
fn months_unit(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b != b'M' || bytes.get(i + 1).is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        let start = text[..i]
            .trim_end()
            .rfind(|c: char| !c.is_ascii_digit())
            .map_or(0, |j| j + 1);
        let number = text[start..i].trim();
        if !number.is_empty() && number.bytes().all(|c| c.is_ascii_digit()) {
            return Some(number);
        }
    }
    None
}

/// Parses `300MiB`, `1G`, `512M`, `64KiB` into bytes. The unit is required.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty size".into());
    }
    if t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("\"{t}\" has no unit"));
    }
    let bytes = parse_size::Config::new()
        .with_binary()
        .parse_size(t)
        .map_err(|e| format!("\"{t}\" is not a size ({e})"))?;
    if bytes == 0 {
        return Err(format!("\"{t}\" is zero"));
    }
    Ok(bytes)
}

/// Formats a duration the way the file writes it (`30s`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string().replace(' ', "")
}

/// Formats bytes as the largest exact binary unit (`300MiB`, `1GiB`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, factor) in UNITS {
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{}{name}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("thirty seconds")
            .unwrap_err()
            .contains("not a duration"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn durations_are_bounded_and_months_refused() {
        assert_eq!(parse_duration("365d"), Ok(MAX_DURATION));
        let e = parse_duration("300000000000y").unwrap_err();
        assert!(e.contains("maximum of 1 year"), "{e}");
        assert!(parse_duration("366d").unwrap_err().contains("maximum"));
        let e = parse_duration("5M").unwrap_err();
        assert!(e.contains("`5m` or `5min`"), "{e}");
        assert!(parse_duration("1h 30M").unwrap_err().contains("`30m`"));
        assert_eq!(parse_duration("5min"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2months").map(|_| ()), Ok(()));
    }

    #[test]
    fn sizes_are_binary() {
        assert_eq!(parse_size("300MiB"), Ok(300 << 20));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("512MB"), Ok(512 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert!(parse_size("300").unwrap_err().contains("no unit"));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
        assert!(parse_size("0MiB").unwrap_err().contains("zero"));
    }

    #[test]
    fn formatting_round_trips() {
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_size(300 << 20), "300MiB");
        assert_eq!(format_size(1 << 30), "1GiB");
        assert_eq!(format_size(1000), "1000B");
    }
}
