//! Trailing-edge debouncing of changed paths: a burst of saves (an
//! editor's temp file and rename, a formatter rewriting ten files, `git
//! checkout`) becomes one batch once the tree has been quiet for `window`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Debouncer {
    window: Duration,
    /// In first-seen order is not needed: the batch is reported sorted, so
    /// the log line names the same file for the same burst.
    pending: BTreeSet<PathBuf>,
    /// The first path of the burst, named first in the log line.
    first: Option<PathBuf>,
    last: Option<Instant>,
}

impl Debouncer {
    pub fn new(window: Duration) -> Debouncer {
        Debouncer {
            window,
            pending: BTreeSet::new(),
            first: None,
            last: None,
        }
    }

    /// A change seen at `now`: the burst's deadline moves to `now + window`.
    pub fn push(&mut self, now: Instant, path: PathBuf) {
        if self.first.is_none() {
            self.first = Some(path.clone());
        }
        self.pending.insert(path);
        self.last = Some(now);
    }

    /// When the pending burst is due, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.last.map(|t| t + self.window)
    }

    /// The burst, once quiet for the whole window: its first path, then
    /// the others in order. `None` while changes are still arriving.
    pub fn take(&mut self, now: Instant) -> Option<Vec<PathBuf>> {
        if self.deadline()? > now {
            return None;
        }
        self.last = None;
        let first = self.first.take()?;
        let mut batch = vec![first.clone()];
        batch.extend(
            std::mem::take(&mut self.pending)
                .into_iter()
                .filter(|p| *p != first),
        );
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_millis(50);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_pending_has_no_deadline() {
        let mut d = Debouncer::new(W);
        assert_eq!(d.deadline(), None);
        assert_eq!(d.take(Instant::now()), None);
    }

    #[test]
    fn one_change_is_due_a_window_after_it() {
        let t = Instant::now();
        let mut d = Debouncer::new(W);
        d.push(t, "a.py".into());
        assert_eq!(d.deadline(), Some(t + W));
        assert_eq!(d.take(t + ms(49)), None);
        assert_eq!(d.take(t + W), Some(vec![PathBuf::from("a.py")]));
        assert_eq!(d.deadline(), None);
    }

    #[test]
    fn a_burst_is_one_batch_due_after_its_last_change() {
        let t = Instant::now();
        let mut d = Debouncer::new(W);
        // 20 edits in 100 ms, 5 ms apart: never quiet for 50 ms.
        for i in 0..20u64 {
            let now = t + ms(i * 5);
            assert_eq!(d.take(now), None);
            d.push(now, format!("f{}.py", 19 - i).into());
        }
        let last = t + ms(95);
        assert_eq!(d.deadline(), Some(last + W));
        assert_eq!(d.take(last + ms(49)), None);
        let batch = d.take(last + W).unwrap();
        assert_eq!(batch.len(), 20);
        // The first saved file leads; the rest are sorted.
        assert_eq!(batch[0], PathBuf::from("f19.py"));
        assert_eq!(batch[1], PathBuf::from("f0.py"));
    }

    #[test]
    fn the_same_path_twice_is_reported_once() {
        let t = Instant::now();
        let mut d = Debouncer::new(W);
        d.push(t, "a.py".into());
        d.push(t + ms(10), "a.py".into());
        assert_eq!(d.take(t + ms(60)), Some(vec![PathBuf::from("a.py")]));
    }

    #[test]
    fn after_a_batch_the_next_change_starts_a_new_burst() {
        let t = Instant::now();
        let mut d = Debouncer::new(W);
        d.push(t, "a.py".into());
        d.take(t + W).unwrap();
        d.push(t + ms(200), "b.py".into());
        assert_eq!(d.take(t + ms(200) + W), Some(vec![PathBuf::from("b.py")]));
    }
}
