//! `${NAME}` and `${NAME:-default}` in the file's strings, expanded from
//! prodserver's own environment when the file is loaded. This is how a file
//! gives a default that the platform may override
//! (`CELERYD_CONCURRENCY = "${CELERYD_CONCURRENCY:-2}"`), since a plain
//! value in the file always wins over the inherited one. An unset variable
//! without a default is an error rather than a silent empty string.
//!
//! Only `${` starts an expansion, and `$${` is a literal `${`. Every other
//! `$` is kept as written, so the shell in `command = ["sh", "-c", ...]`
//! still gets its `$$`, `$!`, `$1` and `$NAME`.

use std::collections::BTreeMap;

/// Expands `text`; the error says what is wrong and how to fix it.
pub fn expand(text: &str, env: &BTreeMap<String, String>) -> Result<String, (String, String)> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err((
                    format!("unterminated `${{` in \"{text}\""),
                    "close it: `${NAME}` or `${NAME:-default}`; write `$${` for a literal `${`"
                        .into(),
                ));
            };
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if !super::read::valid_env_name(name) {
                return Err((
                    format!("`${{{inner}}}` does not name a variable"),
                    "write `${NAME}` or `${NAME:-default}` with letters, digits and _".into(),
                ));
            }
            match (env.get(name).filter(|v| !v.is_empty()), default) {
                (Some(value), _) => out.push_str(value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err((
                        format!("{name} is not set in prodserver's environment"),
                        format!("set it, or give a default: `${{{name}:-value}}`; to leave it to a shell in the command, write `$${{{name}}}`"),
                    ))
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("SET", "yes"), ("EMPTY", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expands_values_and_defaults() {
        assert_eq!(expand("${SET}", &env()), Ok("yes".into()));
        assert_eq!(expand("a-${SET}-b", &env()), Ok("a-yes-b".into()));
        assert_eq!(expand("${UNSET:-2}", &env()), Ok("2".into()));
        assert_eq!(expand("${EMPTY:-fallback}", &env()), Ok("fallback".into()));
        assert_eq!(expand("${SET:-2}", &env()), Ok("yes".into()));
        // A shell's own dollars pass untouched; `$${` escapes an expansion.
        assert_eq!(
            expand("$$ $! $HOME and $5 and $", &env()),
            Ok("$$ $! $HOME and $5 and $".into())
        );
        assert_eq!(expand("$${SET} ${SET}", &env()), Ok("${SET} yes".into()));
        assert_eq!(expand("plain", &env()), Ok("plain".into()));
    }

    #[test]
    fn errors_say_how_to_fix() {
        let (msg, hint) = expand("${UNSET}", &env()).unwrap_err();
        assert!(msg.contains("UNSET is not set"), "{msg}");
        assert!(hint.contains("${UNSET:-value}"), "{hint}");
        assert!(expand("${OPEN", &env())
            .unwrap_err()
            .0
            .contains("unterminated"));
        assert!(expand("${1X}", &env())
            .unwrap_err()
            .0
            .contains("does not name"));
    }
}
