//! `prodserver import procfile`: a honcho/foreman Procfile (`name: command`
//! per line) as a prodserver.toml.
//!
//! honcho and foreman run each command with `sh -c` and give each process
//! type a `$PORT` (5000 for the first type, 5100 for the second, ...).
//! prodserver runs commands without a shell, so a command is split into
//! words when it uses nothing of the shell but `$PORT`, and only then can
//! it become a gunicorn/uvicorn/celery/... backend; a command with pipes,
//! `&&`, redirections or other variables keeps its shell, as `sh -c`.

use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;

use super::{commandline, Doc, Process, V};
use crate::error::Error;

/// Where the Procfile's neighbours are, as the written file should name
/// them (relative to its folder).
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `.env` beside the Procfile, which honcho and foreman read.
    pub env_file: Option<String>,
    /// The Procfile's folder (where honcho runs the commands), when it is
    /// not the written file's folder.
    pub cwd: Option<String>,
}

/// The first port honcho and foreman hand out, and the step per process
/// type.
const BASE_PORT: u32 = 5000;
const PORT_STEP: u32 = 100;

fn var_ref() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)((?::?[-=+?])[^}]*)?\}|([A-Za-z_][A-Za-z0-9_]*))",
        )
        .expect("valid regex")
    })
}

/// `command` with `$PORT` and `${PORT}` written as prodserver's
/// `${PORT:-N}` (the platform's PORT wins, else the port honcho would have
/// given), `${PORT:-N}` kept, and whether another variable is used (only
/// a shell can expand it at run time). Other `${...}` are escaped as
/// `$${...}`, since prodserver expands `${` when it loads the file.
fn rewrite_vars(command: &str, port: u32) -> (String, bool) {
    let mut out = String::new();
    let mut last = 0;
    let mut others = false;
    for c in var_ref().captures_iter(command) {
        let m = c.get(0).expect("match");
        out.push_str(&command[last..m.start()]);
        last = m.end();
        let name = c.get(1).or(c.get(3)).map_or("", |n| n.as_str());
        let modifier = c.get(2).map(|m| m.as_str());
        match (name, modifier) {
            ("PORT", None) => out.push_str(&format!("${{PORT:-{port}}}")),
            // prodserver's own syntax: kept as written.
            ("PORT", Some(modifier)) if modifier.starts_with(":-") => out.push_str(m.as_str()),
            _ => {
                others = true;
                if m.as_str().starts_with("${") {
                    out.push('$');
                }
                out.push_str(m.as_str());
            }
        }
    }
    out.push_str(&command[last..]);
    (out, others)
}

/// Shell syntax beyond words and variables: pipes, lists, redirections,
/// subshells, command substitution.
fn needs_shell(command: &str) -> bool {
    command.contains(['|', '&', ';', '<', '>', '(', ')', '`']) || command.contains("$(")
}

/// Reads the Procfile at `path` for a file written in `base`.
pub fn read(shown: &Path, path: &Path, base: &Path) -> Result<Doc, Error> {
    let text = super::read_text(path)?;
    let dir = path.parent().unwrap_or(base);
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let base_abs = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    let dot_env = dir.join(".env");
    let ctx = Context {
        env_file: dot_env
            .is_file()
            .then(|| super::relative_to(&dot_env, &base_abs)),
        cwd: (dir != base_abs).then(|| super::relative_to(&dir, &base_abs)),
    };
    Ok(import(&text, &shown.display().to_string(), &ctx))
}

/// The Procfile's text as a [`Doc`]; `source` names it in the first
/// comment.
pub fn import(text: &str, source: &str, ctx: &Context) -> Doc {
    let mut doc = Doc {
        source: format!("Imported from the Procfile {source} by `prodserver import procfile`."),
        ..Doc::default()
    };
    let line_re = Regex::new(r"^([A-Za-z0-9_.-]+):\s*(.*)$").expect("valid regex");
    let mut entries: Vec<(String, String)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line_re.captures(line) {
            Some(c) if !c[2].trim().is_empty() => {
                entries.push((c[1].to_owned(), c[2].trim().to_owned()));
            }
            _ => doc.warn(
                None,
                format!(
                    "line {}: `{line}` is not `name: command` and was skipped",
                    n + 1
                ),
            ),
        }
    }
    if let Some(f) = &ctx.env_file {
        doc.project.push((
            "env_file".into(),
            V::str(f),
            vec!["honcho and foreman read .env beside the Procfile".into()],
        ));
    }
    let has_release = entries.iter().any(|(n, _)| n == "release");
    let mut port_noted = false;
    for (i, (raw_name, command)) in entries.into_iter().enumerate() {
        let mut name = super::process_name(&raw_name).unwrap_or_else(|| raw_name.clone());
        while doc.processes.iter().any(|p| p.name == name) {
            name.push_str("-2");
        }
        let mut p = Process::new(&name);
        if name != raw_name {
            p.note(format!("`{raw_name}` in the Procfile"));
        }
        let port = BASE_PORT + PORT_STEP * i as u32;
        let (rewritten, other_vars) = rewrite_vars(&command, port);
        if rewritten != command && !port_noted && command.contains("PORT") {
            port_noted = true;
            doc.notes.push(format!(
                "$PORT: honcho and foreman give each process type its own port ({BASE_PORT} for the first, \
                 +{PORT_STEP} for each next); here `$PORT` is `${{PORT:-N}}` with that port as N, so a \
                 platform's PORT still wins."
            ));
        }
        if let Some(cwd) = &ctx.cwd {
            p.set_noted(
                "cwd",
                V::str(cwd),
                Some("honcho and foreman run the commands in the Procfile's folder".into()),
            );
        }
        if needs_shell(&rewritten) || other_vars {
            let why = if needs_shell(&rewritten) {
                "it uses shell syntax"
            } else {
                "it uses environment variables only a shell expands at run time"
            };
            // A simple command can replace the shell (`exec`), so the stop
            // signal reaches the program itself rather than sh.
            let script = if needs_shell(&rewritten) {
                rewritten.clone()
            } else {
                format!("exec {rewritten}")
            };
            p.note(format!(
                "runs through `sh -c` as honcho and foreman ran it: {why}"
            ));
            if needs_shell(&rewritten) {
                p.note("sh is the main process here: prodserver's stop signal reaches sh, not the program; \
                        split this into processes (or a script ending in `exec`) for a graceful stop");
            }
            p.set("backend", V::str("command"));
            p.set(
                "command",
                V::List(vec![V::str("sh"), V::str("-c"), V::Str(script)]),
            );
        } else {
            match shell_words::split(&rewritten) {
                Ok(words) => {
                    let (env, argv) = split_env(words);
                    commandline::apply(&mut p, argv);
                    if !env.is_empty() {
                        p.set("env", V::Table(env));
                    }
                }
                Err(e) => {
                    doc.warn(
                        None,
                        format!("{raw_name}: cannot split `{command}` into words ({e}); it runs through sh -c"),
                    );
                    p.set("backend", V::str("command"));
                    p.set(
                        "command",
                        V::List(vec![V::str("sh"), V::str("-c"), V::Str(rewritten)]),
                    );
                }
            }
        }
        if has_release {
            if raw_name == "release" {
                p.note("Heroku's release phase: runs to completion before the others start");
                p.set("oneshot", V::Bool(true));
            } else {
                p.set(
                    "depends_on",
                    V::Table(vec![("release".into(), V::str("completed"))]),
                );
            }
        }
        doc.processes.push(p);
    }
    doc
}

