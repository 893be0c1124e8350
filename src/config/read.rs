//! Typed reads from the spanned TOML tree that never stop at the first
//! problem: each read either yields a value or records a diagnostic pointing
//! at the offending text and yields `None`, so one run reports every error.

use std::ops::Range;
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diagnostic::{Diagnostic, FileId};
use crate::units;

pub type Value<'i> = Spanned<DeValue<'i>>;

pub struct Reader {
    pub file: FileId,
    pub diagnostics: Vec<Diagnostic>,
    /// prodserver's own environment, for `${NAME}` in string values.
    pub vars: std::collections::BTreeMap<String, String>,
}

/// One TOML table being read: knows its dotted path for messages.
pub struct Table<'t, 'i> {
    pub path: String,
    pub span: Range<usize>,
    pub entries: &'t DeTable<'i>,
}

impl<'t, 'i> Table<'t, 'i> {
    pub fn get(&self, key: &str) -> Option<&'t Value<'i>> {
        self.entries.get(key)
    }

    /// Span of a key's value, or of the whole table when the key is absent
    /// (an error about a default still points at the right table).
    pub fn value_span(&self, key: &str) -> Range<usize> {
        self.get(key).map(|v| v.span()).unwrap_or(self.span.clone())
    }

    /// Span of a key's name (for "this key is not allowed here" errors).
    pub fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.entries.get_key_value(key).map(|(k, _)| k.span())
    }

    pub fn keys(&self) -> impl Iterator<Item = (&'t str, Range<usize>)> {
        self.entries
            .iter()
            .map(|(k, _)| (k.get_ref().as_ref(), k.span()))
    }

    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

impl Reader {
    pub fn new(file: FileId, vars: std::collections::BTreeMap<String, String>) -> Self {
        Reader {
            file,
            diagnostics: Vec::new(),
            vars,
        }
    }

    /// `${NAME}`, `${NAME:-default}` and `$$` in a string value, as in
    /// `env` values: every string of the file is expanded the same way, so
    /// no key silently passes `${...}` on literally.
    pub fn expand(&mut self, span: Range<usize>, path: &str, text: &str) -> Option<String> {
        match super::interpolate::expand(text, &self.vars) {
            Ok(value) => Some(value),
            Err((message, hint)) => {
                self.error(span, format!("`{path}`: {message}"), hint);
                None
            }
        }
    }

    pub fn error(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.diagnostics
            .push(Diagnostic::error(self.file, Some(span), message).with_hint(hint));
    }

    pub fn warning(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.diagnostics
            .push(Diagnostic::warning(self.file, Some(span), message).with_hint(hint));
    }

