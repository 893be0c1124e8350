//! Rendering of `args = { ... }` the way django-prodserver does: keys are
//! used verbatim, so the file reads like the tool's own `--help`.

use super::{ArgValue, BackendError, Field};

/// Render every arg, in file order, except the keys in `skip` (those a
/// backend places itself, e.g. granian's `interface`).
pub(super) fn render(
    args: &[(String, ArgValue)],
    skip: &[&str],
    errs: &mut Vec<BackendError>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (key, value) in args {
        if skip.contains(&key.as_str()) {
            continue;
        }
        if let Err(e) = check_key(key) {
            errs.push(e);
            continue;
        }
        match value {
            ArgValue::List(items) => {
                for item in items {
                    if matches!(item, ArgValue::List(_)) {
                        errs.push(BackendError {
                            field: Field::Arg(key.clone()),
                            message: format!("`args.{key}` contains a nested list"),
                            hint: format!(
                                "a list repeats the flag once per element, so its elements \
                                 must be strings, numbers or booleans: \
                                 `{key} = [\"a\", \"b\"]` gives `{} {}`",
                                flag(key, "a").join(" "),
                                flag(key, "b").join(" "),
                            ),
                        });
                        continue;
                    }
                    push_scalar(&mut out, key, item);
                }
            }
            scalar => push_scalar(&mut out, key, scalar),
        }
    }
    out
}

/// Whether `key` (any of the spellings in `keys`) will reach the command
/// line. `key = false` and `key = []` render nothing, so they don't count:
/// a backend that steps aside when the user sets an option must not step
/// aside for an option that is never passed.
pub(super) fn is_set(args: &[(String, ArgValue)], keys: &[&str]) -> bool {
    args.iter()
        .any(|(k, v)| keys.contains(&k.as_str()) && renders_something(v))
}

/// The first key of `keys` that [`is_set`], as the user spelled it.
pub(super) fn first_set<'a>(args: &'a [(String, ArgValue)], keys: &[&str]) -> Option<&'a str> {
    args.iter()
        .find(|(k, v)| keys.contains(&k.as_str()) && renders_something(v))
        .map(|(k, _)| k.as_str())
}

