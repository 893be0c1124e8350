//! `--junit FILE`: the run as JUnit XML, the format every CI system
//! shows as a test report.
//!
//! One `<testcase>` per process (its time is the time to ready), one for
//! the command and one for the stop; a `<failure>` carries the state and
//! the last lines. Text is escaped, and characters XML 1.0 cannot carry at
//! all (most C0 controls: a child's colour codes start with ESC) are shown
//! as `\xNN`. The file is written whole or not at all (a temporary file,
//! then a rename), so a CI job never reads half a report.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

/// What became of one test case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed { message: String, text: String },
    Skipped { message: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub name: String,
    /// `None`: it never ran.
    pub time: Option<Duration>,
    pub outcome: Outcome,
}

/// The whole report: one suite named after the project.
pub fn render(project: &str, cases: &[Case], total: Duration) -> String {
    let failures = cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Failed { .. }))
        .count();
    let skipped = cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Skipped { .. }))
        .count();
    let suite = escape(&format!("prodserver smoke {project}"));
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"{suite}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{}\">\n",
        cases.len(),
        secs(total)
    ));
    out.push_str(&format!(
        "  <testsuite name=\"{suite}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{}\">\n",
        cases.len(),
        secs(total)
    ));
    for case in cases {
        let time = case.time.map(secs).unwrap_or_else(|| "0.000".into());
        out.push_str(&format!(
            "    <testcase classname=\"{suite}\" name=\"{}\" time=\"{time}\"",
            escape(&case.name)
        ));
        match &case.outcome {
            Outcome::Passed => out.push_str("/>\n"),
            Outcome::Failed { message, text } => out.push_str(&format!(
                ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                escape(message),
                escape_text(text)
            )),
            Outcome::Skipped { message } => out.push_str(&format!(
                ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                escape(message)
            )),
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// Text for an attribute or element: the five special characters as
/// entities, what XML cannot carry as visible `\xNN`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Kept as characters, but a newline or tab in an attribute
            // would be normalised to a space by the reader: entities.
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            '\r' => out.push_str("&#13;"),
            c if allowed(c) => out.push(c),
            c => out.push_str(&format!("\\x{:02x}", c as u32)),
        }
    }
    out
}

/// [`escape`] for element content, where newlines and tabs are kept as
/// they are: a report's last lines read as lines.
pub fn escape_text(text: &str) -> String {
    escape(text).replace("&#10;", "\n").replace("&#9;", "\t")
}

/// XML 1.0's `Char` production.
fn allowed(c: char) -> bool {
    matches!(c as u32, 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// Writes `text` to `path` whole or not at all.
pub fn write_atomic(path: &Path, text: &str) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_and_forbidden_characters_are_escaped() {
        assert_eq!(
            escape("a<b>&\"c\"'\x1b[31mred\x00\n"),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;\\x1b[31mred\\x00&#10;"
        );
        assert_eq!(escape("é ✓"), "é ✓");
        assert_eq!(escape_text("a\n\tb&#10;"), "a\n\tb&amp;#10;");
    }

    #[test]
    fn a_report_counts_failures_and_skips() {
        let cases = [
            Case {
                name: "web".into(),
                time: Some(Duration::from_millis(2300)),
                outcome: Outcome::Passed,
            },
            Case {
                name: "worker".into(),
                time: Some(Duration::from_secs(2)),
                outcome: Outcome::Failed {
                    message: "not ready within 2s: running".into(),
                    text: "worker.1 | <boom>".into(),
                },
            },
            Case {
                name: "command: sh -c 'exit 7'".into(),
                time: None,
                outcome: Outcome::Skipped {
                    message: "not run".into(),
                },
            },
        ];
        let xml = render("shop", &cases, Duration::from_secs(3));
        assert!(
            xml.contains("tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"3.000\"")
        );
        assert!(xml.contains("name=\"web\" time=\"2.300\"/>"));
        assert!(xml.contains(
            "<failure message=\"not ready within 2s: running\">worker.1 | &lt;boom&gt;</failure>"
        ));
        assert!(xml.contains("name=\"command: sh -c &apos;exit 7&apos;\""));
    }

    #[test]
    fn the_file_appears_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.xml");
        write_atomic(&path, "<x/>").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "<x/>");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left");
    }
}