    /// Reports every key of `table` that is not in `known`, with a
    /// did-you-mean suggestion when one is close.
    pub fn check_keys(&mut self, table: &Table, known: &[&str]) {
        for (key, span) in table.keys() {
            if known.contains(&key) {
                continue;
            }
            let hint = match did_you_mean(key, known) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!(
                    "the keys allowed in [{}] are: {}",
                    table.path,
                    known.join(", ")
                ),
            };
            self.error(span, format!("unknown key `{}`", table.key_path(key)), hint);
        }
    }

    pub fn table<'t, 'i>(&mut self, parent: &Table<'t, 'i>, key: &str) -> Option<Table<'t, 'i>> {
        let value = parent.get(key)?;
        self.as_table(value, parent.key_path(key))
    }

    pub fn as_table<'t, 'i>(
        &mut self,
        value: &'t Value<'i>,
        path: String,
    ) -> Option<Table<'t, 'i>> {
        match value.get_ref() {
            DeValue::Table(entries) => Some(Table {
                path,
                span: value.span(),
                entries,
            }),
            other => {
                self.type_error(
                    value,
                    &path,
                    "a table",
                    other,
                    &format!("write `[{path}]` or `{path} = {{ ... }}`"),
                );
                None
            }
        }
    }

    pub fn string(&mut self, table: &Table, key: &str, example: &str) -> Option<String> {
        let value = table.get(key)?;
        self.as_string(value, &table.key_path(key), example)
    }

    pub fn as_string(&mut self, value: &Value, path: &str, example: &str) -> Option<String> {
        match value.get_ref() {
            DeValue::String(s) => self.expand(value.span(), path, s),
            other => {
                self.type_error(
                    value,
                    path,
                    "a string",
                    other,
                    &format!("write `{path} = {example}`"),
                );
                None
            }
        }
    }

    pub fn bool(&mut self, table: &Table, key: &str) -> Option<bool> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                let path = table.key_path(key);
                self.type_error(
                    value,
                    &path,
                    "true or false",
                    other,
                    &format!("write `{path} = true` or `{path} = false` (no quotes)"),
                );
                None
            }
        }
    }

    /// An integer in `min..=u32::MAX`.
    pub fn count(&mut self, table: &Table, key: &str, min: u32, example: u32) -> Option<u32> {
        let value = table.get(key)?;
        let path = table.key_path(key);
        self.as_count(value, &path, min, example)
    }

    pub fn as_count(&mut self, value: &Value, path: &str, min: u32, example: u32) -> Option<u32> {
        let hint = format!("write a whole number without quotes, e.g. `{path} = {example}`");
        match value.get_ref() {
            DeValue::Integer(i) => match integer(i).and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n >= min => Some(n),
                _ => {
                    let what = if min == 0 {
                        "zero or more"
                    } else {
                        "1 or more"
                    };
                    self.error(
                        value.span(),
                        format!("`{path}` must be {what}, found {i}"),
                        hint,
                    );
                    None
                }
            },
            other => {
                self.type_error(value, path, "a whole number", other, &hint);
                None
            }
        }
    }

    /// A u64 (for task counts).
    pub fn big_count(&mut self, table: &Table, key: &str, example: u64) -> Option<u64> {
        let value = table.get(key)?;
        let path = table.key_path(key);
        let hint = format!("write a whole number without quotes, e.g. `{path} = {example}`");
        match value.get_ref() {
            DeValue::Integer(i) => match integer(i).and_then(|n| u64::try_from(n).ok()) {
                Some(n) if n > 0 => Some(n),
                _ => {
                    self.error(
                        value.span(),
                        format!("`{path}` must be 1 or more, found {i}"),
                        hint,
                    );
                    None
                }
            },
            other => {
                self.type_error(value, &path, "a whole number", other, &hint);
                None
            }
        }
    }

    pub fn duration(&mut self, table: &Table, key: &str, example: &str) -> Option<Duration> {
        let value = table.get(key)?;
        let path = table.key_path(key);
        let hint =
            format!("write a number with a unit (ms, s, m, h), e.g. `{path} = \"{example}\"`");
        match value.get_ref() {
            DeValue::String(s) => {
                match units::parse_duration(&self.expand(value.span(), &path, s)?) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        self.error(
                            value.span(),
                            format!("bad duration for `{path}`: {e}"),
                            hint,
                        );
                        None
                    }
                }
            }
            other => {
                self.type_error(value, &path, "a duration string", other, &hint);
                None
            }
        }
    }

    pub fn size(&mut self, table: &Table, key: &str, example: &str) -> Option<u64> {
        let value = table.get(key)?;
        let path = table.key_path(key);
        let hint = format!(
            "write a number with a binary unit (KiB, MiB, GiB; K/M/G mean the same), e.g. `{path} = \"{example}\"`"
        );
        match value.get_ref() {
            DeValue::String(s) => match units::parse_size(&self.expand(value.span(), &path, s)?) {
                Ok(n) => Some(n),
                Err(e) => {
                    self.error(value.span(), format!("bad size for `{path}`: {e}"), hint);
                    None
                }
            },
            other => {
                self.type_error(value, &path, "a size string", other, &hint);
                None
            }
        }
    }

    /// An array of strings, each with its span.
    pub fn string_list(
        &mut self,
        table: &Table,
        key: &str,
        example: &str,
    ) -> Option<Vec<Spanned<String>>> {
        let value = table.get(key)?;
        self.as_string_list(value, &table.key_path(key), example)
    }

    pub fn as_string_list(
        &mut self,
        value: &Value,
        path: &str,
        example: &str,
    ) -> Option<Vec<Spanned<String>>> {
        let hint = format!("write a list of strings, e.g. `{path} = {example}`");
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(value, path, "a list of strings", value.get_ref(), &hint);
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => match self.expand(item.span(), path, s) {
                    Some(s) => out.push(Spanned::new(item.span(), s)),
                    None => ok = false,
                },
                other => {
                    ok = false;
                    self.type_error(
                        item,
                        &format!("an element of `{path}`"),
                        "a string",
                        other,
                        &hint,
                    );
                }
            }
        }
        ok.then_some(out)
    }

    /// `{ KEY = "value" }`; integers and booleans are accepted and written
    /// as text, since environment values are text anyway.
    /// String values may use `${NAME}`/`${NAME:-default}`, expanded from
    /// `inherited` (prodserver's own environment).
    pub fn env_table(
        &mut self,
        table: &Table,
        key: &str,
        inherited: &std::collections::BTreeMap<String, String>,
    ) -> Option<Vec<(String, String)>> {
        let value = table.get(key)?;
        let path = table.key_path(key);
        let t = self.as_table(value, path.clone())?;
        let mut out = Vec::new();
        for (name, span) in t.keys() {
            if !valid_env_name(name) {
                self.error(
                    span.clone(),
                    format!("`{name}` is not a valid environment variable name"),
                    "names use letters, digits and _, and don't start with a digit",
                );
                continue;
            }
            let Some(v) = t.get(name) else { continue };
            match v.get_ref() {
                DeValue::String(s) if s.contains('\0') => {
                    self.error(
                        v.span(),
                        format!("`{path}.{name}` contains a NUL byte"),
                        "remove it: environment values cannot hold NUL",
                    );
                }
                DeValue::String(s) => match super::interpolate::expand(s, inherited) {
                    Ok(value) => out.push((name.to_string(), value)),
                    Err((message, hint)) => {
                        self.error(v.span(), format!("`{path}.{name}`: {message}"), hint)
                    }
                },
                DeValue::Integer(i) => out.push((
                    name.to_string(),
                    integer(i).map_or_else(|| i.to_string(), |n| n.to_string()),
                )),
                DeValue::Float(f) => out.push((name.to_string(), f.as_str().to_string())),
                DeValue::Boolean(b) => out.push((name.to_string(), b.to_string())),
                other => self.type_error(
                    v,
                    &format!("{path}.{name}"),
                    "a string",
                    other,
                    &format!("write `{name} = \"value\"`"),
                ),
            }
        }
        Some(out)
    }

    /// Reports a value of the wrong type, quoting what was found.
    pub fn type_error(
        &mut self,
        value: &Value,
        path: &str,
        expected: &str,
        found: &DeValue,
        hint: &str,
    ) {
        let shown = match found {
            DeValue::String(s) => format!("the string \"{s}\""),
            DeValue::Integer(i) => format!("the number {i}"),
            DeValue::Float(f) => format!("the number {}", f.as_str()),
            DeValue::Boolean(b) => format!("`{b}`"),
            other => format!("a {}", other.type_str()),
        };
        self.error(
            value.span(),
            format!("`{path}` must be {expected}, found {shown}"),
            hint,
        );
    }
}

pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The integer a TOML integer literal denotes (any radix, `_` separators).
pub fn integer(i: &toml::de::DeInteger) -> Option<i64> {
    i64::from_str_radix(i.as_str(), i.radix()).ok()
}

/// The closest known name within a small edit distance.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let known = ["max_tasks_per_child", "max_memory_per_child", "concurrency"];
        assert_eq!(
            did_you_mean("max_task_per_child", &known),
            Some("max_tasks_per_child")
        );
        assert_eq!(did_you_mean("concurency", &known), Some("concurrency"));
        assert_eq!(did_you_mean("banana", &known), None);
    }
}
