//! The wire format: one JSON object per line, each carrying the protocol
//! version `v`. A request names its `cmd`; every reply has `ok`, and an
//! error reply an `error` text. `logs` with `follow` is the one request
//! answered by more than one line: its reply, then `{"v":1,"log":...}`
//! lines until the client hangs up.

use serde::{Deserialize, Serialize};

/// The version this build speaks; a request with another is refused.
pub const VERSION: u32 = 1;
/// Longest request line accepted (newline included). Requests are tiny;
/// the bound keeps a client from making the supervisor buffer without end.
pub const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase", deny_unknown_fields)]
pub enum Cmd {
    Status,
    Restart {
        process: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<u32>,
    },
    Stop {
        process: String,
    },
    /// Start a stopped process (`start` is the supervisor's own verb).
    Up {
        process: String,
    },
    Scale {
        process: String,
        instances: u32,
    },
    Reload,
    Logs {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lines: Option<usize>,
        #[serde(default)]
        follow: bool,
    },
}

/// A request as written by a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    pub v: u32,
    #[serde(flatten)]
    pub cmd: Cmd,
}

impl Request {
    pub fn new(cmd: Cmd) -> Request {
        Request { v: VERSION, cmd }
    }

    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// Parses one request line; the error is the text of the error reply.
/// The version is checked before the command, so that a newer client's
/// unknown command is reported as a version mismatch.
pub fn parse_request(line: &[u8]) -> Result<Cmd, String> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("malformed request: not JSON ({e})"))?;
    let serde_json::Value::Object(mut map) = value else {
        return Err("malformed request: expected a JSON object".into());
    };
    match map.remove("v").map(|v| v.as_u64()) {
        None => {
            return Err(format!(
                "malformed request: no protocol version `v` (this supervisor speaks {VERSION})"
            ))
        }
        Some(Some(v)) if v == u64::from(VERSION) => {}
        Some(Some(v)) => {
            return Err(format!(
                "protocol version {v} is not supported: this supervisor speaks {VERSION}"
            ))
        }
        Some(None) => return Err("malformed request: `v` must be a number".into()),
    }
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| format!("bad request: {e}"))
}

/// One instance in a `status` reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub process: String,
    pub instance: u32,
    pub pid: Option<i32>,
    pub state: String,
    /// `healthy`, `starting`, `unhealthy`, or `-` when nothing runs.
    pub health: String,
    /// Seconds since the current process was spawned.
    pub uptime_secs: Option<f64>,
    pub restarts: u32,
    pub last_restart: Option<String>,
    pub memory_bytes: Option<u64>,
    /// `rss` or `pss`: how memory was measured.
    pub memory_metric: Option<String>,
    /// Processes in the instance's tree.
    pub tree: Option<u32>,
    pub cpu_percent: Option<f64>,
    pub tasks: u64,
    pub tasks_total: u64,
    pub recycles: u32,
    pub last_recycle: Option<String>,
    /// `exited with code 3`, `killed by SIGKILL`.
    pub last_exit: Option<String>,
}

/// One recent line of one instance, for `logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentLine {
    pub instance: String,
    pub line: String,
}

/// Every reply line. Fields absent from a reply are omitted.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Reply {
    pub v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What was done, in words (a reload's summary of changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<InstanceInfo>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<RecentLine>>,
    /// A chunk of the followed log stream (whole lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply {
            v: VERSION,
            ok: Some(true),
            ..Reply::default()
        }
    }

    pub fn message(text: impl Into<String>) -> Reply {
        Reply {
            message: Some(text.into()),
            ..Reply::ok()
        }
    }

    pub fn error(text: impl Into<String>) -> Reply {
        Reply {
            v: VERSION,
            ok: Some(false),
            error: Some(text.into()),
            ..Reply::default()
        }
    }

    pub fn log(chunk: String) -> Reply {
        Reply {
            v: VERSION,
            log: Some(chunk),
            ..Reply::default()
        }
    }

    pub fn to_line(&self) -> Vec<u8> {
        let mut s = serde_json::to_vec(self).unwrap_or_default();
        s.push(b'\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let cmds = [
            Cmd::Status,
            Cmd::Restart {
                process: "web".into(),
                instance: Some(2),
            },
            Cmd::Stop {
                process: "web".into(),
            },
            Cmd::Up {
                process: "web".into(),
            },
            Cmd::Scale {
                process: "w".into(),
                instances: 3,
            },
            Cmd::Reload,
            Cmd::Logs {
                process: None,
                lines: Some(5),
                follow: true,
            },
        ];
        for cmd in cmds {
            let line = Request::new(cmd.clone()).to_line();
            assert_eq!(parse_request(line.trim_end().as_bytes()), Ok(cmd), "{line}");
        }
        assert_eq!(
            Request::new(Cmd::Status).to_line(),
            "{\"v\":1,\"cmd\":\"status\"}\n"
        );
    }

    #[test]
    fn bad_requests_are_explained() {
        let err = |s: &str| parse_request(s.as_bytes()).unwrap_err();
        assert!(err("{nope").starts_with("malformed request: not JSON"));
        assert!(err("[1]").contains("expected a JSON object"));
        assert!(err(r#"{"cmd":"status"}"#).contains("no protocol version"));
        assert!(err(r#"{"v":2,"cmd":"status"}"#).contains("version 2 is not supported"));
        assert!(err(r#"{"v":1,"cmd":"dance"}"#).contains("unknown variant `dance`"));
        assert!(err(r#"{"v":1,"cmd":"stop"}"#).contains("missing field `process`"));
        assert!(err(r#"{"v":1,"cmd":"stop","process":"w","x":1}"#).contains("unknown field"));
    }
}