/// Leading `exec` and `KEY=value` words (the shell's per-command
/// environment) taken off the command.
fn split_env(words: Vec<String>) -> (Vec<(String, V)>, Vec<String>) {
    let mut env = Vec::new();
    let mut rest = words.into_iter().peekable();
    while let Some(w) = rest.peek() {
        if w == "exec" {
            rest.next();
            continue;
        }
        match w.split_once('=') {
            Some((k, v))
                if !k.is_empty()
                    && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && !k.as_bytes()[0].is_ascii_digit() =>
            {
                env.push((k.to_owned(), V::str(v)));
                rest.next();
            }
            _ => break,
        }
    }
    (env, rest.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_is_rewritten_and_other_variables_noticed() {
        assert_eq!(
            rewrite_vars("gunicorn -b 0.0.0.0:$PORT x:y", 5100),
            ("gunicorn -b 0.0.0.0:${PORT:-5100} x:y".into(), false)
        );
        assert_eq!(
            rewrite_vars("uvicorn --port ${PORT} x:y", 5000),
            ("uvicorn --port ${PORT:-5000} x:y".into(), false)
        );
        assert_eq!(
            rewrite_vars("uvicorn --port ${PORT:-8000} x:y", 5000),
            ("uvicorn --port ${PORT:-8000} x:y".into(), false)
        );
        assert_eq!(
            rewrite_vars("worker --url $REDIS_URL ${HOME}/x $PORTAL", 5000),
            ("worker --url $REDIS_URL $${HOME}/x $PORTAL".into(), true)
        );
    }

    #[test]
    fn release_is_a_oneshot_the_others_wait_for() {
        let doc = import(
            "release: python manage.py migrate\nweb: gunicorn shop.wsgi -b :$PORT\n",
            "Procfile",
            &Context::default(),
        );
        let release = &doc.processes[0];
        assert_eq!(release.get("oneshot"), Some(&V::Bool(true)));
        assert_eq!(release.get("backend"), Some(&V::str("command")));
        let web = &doc.processes[1];
        assert_eq!(web.get("backend"), Some(&V::str("gunicorn")));
        assert_eq!(
            web.get("args"),
            Some(&V::Table(vec![("bind".into(), V::str(":${PORT:-5100}"))]))
        );
        assert_eq!(
            web.get("depends_on"),
            Some(&V::Table(vec![("release".into(), V::str("completed"))]))
        );
    }

    #[test]
    fn shell_commands_keep_their_shell() {
        let doc = import(
            "web: bin/start-nginx gunicorn x:y | tee log\nclock: python clock.py --db $DATABASE_URL\n",
            "Procfile",
            &Context::default(),
        );
        assert_eq!(
            doc.processes[0].get("command"),
            Some(&V::List(vec![
                V::str("sh"),
                V::str("-c"),
                V::str("bin/start-nginx gunicorn x:y | tee log")
            ]))
        );
        assert_eq!(
            doc.processes[1].get("command"),
            Some(&V::List(vec![
                V::str("sh"),
                V::str("-c"),
                V::str("exec python clock.py --db $DATABASE_URL")
            ]))
        );
    }

    #[test]
    fn env_prefix_and_bad_lines() {
        let doc = import(
            "# comment\nworker: DJANGO_DEBUG=0 exec celery -A shop worker\nnonsense\n",
            "Procfile",
            &Context::default(),
        );
        assert_eq!(doc.processes.len(), 1);
        let w = &doc.processes[0];
        assert_eq!(w.get("backend"), Some(&V::str("celery-worker")));
        assert_eq!(
            w.get("env"),
            Some(&V::Table(vec![("DJANGO_DEBUG".into(), V::str("0"))]))
        );
        assert!(doc.warnings[0].contains("line 3"), "{:?}", doc.warnings);
    }
}
