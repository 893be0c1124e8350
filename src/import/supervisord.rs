//! `prodserver import supervisord FILE`: the `[program:NAME]` sections of a
//! supervisord INI file as a prodserver.toml.
//!
//! supervisord runs `command` without a shell (it splits it as a POSIX
//! shell splits words), so each command is split the same way and, when
//! it is a server or Celery command line we understand, becomes that
//! backend. Every option without an equivalent is reported on stderr and
//! written as a comment above its process.

use std::path::Path;

use super::{commandline, Doc, Process, V};
use crate::error::Error;

/// One `[section]`: its name and its `key = value` lines (keys lower-case,
/// as supervisord's parser reads them), in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub name: String,
    pub entries: Vec<(String, String)>,
}

impl Section {
    fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// INI as supervisord's parser reads it: `;` and `#` start a comment at the
/// start of a line, or after whitespace inside one; an indented line
/// continues the value above it; `key = value` or `key: value`.
pub fn parse_ini(text: &str) -> Result<Vec<Section>, String> {
    let mut sections: Vec<Section> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with(';') || trimmed.starts_with('#') {
            continue;
        }
        let line = strip_inline_comment(raw);
        if raw.starts_with([' ', '\t']) {
            match sections.last_mut().and_then(|s| s.entries.last_mut()) {
                Some((_, v)) => {
                    v.push('\n');
                    v.push_str(line.trim());
                    continue;
                }
                None => return Err(format!("line {}: an indented line outside a value", n + 1)),
            }
        }
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push(Section {
                name: name.trim().to_owned(),
                entries: Vec::new(),
            });
            continue;
        }
        let Some(section) = sections.last_mut() else {
            return Err(format!("line {}: `{line}` before any [section]", n + 1));
        };
        let split = line.find(['=', ':']);
        let Some(at) = split else {
            return Err(format!("line {}: `{line}` is not `key = value`", n + 1));
        };
        section.entries.push((
            line[..at].trim().to_lowercase(),
            line[at + 1..].trim().to_owned(),
        ));
    }
    Ok(sections)
}

fn strip_inline_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for i in 1..bytes.len() {
        if (bytes[i] == b';' || bytes[i] == b'#') && bytes[i - 1].is_ascii_whitespace() {
            return &line[..i];
        }
    }
    line
}

/// What `%(name)s` expansions mean for one program.
#[derive(Debug, Clone)]
pub struct Expand<'a> {
    pub program_name: &'a str,
    pub group_name: &'a str,
    pub here: &'a str,
    pub host_node_name: &'a str,
    pub numprocs: u32,
    pub numprocs_start: u32,
}

/// `%(name)s`-style expansions as supervisord does them, into prodserver's
/// terms: `%(ENV_X)s` becomes `${X}` (prodserver expands it from its own
/// environment when it loads the file, as supervisord did at its start),
/// `%(process_num)d` becomes `{instance}` when there are several. A
/// literal `${` is escaped first, since supervisord passed it through.
/// Returns the text and notes on what could not be kept exactly.
pub fn expand(text: &str, x: &Expand) -> Result<(String, Vec<String>), String> {
    let text = text.replace("${", "$${");
    let mut out = String::new();
    let mut notes = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(r) = rest.strip_prefix("%%") {
            out.push('%');
            rest = r;
            continue;
        }
        let Some(inner) = rest.strip_prefix("%(") else {
            return Err(format!(
                "a `%` that starts no expansion in `{text}` (write `%%`)"
            ));
        };
        let close = inner
            .find(')')
            .ok_or_else(|| format!("an unclosed `%(` in `{text}`"))?;
        let name = &inner[..close];
        let after = &inner[close + 1..];
        // The conversion: flags and width, then one of s, d, i.
        let spec_len = after
            .find(|c: char| c.is_ascii_alphabetic())
            .ok_or_else(|| format!("`%({name})` without a conversion (s or d) in `{text}`"))?;
        let spec = &after[..spec_len];
        rest = &after[spec_len + 1..];
        let number = |n: u32| -> String {
            let width: usize = spec.trim_start_matches('0').parse().unwrap_or(0);
            if spec.starts_with('0') {
                format!("{n:0width$}")
            } else {
                format!("{n:width$}")
            }
        };
        match name {
            "program_name" => out.push_str(x.program_name),
            "group_name" => out.push_str(x.group_name),
            "here" => out.push_str(x.here),
            "host_node_name" => out.push_str(x.host_node_name),
            "numprocs" => out.push_str(&number(x.numprocs)),
            "process_num" if x.numprocs <= 1 => out.push_str(&number(x.numprocs_start)),
            "process_num" => {
                out.push_str("{instance}");
                if x.numprocs_start != 1 {
                    notes.push(format!(
                        "%(process_num)s counted from numprocs_start = {} in supervisord; prodserver's {{instance}} counts from 1",
                        x.numprocs_start
                    ));
                }
                if !spec.is_empty() {
                    notes.push(format!(
                        "%(process_num){spec}d was padded by supervisord; {{instance}} is not"
                    ));
                }
            }
            env if env.starts_with("ENV_") => {
                out.push_str(&format!("${{{}}}", &env[4..]));
            }
            other => return Err(format!("unknown expansion `%({other})` in `{text}`")),
        }
    }
    out.push_str(rest);
    Ok((out, notes))
}

