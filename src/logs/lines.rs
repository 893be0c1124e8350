//! Splitting a byte stream into log lines: pure, no I/O.
//!
//! Theory of operation: bytes arrive in arbitrary chunks. [`LineSplitter`]
//! hands out each complete line (without its `\n`, and without the `\r` of a
//! `\r\n`) as a slice borrowed from the chunk whenever the line lies wholly
//! inside it, so the common case copies nothing. Only a line that straddles
//! two chunks is gathered in `carry`. A line longer than `max` bytes is cut
//! into pieces of at most `max` bytes; every piece after the first is marked
//! `continued`. The cut backs off to a UTF-8 character boundary when a valid
//! multi-byte character straddles it, so valid text is never mangled by a cut.
//!
//! Memory: `carry` holds less than `max + LOOKAHEAD` bytes plus at most one
//! chunk, because an over-long partial line is emitted as soon as enough
//! bytes have arrived to place the cut.

/// Bytes beyond the cut that must have arrived before a partial line is cut:
/// enough to see a whole multi-byte character (at most 4 bytes) that starts
/// before the cut, and to see whether a trailing `\r` is followed by `\n`
/// (a line of exactly `max` bytes plus `\r\n` is not cut).
const LOOKAHEAD: usize = 4;

/// One line, or one piece of an over-long line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// The raw bytes, without the line terminator. May be invalid UTF-8.
    pub bytes: &'a [u8],
    /// True for every piece of a split line after the first.
    pub continued: bool,
}

/// Incremental line splitter. See the module docs.
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    /// A line started in an earlier chunk and not yet emitted in full.
    carry: Vec<u8>,
    /// `carry` holds a complete line (its terminator has been seen and
    /// removed) that is still being emitted.
    carry_complete: bool,
    /// Bytes at the front of `carry` that were handed out by the previous
    /// call: removed at the start of the next call, because the caller was
    /// still borrowing them.
    carry_emitted: usize,
    /// The next piece continues a line that has already been cut.
    continued: bool,
}

impl LineSplitter {
    /// `max` is the longest piece handed out, in bytes (at least 4, so a
    /// piece can hold any character).
    pub fn new(max: usize) -> Self {
        LineSplitter {
            max: max.max(LOOKAHEAD),
            carry: Vec::new(),
            carry_complete: false,
            carry_emitted: 0,
            continued: false,
        }
    }

    /// Returns the next line or piece, advancing `input` past what was
    /// consumed; `None` once `input` is used up (a trailing partial line is
    /// kept for the next call or for [`finish`](Self::finish)). Call until it
    /// returns `None` before reading the next chunk.
    pub fn next_line<'a, 'b: 'a>(&'a mut self, input: &mut &'b [u8]) -> Option<Line<'a>> {
        self.reclaim();
        if !self.carry_complete {
            if self.carry.is_empty() {
                return self.next_from_input(input);
            }
            match memchr::memchr(b'\n', input) {
                Some(i) => {
                    self.carry.extend_from_slice(&input[..i]);
                    *input = &input[i + 1..];
                    if self.carry.last() == Some(&b'\r') {
                        self.carry.pop();
                    }
                    self.carry_complete = true;
                }
                None => {
                    self.carry.extend_from_slice(input);
                    *input = &[];
                    if self.carry.len() < self.max + LOOKAHEAD {
                        return None;
                    }
                    return Some(self.emit_carry_piece());
                }
            }
        }
        Some(self.emit_complete_carry())
    }

