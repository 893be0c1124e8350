//! Rendering one log line as bytes: pure, no I/O.
//!
//! Text: `web.1   | message` — the label `name.N` padded to the project's
//! widest label, then ` |`; a piece continuing a split line shows `+|`
//! instead, so the prefix keeps its width. On a colour terminal the prefix
//! (label and bar) is wrapped in the process's SGR colour, and prodserver's
//! own events are coloured by their [`Tone`]. An empty line renders as the
//! bare prefix, without a trailing space. With timestamps, every text line
//! starts with its RFC 3339 UTC time (milliseconds) and a space.
//!
//! A text message may not hide or overwrite the prefix, so control
//! characters are made visible ([`push_visible`]): CR as `\r`, the other C0
//! characters (but TAB) and DEL as `\xNN`, C1 characters as `\u{NN}`.
//! Colour (SGR) sequences, `ESC [ digits;... m`, pass, so children's own
//! colours keep working; any other escape sequence (cursor movement, clear
//! screen, OSC title) is shown as text starting with `\x1b`.
//!
//! JSON: one object per line, fields in a fixed order:
//! `{"time","process","instance","pid","stream","message"}`, plus
//! `"continued":true` on a continuation piece. `time` is RFC 3339 UTC with
//! milliseconds. `instance` and `pid` are `null` for prodserver's own events.
//!
//! Everything that is the same for every line of a stream (label, colour,
//! JSON fields but time and message) is rendered once into a [`LineFormat`],
//! so the per-line work is a few `extend_from_slice` calls.

use std::time::{SystemTime, UNIX_EPOCH};

use super::color;

/// How an event should stand out on a colour terminal. Text only: JSON
/// lines are unchanged by the tone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tone {
    /// Routine (spawned, exited, stopping): no colour.
    #[default]
    Plain,
    /// Ready: green.
    Good,
    /// Restarting, unhealthy, killed after a timeout: yellow.
    Warn,
    /// FAILED: red.
    Bad,
}

impl Tone {
    /// The syslog priority prefix journald reads: warning 4, error 3;
    /// nothing for the rest, which journald logs as info.
    fn syslog_prefix(self) -> &'static [u8] {
        match self {
            Tone::Warn => b"<4>",
            Tone::Bad => b"<3>",
            Tone::Plain | Tone::Good => b"",
        }
    }

    /// SGR code of the message, `None` for plain.
    fn sgr(self) -> Option<&'static str> {
        match self {
            Tone::Plain => None,
            Tone::Good => Some("32"),
            Tone::Warn => Some("33"),
            Tone::Bad => Some("31"),
        }
    }
}

/// How log lines are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `name.N | message`, coloured prefixes if `color`.
    Text { color: bool },
    /// One JSON object per line.
    Json,
}

/// The `stream` of a JSON line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    /// A supervisor event (spawned, exited, ...), not child output.
    Event,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::Event => "event",
        }
    }
}

/// Who a line is about.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub process: &'a str,
    /// `None` for prodserver's own (project) lines.
    pub instance: Option<u32>,
    pub pid: Option<u32>,
    pub stream: Stream,
}

/// The text label: `name.N`, or just `name` without an instance.
pub fn label(process: &str, instance: Option<u32>) -> String {
    match instance {
        Some(n) => format!("{process}.{n}"),
        None => process.to_owned(),
    }
}

/// The pre-rendered, per-stream part of every line. See the module docs.
#[derive(Debug, Clone)]
pub struct LineFormat {
    json: bool,
    /// Text: colour on (event tones are shown).
    color: bool,
    /// Text: each line starts with `time`.
    timestamps: bool,
    /// Text: warnings and errors start with a syslog priority (`<4>`,
    /// `<3>`), which journald reads and strips.
    priorities: bool,
    /// Text: the prefix ending in ` |` (with colour codes). JSON: the fields
    /// after `time`, ending in `"message":`.
    head: Vec<u8>,
    /// Text: the prefix ending in `+|`. JSON: unused.
    cont_head: Vec<u8>,
    /// RFC 3339 time of the lines being written (JSON, or text with
    /// timestamps).
    time: [u8; 24],
}

impl LineFormat {
    /// `width` is the width the label is padded to (a longer label is not cut).
    pub fn new(format: Format, width: usize, source: Source<'_>) -> Self {
        Self::with_timestamps(format, width, false, source)
    }