/// supervisord's `environment`: `KEY="value",KEY2=value2`, quotes
/// (single or double) protecting commas; surrounding spaces dropped.
pub fn parse_environment(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        let key = key.trim().to_owned();
        if key.is_empty() || key.contains([',', '"', '\'']) {
            return Err(format!("`{text}` is not KEY=\"value\",KEY2=value2"));
        }
        let mut value = String::new();
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let mut quoted = false;
        while let Some(&c) = chars.peek() {
            match c {
                ',' => break,
                '"' | '\'' => {
                    quoted = true;
                    chars.next();
                    let mut closed = false;
                    while let Some(q) = chars.next() {
                        if q == c {
                            closed = true;
                            break;
                        }
                        if q == '\\' && c == '"' {
                            if let Some(&n) = chars.peek() {
                                if n == '"' || n == '\\' {
                                    value.push(n);
                                    chars.next();
                                    continue;
                                }
                            }
                        }
                        value.push(q);
                    }
                    if !closed {
                        return Err(format!("an unclosed quote in `{text}`"));
                    }
                }
                _ => {
                    value.push(c);
                    chars.next();
                }
            }
        }
        let value = if quoted {
            value
        } else {
            value.trim_end().to_owned()
        };
        pairs.push((key, value));
    }
}

/// Reads the supervisord file at `path` for a file written in `base`.
pub fn read(shown: &Path, path: &Path, base: &Path) -> Result<Doc, Error> {
    let text = super::read_text(path)?;
    let here =
        std::fs::canonicalize(path.parent().unwrap_or(base)).unwrap_or_else(|_| base.to_path_buf());
    // The node name of this host, as supervisord would have read it on its.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .map_err(|e| Error::setup("read this host's name", e))?;
    let ctx = Context {
        source: shown.display().to_string(),
        here: here.display().to_string(),
        host,
        user_exists: &|name: &str| {
            name.parse::<u32>().is_ok()
                || nix::unistd::User::from_name(name).ok().flatten().is_some()
        },
    };
    import(&text, &ctx).map_err(|e| Error::usage(format!("{}: {e}", path.display())))
}

/// What [`import`] needs from the outside.
pub struct Context<'a> {
    pub source: String,
    /// The file's folder (`%(here)s`).
    pub here: String,
    pub host: String,
    /// Whether a `user` exists on this host (the file must pass `check`
    /// here; one that does not is written commented out).
    pub user_exists: &'a dyn Fn(&str) -> bool,
}

/// Options that configure supervisord's own log files and events.
const LOG_KEYS: &[&str] = &[
    "redirect_stderr",
    "stdout_logfile",
    "stdout_logfile_maxbytes",
    "stdout_logfile_backups",
    "stdout_capture_maxbytes",
    "stdout_events_enabled",
    "stdout_syslog",
    "stderr_logfile",
    "stderr_logfile_maxbytes",
    "stderr_logfile_backups",
    "stderr_capture_maxbytes",
    "stderr_events_enabled",
    "stderr_syslog",
];