    /// Flushes what is left at end of stream: the partial last line (a line
    /// without a final newline is still a line). Call until it returns `None`.
    pub fn finish(&mut self) -> Option<Line<'_>> {
        self.reclaim();
        if !self.carry_complete {
            if self.carry.is_empty() {
                return None;
            }
            self.carry_complete = true;
        }
        Some(self.emit_complete_carry())
    }

    fn reclaim(&mut self) {
        if self.carry_emitted > 0 {
            self.carry.drain(..self.carry_emitted);
            self.carry_emitted = 0;
        }
    }

    /// Zero-copy path: `carry` is empty, so a line that ends inside `input`
    /// is borrowed from it directly.
    fn next_from_input<'b>(&mut self, input: &mut &'b [u8]) -> Option<Line<'b>> {
        let data: &'b [u8] = input;
        match memchr::memchr(b'\n', data) {
            Some(i) => {
                let end = if i > 0 && data[i - 1] == b'\r' {
                    i - 1
                } else {
                    i
                };
                if end > self.max {
                    let cut = cut_point(&data[..end], self.max);
                    *input = &data[cut..];
                    Some(self.piece(&data[..cut], true))
                } else {
                    *input = &data[i + 1..];
                    Some(self.piece(&data[..end], false))
                }
            }
            None if data.len() >= self.max + LOOKAHEAD => {
                let cut = cut_point(data, self.max);
                *input = &data[cut..];
                Some(self.piece(&data[..cut], true))
            }
            None => {
                self.carry.extend_from_slice(data);
                *input = &[];
                None
            }
        }
    }

    /// `carry` is a partial line long enough to cut.
    fn emit_carry_piece(&mut self) -> Line<'_> {
        let cut = cut_point(&self.carry, self.max);
        self.carry_emitted = cut;
        let continued = std::mem::replace(&mut self.continued, true);
        Line {
            bytes: &self.carry[..cut],
            continued,
        }
    }

    /// `carry` is a complete line: hand out its next piece.
    fn emit_complete_carry(&mut self) -> Line<'_> {
        let (end, more) = if self.carry.len() > self.max {
            (cut_point(&self.carry, self.max), true)
        } else {
            (self.carry.len(), false)
        };
        self.carry_emitted = end;
        if !more {
            self.carry_complete = false;
        }
        let continued = std::mem::replace(&mut self.continued, more);
        Line {
            bytes: &self.carry[..end],
            continued,
        }
    }

    fn piece<'b>(&mut self, bytes: &'b [u8], more: bool) -> Line<'b> {
        let continued = std::mem::replace(&mut self.continued, more);
        Line { bytes, continued }
    }
}

