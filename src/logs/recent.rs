//! The last few lines of each process instance, for "oneshot `migrate`
//! failed; its last lines were: ...".
//!
//! Cheap on the hot path: a pump copies each line (at most
//! [`MAX_LINE_BYTES`]) into a small local ring of reused buffers, and only
//! once per chunk read takes the shared lock to publish the lines that are
//! new since the last publish. Both streams of an instance share one list,
//! in the order their chunks were read.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Lines kept per instance.
pub const KEEP_LINES: usize = 20;
/// Bytes kept per line; a longer line is cut and ends in `…`.
pub const MAX_LINE_BYTES: usize = 2048;

/// Per-pump ring of the last lines, in raw bytes.
#[derive(Debug, Default)]
pub struct LocalRing {
    /// (bytes, truncated); grows to `KEEP_LINES`, then slots are reused.
    slots: Vec<(Vec<u8>, bool)>,
    /// Slot the next line goes to once the ring is full.
    next: usize,
    /// Lines pushed since the last publish (capped at `KEEP_LINES`).
    fresh: usize,
}

impl LocalRing {
    pub fn push(&mut self, line: &[u8]) {
        let keep = keep_len(line);
        let i = if self.slots.len() < KEEP_LINES {
            self.slots.push((Vec::new(), false));
            self.slots.len() - 1
        } else {
            self.next
        };
        let slot = &mut self.slots[i];
        slot.0.clear();
        slot.0.extend_from_slice(&line[..keep]);
        slot.1 = keep < line.len();
        self.next = (i + 1) % KEEP_LINES;
        self.fresh = (self.fresh + 1).min(KEEP_LINES);
    }

    /// The `fresh` newest lines, oldest first, as text.
    fn take_fresh(&mut self) -> impl Iterator<Item = String> + '_ {
        let n = std::mem::take(&mut self.fresh);
        let len = self.slots.len();
        // `next` is one past the newest line.
        let newest_end = if len < KEEP_LINES {
            len
        } else {
            self.next + len
        };
        (newest_end - n..newest_end).map(move |i| {
            let (bytes, truncated) = &self.slots[i % len];
            let mut s = String::from_utf8_lossy(bytes).into_owned();
            if *truncated {
                s.push('…');
            }
            s
        })
    }

    /// Moves the lines pushed since the last call into `store`.
    pub fn publish(&mut self, store: &RecentStore, process: &str, instance: u32, pid: u32) {
        if self.fresh == 0 {
            return;
        }
        let mut map = store.lock();
        let entry = store_entry(&mut map, process, instance, pid);
        entry.lines.extend(self.take_fresh());
        while entry.lines.len() > KEEP_LINES {
            entry.lines.pop_front();
        }
    }
}

/// Bytes of `line` to keep: at most `MAX_LINE_BYTES`, backed off so that a
/// valid multi-byte character is not cut in half.
fn keep_len(line: &[u8]) -> usize {
    if line.len() <= MAX_LINE_BYTES {
        line.len()
    } else {
        super::lines::cut_point(line, MAX_LINE_BYTES)
    }
}

#[derive(Debug, Default)]
struct Recent {
    pid: u32,
    lines: VecDeque<String>,
}

/// Shared map (process, instance) → last lines of its latest pid.
#[derive(Debug, Default)]
pub struct RecentStore {
    map: Mutex<HashMap<(String, u32), Recent>>,
}

/// Gets the entry for `pid`, clearing lines left by an earlier pid of the
/// same instance (a restarted instance must not show its predecessor's
/// output as its own).
fn store_entry<'m>(
    map: &'m mut HashMap<(String, u32), Recent>,
    process: &str,
    instance: u32,
    pid: u32,
) -> &'m mut Recent {
    let entry = map.entry((process.to_owned(), instance)).or_default();
    if entry.pid != pid {
        entry.pid = pid;
        entry.lines.clear();
    }
    entry
}

impl RecentStore {
    /// Same poisoning policy as the writer queue: plain data, recover.
    fn lock(&self) -> MutexGuard<'_, HashMap<(String, u32), Recent>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Called when a pump starts, so that a new pid starts with no lines.
    pub fn begin(&self, process: &str, instance: u32, pid: u32) {
        store_entry(&mut self.lock(), process, instance, pid);
    }

    /// Up to `KEEP_LINES` last lines, oldest first.
    pub fn last_lines(&self, process: &str, instance: u32) -> Vec<String> {
        self.lock()
            .get(&(process.to_owned(), instance))
            .map(|r| r.lines.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_all(ring: &mut LocalRing, lines: impl IntoIterator<Item = String>) {
        for l in lines {
            ring.push(l.as_bytes());
        }
    }

    #[test]
    fn keeps_last_lines_across_publishes() {
        let store = RecentStore::default();
        let mut ring = LocalRing::default();
        store.begin("m", 1, 10);
        assert!(store.last_lines("m", 1).is_empty());
        push_all(&mut ring, (0..3).map(|i| format!("l{i}")));
        ring.publish(&store, "m", 1, 10);
        assert_eq!(store.last_lines("m", 1), ["l0", "l1", "l2"]);
        // Many more than KEEP_LINES in one go, then a few more.
        push_all(&mut ring, (3..50).map(|i| format!("l{i}")));
        ring.publish(&store, "m", 1, 10);
        let want: Vec<String> = (30..50).map(|i| format!("l{i}")).collect();
        assert_eq!(store.last_lines("m", 1), want);
        push_all(&mut ring, (50..55).map(|i| format!("l{i}")));
        ring.publish(&store, "m", 1, 10);
        ring.publish(&store, "m", 1, 10); // nothing new: no change
        let want: Vec<String> = (35..55).map(|i| format!("l{i}")).collect();
        assert_eq!(store.last_lines("m", 1), want);
        assert!(store.last_lines("m", 2).is_empty());
    }

    #[test]
    fn every_fill_level_publishes_in_order() {
        for first in 0..45usize {
            for second in 0..45 {
                let store = RecentStore::default();
                let mut ring = LocalRing::default();
                push_all(&mut ring, (0..first).map(|i| i.to_string()));
                ring.publish(&store, "p", 1, 1);
                push_all(&mut ring, (first..first + second).map(|i| i.to_string()));
                ring.publish(&store, "p", 1, 1);
                let total = first + second;
                let want: Vec<String> = (total.saturating_sub(KEEP_LINES)..total)
                    .map(|i| i.to_string())
                    .collect();
                assert_eq!(store.last_lines("p", 1), want, "{first} then {second}");
            }
        }
    }

    #[test]
    fn new_pid_starts_empty() {
        let store = RecentStore::default();
        let mut ring = LocalRing::default();
        ring.push(b"old");
        ring.publish(&store, "m", 1, 10);
        store.begin("m", 1, 11);
        assert!(store.last_lines("m", 1).is_empty());
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let store = RecentStore::default();
        let mut ring = LocalRing::default();
        let mut line = "a".repeat(MAX_LINE_BYTES - 1);
        line.push('é');
        ring.push(line.as_bytes());
        ring.push(b"\xffok");
        ring.publish(&store, "m", 1, 1);
        let got = store.last_lines("m", 1);
        assert_eq!(got[0], format!("{}…", "a".repeat(MAX_LINE_BYTES - 1)));
        assert_eq!(got[1], "\u{fffd}ok");
    }
}
