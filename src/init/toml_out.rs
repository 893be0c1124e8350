//! A small writer for hand-readable, commented TOML: what `init` (and any
//! other command that writes a `prodserver.toml` for people to keep and
//! edit) produces.
//!
//! The `toml` crate serialises values but drops comments and reorders
//! nothing on purpose; a generated file people will maintain needs a
//! comment above each choice, tables in a chosen order and short tables
//! inline. So this writes text directly and escapes every value itself:
//! the output always parses, whatever strings it is given (tested by
//! parsing it back).

use std::fmt::Write as _;

/// A TOML value as written: only the kinds a prodserver.toml uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Array(Vec<Value>),
    /// An inline table, `{ k = v, ... }`, keys in the given order.
    Inline(Vec<(String, Value)>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Value {
        Value::Array(items.into_iter().map(|s| Value::Str(s.into())).collect())
    }

    pub fn inline<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Inline(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The value as TOML source text, on one line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Value::Str(s) => out.push_str(&quote(s)),
            Value::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Value::Inline(pairs) if pairs.is_empty() => out.push_str("{}"),
            Value::Inline(pairs) => {
                out.push_str("{ ");
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&key(k));
                    out.push_str(" = ");
                    v.write(out);
                }
                out.push_str(" }");
            }
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

/// A TOML basic string: `"..."` with the escapes TOML requires (quote,
/// backslash, control characters), so any text stays one valid string.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A key as written: bare when TOML allows it (`A-Za-z0-9_-`), else quoted.
pub fn key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        k.to_owned()
    } else {
        quote(k)
    }
}

/// Builds the text of a commented TOML file, top to bottom.
#[derive(Debug, Default)]
pub struct TomlWriter {
    out: String,
}

/// Comments are wrapped to this width (the `# ` included), as a person
/// would write them.
const WIDTH: usize = 78;

impl TomlWriter {
    pub fn new() -> TomlWriter {
        TomlWriter::default()
    }

    /// `# text` lines, wrapped at word boundaries; `\n` in `text` starts a
    /// new line, and an empty line of `text` is written as a bare `#`.
    pub fn comment(&mut self, text: &str) -> &mut Self {
        for line in comment_lines(text, WIDTH) {
            self.out.push_str(&line);
            self.out.push('\n');
        }
        self
    }

    pub fn blank(&mut self) -> &mut Self {
        self.out.push('\n');
        self
    }

    /// A `[a.b.c]` header; each part is quoted if it must be.
    pub fn table(&mut self, path: &[&str]) -> &mut Self {
        let parts: Vec<String> = path.iter().map(|p| key(p)).collect();
        let _ = writeln!(self.out, "[{}]", parts.join("."));
        self
    }

    /// `key = value`.
    pub fn set(&mut self, k: &str, v: impl Into<Value>) -> &mut Self {
        let _ = writeln!(self.out, "{} = {}", key(k), v.into().render());
        self
    }

    /// `key = value  # note`: a short reason on the line itself (a note
    /// with a newline would end the comment, so newlines become spaces).
    pub fn set_noted(&mut self, k: &str, v: impl Into<Value>, note: &str) -> &mut Self {
        let note = note.replace(['\n', '\r'], " ");
        let _ = writeln!(self.out, "{} = {}  # {note}", key(k), v.into().render());
        self
    }

    /// `# key = value`: a setting offered but left off, for the user to
    /// switch on by removing the `# `.
    pub fn set_disabled(&mut self, k: &str, v: impl Into<Value>) -> &mut Self {
        let _ = writeln!(self.out, "# {} = {}", key(k), v.into().render());
        self
    }

    /// `# [a.b]`: a whole table offered but left off.
    pub fn table_disabled(&mut self, path: &[&str]) -> &mut Self {
        let parts: Vec<String> = path.iter().map(|p| key(p)).collect();
        let _ = writeln!(self.out, "# [{}]", parts.join("."));
        self
    }

    pub fn finish(&self) -> String {
        self.out.clone()
    }
}