/// The file's text as a [`Doc`].
pub fn import(text: &str, ctx: &Context) -> Result<Doc, String> {
    let sections = parse_ini(text)?;
    let mut doc = Doc {
        source: format!(
            "Imported from the supervisord file {} by `prodserver import supervisord`.",
            ctx.source
        ),
        ..Doc::default()
    };
    let mut priorities: Vec<(String, i64)> = Vec::new();
    let mut own = Vec::new();
    for s in &sections {
        let (kind, name) = s.name.split_once(':').unwrap_or((s.name.as_str(), ""));
        match kind {
            "program" => {
                if let Some((p, priority)) = program(&mut doc, name.trim(), s, ctx)? {
                    priorities.push((p.name.clone(), priority));
                    doc.processes.push(p);
                }
            }
            "group" => doc.warn(
                None,
                format!(
                    "[{}] (programs={}): prodserver has no groups; start some processes only with `prodserver start NAME...`",
                    s.name,
                    s.get("programs").unwrap_or("")
                ),
            ),
            "include" => doc.warn(
                None,
                format!(
                    "[include] files={} was not followed: import each included file on its own",
                    s.get("files").unwrap_or("")
                ),
            ),
            "eventlistener" | "fcgi-program" => doc.warn(
                None,
                format!("[{}] has no equivalent and was skipped", s.name),
            ),
            _ => own.push(s.name.clone()),
        }
    }
    if !own.is_empty() {
        doc.notes.push(format!(
            "Not imported: [{}] configure supervisord itself (prodserver's control socket and verbs replace supervisorctl).",
            own.join("], [")
        ));
    }
    order_by_priority(&mut doc, &priorities);
    Ok(doc)
}

/// supervisord starts lower `priority` first and stops in reverse, without
/// waiting for anything. The closest is `depends_on = "started"` on every
/// program of the next lower priority: the same start order, the reverse
/// stop order (prodserver stops dependents first), and no readiness wait
/// that supervisord did not have. Equal priorities (the default 999) add
/// nothing.
fn order_by_priority(doc: &mut Doc, priorities: &[(String, i64)]) {
    let mut levels: Vec<i64> = priorities.iter().map(|(_, p)| *p).collect();
    levels.sort_unstable();
    levels.dedup();
    if levels.len() < 2 {
        return;
    }
    for p in &mut doc.processes {
        let Some(&(_, mine)) = priorities.iter().find(|(n, _)| *n == p.name) else {
            continue;
        };
        let Some(&below) = levels.iter().rev().find(|&&l| l < mine) else {
            continue;
        };
        let deps: Vec<(String, V)> = priorities
            .iter()
            .filter(|(_, l)| *l == below)
            .map(|(n, _)| (n.clone(), V::str("started")))
            .collect();
        p.set_noted(
            "depends_on",
            V::Table(deps),
            Some(format!(
                "priority={mine}: starts after the programs of priority {below} have started, stops before them"
            )),
        );
    }
}

