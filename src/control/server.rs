//! Serves the control socket on the engine's runtime. One task per
//! connection; requests on a connection are answered in order.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::protocol::{self, Cmd, InstanceInfo, RecentLine, Reply};
use crate::config::LoadOptions;
use crate::logs::Logs;
use crate::plan::Plan;
use crate::supervisor::core::{InstanceStatus, Reply as EngineReply, Request};
use crate::supervisor::engine::Control;

/// What the server needs besides the engine's inlet.
pub struct Context {
    pub config_path: PathBuf,
    pub load: LoadOptions,
    /// The plan the engine runs, kept to tell a reload's changes.
    pub plan: Plan,
    pub logs: Logs,
}

struct Shared {
    control: Control,
    config_path: PathBuf,
    load: LoadOptions,
    plan: Mutex<Plan>,
    logs: Logs,
    project: String,
    uid: u32,
    /// One reload at a time, from the socket or SIGHUP.
    reloading: tokio::sync::Mutex<()>,
}

/// Accepts connections until the engine ends (drop the task then), and
/// runs a reload for each message on `hangups` (SIGHUP).
pub async fn serve(
    listener: UnixListener,
    control: Control,
    ctx: Context,
    mut hangups: mpsc::UnboundedReceiver<()>,
) {
    let shared = Arc::new(Shared {
        control,
        project: ctx.plan.name.clone(),
        config_path: ctx.config_path,
        load: ctx.load,
        plan: Mutex::new(ctx.plan),
        logs: ctx.logs,
        uid: nix::unistd::Uid::effective().as_raw(),
        reloading: tokio::sync::Mutex::new(()),
    });
    let sighup = shared.clone();
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            sighup
                .logs
                .project_event("SIGHUP received: reloading the configuration");
            // The outcome is logged (the core's summary, or the errors).
            let _ = reload(&sighup).await;
        }
    });
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, shared.clone()));
            }
            Err(e) => {
                // EMFILE and the like: say so, then keep serving after a
                // pause (retrying at once would spin and flood the log);
                // the supervisor itself is not affected.
                shared
                    .logs
                    .project_event(&format!("control socket: cannot accept a connection: {e}"));
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
}

/// Root and our own uid are served; anyone else is told why not.
pub fn peer_allowed(peer: u32, own: u32) -> bool {
    peer == own || peer == 0
}

async fn connection(stream: UnixStream, shared: Arc<Shared>) {
    let peer = stream.peer_cred().map(|c| c.uid());
    let (read, mut write) = stream.into_split();
    match peer {
        Ok(uid) if peer_allowed(uid, shared.uid) => {}
        Ok(uid) => {
            let reply = Reply::error(format!(
                "refused: this supervisor serves only uid {} (and root); you are uid {uid}",
                shared.uid
            ));
            let _ = write.write_all(&reply.to_line()).await;
            return;
        }
        Err(e) => {
            let reply = Reply::error(format!("refused: cannot tell who you are ({e})"));
            let _ = write.write_all(&reply.to_line()).await;
            return;
        }
    }
    let mut read = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = match read_bounded_line(&mut read, &mut line, protocol::MAX_REQUEST).await {
            Ok(n) => n,
            Err(Oversized) => {
                let reply = Reply::error(format!(
                    "request too long: more than {} bytes without a newline",
                    protocol::MAX_REQUEST
                ));
                // The rest of that line cannot be told from the next
                // request: answer, then hang up.
                let _ = write.write_all(&reply.to_line()).await;
                return;
            }
        };
        if n == 0 {
            return;
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let cmd = match protocol::parse_request(text) {
            Ok(cmd) => cmd,
            Err(e) => {
                if write.write_all(&Reply::error(e).to_line()).await.is_err() {
                    return;
                }
                continue;
            }
        };
        if let Cmd::Logs {
            process,
            lines,
            follow,
        } = cmd
        {
            logs(&shared, &mut write, process, lines, follow).await;
            return;
        }
        let reply = answer(&shared, cmd).await;
        if write.write_all(&reply.to_line()).await.is_err() {
            return;
        }
    }
}

struct Oversized;

