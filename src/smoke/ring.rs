//! The last lines of every instance, kept by the output itself.
//!
//! smoke owns the writer the log stream is written to ([`Tee`]): it sees
//! every line, in the order it is written, including prodserver's events
//! about the instance (spawned, exited, unhealthy), which is what a CI
//! reader needs next to the program's own words. The log layer's own ring
//! keeps fewer lines; a subscriber of the stream may lose chunks.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

/// Lines kept per label.
pub const KEEP: usize = 50;

/// Per label (`web.1`, `prodserver`), its last [`KEEP`] lines.
#[derive(Debug, Clone, Default)]
pub struct Rings {
    inner: Arc<Mutex<HashMap<String, VecDeque<String>>>>,
}

impl Rings {
    /// Files one rendered text line (`web.1   | message`) under its label;
    /// a line without a label is not ours and is skipped.
    pub fn push_line(&self, line: &str) {
        let Some((label, message)) = split(line) else {
            return;
        };
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let ring = map.entry(label.to_string()).or_default();
        if ring.len() == KEEP {
            ring.pop_front();
        }
        ring.push_back(message.to_string());
    }

    /// The last lines of `label`, oldest first.
    pub fn last(&self, label: &str) -> Vec<String> {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(label)
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// `web.1   | message` → (`web.1`, `message`); a continuation piece
/// (`web.1   +| rest`) is a line of its own here.
fn split(line: &str) -> Option<(&str, &str)> {
    let (label, rest) = line.split_once(' ')?;
    let rest = rest.trim_start_matches(' ');
    let message = rest.strip_prefix("+|").or_else(|| rest.strip_prefix('|'))?;
    Some((label, message.strip_prefix(' ').unwrap_or(message)))
}

/// The log stream's output: every line goes into [`Rings`], and on to
/// `forward` when there is one (CI shows the stream; a terminal shows the
/// live progress instead).
pub struct Tee<W> {
    rings: Rings,
    forward: Option<W>,
    partial: Vec<u8>,
}

impl<W: Write> Tee<W> {
    pub fn new(rings: Rings, forward: Option<W>) -> Tee<W> {
        Tee {
            rings,
            forward,
            partial: Vec::new(),
        }
    }
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Forwarded first, whole: a failing output is the writer's to
        // report, and the rings must not see a line twice on a retry.
        if let Some(out) = &mut self.forward {
            out.write_all(buf)?;
        }
        self.partial.extend_from_slice(buf);
        let mut start = 0;
        while let Some(end) = memchr::memchr(b'\n', &self.partial[start..]) {
            let line = &self.partial[start..start + end];
            self.rings.push_line(&String::from_utf8_lossy(line));
            start += end + 1;
        }
        self.partial.drain(..start);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.forward {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_filed_by_label_and_only_the_last_are_kept() {
        let rings = Rings::default();
        let mut out = Vec::new();
        {
            let mut tee = Tee::new(rings.clone(), Some(&mut out));
            tee.write_all(b"web.1      | hello\nworker.1   | a\nweb.1      +| cont")
                .unwrap();
            tee.write_all(b"inued\nprodserver | exit summary:\nno label here\n")
                .unwrap();
            for i in 0..KEEP + 5 {
                tee.write_all(format!("worker.1 | line {i}\n").as_bytes())
                    .unwrap();
            }
        }
        assert!(out.starts_with(b"web.1      | hello\n"));
        assert_eq!(rings.last("web.1"), vec!["hello", "continued"]);
        assert_eq!(rings.last("prodserver"), vec!["exit summary:"]);
        let worker = rings.last("worker.1");
        assert_eq!(worker.len(), KEEP);
        assert_eq!(worker[0], "line 5");
        assert_eq!(worker[KEEP - 1], format!("line {}", KEEP + 4));
        assert!(rings.last("nope").is_empty());
    }

    #[test]
    fn an_empty_line_keeps_its_place() {
        let rings = Rings::default();
        let mut tee = Tee::new(rings.clone(), None::<Vec<u8>>);
        tee.write_all(b"web.1 |\nweb.1 | x\n").unwrap();
        assert_eq!(rings.last("web.1"), vec!["", "x"]);
    }
}
