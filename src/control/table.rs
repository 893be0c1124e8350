//! What the CLI shows: the status table and its verdict, and which log
//! lines belong to a process. Pure functions.

use super::protocol::InstanceInfo;

/// The health column, from the instance's state: `ready` is healthy, a
/// process still coming up is starting, one waiting out a crash backoff
/// or given up is unhealthy, anything not meant to run shows `-`.
pub fn health(state: &str) -> &'static str {
    match state {
        "ready" => "healthy",
        "starting" | "running" => "starting",
        "backoff" | "failed" => "unhealthy",
        _ => "-",
    }
}

/// `status` exits non-zero when this holds: something failed or is
/// unhealthy, so that scripts and monitoring can act on the code alone.
pub fn needs_attention(instances: &[InstanceInfo]) -> bool {
    instances.iter().any(|i| i.health == "unhealthy")
}

/// `3d4h`, `2h05m`, `4m07s`, `12s`.
pub fn uptime(secs: f64) -> String {
    let s = secs as u64;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

fn memory(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = bytes as f64 / MIB;
    if mib >= 1024.0 {
        format!("{:.1}G", mib / 1024.0)
    } else {
        format!("{mib:.1}M")
    }
}

const HEADERS: [&str; 11] = [
    "PROCESS",
    "INSTANCE",
    "PID",
    "STATE",
    "HEALTH",
    "UPTIME",
    "RESTARTS",
    "MEMORY",
    "CPU%",
    "TASKS",
    "LAST EXIT",
];

/// The status table, columns padded to their widest cell; the restarts
/// column carries the last reason, the tasks column this incarnation's
/// count and all of them.
pub fn render(instances: &[InstanceInfo]) -> String {
    let dash = || "-".to_string();
    let rows: Vec<[String; 11]> = instances
        .iter()
        .map(|i| {
            [
                i.process.clone(),
                i.instance.to_string(),
                i.pid.map_or_else(dash, |p| p.to_string()),
                i.state.clone(),
                i.health.clone(),
                i.uptime_secs.map_or_else(dash, uptime),
                match &i.last_restart {
                    Some(why) if i.restarts > 0 => format!("{} ({why})", i.restarts),
                    _ => i.restarts.to_string(),
                },
                i.memory_bytes.map_or_else(dash, memory),
                i.cpu_percent.map_or_else(dash, |c| format!("{c:.1}")),
                if i.tasks_total > 0 {
                    format!("{}/{}", i.tasks, i.tasks_total)
                } else {
                    dash()
                },
                i.last_exit.clone().unwrap_or_else(dash),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (n, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if n + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&HEADERS.map(str::to_string));
    for row in &rows {
        line(row);
    }
    out
}

/// Whether a line of the merged output (text or JSON, coloured or not,
/// with or without a timestamp) comes from an instance of `process`.
pub fn line_is_from(line: &str, process: &str) -> bool {
    if let Some(rest) = line.strip_prefix('{') {
        let key = format!("\"process\":{}", serde_json::Value::from(process));
        return rest.contains(&key);
    }
    let plain = strip_sgr(line);
    let mut text = plain.as_str();
    // `2025-12-01T23:01:25.123Z ` (24 characters and a space).
    if text.len() > 25 && text.as_bytes()[10] == b'T' && text.as_bytes()[23] == b'Z' {
        text = &text[25..];
    }
    let Some(label) = text.split(['|', ' ']).next() else {
        return false;
    };
    let label = label.trim_end_matches('+');
    match label.rsplit_once('.') {
        Some((name, n)) => name == process && n.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

fn strip_sgr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("\x1b[") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('m') {
            Some(j) => rest = &after[j + 1..],
            None => {
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(state: &str) -> InstanceInfo {
        InstanceInfo {
            process: "web".into(),
            instance: 1,
            pid: Some(42),
            state: state.into(),
            health: health(state).into(),
            uptime_secs: Some(3725.0),
            restarts: 2,
            last_restart: Some("exited with code 1".into()),
            memory_bytes: Some(50 * 1024 * 1024),
            memory_metric: Some("pss".into()),
            tree: Some(3),
            cpu_percent: Some(1.5),
            tasks: 3,
            tasks_total: 10,
            recycles: 0,
            last_recycle: None,
            last_exit: Some("exited with code 1".into()),
        }
    }

    #[test]
    fn verdict_follows_failed_and_unhealthy() {
        assert!(!needs_attention(&[
            inst("ready"),
            inst("starting"),
            inst("stopped")
        ]));
        assert!(needs_attention(&[inst("ready"), inst("failed")]));
        assert!(needs_attention(&[inst("backoff")]));
        assert!(!needs_attention(&[inst("completed"), inst("not started")]));
    }

    #[test]
    fn table_has_every_column() {
        let t = render(&[inst("ready")]);
        let mut lines = t.lines();
        assert!(lines
            .next()
            .unwrap()
            .starts_with("PROCESS  INSTANCE  PID  STATE"));
        let row = lines.next().unwrap();
        for cell in [
            "web",
            "42",
            "ready",
            "healthy",
            "1h02m",
            "2 (exited with code 1)",
            "50.0M",
            "1.5",
            "3/10",
        ] {
            assert!(row.contains(cell), "{cell} in {row}");
        }
        assert_eq!(uptime(5.9), "5s");
        assert_eq!(uptime(90000.0), "1d1h");
        assert_eq!(uptime(245.0), "4m05s");
    }

    #[test]
    fn lines_are_told_apart_by_label() {
        assert!(line_is_from("web.1   | hello\n", "web"));
        assert!(line_is_from("web.12 +| cont\n", "web"));
        assert!(!line_is_from("webx.1 | hello\n", "web"));
        assert!(!line_is_from("worker.1 | web.1 | x\n", "web"));
        assert!(!line_is_from("prodserver | web.1 ready\n", "web"));
        assert!(line_is_from("\x1b[36mweb.2  |\x1b[0m hi\n", "web"));
        assert!(line_is_from(
            "2025-12-01T23:01:25.123Z web.1 | ready\n",
            "web"
        ));
        assert!(line_is_from(
            "{\"time\":\"x\",\"process\":\"web\",\"instance\":1}\n",
            "web"
        ));
        assert!(!line_is_from("{\"process\":\"webx\"}\n", "web"));
    }
}
