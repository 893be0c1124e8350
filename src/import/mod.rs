//! `prodserver import`: a prodserver.toml written from what a project
//! already runs: a Procfile ([`procfile`]), a supervisord INI file
//! ([`supervisord`]) or django-prodserver's `PRODUCTION_PROCESSES`
//! ([`django_prodserver`]).
//!
//! Each importer builds a [`Doc`] (pure, unit-tested); [`Doc::render`]
//! writes it as commented TOML, and [`run`] validates the text exactly as
//! `check` would before anything is written, so an import never leaves a
//! file that `start` refuses.

pub mod commandline;
pub mod django_prodserver;
pub mod procfile;
pub mod supervisord;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cli::ImportSource;
use crate::config::LoadOptions;
use crate::error::Error;

/// A TOML value as the importers produce it; rendered inline.
#[derive(Debug, Clone, PartialEq)]
pub enum V {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<V>),
    Table(Vec<(String, V)>),
}

impl V {
    pub fn str(s: impl Into<String>) -> V {
        V::Str(s.into())
    }

    /// A command-line value with its natural type: `"4"` is a number (so
    /// `workers = 4`, as a person would write it), everything else a
    /// string. A leading zero (`0022`, a umask) stays a string: as a
    /// number it would lose its digits.
    pub fn typed(s: &str) -> V {
        let digits = s.strip_prefix('-').unwrap_or(s);
        let numeric = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        match s.parse::<i64>() {
            Ok(n) if numeric => V::Int(n),
            _ => V::Str(s.to_owned()),
        }
    }

    fn render(&self, out: &mut String) {
        match self {
            V::Str(s) => out.push_str(&toml::Value::String(s.clone()).to_string()),
            V::Int(n) => out.push_str(&n.to_string()),
            V::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            V::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.render(out);
                }
                out.push(']');
            }
            V::Table(entries) if entries.is_empty() => out.push_str("{}"),
            V::Table(entries) => {
                out.push_str("{ ");
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&key(k));
                    out.push_str(" = ");
                    v.render(out);
                }
                out.push_str(" }");
            }
        }
    }
}

/// A key bare when TOML allows it, else quoted.
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        k.to_owned()
    } else {
        toml::Value::String(k.to_owned()).to_string()
    }
}

/// One `[processes.NAME]` table: its keys in order, each with the comment
/// lines written above it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Process {
    pub name: String,
    /// Comment lines above the table header (without `# `).
    pub notes: Vec<String>,
    pub keys: Vec<(String, V, Vec<String>)>,
    /// Keys written commented out (`# user = "celery"`), with why.
    pub disabled: Vec<(String, V, String)>,
}

impl Process {
    pub fn new(name: impl Into<String>) -> Process {
        Process {
            name: name.into(),
            ..Process::default()
        }
    }

    pub fn set(&mut self, k: &str, v: V) {
        self.set_noted(k, v, None);
    }

    /// Sets `k` with a comment above it explaining the choice.
    pub fn set_noted(&mut self, k: &str, v: V, note: Option<String>) {
        let notes: Vec<String> = note.into_iter().collect();
        match self.keys.iter_mut().find(|(name, _, _)| name == k) {
            Some(entry) => {
                entry.1 = v;
                entry.2.extend(notes);
            }
            None => self.keys.push((k.to_owned(), v, notes)),
        }
    }

    pub fn get(&self, k: &str) -> Option<&V> {
        self.keys.iter().find(|(n, _, _)| n == k).map(|(_, v, _)| v)
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }
}

/// A whole imported file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Doc {
    /// What it was imported from, for the first comment line.
    pub source: String,
    /// Comment lines under the source line.
    pub notes: Vec<String>,
    /// `[prodserver]` keys.
    pub project: Vec<(String, V, Vec<String>)>,
    pub processes: Vec<Process>,
    /// What has no equivalent: printed on stderr, and written as comments
    /// where they apply.
    pub warnings: Vec<String>,
    /// Variables the file expands (`${X}`) because the source did too
    /// (supervisord's `%(ENV_X)s`): needed where the file runs, as they
    /// were for the source, but maybe not set where it is imported.
    pub required_env: Vec<String>,
}

impl Doc {
    pub fn warn(&mut self, process: Option<&mut Process>, text: String) {
        if let Some(p) = process {
            p.note(format!("warning: {text}"));
            self.warnings.push(format!("{}: {text}", p.name));
        } else {
            self.notes.push(format!("warning: {text}"));
            self.warnings.push(text);
        }
    }