fn program(
    doc: &mut Doc,
    raw_name: &str,
    s: &Section,
    ctx: &Context,
) -> Result<Option<(Process, i64)>, String> {
    let name = super::process_name(raw_name).unwrap_or_else(|| raw_name.to_owned());
    let mut p = Process::new(&name);
    if name != raw_name {
        p.note(format!("[program:{raw_name}] in supervisord"));
    }
    let int = |key: &str, default: i64| -> Result<i64, String> {
        match s.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("[program:{raw_name}] {key} = {v} is not a number")),
        }
    };
    let numprocs = int("numprocs", 1)?;
    let numprocs_start = int("numprocs_start", 0)?;
    let (Ok(numprocs), Ok(numprocs_start)) =
        (u32::try_from(numprocs), u32::try_from(numprocs_start))
    else {
        return Err(format!(
            "[program:{raw_name}] numprocs and numprocs_start must be positive"
        ));
    };
    let x = Expand {
        program_name: raw_name,
        group_name: raw_name,
        here: &ctx.here,
        host_node_name: &ctx.host,
        numprocs,
        numprocs_start,
    };
    let expanded = |key: &str| -> Result<Option<(String, Vec<String>)>, String> {
        s.get(key)
            .map(|v| expand(v, &x).map_err(|e| format!("[program:{raw_name}] {key}: {e}")))
            .transpose()
    };
    for (_, v) in &s.entries {
        let mut rest = v.as_str();
        while let Some(at) = rest.find("%(ENV_") {
            rest = &rest[at + 6..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && !doc.required_env.contains(&name) {
                doc.required_env.push(name);
            }
        }
    }
    let Some((command, notes)) = expanded("command")? else {
        doc.warn(
            None,
            format!("[program:{raw_name}] has no command and was skipped"),
        );
        return Ok(None);
    };
    let argv =
        shell_words::split(&command).map_err(|e| format!("[program:{raw_name}] command: {e}"))?;
    commandline::apply(&mut p, argv);
    for n in notes {
        p.note(n);
    }
    let mut unmapped: Vec<String> = Vec::new();
    let mut logs: Vec<&str> = Vec::new();
    let mut priority = 999;
    for (key, value) in &s.entries {
        let key = key.as_str();
        let noted = |text: String| Some(format!("{key}={value}: {text}"));
        match key {
            "command" | "numprocs_start" => {}
            "numprocs" => {
                if numprocs > 1 {
                    p.set("instances", V::Int(numprocs.into()));
                }
            }
            "directory" => {
                let (dir, _) = expanded("directory")?.unwrap_or_default();
                p.set("cwd", V::Str(dir));
            }
            "environment" => {
                let (text, _) = expanded("environment")?.unwrap_or_default();
                let pairs = parse_environment(&text)
                    .map_err(|e| format!("[program:{raw_name}] environment: {e}"))?;
                p.set(
                    "env",
                    V::Table(pairs.into_iter().map(|(k, v)| (k, V::Str(v))).collect()),
                );
            }
            "user" if (ctx.user_exists)(value) => p.set("user", V::str(value)),
            "user" => {
                let why = format!(
                    "user={value}: no such user on this host, so `check` would refuse it here; \
                     uncomment it where the user exists (prodserver must then run as root)"
                );
                // The comment goes above the commented-out key, not the file.
                doc.warnings.push(format!("{name}: {why}"));
                p.disabled.push(("user".into(), V::str(value), why));
            }
            "stopsignal" => p.set("stop_signal", V::str(value.to_uppercase())),
            "stopwaitsecs" => {
                let secs = int("stopwaitsecs", 10)?;
                p.set("stop_timeout", V::Str(format!("{secs}s")));
            }
            "autorestart" => {
                let restart = match value.to_lowercase().as_str() {
                    "true" => "always",
                    "false" => "never",
                    "unexpected" => "on-failure",
                    other => {
                        return Err(format!(
                            "[program:{raw_name}] autorestart = {other}: expected true, false or unexpected"
                        ))
                    }
                };
                p.set_noted(
                    "restart",
                    V::str(restart),
                    (restart == "on-failure")
                        .then(|| "autorestart=unexpected: restarted unless it exits 0".to_owned()),
                );
            }
            "startsecs" => {
                let secs = int("startsecs", 1)?;
                if secs > 0 {
                    p.set_noted(
                        "backoff_reset",
                        V::Str(format!("{secs}s")),
                        noted(
                            "supervisord counts an exit sooner than this as a failed start. prodserver has no \
                             \"alive for N seconds\" readiness; the closest is this: a run shorter than \
                             backoff_reset keeps the restart delay growing. Readiness is the backend's own \
                             (or add a `health` check)"
                                .into(),
                        ),
                    );
                }
            }
            "startretries" => {
                let n = int("startretries", 3)?;
                p.set_noted(
                    "max_restarts",
                    V::Int(n.max(1)),
                    noted(
                        "supervisord gives up after this many failed starts in a row; prodserver after this many \
                         restarts within restart_window (5m)"
                            .into(),
                    ),
                );
            }
            "priority" => priority = int("priority", 999)?,
            "autostart" if value.eq_ignore_ascii_case("false") => unmapped.push(
                "autostart=false: every process starts; run some only with `prodserver start NAME...`".into(),
            ),
            "autostart" => {}
            "exitcodes" if value.trim() == "0" => {}
            "exitcodes" => unmapped.push(format!(
                "exitcodes={value}: only exit 0 counts as expected in prodserver"
            )),
            "stopasgroup" if value.eq_ignore_ascii_case("true") => unmapped.push(
                "stopasgroup=true: prodserver sends the stop signal to the main process only (gunicorn, Celery \
                 and uvicorn stop their children themselves), and SIGKILLs the whole group after stop_timeout"
                    .into(),
            ),
            "killasgroup" | "stopasgroup" => {}
            "process_name" => unmapped.push(format!(
                "process_name={value}: prodserver names instances {name}.1, {name}.2, ..."
            )),
            k if LOG_KEYS.contains(&k) => logs.push(key),
            _ => unmapped.push(format!("{key}={value} has no equivalent")),
        }
    }
    if !logs.is_empty() {
        unmapped.push(format!(
            "{}: prodserver merges every process's stdout and stderr into its own output, prefixed \
             with the instance (send it to journald or the container log)",
            logs.join(", ")
        ));
    }
    for u in unmapped {
        doc.warn(Some(&mut p), u);
    }
    Ok(Some((p, priority)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(numprocs: u32, start: u32) -> Expand<'static> {
        Expand {
            program_name: "worker",
            group_name: "worker",
            here: "/etc/supervisor",
            host_node_name: "web1",
            numprocs,
            numprocs_start: start,
        }
    }

    #[test]
    fn expansions() {
        assert_eq!(
            expand("%(program_name)s_%(process_num)02d %(here)s %%", &x(1, 3))
                .expect("ok")
                .0,
            "worker_03 /etc/supervisor %"
        );
        let (s, notes) = expand("--bind 127.0.0.1:80%(process_num)02d", &x(4, 0)).expect("ok");
        assert_eq!(s, "--bind 127.0.0.1:80{instance}");
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert_eq!(
            expand("%(ENV_HOME)s/app ${x}", &x(1, 0)).expect("ok").0,
            "${HOME}/app $${x}"
        );
        assert!(expand("%(nope)s", &x(1, 0)).is_err());
        assert!(expand("100%", &x(1, 0)).is_err());
    }

    #[test]
    fn environment_quoting() {
        assert_eq!(
            parse_environment(r#"A="1,2",B=plain, C='it''s', D="say \"hi\"""#).expect("ok"),
            vec![
                ("A".into(), "1,2".into()),
                ("B".into(), "plain".into()),
                ("C".into(), "its".into()),
                ("D".into(), "say \"hi\"".into()),
            ]
        );
        assert!(parse_environment("A=\"open").is_err());
        assert!(parse_environment("=x").is_err());
    }

    #[test]
    fn ini_comments_and_continuations() {
        let s = parse_ini(
            "; top\n[program:web]\ncommand = gunicorn x:y ; a comment\n  --workers 2\nuser=www#notacomment\n",
        )
        .expect("ok");
        assert_eq!(s[0].name, "program:web");
        assert_eq!(s[0].get("command"), Some("gunicorn x:y\n--workers 2"));
        assert_eq!(s[0].get("user"), Some("www#notacomment"));
    }

    fn ctx(exists: &dyn Fn(&str) -> bool) -> Context<'_> {
        Context {
            source: "supervisord.conf".into(),
            here: "/etc/supervisor".into(),
            host: "web1".into(),
            user_exists: exists,
        }
    }

    #[test]
    fn programs_map_and_priorities_order() {
        let text = "[program:redis]\ncommand=redis-server\npriority=1\n\
                    [program:worker]\ncommand=celery -A shop worker -Q default\nnumprocs=2\n\
                    autorestart=unexpected\nstopwaitsecs=600\nstopsignal=term\nuser=celery\n\
                    stdout_logfile=/var/log/w.log\nredirect_stderr=true\n";
        let doc = import(text, &ctx(&|_| false)).expect("ok");
        let w = &doc.processes[1];
        assert_eq!(w.get("backend"), Some(&V::str("celery-worker")));
        assert_eq!(w.get("instances"), Some(&V::Int(2)));
        assert_eq!(w.get("restart"), Some(&V::str("on-failure")));
        assert_eq!(w.get("stop_timeout"), Some(&V::str("600s")));
        assert_eq!(w.get("stop_signal"), Some(&V::str("TERM")));
        assert_eq!(
            w.get("depends_on"),
            Some(&V::Table(vec![("redis".into(), V::str("started"))]))
        );
        assert_eq!(w.disabled[0].0, "user");
        assert!(doc
            .warnings
            .iter()
            .any(|w| w.contains("stdout_logfile, redirect_stderr")));
        assert_eq!(doc.processes[0].get("depends_on"), None);
    }
}
