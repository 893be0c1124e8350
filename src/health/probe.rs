//! Probes: one check each, bounded by the probe's `timeout`, answering
//! `Ok(())` or the reason it failed, ready for the log
//! (`GET /healthz/ -> 503`, `connect 127.0.0.1:8000: connection refused`,
//! `exit code 1`, `timed out after 2s`).
//!
//! HTTP and TCP probes are futures on the supervisor's own event loop: no
//! thread per check, nothing polled. Targets are parsed once
//! ([`HttpProbe::new`], [`TcpProbe::new`]) and the request bytes built once,
//! so a probe costs one connection and a few syscalls. IP literals and
//! `localhost` need no name resolution; any other host name is resolved at
//! each probe (tokio runs getaddrinfo on its blocking pool), so a container
//! whose address changes is still found.
//!
//! The HTTP client is hand-written on purpose: a probe sends one `GET` with
//! `Connection: close` and needs the three digits of the status line, which
//! is ~40 lines here. A supervisor that aims at a few MiB of memory and a
//! small binary does not pull in hyper (and its connection pool, body
//! handling and TLS choices) for one status line. Plain `http://` only:
//! probes talk to a local process, not through TLS.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::os::{self, SpawnRequest};
use crate::units::format_duration;

/// Which HTTP statuses count as healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// 2xx and 3xx (`status` not set).
    Success,
    /// Exactly this status (`status = 204`).
    Status(u16),
    /// Any well-formed HTTP response: the server is up and its app loaded,
    /// whatever it thinks of `/` (a Django project without a root view
    /// answers 404, a Host not in ALLOWED_HOSTS 400). Used by the default
    /// readiness probes of web servers.
    AnyResponse,
}

impl Accept {
    fn accepts(self, status: u16) -> bool {
        match self {
            Accept::Success => (200..400).contains(&status),
            Accept::Status(s) => s == status,
            Accept::AnyResponse => true,
        }
    }
}

/// Where to connect: a host (IP literal, `localhost`, or a name) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    host: Host,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    /// 127.0.0.1, then ::1.
    Localhost,
    Name(String),
}

impl Target {
    /// Parses `host:port`, `[v6]:port`, or (with `default_port`) a bare
    /// host. Bare IPv6 addresses must be in brackets, as in URLs.
    pub fn parse(authority: &str, default_port: Option<u16>) -> Result<Target, String> {
        let bad = |why: &str| Err(format!("{authority:?}: {why}"));
        let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
            let Some((v6, after)) = rest.split_once(']') else {
                return bad("missing `]` after the IPv6 address");
            };
            let Ok(ip) = v6.parse::<Ipv6Addr>() else {
                return bad("not an IPv6 address in brackets");
            };
            let port = match after {
                "" => None,
                p => match p.strip_prefix(':') {
                    Some(p) => Some(p),
                    None => return bad("expected `:port` after `]`"),
                },
            };
            (Host::Ip(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            };
            if host.contains(':') {
                return bad("write IPv6 addresses in brackets: `[::1]:8000`");
            }
            if host.is_empty() {
                return bad("the host is empty");
            }
            if host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "/?#@".contains(c))
            {
                return bad("not a host name");
            }
            let host = if let Ok(ip) = host.parse::<Ipv4Addr>() {
                Host::Ip(IpAddr::V4(ip))
            } else if host.eq_ignore_ascii_case("localhost") {
                Host::Localhost
            } else {
                Host::Name(host.to_ascii_lowercase())
            };
            (host, port)
        };
        let port = match (port, default_port) {
            (Some(p), _) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return bad("the port must be a number from 1 to 65535"),
            },
            (None, Some(p)) => p,
            (None, None) => return bad("missing `:port`"),
        };
        Ok(Target { host, port })
    }

    /// A target for an IP address (the default probes use this).
    pub fn ip(ip: IpAddr, port: u16) -> Target {
        Target {
            host: Host::Ip(ip),
            port,
        }
    }

    /// Connects, trying each address in turn; the error names the first
    /// address tried (`connect 127.0.0.1:8000: connection refused`).
    async fn connect(&self) -> Result<TcpStream, String> {
        let addrs: Vec<SocketAddr> = match &self.host {
            Host::Ip(ip) => vec![SocketAddr::new(*ip, self.port)],
            Host::Localhost => vec![
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), self.port),
            ],
            Host::Name(name) => tokio::net::lookup_host((name.as_str(), self.port))
                .await
                .map_err(|e| format!("resolve {name}: {}", short_error(&e)))?
                .collect(),
        };
        let mut first_error = None;
        for addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => {
                    first_error
                        .get_or_insert_with(|| format!("connect {self}: {}", short_error(&e)));
                }
            }
        }
        Err(first_error.unwrap_or_else(|| format!("resolve {self}: no address")))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}:{}", self.port),
            Host::Localhost => write!(f, "localhost:{}", self.port),
            Host::Name(n) => write!(f, "{n}:{}", self.port),
        }
    }
}

