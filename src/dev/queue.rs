//! One restart per process at a time: a change that arrives while the
//! process is restarting waits, and every change that waits is one more
//! restart once the current one is done (its reason the latest).

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Queue {
    /// Processes being restarted, with the reason of the restart that
    /// waits for them, if any.
    busy: BTreeMap<String, Option<String>>,
}

impl Queue {
    /// A restart is wanted: `Some(reason)` to send now, `None` when it
    /// waits for the current one.
    pub fn want(&mut self, process: &str, reason: String) -> Option<String> {
        match self.busy.get_mut(process) {
            Some(waiting) => {
                *waiting = Some(reason);
                None
            }
            None => {
                self.busy.insert(process.to_string(), None);
                Some(reason)
            }
        }
    }

    /// The restart of `process` is done (or failed): the one waiting, to
    /// send now, if any.
    pub fn done(&mut self, process: &str) -> Option<String> {
        match self.busy.get_mut(process) {
            Some(waiting @ Some(_)) => waiting.take(),
            Some(None) => {
                self.busy.remove(process);
                None
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_process_restarts_at_once() {
        let mut q = Queue::default();
        assert_eq!(
            q.want("web", "a.py changed".into()),
            Some("a.py changed".into())
        );
        assert_eq!(q.done("web"), None);
        assert_eq!(
            q.want("web", "b.py changed".into()),
            Some("b.py changed".into())
        );
    }

    #[test]
    fn changes_during_a_restart_coalesce_into_one_more() {
        let mut q = Queue::default();
        q.want("web", "a.py changed".into());
        assert_eq!(q.want("web", "b.py changed".into()), None);
        assert_eq!(q.want("web", "c.py changed".into()), None);
        assert_eq!(q.done("web"), Some("c.py changed".into()));
        // That one is now running; nothing more waits.
        assert_eq!(q.done("web"), None);
        assert_eq!(
            q.want("web", "d.py changed".into()),
            Some("d.py changed".into())
        );
    }

    #[test]
    fn processes_are_independent() {
        let mut q = Queue::default();
        q.want("web", "a".into());
        assert_eq!(q.want("worker", "b".into()), Some("b".into()));
        assert_eq!(q.done("worker"), None);
        assert_eq!(q.want("web", "c".into()), None);
    }
}