    /// The TOML text: a comment naming the source first, then
    /// `[prodserver]`, then one table per process in source order.
    pub fn render(&self) -> String {
        let mut out = String::new();
        comment(&mut out, &self.source);
        for n in &self.notes {
            comment(&mut out, n);
        }
        if !self.project.is_empty() {
            out.push_str("\n[prodserver]\n");
            keys(&mut out, &self.project);
        }
        for p in &self.processes {
            out.push('\n');
            for n in &p.notes {
                comment(&mut out, n);
            }
            out.push_str(&format!("[processes.{}]\n", key(&p.name)));
            keys(&mut out, &p.keys);
            for (k, v, why) in &p.disabled {
                comment(&mut out, why);
                let mut line = format!("{} = ", key(k));
                v.render(&mut line);
                comment(&mut out, &line);
            }
        }
        out
    }
}

fn keys(out: &mut String, keys: &[(String, V, Vec<String>)]) {
    for (k, v, notes) in keys {
        for n in notes {
            comment(out, n);
        }
        out.push_str(&key(k));
        out.push_str(" = ");
        v.render(out);
        out.push('\n');
    }
}

/// `text` as `# ` lines, wrapped at its own newlines only.
fn comment(out: &mut String, text: &str) {
    for line in text.lines() {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
    }
}

/// A name prodserver accepts (letters, digits, `-`, `_`, at most 64):
/// anything else becomes `-`. `None` when it is already valid.
pub fn process_name(raw: &str) -> Option<String> {
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    let clean = if clean.is_empty() {
        "process".to_owned()
    } else {
        clean
    };
    (clean != raw).then_some(clean)
}

/// Where the written file will live, and so what its relative paths are
/// relative to: the `-o` file, else `prodserver.toml` in `cwd` (stdout is
/// usually redirected there).
pub fn target_path(output: Option<&Path>, cwd: &Path) -> PathBuf {
    match output {
        Some(p) if p.is_absolute() => p.to_path_buf(),
        Some(p) => cwd.join(p),
        None => cwd.join("prodserver.toml"),
    }
}