/// `http://host[:port][/path][?query]`, parsed: what to connect to, the
/// request target, and the default `Host` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub target: Target,
    /// Path and query, at least `/`.
    pub path: String,
    /// `host[:port]` as written.
    pub authority: String,
}

/// Parses a probe URL. `http://` only (probes don't speak TLS); no user
/// info; the fragment is dropped; the port defaults to 80.
pub fn parse_http_url(url: &str) -> Result<HttpUrl, String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(if url.starts_with("https://") {
            format!("{url:?}: probes speak plain HTTP to the local process; use http://")
        } else {
            format!("{url:?}: must start with http://")
        });
    };
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.contains('@') {
        return Err(format!(
            "{url:?}: user names and passwords are not supported"
        ));
    }
    let target = Target::parse(authority, Some(80)).map_err(|e| format!("{url:?}: {e}"))?;
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!(
            "{url:?}: spaces and control characters must be percent-encoded"
        ));
    }
    Ok(HttpUrl {
        target,
        path,
        authority: authority.to_owned(),
    })
}

/// An HTTP GET probe, built once, run many times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    target: Target,
    request: Vec<u8>,
    /// `GET /healthz/`: the start of every failure reason.
    what: String,
    accept: Accept,
}

/// Longest status line we read; real ones are ~20 bytes.
const MAX_STATUS_LINE: usize = 512;

impl HttpProbe {
    /// From a `health` block: `http = URL`, optional `status` and `host`.
    pub fn new(url: &str, status: Option<u16>, host: Option<&str>) -> Result<HttpProbe, String> {
        let url = parse_http_url(url)?;
        let accept = status.map_or(Accept::Success, Accept::Status);
        HttpProbe::from_parts(
            url.target,
            &url.path,
            host.unwrap_or(&url.authority),
            accept,
        )
    }

    /// From parts (the default probes of web servers use this).
    pub fn from_parts(
        target: Target,
        path: &str,
        host_header: &str,
        accept: Accept,
    ) -> Result<HttpProbe, String> {
        if host_header.is_empty() || host_header.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!(
                "Host header {host_header:?} is empty or contains spaces"
            ));
        }
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: prodserver-health\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        Ok(HttpProbe {
            target,
            request,
            what: format!("GET {path}"),
            accept,
        })
    }

    /// What this probe does, for logs: `GET http://127.0.0.1:8000/`.
    pub fn describe(&self) -> String {
        let path = self.what.trim_start_matches("GET ");
        format!("GET http://{}{path}", self.target)
    }

    pub fn accept(&self) -> Accept {
        self.accept
    }

    /// Runs the probe once, within `timeout` (connect, send, status line).
    pub async fn check(&self, timeout: Duration) -> Result<(), String> {
        self.check_peer(timeout).await.map(drop)
    }

    /// [`HttpProbe::check`], answering the address that passed it, for
    /// [`super::owner`] to tell whose listener that is.
    pub async fn check_peer(&self, timeout: Duration) -> Result<SocketAddr, String> {
        match tokio::time::timeout(timeout, self.run()).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "{}: timed out after {}",
                self.what,
                format_duration(timeout)
            )),
        }
    }

    async fn run(&self) -> Result<SocketAddr, String> {
        let mut stream = self.target.connect().await?;
        let io_err = |e: io::Error| format!("{}: {}", self.what, short_error(&e));
        let peer = stream.peer_addr().map_err(io_err)?;
        stream.write_all(&self.request).await.map_err(io_err)?;
        let mut buf = [0u8; MAX_STATUS_LINE];
        let mut len = 0;
        loop {
            if let Some(end) = memchr::memchr(b'\n', &buf[..len]) {
                return self.judge(&buf[..end]).map(|()| peer);
            }
            if len == buf.len() {
                return Err(format!(
                    "{} -> status line longer than {MAX_STATUS_LINE} bytes",
                    self.what
                ));
            }
            let n = stream.read(&mut buf[len..]).await.map_err(io_err)?;
            if n == 0 {
                return Err(if len == 0 {
                    format!("{}: connection closed without a response", self.what)
                } else {
                    format!(
                        "{} -> incomplete status line {}",
                        self.what,
                        shown(&buf[..len])
                    )
                });
            }
            len += n;
        }
        // Dropping the stream closes the connection: only the status line
        // matters, and the request said `Connection: close`.
    }

    fn judge(&self, line: &[u8]) -> Result<(), String> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let status = parse_status_line(line)
            .ok_or_else(|| format!("{} -> not an HTTP response: {}", self.what, shown(line)))?;
        if self.accept.accepts(status) {
            Ok(())
        } else if let Accept::Status(want) = self.accept {
            Err(format!("{} -> {status} (expected {want})", self.what))
        } else {
            Err(format!("{} -> {status}", self.what))
        }
    }
}