    /// [`LineFormat::new`], text lines starting with their time when
    /// `timestamps` (JSON lines always carry `time`).
    pub fn with_timestamps(
        format: Format,
        width: usize,
        timestamps: bool,
        source: Source<'_>,
    ) -> Self {
        match format {
            Format::Text { color } => {
                let padded = format!("{:<width$}", label(source.process, source.instance));
                let sgr = match (color, source.instance) {
                    (false, _) => None,
                    (true, None) => Some(color::PROJECT_COLOR),
                    (true, Some(_)) => Some(color::color_for(source.process)),
                };
                let render = |bar: &str| match sgr {
                    Some(code) => format!("\x1b[{code}m{padded}{bar}\x1b[0m").into_bytes(),
                    None => format!("{padded}{bar}").into_bytes(),
                };
                LineFormat {
                    json: false,
                    color,
                    timestamps,
                    priorities: false,
                    head: render(" |"),
                    cont_head: render("+|"),
                    time: rfc3339_millis(UNIX_EPOCH),
                }
            }
            Format::Json => {
                let mut head = Vec::with_capacity(96);
                head.extend_from_slice(b",\"process\":");
                write_json_str(&mut head, source.process);
                head.extend_from_slice(b",\"instance\":");
                push_opt_u32(&mut head, source.instance);
                head.extend_from_slice(b",\"pid\":");
                push_opt_u32(&mut head, source.pid);
                head.extend_from_slice(b",\"stream\":\"");
                head.extend_from_slice(source.stream.as_str().as_bytes());
                head.extend_from_slice(b"\",\"message\":");
                LineFormat {
                    json: true,
                    color: false,
                    timestamps: false,
                    priorities: false,
                    head,
                    cont_head: Vec::new(),
                    time: rfc3339_millis(UNIX_EPOCH),
                }
            }
        }
    }

    /// Text lines of warnings and errors start with their syslog priority
    /// (`<4>`, `<3>`): for journald, which takes it as the line's priority
    /// and strips it. Other lines keep journald's default (info). JSON is
    /// unchanged.
    pub fn with_priorities(mut self, on: bool) -> Self {
        self.priorities = on && !self.json;
        self
    }

    /// Sets the time stamped on the following lines (JSON, or text with
    /// timestamps). The pump calls this once per chunk read, not per line:
    /// `SystemTime::now()` per line would cost more than the rest of the
    /// formatting, and lines read in one chunk arrived together anyway.
    pub fn set_time(&mut self, t: SystemTime) {
        if self.json || self.timestamps {
            self.time = rfc3339_millis(t);
        }
    }

    /// Appends one rendered line, `\n` included. Invalid UTF-8 in `msg`
    /// becomes U+FFFD.
    pub fn write(&self, out: &mut Vec<u8>, msg: &[u8], continued: bool) {
        self.write_toned(out, msg, continued, Tone::Plain);
    }

    fn write_toned(&self, out: &mut Vec<u8>, msg: &[u8], continued: bool, tone: Tone) {
        let msg = String::from_utf8_lossy(msg);
        if self.json {
            out.extend_from_slice(b"{\"time\":\"");
            out.extend_from_slice(&self.time);
            out.push(b'"');
            out.extend_from_slice(&self.head);
            write_json_str(out, &msg);
            if continued {
                out.extend_from_slice(b",\"continued\":true");
            }
            out.extend_from_slice(b"}\n");
        } else {
            if self.priorities {
                out.extend_from_slice(tone.syslog_prefix());
            }
            if self.timestamps {
                out.extend_from_slice(&self.time);
                out.push(b' ');
            }
            out.extend_from_slice(if continued {
                &self.cont_head
            } else {
                &self.head
            });
            if !msg.is_empty() {
                out.push(b' ');
                match tone.sgr().filter(|_| self.color) {
                    Some(code) => {
                        out.extend_from_slice(b"\x1b[");
                        out.extend_from_slice(code.as_bytes());
                        out.push(b'm');
                        push_visible(out, &msg);
                        out.extend_from_slice(b"\x1b[0m");
                    }
                    None => push_visible(out, &msg),
                }
            }
            out.push(b'\n');
        }
    }

    /// Appends a supervisor event. Text: one line per line of `msg`, so a
    /// multi-line message cannot break the prefix column. JSON: one object.
    pub fn write_event(&self, out: &mut Vec<u8>, msg: &str, tone: Tone) {
        if self.json {
            self.write(out, msg.as_bytes(), false);
        } else {
            for line in msg.lines() {
                self.write_toned(out, line.as_bytes(), false, tone);
            }
            if msg.is_empty() {
                self.write(out, b"", false);
            }
        }
    }
}

