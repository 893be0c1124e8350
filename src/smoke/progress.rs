//! What smoke shows while it waits: on a terminal one live line per
//! process, redrawn in place; elsewhere (CI) a plain line each time a
//! process's state changes (`smoke: web ready in 2.3s`).

use std::time::Duration;

use super::decide::{seconds, ProcState};

/// One process's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub state: ProcState,
    /// When it became ready, completed or failed (since smoke started).
    pub settled_at: Option<Duration>,
}

/// The rows and what the terminal currently shows of them.
#[derive(Debug, Clone)]
pub struct Progress {
    pub rows: Vec<Row>,
    /// Lines drawn by the last [`Progress::redraw`], to move back over.
    drawn: usize,
}

impl Progress {
    pub fn new(names: &[String]) -> Progress {
        Progress {
            rows: names
                .iter()
                .map(|n| Row {
                    name: n.clone(),
                    state: ProcState::Waiting("waiting".into()),
                    settled_at: None,
                })
                .collect(),
            drawn: 0,
        }
    }

    /// Takes the new states (in row order) seen at `elapsed`; returns a
    /// plain line for each row whose state changed.
    pub fn update(&mut self, states: &[ProcState], elapsed: Duration) -> Vec<String> {
        let mut lines = Vec::new();
        for (row, state) in self.rows.iter_mut().zip(states) {
            if row.state == *state {
                continue;
            }
            row.state = state.clone();
            row.settled_at = match state {
                ProcState::Waiting(_) => None,
                _ => Some(elapsed),
            };
            lines.push(plain_line(row, elapsed));
        }
        lines
    }

    /// The live block for a terminal: back over the previous drawing,
    /// then every row, each on a cleared line.
    pub fn redraw(&mut self, elapsed: Duration) -> String {
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", self.drawn));
        }
        let width = self.rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
        for row in &self.rows {
            out.push_str("\r\x1b[2K");
            out.push_str(&live_line(row, width, elapsed));
            out.push('\n');
        }
        self.drawn = self.rows.len();
        out
    }
}

/// `smoke: web ready in 2.3s`, `smoke: web starting`.
pub fn plain_line(row: &Row, elapsed: Duration) -> String {
    let name = &row.name;
    match &row.state {
        ProcState::Waiting(what) => format!("smoke: {name} {what}"),
        ProcState::Ready => format!("smoke: {name} ready in {}", seconds(elapsed)),
        ProcState::Completed => format!("smoke: {name} completed in {}", seconds(elapsed)),
        ProcState::Failed(what) => {
            format!("smoke: {name} FAILED after {}: {what}", seconds(elapsed))
        }
    }
}

/// `  web      ready      2.3s`: a settled row keeps its time, a waiting
/// one counts on.
pub fn live_line(row: &Row, width: usize, elapsed: Duration) -> String {
    let (mark, time) = match (&row.state, row.settled_at) {
        (ProcState::Ready | ProcState::Completed, Some(at)) => ("✓", at),
        (ProcState::Failed(_), Some(at)) => ("✗", at),
        _ => ("…", elapsed),
    };
    format!(
        "{mark} {:width$}  {:<24} {}",
        row.name,
        row.state.describe(),
        seconds(time)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn only_changes_make_plain_lines() {
        let mut p = Progress::new(&["web".into(), "migrate".into()]);
        let starting = ProcState::Waiting("starting".into());
        let lines = p.update(&[starting.clone(), ProcState::Completed], ms(400));
        assert_eq!(
            lines,
            vec!["smoke: web starting", "smoke: migrate completed in 0.4s"]
        );
        assert!(p
            .update(&[starting, ProcState::Completed], ms(500))
            .is_empty());
        let lines = p.update(&[ProcState::Ready, ProcState::Completed], ms(2300));
        assert_eq!(lines, vec!["smoke: web ready in 2.3s"]);
        let lines = p.update(
            &[
                ProcState::Failed("web.1 failed".into()),
                ProcState::Completed,
            ],
            ms(3000),
        );
        assert_eq!(lines, vec!["smoke: web FAILED after 3.0s: web.1 failed"]);
    }

    #[test]
    fn the_live_block_redraws_in_place_and_settled_rows_keep_their_time() {
        let mut p = Progress::new(&["web".into(), "worker".into()]);
        p.update(
            &[ProcState::Ready, ProcState::Waiting("running".into())],
            ms(1200),
        );
        let first = p.redraw(ms(1500));
        assert!(!first.contains("\x1b[2A"), "nothing to move over yet");
        assert!(first.contains("✓ web     ready"), "{first:?}");
        assert!(first.contains("1.2s"));
        assert!(first.contains("… worker  running"));
        assert!(first.contains("1.5s"));
        let second = p.redraw(ms(1600));
        assert!(second.starts_with("\x1b[2A"), "{second:?}");
        assert_eq!(second.matches("\r\x1b[2K").count(), 2);
    }
}