/// `path` relative to `base` when it lies under it (`.venv/bin/gunicorn`),
/// else absolute: the file stays movable with its project.
pub fn relative_to(path: &Path, base: &Path) -> String {
    match path.strip_prefix(base) {
        Ok(rest) if rest.as_os_str().is_empty() => ".".to_owned(),
        Ok(rest) => rest.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

/// `prodserver import ...`: reads the source, builds the file, validates
/// it as `check` would (a file that would not pass is an error showing the
/// generated text's located diagnostics, and nothing is written), then
/// prints it or writes it.
pub fn run(
    source: ImportSource,
    output: Option<&Path>,
    force: bool,
    cwd: &Path,
    env: &BTreeMap<String, String>,
    color: bool,
) -> Result<i32, Error> {
    let target = target_path(output, cwd);
    // Refused before any work (django-prodserver's runs Python).
    if output.is_some() && target.exists() && !force {
        return Err(exists(&target));
    }
    let base = target.parent().unwrap_or(cwd);
    let doc = match source {
        // Named in the first comment as given on the command line.
        ImportSource::Procfile { file } => procfile::read(&file, &cwd.join(&file), base)?,
        ImportSource::Supervisord { file } => supervisord::read(&file, &cwd.join(&file), base)?,
        ImportSource::DjangoProdserver { settings, dir } => {
            django_prodserver::read(&cwd.join(dir), settings.as_deref(), base, env)?
        }
    };
    let mut doc = doc;
    project_name(&mut doc, base);
    if !doc.required_env.is_empty() {
        let names = doc.required_env.join(", ");
        doc.notes.push(format!(
            "Needs {names} in prodserver's environment when it loads this file, as the source did."
        ));
        for name in &doc.required_env {
            if !env.contains_key(name) {
                doc.warnings.push(format!(
                    "{name} is not set here; set it where prodserver runs"
                ));
            }
        }
    }
    let text = doc.render();
    // A variable the source needed at run time is not needed here: the
    // file is validated as if it were set.
    let mut check_env = env.clone();
    for name in &doc.required_env {
        check_env
            .entry(name.clone())
            .or_insert_with(|| "set-where-it-runs".into());
    }
    let opts = LoadOptions {
        hold_sockets: true,
        env: check_env,
        runtime_dir: crate::os::runtime_dir(),
        dev: false,
    };
    validate(&target, &text, &opts, color)?;
    for w in &doc.warnings {
        eprintln!("warning: {w}");
    }
    match output {
        None => print!("{text}"),
        Some(_) if target.exists() && !force => return Err(exists(&target)),
        Some(_) => crate::export::write_atomically(&target, &text)?,
    }
    Ok(crate::exit::OK)
}

/// The project name defaults to the file's folder name, which must be a
/// valid name: when it is not (`my.site`), a valid one is written.
fn project_name(doc: &mut Doc, base: &Path) {
    let folder = std::fs::canonicalize(base)
        .ok()
        .and_then(|b| b.file_name().map(|n| n.to_string_lossy().into_owned()));
    if let Some(clean) = folder.as_deref().and_then(process_name) {
        let folder = folder.unwrap_or_default();
        doc.project.insert(
            0,
            (
                "name".into(),
                V::Str(clean),
                vec![format!(
                    "the folder's name, `{folder}`, is not a valid project name"
                )],
            ),
        );
    }
}

fn exists(target: &Path) -> Error {
    Error::usage(format!(
        "{} exists; nothing was written (pass --force to replace it)",
        target.display()
    ))
}

/// A source file's text, or why not.
fn read_text(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::setup(format!("read {}", path.display()), e))
}

/// The text loaded and resolved as `check` does, as if it were at
/// `target`. Its located diagnostics are printed here (in the generated
/// text), and the error says that nothing was written.
pub fn validate(target: &Path, text: &str, opts: &LoadOptions, color: bool) -> Result<(), Error> {
    let (sources, diagnostics) = match crate::config::load_str(target, text.to_owned(), opts) {
        Err(e) => {
            let mut d = e.diagnostics;
            d.extend(crate::resolve::probe_errors(&e.probes));
            (e.sources, d)
        }
        Ok(loaded) => match crate::resolve::resolve(&loaded, &opts.runtime_dir) {
            Ok(_) => return Ok(()),
            Err(d) => (loaded.sources, d),
        },
    };
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == crate::config::Severity::Error)
        .count();
    eprint!("{}", sources.render(&diagnostics, color));
    Err(Error::usage(format!(
        "the imported file would not pass `check` ({errors} error{} above); nothing was written",
        if errors == 1 { "" } else { "s" }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_inline() {
        let mut s = String::new();
        V::Table(vec![
            ("bind".into(), V::str("0.0.0.0:8000")),
            ("workers".into(), V::Int(4)),
            ("preload".into(), V::Bool(true)),
            ("a.b".into(), V::List(vec![V::str("x"), V::str("y\"z")])),
        ])
        .render(&mut s);
        assert_eq!(
            s,
            r#"{ bind = "0.0.0.0:8000", workers = 4, preload = true, "a.b" = ["x", 'y"z'] }"#
        );
    }

    #[test]
    fn typed_values() {
        assert_eq!(V::typed("4"), V::Int(4));
        assert_eq!(V::typed("0"), V::Int(0));
        assert_eq!(V::typed("0022"), V::str("0022"));
        assert_eq!(V::typed("info"), V::str("info"));
        assert_eq!(V::typed(""), V::str(""));
        assert_eq!(
            V::typed("99999999999999999999"),
            V::str("99999999999999999999")
        );
    }

    #[test]
    fn names_are_made_valid() {
        assert_eq!(process_name("web"), None);
        assert_eq!(process_name("celery.worker"), Some("celery-worker".into()));
        assert_eq!(process_name(""), Some("process".into()));
    }

    #[test]
    fn render_puts_source_first_and_notes_above_keys() {
        let mut p = Process::new("web");
        p.set("backend", V::str("gunicorn"));
        p.set_noted(
            "stop_timeout",
            V::str("10s"),
            Some("stopwaitsecs=10".into()),
        );
        p.disabled
            .push(("user".into(), V::str("www"), "no such user here".into()));
        let doc = Doc {
            source: "Imported from Procfile".into(),
            processes: vec![p],
            ..Doc::default()
        };
        assert_eq!(
            doc.render(),
            "# Imported from Procfile\n\n[processes.web]\nbackend = \"gunicorn\"\n\
             # stopwaitsecs=10\nstop_timeout = \"10s\"\n# no such user here\n# user = \"www\"\n"
        );
    }
}