/// Appends `s` to a text line with its control characters made visible
/// (see the module docs): nothing a child prints can move the cursor, clear
/// the screen or hide our prefix. Copies runs of plain bytes in one go.
pub fn push_visible(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        // 0xc2 leads the two-byte encoding of U+0080..U+00BF, C1 included.
        if (b >= 0x20 && b != 0x7f && b != 0xc2) || b == b'\t' {
            i += 1;
            continue;
        }
        let (len, escaped): (usize, &[u8]) = match b {
            0x1b => match sgr_len(&bytes[i..]) {
                Some(n) => {
                    i += n;
                    continue;
                }
                None => (1, b""),
            },
            b'\r' => (1, b"\\r"),
            0xc2 => match bytes.get(i + 1) {
                Some(&c1 @ 0x80..=0x9f) => {
                    out.extend_from_slice(&bytes[start..i]);
                    out.extend_from_slice(b"\\u{");
                    out.extend_from_slice(&[HEX[usize::from(c1 >> 4)], HEX[usize::from(c1 & 0xf)]]);
                    out.push(b'}');
                    i += 2;
                    start = i;
                    continue;
                }
                _ => {
                    i += 1;
                    continue;
                }
            },
            _ => (1, b""),
        };
        out.extend_from_slice(&bytes[start..i]);
        if escaped.is_empty() {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        } else {
            out.extend_from_slice(escaped);
        }
        i += len;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Length of the SGR sequence `ESC [ [0-9;:]* m` at the start of `s`, if
/// that is what starts it.
fn sgr_len(s: &[u8]) -> Option<usize> {
    if s.get(1) != Some(&b'[') {
        return None;
    }
    let params = s[2..]
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b';' || **b == b':')
        .count();
    (s.get(2 + params) == Some(&b'm')).then_some(3 + params)
}

