//! `env_file`: `KEY=VALUE` lines as written by dotenv tools and systemd's
//! `EnvironmentFile=`: `#` comments, blank lines, an optional `export `
//! prefix, single quotes (literal), double quotes (with `\n`, `\"`, `\\`
//! escapes) and unquoted values with trailing ` # comment` removed.
//! No variable expansion: a value means what it says.

/// A line that could not be parsed: 1-based line and column, message, hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFileError {
    /// Byte range of the offending text in the file.
    pub span: std::ops::Range<usize>,
    pub message: String,
    pub hint: String,
}

/// Parses the text of an env file into ordered `(key, value)` pairs; later
/// duplicates override earlier ones when merged.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, Vec<EnvFileError>> {
    let mut vars = Vec::new();
    let mut errors = Vec::new();
    let mut offset = 0;
    for raw_line in text.split_inclusive('\n') {
        let line_start = offset;
        offset += raw_line.len();
        let line = raw_line.trim_end_matches(['\n', '\r']);
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let (body, body_start) = match body.strip_prefix("export ") {
            Some(rest) => {
                let skipped = body.len() - rest.trim_start().len();
                (rest.trim_start(), line_start + indent + skipped)
            }
            None => (body, line_start + indent),
        };
        let span = body_start..line_start + line.len();
        let Some(eq) = body.find('=') else {
            errors.push(EnvFileError {
                span,
                message: "expected KEY=VALUE".into(),
                hint: "write each variable as NAME=value; start comments with #".into(),
            });
            continue;
        };
        let key = body[..eq].trim_end();
        if !valid_key(key) {
            errors.push(EnvFileError {
                span: body_start..body_start + eq,
                message: format!("\"{key}\" is not a valid variable name"),
                hint: "names use letters, digits and _, and don't start with a digit".into(),
            });
            continue;
        }
        let value_start = body_start + eq + 1;
        match parse_value(&body[eq + 1..]) {
            Ok(value) => vars.push((key.to_string(), value)),
            Err((message, hint)) => errors.push(EnvFileError {
                span: value_start..span.end,
                message,
                hint,
            }),
        }
    }
    if errors.is_empty() {
        Ok(vars)
    } else {
        Err(errors)
    }
}

fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(raw: &str) -> Result<String, (String, String)> {
    let v = raw.trim_start();
    if let Some(rest) = v.strip_prefix('\'') {
        let end = rest.find('\'').ok_or_else(unterminated("'"))?;
        check_trailing(&rest[end + 1..])?;
        return Ok(rest[..end].to_string());
    }
    if let Some(rest) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    check_trailing(&rest[i + 1..])?;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, other)) => out.push(other),
                    None => break,
                },
                c => out.push(c),
            }
        }
        return Err(unterminated("\"")());
    }
    // Unquoted: a ` #` starts a comment, as in shell.
    let value = match v.find(" #") {
        Some(i) => &v[..i],
        None => v,
    };
    Ok(value.trim_end().to_string())
}

fn unterminated(quote: &'static str) -> impl Fn() -> (String, String) {
    move || {
        (
            format!("unterminated {quote}-quoted value"),
            format!("close the value with {quote} on the same line"),
        )
    }
}

fn check_trailing(rest: &str) -> Result<(), (String, String)> {
    let rest = rest.trim();
    if rest.is_empty() || rest.starts_with('#') {
        Ok(())
    } else {
        Err((
            format!("unexpected text after the closing quote: \"{rest}\""),
            "quote the whole value, or put a comment after #".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<(String, String)> {
        parse(text).expect("parses")
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn plain_quoted_exported_and_commented() {
        let text = "# comment\n\nA=1\nexport B=two words # trailing\nC='single # kept'\nD=\"line\\nbreak \\\"q\\\"\"\n  E = spaced \r\nF=\n";
        assert_eq!(
            ok(text),
            vec![
                pair("A", "1"),
                pair("B", "two words"),
                pair("C", "single # kept"),
                pair("D", "line\nbreak \"q\""),
                pair("E", "spaced"),
                pair("F", ""),
            ]
        );
    }

    #[test]
    fn url_with_hash_is_kept_when_not_a_comment() {
        assert_eq!(
            ok("URL=redis://h/0#frag\n"),
            vec![pair("URL", "redis://h/0#frag")]
        );
    }

    #[test]
    fn reports_every_bad_line_with_its_span() {
        let text = "GOOD=1\nnot a pair\n1BAD=x\nQ=\"open\n";
        let errors = parse(text).unwrap_err();
        assert_eq!(errors.len(), 3);
        assert_eq!(&text[errors[0].span.clone()], "not a pair");
        assert!(errors[0].hint.contains("NAME=value"));
        assert_eq!(&text[errors[1].span.clone()], "1BAD");
        assert!(errors[2].message.contains("unterminated"));
    }

    #[test]
    fn text_after_closing_quote_is_an_error() {
        let errors = parse("A='x' y\n").unwrap_err();
        assert!(errors[0].message.contains("after the closing quote"));
    }
}