/// `HTTP/1.1 200 OK` → 200. The reason phrase is optional.
fn parse_status_line(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/")?;
    let space = memchr::memchr(b' ', rest)?;
    let code = rest.get(space + 1..space + 4)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if rest.get(space + 4).is_some_and(|&b| b != b' ') {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// At most 60 bytes of what a server sent, printable.
fn shown(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(60)];
    let mut s = format!("{:?}", String::from_utf8_lossy(cut));
    if cut.len() < bytes.len() {
        s.push('…');
    }
    s
}

/// A TCP connect probe: healthy when the port accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpProbe {
    target: Target,
}

impl TcpProbe {
    /// `tcp = "host:port"` (`[::1]:6379` for IPv6).
    pub fn new(address: &str) -> Result<TcpProbe, String> {
        Ok(TcpProbe {
            target: Target::parse(address, None)?,
        })
    }

    pub fn from_target(target: Target) -> TcpProbe {
        TcpProbe { target }
    }

    pub fn describe(&self) -> String {
        format!("connect {}", self.target)
    }

    /// Connects once within `timeout`, then closes.
    pub async fn check(&self, timeout: Duration) -> Result<(), String> {
        self.check_peer(timeout).await.map(drop)
    }

    /// [`TcpProbe::check`], answering the address that accepted.
    pub async fn check_peer(&self, timeout: Duration) -> Result<SocketAddr, String> {
        match tokio::time::timeout(timeout, self.target.connect()).await {
            Ok(Ok(stream)) => stream
                .peer_addr()
                .map_err(|e| format!("connect {}: {}", self.target, short_error(&e))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!(
                "connect {}: timed out after {}",
                self.target,
                format_duration(timeout)
            )),
        }
    }
}

/// How much of an exec probe's output is kept for the failure reason.
const KEEP_OUTPUT: usize = 2048;
/// The reason shows at most this much of the last output line.
const SHOWN_OUTPUT: usize = 200;
/// After the probe's main process exited, how long its pipes may take to
/// reach end-of-file (its group has been killed by then).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);

/// The pids of the exec probes running right now, shared by the probe
/// tasks and the engine. The engine's orphan reaper must treat them as
/// known (`os::reap_orphans(&|pid| ... || exec_pids.contains(pid))`):
/// otherwise it could reap a probe's zombie under tokio's feet. Cheap to
/// clone (one `Arc`).
///
/// With a keeper, each probe's process group is registered with it while
/// the probe runs, so a probe's children die with a SIGKILLed prodserver
/// like an instance's.
#[derive(Debug, Clone, Default)]
pub struct ExecPids {
    set: Arc<Mutex<BTreeSet<i32>>>,
    keeper: Option<os::Keeper>,
}

impl ExecPids {
    pub fn with_keeper(keeper: os::Keeper) -> ExecPids {
        ExecPids {
            set: Arc::default(),
            keeper: Some(keeper),
        }
    }

    /// A child of ours that tokio waits for: orphan reaping leaves it be.
    pub fn insert(&self, pid: i32) {
        self.lock().insert(pid);
        if let Some(k) = &self.keeper {
            // A gone keeper is reported (and replaced) by the engine.
            let _ = k.register(pid);
        }
    }

    pub fn remove(&self, pid: i32) {
        self.lock().remove(&pid);
        if let Some(k) = &self.keeper {
            let _ = k.unregister(pid);
        }
    }

    pub fn contains(&self, pid: i32) -> bool {
        self.lock().contains(&pid)
    }