/// Reads up to and including a newline, at most `max` bytes; `Ok(0)` at
/// end of stream. A read error counts as the end.
async fn read_bounded_line<R: tokio::io::AsyncBufRead + Unpin>(
    read: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> Result<usize, Oversized> {
    loop {
        let buf = match read.fill_buf().await {
            Ok(buf) => buf,
            Err(_) => return Ok(0),
        };
        if buf.is_empty() {
            return Ok(line.len());
        }
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max {
            return Err(Oversized);
        }
        line.extend_from_slice(&buf[..take]);
        read.consume(take);
        if done {
            return Ok(line.len());
        }
    }
}

async fn answer(shared: &Shared, cmd: Cmd) -> Reply {
    let request = match cmd {
        Cmd::Status => Request::Status,
        Cmd::Restart { process, instance } => Request::Restart {
            process,
            instance,
            reason: None,
        },
        Cmd::Stop { process } => Request::Stop { process },
        Cmd::Up { process } => Request::Start { process },
        Cmd::Scale { process, instances } => Request::Scale { process, instances },
        Cmd::Reload => return reload(shared).await,
        Cmd::Logs { .. } => return Reply::error("logs is answered elsewhere"),
    };
    match shared.control.request(request).await {
        Some(EngineReply::Status(list)) => {
            let now = Instant::now();
            Reply {
                project: Some(shared.project.clone()),
                pid: Some(std::process::id()),
                instances: Some(list.iter().map(|s| info(s, now)).collect()),
                ..Reply::ok()
            }
        }
        Some(EngineReply::Done) => Reply::ok(),
        Some(EngineReply::Failed(reason)) => Reply::error(reason),
        None => Reply::error("the supervisor is shutting down"),
    }
}

/// Re-reads the file; a file with errors changes nothing.
async fn reload(shared: &Shared) -> Reply {
    let _one = shared.reloading.lock().await;
    let (loaded, resolved) = match crate::resolve::load(&shared.config_path, &shared.load) {
        Ok(ok) => ok,
        Err(e) => {
            let n = e.errors().count();
            let verdict = format!(
                "{}: {n} error{} found; nothing was changed",
                shared.config_path.display(),
                if n == 1 { "" } else { "s" }
            );
            shared
                .logs
                .project_event(&format!("reload refused: {verdict}"));
            let rendered = e.sources.render(&e.diagnostics, false);
            return Reply::error(format!("{rendered}\n{verdict}"));
        }
    };
    let new = loaded.plan;
    // `scale` changed the running counts since the last file was read:
    // the core compares with those, and so must the summary.
    let running = match shared.control.request(Request::Status).await {
        Some(EngineReply::Status(list)) => list,
        _ => Vec::new(),
    };
    let summary = {
        let mut old = shared.plan.lock().unwrap_or_else(PoisonError::into_inner);
        for p in &mut old.processes {
            let n = running.iter().filter(|s| s.id.process == p.name).count() as u32;
            if n > 0 {
                p.instances = n;
            }
        }
        describe(&crate::supervisor::reload::diff(&old, &new))
    };
    match shared.control.reload(new.clone(), resolved).await {
        Some(EngineReply::Failed(reason)) if reason.ends_with("reload once it is done") => {
            // Refused before anything changed.
            Reply::error(reason)
        }
        Some(reply) => {
            // Applied, even when an added process then failed.
            *shared.plan.lock().unwrap_or_else(PoisonError::into_inner) = new;
            match reply {
                EngineReply::Failed(reason) => Reply::error(format!("{summary}; but: {reason}")),
                _ => Reply::message(summary),
            }
        }
        None => Reply::error("the supervisor is shutting down"),
    }
}

/// The same words as the supervisor's own log line.
pub fn describe(diff: &crate::supervisor::reload::Diff) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let changed: Vec<String> = diff.changed.iter().map(|c| c.process.clone()).collect();
    format!(
        "reload: changed {}; added {}; removed {}; unchanged {}",
        list(&changed),
        list(&diff.added),
        list(&diff.removed),
        list(&diff.unchanged)
    )
}

fn info(s: &InstanceStatus, now: Instant) -> InstanceInfo {
    // The last sample of a process that is gone says nothing about now.
    let usage = s.usage.as_ref().filter(|_| s.pid.is_some());
    InstanceInfo {
        process: s.id.process.clone(),
        instance: s.id.number,
        pid: s.pid,
        state: s.state.to_string(),
        health: super::table::health(s.state).to_string(),
        uptime_secs: s
            .since
            .map(|t| (now.saturating_duration_since(t).as_millis() as f64) / 1000.0),
        restarts: s.restarts,
        last_restart: s.last_restart.clone(),
        memory_bytes: usage.map(|u| u.bytes),
        memory_metric: usage.map(|u| u.metric.name().to_string()),
        tree: usage.map(|u| u.processes),
        cpu_percent: usage
            .and_then(|u| u.cpu_tenths)
            .map(|t| f64::from(t) / 10.0),
        tasks: s.tasks,
        tasks_total: s.tasks_total,
        recycles: s.recycles,
        last_recycle: s.last_recycle.clone(),
        last_exit: s.last_exit.map(|e| e.describe()),
    }
}

/// Recent lines per instance, then (with `follow`) the live stream of
/// the named process until the client hangs up.
async fn logs(
    shared: &Shared,
    write: &mut tokio::net::unix::OwnedWriteHalf,
    process: Option<String>,
    lines: Option<usize>,
    follow: bool,
) {
    // Subscribed first: a line written while the recent ones are read
    // may show twice, but is never lost.
    let mut live = follow.then(|| shared.control.subscribe_logs());
    let status = match shared.control.request(Request::Status).await {
        Some(EngineReply::Status(list)) => list,
        _ => Vec::new(),
    };
    if let Some(name) = &process {
        if !status.iter().any(|s| &s.id.process == name) {
            let _ = write
                .write_all(&Reply::error(format!("no process named `{name}` runs here")).to_line())
                .await;
            return;
        }
    }
    let keep = lines.unwrap_or(crate::logs::KEEP_LINES);
    let mut recent = Vec::new();
    for s in &status {
        if process.as_ref().is_some_and(|p| p != &s.id.process) {
            continue;
        }
        let all = shared.logs.last_lines(&s.id.process, s.id.number);
        let skip = all.len().saturating_sub(keep);
        recent.extend(all.into_iter().skip(skip).map(|line| RecentLine {
            instance: s.id.to_string(),
            line,
        }));
    }
    let reply = Reply {
        lines: Some(recent),
        ..Reply::ok()
    };
    if write.write_all(&reply.to_line()).await.is_err() {
        return;
    }
    let Some(live) = live.as_mut() else {
        return;
    };
    while let Some(chunk) = live.recv().await {
        let text = String::from_utf8_lossy(&chunk);
        let kept: String = text
            .split_inclusive('\n')
            .filter(|l| {
                process
                    .as_deref()
                    .is_none_or(|p| super::table::line_is_from(l, p))
            })
            .collect();
        if kept.is_empty() {
            continue;
        }
        if write.write_all(&Reply::log(kept).to_line()).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_uid_and_root_are_served() {
        assert!(peer_allowed(1000, 1000));
        assert!(peer_allowed(0, 1000));
        assert!(!peer_allowed(1001, 1000));
        assert!(!peer_allowed(65534, 0));
    }
}
