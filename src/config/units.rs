//! Durations (`250ms`, `30s`, `5m`) and sizes (`300MiB`, `1G`, `512M`).
//!
//! Sizes are binary throughout: `M`, `MB` and `MiB` all mean 2^20 bytes, as
//! in systemd's `MemoryMax=`. Memory limits are where people think in MiB
//! whatever they type, and a limit silently 5% off because of a unit
//! convention is a bug nobody wants. A bare number is refused: Celery's own
//! `--max-memory-per-child` counts KiB, so `300000` is ambiguous.

use std::time::Duration;

/// Parses `250ms`, `30s`, `5m`, `1h 30m`. The unit is required.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if t.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("\"{t}\" has no unit"));
    }
    humantime::parse_duration(t).map_err(|e| format!("\"{t}\" is not a duration ({e})"))
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