    /// The pids, for `status` or tests.
    pub fn snapshot(&self) -> Vec<i32> {
        self.lock().iter().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<i32>> {
        // The set stays consistent even if a holder panicked.
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps a probe's pid in [`ExecPids`] until it is reaped, and kills its
/// group if the probe future is dropped before that (an instance stopped
/// while its probe ran).
struct Running {
    pid: i32,
    pids: ExecPids,
    reaped: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = os::kill_group(self.pid);
        }
        self.pids.remove(self.pid);
    }
}

/// Runs an exec probe: healthy when `req` exits 0 within `timeout`.
///
/// The command is started with [`crate::os::spawn()`], so it runs in a
/// process group of its own with PDEATHSIG, exactly like an instance (build
/// `req` like the instance's: its environment, working directory and
/// `user`/`group`). When it exits, and on timeout, its whole group is
/// SIGKILLed so nothing it started lingers, then it is reaped. Dropping the
/// future kills the group too.
///
/// Its pid is in `pids` from the spawn (synchronously, before this future
/// first waits) until it has been reaped: see [`ExecPids`]. Must run on the
/// thread that spawns instances (see `os::spawn`): on the current-thread
/// runtime, any task.
///
/// Failure reasons: `exit code 1`, `exit code 2: <last output line>`,
/// `killed by SIGSEGV`, `timed out after 2s`, or the spawn error.
pub async fn exec(req: &SpawnRequest, timeout: Duration, pids: &ExecPids) -> Result<(), String> {
    let spawned = os::spawn(req).map_err(|e| e.to_string())?;
    let pid = spawned.pid;
    pids.insert(pid);
    let mut running = Running {
        pid,
        pids: pids.clone(),
        reaped: false,
    };
    let mut child = spawned.child;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let drain = async move {
        let (out, err) = tokio::join!(tail_of(stdout), tail_of(stderr));
        last_line(&err).or_else(|| last_line(&out))
    };
    tokio::pin!(drain);
    // `sleep` saturates a huge timeout; `Instant + timeout` would panic.
    let expired = tokio::time::sleep(timeout);
    tokio::pin!(expired);
    let mut last: Option<Option<String>> = None;
    let status = loop {
        tokio::select! {
            status = child.wait() => break Some(status),
            line = &mut drain, if last.is_none() => last = Some(line),
            _ = &mut expired => break None,
        }
    };
    // Whatever happened, nothing of the probe may outlive it.
    let _ = os::kill_group(pid);
    let status = match status {
        Some(status) => status,
        None => {
            // Reap it; SIGKILL is prompt unless the process is stuck in the
            // kernel, and then tokio reaps it later, after we have answered.
            if let Ok(Ok(_)) = tokio::time::timeout(DRAIN_AFTER_EXIT, child.wait()).await {
                running.reaped = true;
            }
            return Err(format!("timed out after {}", format_duration(timeout)));
        }
    };
    running.reaped = status.is_ok();
    let status = status.map_err(|e| format!("cannot wait for the probe: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let last = match last {
        Some(line) => line,
        None => tokio::time::timeout(DRAIN_AFTER_EXIT, drain)
            .await
            .ok()
            .flatten(),
    };
    use std::os::unix::process::ExitStatusExt;
    let how = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by {}", os::signal_name(sig)),
        (None, None) => "failed".to_owned(),
    };
    Err(match last {
        Some(line) => format!("{how}: {line}"),
        None => how,
    })
}

/// Reads a pipe to EOF, keeping its last [`KEEP_OUTPUT`] bytes.
async fn tail_of<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    let Some(mut pipe) = pipe else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > KEEP_OUTPUT {
                    kept.drain(..kept.len() - KEEP_OUTPUT);
                }
            }
        }
    }
}

/// The last non-empty line, trimmed and cut to [`SHOWN_OUTPUT`] chars.
fn last_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let mut shown: String = line.chars().take(SHOWN_OUTPUT).collect();
    if shown.len() < line.len() {
        shown.push('…');
    }
    Some(shown)
}

