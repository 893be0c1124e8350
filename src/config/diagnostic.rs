//! Errors and warnings about the user's files, each pointing at a file,
//! line and column with the offending text underlined and a hint saying how
//! to fix it. Rendering is codespan-reporting's, as in rustc.

use std::ops::Range;
use std::path::{Path, PathBuf};

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label, Severity as CsSeverity};
use codespan_reporting::files::{Files, SimpleFiles};
use codespan_reporting::term::{self, termcolor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// Index of a file registered in [`Sources`].
pub type FileId = usize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: FileId,
    /// Byte range in the file; `None` for problems with the file as a whole.
    pub span: Option<Range<usize>>,
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(file: FileId, span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file,
            span,
            message: message.into(),
            hint: None,
        }
    }

    pub fn warning(file: FileId, span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, span, message)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// The texts diagnostics point into: the config file and any env files.
#[derive(Default)]
pub struct Sources {
    files: SimpleFiles<String, String>,
    paths: Vec<PathBuf>,
}

impl Sources {
    pub fn add(&mut self, path: &Path, text: String) -> FileId {
        self.paths.push(path.to_path_buf());
        self.files.add(path.display().to_string(), text)
    }

    pub fn path(&self, file: FileId) -> &Path {
        &self.paths[file]
    }

    pub fn text(&self, file: FileId) -> &str {
        self.files
            .get(file)
            .map(|f| f.source().as_str())
            .unwrap_or("")
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, file: FileId, offset: usize) -> (usize, usize) {
        match self.files.location(file, offset) {
            Ok(loc) => (loc.line_number, loc.column_number),
            Err(_) => (1, 1),
        }
    }

    /// `path:line:col` of a diagnostic (just `path` when it has no span).
    pub fn locate(&self, d: &Diagnostic) -> String {
        let path = self.path(d.file).display();
        match &d.span {
            Some(span) => {
                let (line, col) = self.line_col(d.file, span.start);
                format!("{path}:{line}:{col}")
            }
            None => path.to_string(),
        }
    }

    /// Renders diagnostics for a terminal (coloured) or a log (plain).
    pub fn render(&self, diagnostics: &[Diagnostic], color: bool) -> String {
        let config = term::Config::default();
        let mut buffer = if color {
            termcolor::Buffer::ansi()
        } else {
            termcolor::Buffer::no_color()
        };
        for d in diagnostics {
            let cs = self.to_codespan(d);
            if term::emit_to_write_style(&mut buffer, &config, &self.files, &cs).is_err() {
                // A span outside the file is our bug, not the user's: still
                // say what is wrong, without the snippet.
                buffer_line(&mut buffer, &format!("{}: {}", self.locate(d), d.message));
            }
        }
        String::from_utf8_lossy(buffer.as_slice()).into_owned()
    }

    /// Machine-readable form, for `check --json`.
    pub fn to_json(&self, d: &Diagnostic) -> serde_json::Value {
        let (line, column) = match &d.span {
            Some(span) => {
                let (l, c) = self.line_col(d.file, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        serde_json::json!({
            "severity": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
            "file": self.path(d.file).display().to_string(),
            "line": line,
            "column": column,
            "message": d.message,
            "hint": d.hint,
        })
    }

    fn to_codespan(&self, d: &Diagnostic) -> CsDiagnostic<FileId> {
        let base = match d.severity {
            Severity::Error => CsDiagnostic::new(CsSeverity::Error),
            Severity::Warning => CsDiagnostic::new(CsSeverity::Warning),
        };
        let mut cs = base.with_message(&d.message);
        match &d.span {
            Some(span) => cs = cs.with_labels(vec![Label::primary(d.file, span.clone())]),
            None => cs = cs.with_notes(vec![format!("in {}", self.path(d.file).display())]),
        }
        if let Some(hint) = &d.hint {
            cs = cs.with_notes(vec![format!("help: {hint}")]);
        }
        cs
    }
}

fn buffer_line(buffer: &mut termcolor::Buffer, line: &str) {
    use std::io::Write;
    // Writing into an in-memory buffer cannot fail.
    let _ = writeln!(buffer, "{line}");
}