/// `text` as `#` comment lines no wider than `width` (a longer word stays
/// whole on its own line).
pub fn comment_lines(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.split('\n') {
        // A comment may not carry a CR (TOML refuses a bare one there).
        let para = para.replace('\r', " ");
        let mut line = String::from("#");
        for word in para.split(' ').filter(|w| !w.is_empty()) {
            if line.len() > 1 && line.len() + 1 + word.len() > width {
                lines.push(std::mem::replace(&mut line, String::from("#")));
            }
            line.push(' ');
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml::de::{DeTable, DeValue};

    fn parse(text: &str) -> DeTable<'_> {
        DeTable::parse(text)
            .unwrap_or_else(|e| panic!("not TOML: {e}\n{text}"))
            .into_inner()
    }

    fn string_at<'a>(t: &'a DeTable<'_>, k: &str) -> &'a str {
        match t.get(k).map(|v| v.get_ref()) {
            Some(DeValue::String(s)) => s,
            other => panic!("{k}: {other:?}"),
        }
    }

    #[test]
    fn strings_survive_any_characters() {
        let nasty = "a \"quoted\" \\path\\ with\nnewline, tab\t, bell\u{7}, del\u{7f} and ünïcode";
        let mut w = TomlWriter::new();
        w.set("k", nasty);
        let text = w.finish();
        assert_eq!(string_at(&parse(&text), "k"), nasty);
    }

    #[test]
    fn keys_are_quoted_only_when_needed() {
        assert_eq!(key("worker-default"), "worker-default");
        assert_eq!(key("max_requests"), "max_requests");
        assert_eq!(key("a.b"), "\"a.b\"");
        assert_eq!(key(""), "\"\"");
        let mut w = TomlWriter::new();
        w.table(&["processes", "worker.emails"]).set("x", 1);
        let text = w.finish();
        assert!(
            text.starts_with("[processes.\"worker.emails\"]\n"),
            "{text}"
        );
        let doc = parse(&text);
        let Some(DeValue::Table(p)) = doc.get("processes").map(|v| v.get_ref()) else {
            panic!("{text}")
        };
        assert!(p.get("worker.emails").is_some(), "{text}");
    }

    #[test]
    fn a_whole_file_parses_with_comments_everywhere() {
        let mut w = TomlWriter::new();
        w.comment("Written by a test.\n\nA long comment that must be wrapped because it goes on and on well beyond the width of a terminal window.")
            .table(&["prodserver"])
            .set("queues", Value::strings(["default", "priority"]))
            .set("env", Value::inline([("A", Value::str("1")), ("B c", Value::str("${X:-2}"))]))
            .blank()
            .table(&["processes", "web"])
            .set_noted("backend", "gunicorn", "installed: gunicorn, uvicorn\nand more")
            .set("args", Value::inline([("workers", Value::Int(2)), ("preload", Value::Bool(true))]))
            .set_disabled("instances", 2)
            .table_disabled(&["processes", "beat"])
            .set("empty", Value::inline(Vec::<(String, Value)>::new()));
        let text = w.finish();
        for line in text.lines() {
            assert!(
                line.len() <= WIDTH || !line.starts_with('#'),
                "too wide: {line}"
            );
        }
        assert!(
            text.contains("\n#\n"),
            "an empty paragraph is a bare #: {text}"
        );
        assert!(
            text.contains("args = { workers = 2, preload = true }"),
            "{text}"
        );
        assert!(text.contains("# instances = 2\n"), "{text}");
        let doc = parse(&text);
        let Some(DeValue::Table(ps)) = doc.get("prodserver").map(|v| v.get_ref()) else {
            panic!("{text}")
        };
        let Some(DeValue::Table(env)) = ps.get("env").map(|v| v.get_ref()) else {
            panic!("{text}")
        };
        assert_eq!(string_at(env, "B c"), "${X:-2}");
    }

    #[test]
    fn a_word_longer_than_the_width_stays_whole() {
        let long = "x".repeat(100);
        let lines = comment_lines(&format!("short {long} tail"), 40);
        assert_eq!(
            lines,
            vec![
                "# short".to_owned(),
                format!("# {long}"),
                "# tail".to_owned()
            ]
        );
    }
}