/// `connection refused` rather than `Connection refused (os error 111)`.
fn short_error(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> Host {
        Host::Ip(IpAddr::V4(a.into()))
    }

    #[test]
    fn targets() {
        let t = Target::parse("127.0.0.1:8000", None).unwrap();
        assert_eq!((t.host.clone(), t.port), (v4([127, 0, 0, 1]), 8000));
        assert_eq!(t.to_string(), "127.0.0.1:8000");
        let t = Target::parse("[::1]:8000", None).unwrap();
        assert_eq!(t.host, Host::Ip(IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert_eq!(t.to_string(), "[::1]:8000");
        let t = Target::parse("LocalHost:80", None).unwrap();
        assert_eq!(t.host, Host::Localhost);
        let t = Target::parse("Redis.internal:6379", None).unwrap();
        assert_eq!(t.host, Host::Name("redis.internal".into()));
        assert_eq!(Target::parse("[::1]", Some(80)).unwrap().port, 80);
        for bad in [
            "::1:8000",
            "127.0.0.1",
            ":8000",
            "host:0",
            "host:99999",
            "host:x",
            "[::1",
            "[::1]x",
            "[nope]:1",
            "a b:1",
        ] {
            assert!(Target::parse(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        let u = parse_http_url("http://127.0.0.1:8000/healthz/").unwrap();
        assert_eq!(u.path, "/healthz/");
        assert_eq!(u.authority, "127.0.0.1:8000");
        assert_eq!(u.target.port, 8000);
        let u = parse_http_url("http://localhost").unwrap();
        assert_eq!((u.path.as_str(), u.target.port), ("/", 80));
        let u = parse_http_url("http://[::1]:9000?x=1#frag").unwrap();
        assert_eq!(u.path, "/?x=1");
        assert_eq!(u.authority, "[::1]:9000");
        let u = parse_http_url("http://h:1/a/b?c=d").unwrap();
        assert_eq!(u.path, "/a/b?c=d");
        assert!(parse_http_url("https://h/")
            .unwrap_err()
            .contains("plain HTTP"));
        assert!(parse_http_url("h:80/").is_err());
        assert!(parse_http_url("http://u:p@h/").is_err());
        assert!(parse_http_url("http://h/a b").is_err());
        assert!(parse_http_url("http://h/a\r\nX: y").is_err());
        assert!(parse_http_url("http:///x").is_err());
    }

    #[test]
    fn request_bytes_and_description() {
        let p = HttpProbe::new(
            "http://127.0.0.1:8000/healthz/",
            None,
            Some("shop.example.com"),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(p.request.clone()).unwrap(),
            "GET /healthz/ HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: prodserver-health\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(p.describe(), "GET http://127.0.0.1:8000/healthz/");
        let p = HttpProbe::new("http://[::1]:8000", None, None).unwrap();
        assert!(String::from_utf8_lossy(&p.request).contains("Host: [::1]:8000\r\n"));
        assert!(HttpProbe::new("http://h/", None, Some("a b")).is_err());
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 503"), Some(503));
        assert_eq!(parse_status_line(b"HTTP/2 204 No Content"), Some(204));
        assert_eq!(parse_status_line(b"HTTP/1.1 2000"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 20"), None);
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line(b""), None);
    }

    #[test]
    fn judging() {
        let p = HttpProbe::new("http://h/healthz/", None, None).unwrap();
        assert_eq!(p.judge(b"HTTP/1.1 200 OK\r"), Ok(()));
        assert_eq!(p.judge(b"HTTP/1.1 302 Found"), Ok(()));
        assert_eq!(
            p.judge(b"HTTP/1.1 404 Not Found"),
            Err("GET /healthz/ -> 404".into())
        );
        assert_eq!(
            p.judge(b"HTTP/1.1 503 x"),
            Err("GET /healthz/ -> 503".into())
        );
        let p = HttpProbe::new("http://h/", Some(204), None).unwrap();
        assert_eq!(
            p.judge(b"HTTP/1.1 200 OK"),
            Err("GET / -> 200 (expected 204)".into())
        );
        assert_eq!(p.judge(b"HTTP/1.1 204 No Content"), Ok(()));
        let url = parse_http_url("http://h/").unwrap();
        let p = HttpProbe::from_parts(url.target, "/", "h", Accept::AnyResponse).unwrap();
        assert_eq!(p.judge(b"HTTP/1.1 500 Oops"), Ok(()));
        assert_eq!(
            p.judge(b"garbage"),
            Err("GET / -> not an HTTP response: \"garbage\"".into())
        );
    }

    #[test]
    fn errors_read_well() {
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(short_error(&e), "connection refused");
        assert_eq!(last_line(b"a\nlast one \n\n"), Some("last one".into()));
        assert_eq!(last_line(b"\n \n"), None);
        let long = "x".repeat(500);
        assert_eq!(last_line(long.as_bytes()).unwrap().chars().count(), 201);
    }
}
