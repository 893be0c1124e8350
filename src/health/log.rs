//! The `log` probe: ready when an output line matches a pattern.
//!
//! The engine compiles the pattern once per process ([`compile`]) and, at
//! each spawn, hands both pumps of the instance one [`line_hook`] that calls
//! back on the first matching line, then stops looking (the pumps drop it,
//! so later output costs nothing).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use regex::bytes::{Regex, RegexBuilder};

use crate::logs::LineHook;

/// Bounds on the compiled pattern and its lazy DFA: a supervisor meant to
/// take a few MiB does not give one probe tens of them.
const SIZE_LIMIT: usize = 1 << 20;

/// Compiles `log = "..."` (Rust regex syntax, matched anywhere in a line,
/// against raw bytes; a line longer than 64 KiB is matched piece by piece).
pub fn compile(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| format!("`log` pattern {pattern:?}: {e}"))
}

/// A hook for `Logs::pump_with_hook` that calls `on_match` once, at the
/// first line `regex` matches, whichever of the instance's streams it comes
/// from (share one hook between stdout and stderr).
pub fn line_hook(regex: Regex, on_match: impl Fn() + Send + Sync + 'static) -> LineHook {
    let fired = AtomicBool::new(false);
    Arc::new(move |line: &[u8]| {
        if fired.load(Ordering::Relaxed) {
            return false;
        }
        if !regex.is_match(line) {
            return true;
        }
        if !fired.swap(true, Ordering::AcqRel) {
            on_match();
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn fires_once_then_lets_go() {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let hook = line_hook(compile(r"Listening at: http://\S+").unwrap(), move || {
            h.fetch_add(1, Ordering::SeqCst);
        });
        let other = hook.clone();
        assert!(hook(b"[INFO] Starting gunicorn 25.0.0"));
        assert!(!hook(b"[INFO] Listening at: http://127.0.0.1:8000 (1)"));
        // The other stream's pump shares it: done there too.
        assert!(!other(b"Listening at: http://x"));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn bytes_that_are_not_utf8_still_match_around() {
        let hit = Arc::new(AtomicBool::new(false));
        let h = hit.clone();
        let hook = line_hook(compile("ready").unwrap(), move || {
            h.store(true, Ordering::SeqCst)
        });
        assert!(!hook(b"\xff\xfe ready \xff"));
        assert!(hit.load(Ordering::SeqCst));
    }

    #[test]
    fn bad_patterns_say_where() {
        let err = compile("(unclosed").unwrap_err();
        assert!(err.starts_with("`log` pattern \"(unclosed\": "), "{err}");
        assert!(compile("a{1000}{1000}").is_err(), "too big");
    }
}