/// Where to cut `line` (longer than `max`) so that the first piece has at
/// most `max` bytes: at `max`, or earlier if a valid multi-byte UTF-8
/// character straddles `max`. Invalid bytes are cut anywhere: they become
/// U+FFFD later either way.
pub(crate) fn cut_point(line: &[u8], max: usize) -> usize {
    let is_continuation = |b: u8| b & 0xC0 == 0x80;
    let Some(&at) = line.get(max) else {
        return line.len().min(max);
    };
    if !is_continuation(at) {
        return max;
    }
    // Walk back over at most 3 continuation bytes to the lead byte.
    let mut start = max;
    while start > 0 && max - start < 3 && is_continuation(line[start]) {
        start -= 1;
    }
    let width = match line[start] {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return max,
    };
    match line.get(start..start + width) {
        // `start > 0`: never return an empty piece.
        Some(ch) if start > 0 && start + width > max && std::str::from_utf8(ch).is_ok() => start,
        _ => max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one by one, then finishes; returns (text, continued).
    fn split(max: usize, chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            let mut rest = *chunk;
            while let Some(l) = s.next_line(&mut rest) {
                out.push((l.bytes.to_vec(), l.continued));
            }
            assert!(rest.is_empty());
        }
        while let Some(l) = s.finish() {
            out.push((l.bytes.to_vec(), l.continued));
        }
        out
    }

    fn plain(lines: &[&str]) -> Vec<(Vec<u8>, bool)> {
        lines
            .iter()
            .map(|l| (l.as_bytes().to_vec(), false))
            .collect()
    }

    /// Every way of cutting `data` into two chunks gives the same lines.
    fn all_two_chunk_splits(max: usize, data: &[u8]) -> Vec<(Vec<u8>, bool)> {
        let whole = split(max, &[data]);
        for i in 0..=data.len() {
            assert_eq!(split(max, &[&data[..i], &data[i..]]), whole, "cut at {i}");
        }
        let bytewise: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(split(max, &bytewise), whole, "byte by byte");
        whole
    }

    #[test]
    fn simple_lines_and_empty_lines_kept() {
        assert_eq!(
            all_two_chunk_splits(64, b"a\n\nbc\n\n"),
            plain(&["a", "", "bc", ""])
        );
    }

    #[test]
    fn no_newline_is_flushed_at_finish() {
        assert_eq!(all_two_chunk_splits(64, b"abc"), plain(&["abc"]));
        assert_eq!(all_two_chunk_splits(64, b"x\nabc"), plain(&["x", "abc"]));
        assert_eq!(split(64, &[]), plain(&[]));
        assert_eq!(split(64, &[b""]), plain(&[]));
    }

    #[test]
    fn crlf_is_stripped_lone_cr_kept() {
        assert_eq!(
            all_two_chunk_splits(64, b"a\r\nb\rc\r\n\r\n"),
            plain(&["a", "b\rc", ""])
        );
        // A trailing CR at end of stream is not part of a CRLF: kept.
        assert_eq!(split(64, &[b"a\r"]), plain(&["a\r"]));
    }

    #[test]
    fn partial_line_across_chunks() {
        assert_eq!(
            split(64, &[b"hel", b"lo\nwor", b"", b"ld\n"]),
            plain(&["hello", "world"])
        );
    }

    const K64: usize = 64 * 1024;

    #[test]
    fn exactly_max_is_not_split() {
        let mut data = vec![b'x'; K64];
        data.push(b'\n');
        assert_eq!(split(K64, &[&data]), vec![(vec![b'x'; K64], false)]);
        // Also with CRLF, and without any terminator.
        let mut crlf = vec![b'x'; K64];
        crlf.extend_from_slice(b"\r\n");
        assert_eq!(split(K64, &[&crlf]), vec![(vec![b'x'; K64], false)]);
        assert_eq!(split(K64, &[&data[..K64]]), vec![(vec![b'x'; K64], false)]);
        // Small max, every chunking.
        assert_eq!(
            all_two_chunk_splits(8, b"12345678\r\nab"),
            plain(&["12345678", "ab"])
        );
    }

    #[test]
    fn max_plus_one_is_split_and_marked() {
        let mut data = vec![b'x'; K64 + 1];
        data.push(b'\n');
        data.extend_from_slice(b"next\n");
        assert_eq!(
            split(K64, &[&data]),
            vec![
                (vec![b'x'; K64], false),
                (b"x".to_vec(), true),
                (b"next".to_vec(), false)
            ]
        );
        // Chunked as a pipe would deliver it.
        let chunks: Vec<&[u8]> = data.chunks(4096).collect();
        assert_eq!(split(K64, &chunks), split(K64, &[&data]));
    }

    #[test]
    fn long_line_in_many_pieces() {
        let data = b"abcdefghijklmnopqrstuvwxyz\nz";
        assert_eq!(
            all_two_chunk_splits(8, data),
            vec![
                (b"abcdefgh".to_vec(), false),
                (b"ijklmnop".to_vec(), true),
                (b"qrstuvwx".to_vec(), true),
                (b"yz".to_vec(), true),
                (b"z".to_vec(), false),
            ]
        );
        // Without a newline at all: still cut, last piece flushed at finish.
        let pieces = all_two_chunk_splits(8, &data[..26]);
        assert_eq!(pieces.len(), 4);
        assert!(pieces.iter().skip(1).all(|(_, c)| *c));
    }

    #[test]
    fn multibyte_char_at_boundary_backs_off() {
        // "abcdef" + "é" (2 bytes) straddles max = 7.
        let line = "abcdefé!\n".as_bytes();
        assert_eq!(
            all_two_chunk_splits(7, line),
            vec![
                (b"abcdef".to_vec(), false),
                ("é!".as_bytes().to_vec(), true)
            ]
        );
        // 4-byte char starting 1, 2 and 3 bytes before the cut.
        for lead in 1..=3 {
            let mut s = "x".repeat(8 - lead);
            s.push('😀');
            s.push_str("yz");
            let pieces = all_two_chunk_splits(8, s.as_bytes());
            assert_eq!(
                pieces[0].0,
                "x".repeat(8 - lead).into_bytes(),
                "lead {lead}"
            );
            let joined: Vec<u8> = pieces.iter().flat_map(|(b, _)| b.clone()).collect();
            assert_eq!(joined, s.as_bytes());
            for (p, _) in &pieces {
                assert!(std::str::from_utf8(p).is_ok());
            }
        }
        // At 64 KiB.
        let mut s = "a".repeat(K64 - 1);
        s.push('€'); // 3 bytes, starts at K64 - 1
        s.push('\n');
        let pieces = split(K64, &[s.as_bytes()]);
        assert_eq!(pieces[0].0.len(), K64 - 1);
        assert_eq!(pieces[1], ("€".as_bytes().to_vec(), true));
    }

    #[test]
    fn invalid_utf8_is_cut_at_max() {
        // A lone continuation byte and a truncated sequence: no back-off.
        let data = b"abcdefg\x80\x80\x80xyz\n";
        assert_eq!(split(8, &[data])[0].0, b"abcdefg\x80".to_vec());
        let data = b"abcdef\xe2\x82z\n"; // truncated 3-byte sequence
        assert_eq!(split(8, &[data])[0].0, b"abcdef\xe2\x82".to_vec());
        // Bytes are passed through untouched; replacement is the formatter's job.
        assert_eq!(
            split(64, &[b"\xff\xfe\n"]),
            vec![(b"\xff\xfe".to_vec(), false)]
        );
    }

    #[test]
    fn carry_stays_bounded() {
        let mut s = LineSplitter::new(16);
        let chunk = [b'x'; 10];
        for _ in 0..1000 {
            let mut rest = &chunk[..];
            while s.next_line(&mut rest).is_some() {}
            assert!(s.carry.len() < 16 + LOOKAHEAD + chunk.len());
        }
    }
}