fn push_opt_u32(out: &mut Vec<u8>, v: Option<u32>) {
    match v {
        Some(n) => out.extend_from_slice(n.to_string().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends `s` as a JSON string literal (quotes included). Hand-written
/// rather than `serde_json::to_writer` so that it is infallible and copies
/// runs of plain bytes in one go.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for `t`, in UTC. Times before 1970 are shown
/// as the epoch and years past 9999 as 9999: neither happens on a sane clock,
/// and the field must stay a valid RFC 3339 timestamp.
pub fn rfc3339_millis(t: SystemTime) -> [u8; 24] {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let millis = since.subsec_millis();
    let (mut year, mut month, mut day) = civil_from_days(secs / 86_400);
    let mut sod = secs % 86_400;
    let mut millis = u64::from(millis);
    if year > 9999 {
        (year, month, day, sod, millis) = (9999, 12, 31, 86_399, 999);
    }
    let mut buf = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, sod / 3600);
    put(14, 2, sod / 60 % 60);
    put(17, 2, sod % 60);
    put(20, 3, millis);
    buf
}

/// (year, month 1-12, day 1-31) of `days` since 1970-01-01, proleptic
/// Gregorian. Howard Hinnant's `civil_from_days`, restricted to days >= 0
/// (so the era arithmetic needs no negative cases): shift the year to start
/// on March 1st so the leap day is the last day of the year, then split into
/// 400-year eras, years of era, and days of year.
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn src(process: &str, instance: Option<u32>, pid: Option<u32>, stream: Stream) -> Source<'_> {
        Source {
            process,
            instance,
            pid,
            stream,
        }
    }

    fn text(fmt: &LineFormat, msg: &[u8], continued: bool) -> String {
        let mut out = Vec::new();
        fmt.write(&mut out, msg, continued);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_plain_padded() {
        let f = LineFormat::new(
            Format::Text { color: false },
            8,
            src("web", Some(1), Some(42), Stream::Stdout),
        );
        assert_eq!(text(&f, b"hello", false), "web.1    | hello\n");
        assert_eq!(text(&f, b"more", true), "web.1   +| more\n");
        assert_eq!(text(&f, b"", false), "web.1    |\n");
        // Narrower width than the label: no cut, no padding.
        let f = LineFormat::new(
            Format::Text { color: false },
            2,
            src("worker", Some(12), None, Stream::Stderr),
        );
        assert_eq!(text(&f, b"x", false), "worker.12 | x\n");
    }

    #[test]
    fn text_coloured_exact_bytes() {
        let f = LineFormat::new(
            Format::Text { color: true },
            6,
            src("web", Some(2), Some(1), Stream::Stdout),
        );
        let c = color::color_for("web");
        assert_eq!(
            text(&f, b"hi \x1b[1mbold\x1b[0m", false),
            format!("\x1b[{c}mweb.2  |\x1b[0m hi \x1b[1mbold\x1b[0m\n")
        );
        assert_eq!(
            text(&f, b"x", true),
            format!("\x1b[{c}mweb.2 +|\x1b[0m x\n")
        );
        let p = LineFormat::new(
            Format::Text { color: true },
            6,
            src("prodserver", None, None, Stream::Event),
        );
        assert_eq!(text(&p, b"up", false), "\x1b[1mprodserver |\x1b[0m up\n");
    }

    #[test]
    fn text_invalid_utf8_replaced() {
        let f = LineFormat::new(
            Format::Text { color: false },
            0,
            src("a", Some(1), None, Stream::Stdout),
        );
        assert_eq!(
            text(&f, b"ok\xff\xfe!", false),
            "a.1 | ok\u{fffd}\u{fffd}!\n"
        );
    }

    #[test]
    fn event_lines_split_in_text() {
        let f = LineFormat::new(
            Format::Text { color: false },
            5,
            src("web", Some(1), Some(7), Stream::Event),
        );
        let mut out = Vec::new();
        f.write_event(&mut out, "exited 1\nlast words", Tone::Plain);
        assert_eq!(out, b"web.1 | exited 1\nweb.1 | last words\n");
    }

    fn json(fmt: &LineFormat, msg: &[u8], continued: bool) -> serde_json::Value {
        let mut out = Vec::new();
        fmt.write(&mut out, msg, continued);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn json_has_all_fields() {
        let mut f = LineFormat::new(
            Format::Json,
            99,
            src("we\"b", Some(3), Some(1234), Stream::Stderr),
        );
        f.set_time(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123));
        let msg = "tab\there \"q\" back\\slash \u{1} nl\ncr\r é 😀 \u{2028}";
        let v = json(&f, msg.as_bytes(), false);
        assert_eq!(v["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["process"], "we\"b");
        assert_eq!(v["instance"], 3);
        assert_eq!(v["pid"], 1234);
        assert_eq!(v["stream"], "stderr");
        assert_eq!(v["message"], msg);
        assert!(v.get("continued").is_none());
        assert_eq!(v.as_object().unwrap().len(), 6);

        let v = json(&f, b"\xffbad", true);
        assert_eq!(v["message"], "\u{fffd}bad");
        assert_eq!(v["continued"], true);

        // Every control character round-trips.
        let all: String = (0u8..0x20).map(char::from).collect();
        assert_eq!(json(&f, all.as_bytes(), false)["message"], all);
    }

    #[test]
    fn json_project_event_has_nulls() {
        let f = LineFormat::new(
            Format::Json,
            0,
            src("prodserver", None, None, Stream::Event),
        );
        let mut out = Vec::new();
        f.write_event(&mut out, "two\nlines", Tone::Plain);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["instance"], serde_json::Value::Null);
        assert_eq!(v["pid"], serde_json::Value::Null);
        assert_eq!(v["stream"], "event");
        assert_eq!(v["message"], "two\nlines");
    }

    fn ts(ms: u64) -> String {
        String::from_utf8(rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_vec()).unwrap()
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(ts(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(ts(951_782_400_000), "2000-02-29T00:00:00.000Z"); // leap day, div by 400
        assert_eq!(ts(951_868_799_999), "2000-02-29T23:59:59.999Z");
        assert_eq!(ts(1_709_164_800_000), "2024-02-29T00:00:00.000Z");
        assert_eq!(ts(4_107_542_400_000), "2100-03-01T00:00:00.000Z"); // 2100: no leap day
        assert_eq!(ts(1_735_689_599_999), "2024-12-31T23:59:59.999Z");
        assert_eq!(ts(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(ts(253_402_300_800_000), "9999-12-31T23:59:59.999Z"); // clamped
        assert_eq!(
            String::from_utf8(rfc3339_millis(UNIX_EPOCH - Duration::from_secs(5)).to_vec())
                .unwrap(),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn civil_from_days_walks_every_day() {
        // Day by day from 1970 to 2400, the date must advance like a calendar.
        let leap =
            |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
        let mut expect = (1970, 1, 1);
        for days in 0..157_000u64 {
            assert_eq!(civil_from_days(days), expect, "day {days}");
            let (y, m, d) = expect;
            let len = match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            expect = if d < len {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }

    fn visible(msg: &str) -> String {
        let mut out = Vec::new();
        push_visible(&mut out, msg);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn control_characters_are_made_visible() {
        let cases = [
            ("plain text", "plain text"),
            ("tab\tpasses", "tab\tpasses"),
            ("50%\r60%", "50%\\r60%"),
            ("nul\0byte", "nul\\x00byte"),
            (
                "bell\x07 bs\x08 vt\x0b ff\x0c",
                "bell\\x07 bs\\x08 vt\\x0b ff\\x0c",
            ),
            ("del\x7f", "del\\x7f"),
            ("\x1f\x01", "\\x1f\\x01"),
            // Colour (SGR) passes, with or without parameters.
            ("\x1b[1;31mred\x1b[0m \x1b[m", "\x1b[1;31mred\x1b[0m \x1b[m"),
            ("\x1b[38:5:196mx", "\x1b[38:5:196mx"),
            // Other sequences do not: clear screen, cursor moves, OSC title,
            // private modes, a lone ESC at the end.
            ("\x1b[2J", "\\x1b[2J"),
            ("\x1b[1A\x1b[K", "\\x1b[1A\\x1b[K"),
            ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
            ("\x1b[?25l", "\\x1b[?25l"),
            ("end\x1b", "end\\x1b"),
            ("\x1b[31", "\\x1b[31"),
            // C1 controls (CSI is U+009B); other U+0080.. characters pass.
            ("a\u{9b}2Jb\u{85}", "a\\u{9b}2Jb\\u{85}"),
            (
                "caf\u{e9} \u{a0}\u{bf} \u{c2}",
                "caf\u{e9} \u{a0}\u{bf} \u{c2}",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(visible(input), want, "{input:?}");
        }
    }

    #[test]
    fn text_line_escapes_but_json_keeps_its_own_escaping() {
        let f = LineFormat::new(
            Format::Text { color: false },
            5,
            src("web", Some(1), Some(4), Stream::Stdout),
        );
        assert_eq!(
            text(&f, b"\rhidden\x1b[2K", false),
            "web.1 | \\rhidden\\x1b[2K\n"
        );
        let j = LineFormat::new(
            Format::Json,
            0,
            src("web", Some(1), Some(4), Stream::Stdout),
        );
        assert_eq!(
            text(&j, b"\r\x1b[2K", false),
            r#"{"time":"1970-01-01T00:00:00.000Z","process":"web","instance":1,"pid":4,"stream":"stdout","message":"\r\u001b[2K"}"#.to_owned() + "\n"
        );
    }

    fn event(fmt: &LineFormat, msg: &str, tone: Tone) -> String {
        let mut out = Vec::new();
        fmt.write_event(&mut out, msg, tone);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn event_tones_exact_bytes() {
        let c = color::color_for("web");
        let f = LineFormat::new(
            Format::Text { color: true },
            5,
            src("web", Some(1), Some(4), Stream::Event),
        );
        assert_eq!(
            event(&f, "FAILED: exited with code 1", Tone::Bad),
            format!("\x1b[{c}mweb.1 |\x1b[0m \x1b[31mFAILED: exited with code 1\x1b[0m\n")
        );
        assert_eq!(
            event(&f, "restarting in 1.00s (restart 1)", Tone::Warn),
            format!("\x1b[{c}mweb.1 |\x1b[0m \x1b[33mrestarting in 1.00s (restart 1)\x1b[0m\n")
        );
        assert_eq!(
            event(&f, "ready", Tone::Good),
            format!("\x1b[{c}mweb.1 |\x1b[0m \x1b[32mready\x1b[0m\n")
        );
        assert_eq!(
            event(&f, "spawned (pid 4)", Tone::Plain),
            format!("\x1b[{c}mweb.1 |\x1b[0m spawned (pid 4)\n")
        );
        // Each line of a multi-line event gets the tone.
        assert_eq!(
            event(&f, "a\nb", Tone::Bad),
            format!("\x1b[{c}mweb.1 |\x1b[0m \x1b[31ma\x1b[0m\n\x1b[{c}mweb.1 |\x1b[0m \x1b[31mb\x1b[0m\n")
        );
        let p = LineFormat::new(
            Format::Text { color: true },
            10,
            src("prodserver", None, None, Stream::Event),
        );
        assert_eq!(
            event(&p, "exiting with code 1", Tone::Bad),
            "\x1b[1mprodserver |\x1b[0m \x1b[31mexiting with code 1\x1b[0m\n"
        );
        // Colour off: no escape at all, whatever the tone.
        let n = LineFormat::new(
            Format::Text { color: false },
            5,
            src("web", Some(1), Some(4), Stream::Event),
        );
        for tone in [Tone::Plain, Tone::Good, Tone::Warn, Tone::Bad] {
            assert_eq!(event(&n, "FAILED: x", tone), "web.1 | FAILED: x\n");
        }
        // JSON: unchanged by the tone.
        let mut j = LineFormat::new(Format::Json, 0, src("web", Some(1), Some(4), Stream::Event));
        j.set_time(UNIX_EPOCH + Duration::from_millis(1));
        assert_eq!(
            event(&j, "FAILED: x", Tone::Bad),
            r#"{"time":"1970-01-01T00:00:00.001Z","process":"web","instance":1,"pid":4,"stream":"event","message":"FAILED: x"}"#.to_owned() + "\n"
        );
    }

    #[test]
    fn timestamps_start_every_text_line() {
        let t = UNIX_EPOCH + Duration::from_millis(1_764_630_085_123);
        let mut f = LineFormat::with_timestamps(
            Format::Text { color: false },
            5,
            true,
            src("web", Some(1), Some(4), Stream::Stdout),
        );
        f.set_time(t);
        assert_eq!(
            text(&f, b"hello", false),
            "2025-12-01T23:01:25.123Z web.1 | hello\n"
        );
        assert_eq!(text(&f, b"", true), "2025-12-01T23:01:25.123Z web.1+|\n");
        let c = color::color_for("web");
        let mut f = LineFormat::with_timestamps(
            Format::Text { color: true },
            5,
            true,
            src("web", Some(1), Some(4), Stream::Event),
        );
        f.set_time(t);
        assert_eq!(
            event(&f, "ready", Tone::Good),
            format!("2025-12-01T23:01:25.123Z \x1b[{c}mweb.1 |\x1b[0m \x1b[32mready\x1b[0m\n")
        );
        // Without the flag, no time even after set_time.
        let mut f = LineFormat::new(
            Format::Text { color: false },
            5,
            src("web", Some(1), Some(4), Stream::Stdout),
        );
        f.set_time(t);
        assert_eq!(text(&f, b"hello", false), "web.1 | hello\n");
        // JSON already has `time`: the flag adds nothing.
        let mut j = LineFormat::with_timestamps(
            Format::Json,
            0,
            true,
            src("web", Some(1), Some(4), Stream::Stdout),
        );
        j.set_time(t);
        assert_eq!(
            text(&j, b"x", false),
            r#"{"time":"2025-12-01T23:01:25.123Z","process":"web","instance":1,"pid":4,"stream":"stdout","message":"x"}"#.to_owned() + "\n"
        );
    }

    #[test]
    fn journald_priorities_prefix_warnings_and_errors() {
        let f = LineFormat::new(
            Format::Text { color: false },
            10,
            src("prodserver", None, None, Stream::Event),
        )
        .with_priorities(true);
        assert_eq!(
            event(&f, "a\nb", Tone::Warn),
            "<4>prodserver | a\n<4>prodserver | b\n",
            "every line of a multi-line warning"
        );
        assert_eq!(
            event(&f, "FAILED: x", Tone::Bad),
            "<3>prodserver | FAILED: x\n"
        );
        assert_eq!(event(&f, "ready", Tone::Good), "prodserver | ready\n");
        assert_eq!(event(&f, "spawned", Tone::Plain), "prodserver | spawned\n");
        // A child's own line never gets one, whatever it starts with.
        let w = LineFormat::new(
            Format::Text { color: false },
            5,
            src("web", Some(1), Some(4), Stream::Stderr),
        )
        .with_priorities(true);
        assert_eq!(text(&w, b"<3>oops", false), "web.1 | <3>oops\n");
        // Off by default; JSON is never prefixed.
        let plain = LineFormat::new(
            Format::Text { color: false },
            10,
            src("prodserver", None, None, Stream::Event),
        );
        assert_eq!(event(&plain, "x", Tone::Bad), "prodserver | x\n");
        let mut j = LineFormat::new(Format::Json, 0, src("web", Some(1), Some(4), Stream::Event))
            .with_priorities(true);
        j.set_time(UNIX_EPOCH);
        assert!(event(&j, "x", Tone::Bad).starts_with("{\"time\""));
    }
}