pub(super) fn get<'a>(args: &'a [(String, ArgValue)], key: &str) -> Option<&'a ArgValue> {
    args.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The values the keys in `keys` pass, in file order (a list gives one per
/// element); keys that render nothing (`false`, `[]`) give none.
pub(super) fn values(args: &[(String, ArgValue)], keys: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for (_, value) in args.iter().filter(|(k, _)| keys.contains(&k.as_str())) {
        match value {
            ArgValue::List(items) => out.extend(items.iter().filter_map(scalar_text)),
            scalar => out.extend(scalar_text(scalar)),
        }
    }
    out
}

/// The value the tool reads for an option given more than once: the last.
pub(super) fn last(args: &[(String, ArgValue)], keys: &[&str]) -> Option<String> {
    values(args, keys).pop()
}

/// The text of a string or number; `None` for booleans and lists, which
/// have no single textual value.
pub(super) fn scalar_text(value: &ArgValue) -> Option<String> {
    match value {
        ArgValue::Str(s) => Some(s.clone()),
        ArgValue::Int(i) => Some(i.to_string()),
        ArgValue::Float(f) => Some(f.to_string()),
        ArgValue::Bool(_) | ArgValue::List(_) => None,
    }
}

/// One option with a value, in the same short/long form ARGS use.
pub(super) fn flag(key: &str, value: &str) -> Vec<String> {
    if is_short(key) {
        vec![format!("-{key}"), value.to_owned()]
    } else {
        vec![format!("--{key}={value}")]
    }
}

fn renders_something(value: &ArgValue) -> bool {
    match value {
        ArgValue::Bool(b) => *b,
        ArgValue::List(items) => items.iter().any(renders_something),
        ArgValue::Str(_) | ArgValue::Int(_) | ArgValue::Float(_) => true,
    }
}

fn push_scalar(out: &mut Vec<String>, key: &str, value: &ArgValue) {
    match value {
        ArgValue::Bool(true) if is_short(key) => out.push(format!("-{key}")),
        ArgValue::Bool(true) => out.push(format!("--{key}")),
        ArgValue::Bool(false) => {}
        other => {
            if let Some(text) = scalar_text(other) {
                out.extend(flag(key, &text));
            }
        }
    }
}

fn is_short(key: &str) -> bool {
    key.chars().count() == 1
}

/// Keys are passed verbatim, so a key that already carries dashes or an `=`
/// would produce an option the tool cannot parse; say so now rather than
/// let the tool fail with a less obvious message at start.
fn check_key(key: &str) -> Result<(), BackendError> {
    let bad = if key.is_empty() {
        Some("is empty")
    } else if key.starts_with('-') {
        Some("starts with `-`")
    } else if key.contains('=') {
        Some("contains `=`")
    } else if key.chars().any(char::is_whitespace) {
        Some("contains whitespace")
    } else {
        None
    };
    match bad {
        None => Ok(()),
        Some(why) => {
            let bare = key.trim_start_matches('-');
            Err(BackendError {
                field: Field::Arg(key.to_owned()),
                message: format!("the args key `{key}` {why}"),
                hint: format!(
                    "write the option's name without dashes; prodserver adds them: \
                     `{} = ...` becomes `--{}=...` (a one-letter key becomes `-x`)",
                    if bare.is_empty() { "bind" } else { bare },
                    if bare.is_empty() { "bind" } else { bare },
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> ArgValue {
        ArgValue::Str(v.to_owned())
    }

    fn args(pairs: &[(&str, ArgValue)]) -> Vec<(String, ArgValue)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn ok(a: &[(String, ArgValue)]) -> Vec<String> {
        let mut errs = Vec::new();
        let out = render(a, &[], &mut errs);
        assert_eq!(errs, vec![]);
        out
    }

    #[test]
    fn scalars_render_long_with_equals_in_file_order() {
        let a = args(&[
            ("workers", ArgValue::Int(4)),
            ("bind", s("127.0.0.1:8000")),
            ("timeout", ArgValue::Float(2.5)),
            ("preload", ArgValue::Bool(true)),
            ("reload", ArgValue::Bool(false)),
        ]);
        assert_eq!(
            ok(&a),
            [
                "--workers=4",
                "--bind=127.0.0.1:8000",
                "--timeout=2.5",
                "--preload"
            ]
        );
    }

    #[test]
    fn single_letter_keys_render_short_as_two_items() {
        let a = args(&[
            ("c", ArgValue::Int(4)),
            ("l", s("info")),
            ("E", ArgValue::Bool(true)),
            ("q", ArgValue::Bool(false)),
        ]);
        assert_eq!(ok(&a), ["-c", "4", "-l", "info", "-E"]);
    }

    #[test]
    fn lists_repeat_the_flag() {
        let a = args(&[
            ("include", ArgValue::List(vec![s("a"), s("b")])),
            ("v", ArgValue::List(vec![ArgValue::Bool(true); 2])),
            ("I", ArgValue::List(vec![s("x"), ArgValue::Int(1)])),
            ("empty", ArgValue::List(vec![])),
        ]);
        assert_eq!(
            ok(&a),
            [
                "--include=a",
                "--include=b",
                "-v",
                "-v",
                "-I",
                "x",
                "-I",
                "1"
            ]
        );
    }

    #[test]
    fn empty_string_value_is_passed_verbatim() {
        let a = args(&[("prefix", s("")), ("p", s(""))]);
        assert_eq!(ok(&a), ["--prefix=", "-p", ""]);
    }

    #[test]
    fn nested_list_is_an_error_on_that_key_and_rendering_goes_on() {
        let a = args(&[
            (
                "include",
                ArgValue::List(vec![s("a"), ArgValue::List(vec![s("b")])]),
            ),
            ("workers", ArgValue::Int(2)),
        ]);
        let mut errs = Vec::new();
        let out = render(&a, &[], &mut errs);
        assert_eq!(out, ["--include=a", "--workers=2"]);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, Field::Arg("include".into()));
        assert!(
            errs[0].hint.contains("--include=a --include=b"),
            "{}",
            errs[0].hint
        );
    }

    #[test]
    fn keys_with_dashes_or_equals_are_errors() {
        let a = args(&[
            ("--bind", s("x")),
            ("a=b", s("x")),
            ("", s("x")),
            ("two words", s("x")),
        ]);
        let mut errs = Vec::new();
        let out = render(&a, &[], &mut errs);
        assert!(out.is_empty());
        let fields: Vec<_> = errs.iter().map(|e| e.field.clone()).collect();
        assert_eq!(
            fields,
            [
                Field::Arg("--bind".into()),
                Field::Arg("a=b".into()),
                Field::Arg("".into()),
                Field::Arg("two words".into()),
            ]
        );
        assert!(
            errs[0].hint.contains("`bind = ...` becomes `--bind=...`"),
            "{}",
            errs[0].hint
        );
    }

    #[test]
    fn skip_leaves_keys_out() {
        let a = args(&[("interface", s("asgi")), ("workers", ArgValue::Int(2))]);
        let mut errs = Vec::new();
        assert_eq!(render(&a, &["interface"], &mut errs), ["--workers=2"]);
    }

    #[test]
    fn is_set_ignores_false_and_empty_lists() {
        let a = args(&[
            ("pidfile", ArgValue::Bool(false)),
            ("Q", ArgValue::List(vec![])),
            ("n", s("x")),
        ]);
        assert!(!is_set(&a, &["pidfile"]));
        assert!(!is_set(&a, &["Q", "queues"]));
        assert!(is_set(&a, &["hostname", "n"]));
        assert_eq!(first_set(&a, &["hostname", "n"]), Some("n"));
        assert_eq!(first_set(&a, &["pidfile"]), None);
    }
}
