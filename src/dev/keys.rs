//! Keys on a terminal: `r` restarts everything, `q` quits, a number or a
//! process name followed by Enter restarts that process.
//!
//! The terminal is put in non-canonical mode without echo (keys arrive one
//! by one), but keeps ISIG: Ctrl-C still sends SIGINT, the supervisor's
//! graceful stop. The previous mode is restored when the guard drops, on
//! every exit path that unwinds (a normal stop, any signal the supervisor
//! handles, a panic).

use std::os::fd::AsFd;

use nix::sys::termios::{self, LocalFlags, SetArg, SpecialCharacterIndices, Termios};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    RestartAll,
    Quit,
    /// The Nth process (1-based) of the listing printed at start.
    RestartNth(usize),
    RestartNamed(String),
}

/// Turns keystrokes into [`Key`]s. `r` and `q` act at once when nothing
/// has been typed yet; anything else collects until Enter.
#[derive(Debug, Default)]
pub struct Keys {
    typed: String,
}

impl Keys {
    pub fn feed(&mut self, byte: u8) -> Option<Key> {
        match byte {
            b'\r' | b'\n' => {
                let typed = std::mem::take(&mut self.typed);
                let typed = typed.trim();
                if typed.is_empty() {
                    None
                } else if let Ok(n) = typed.parse::<usize>() {
                    Some(Key::RestartNth(n))
                } else {
                    Some(Key::RestartNamed(typed.to_string()))
                }
            }
            b'r' if self.typed.is_empty() => Some(Key::RestartAll),
            b'q' if self.typed.is_empty() => Some(Key::Quit),
            // Backspace and DEL.
            0x08 | 0x7f => {
                self.typed.pop();
                None
            }
            // Escape clears what was typed.
            0x1b => {
                self.typed.clear();
                None
            }
            b if b.is_ascii_graphic() => {
                self.typed.push(b as char);
                None
            }
            _ => None,
        }
    }
}

/// The terminal's mode before `prodserver dev` changed it.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Keys one by one, no echo, signals kept. `None` when stdin is not
    /// a terminal (then there are no keys at all).
    pub fn enable() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        raw.local_flags
            .remove(LocalFlags::ICANON | LocalFlags::ECHO);
        raw.local_flags.insert(LocalFlags::ISIG);
        raw.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        raw.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(keys: &[u8]) -> Vec<Key> {
        let mut k = Keys::default();
        keys.iter().filter_map(|b| k.feed(*b)).collect()
    }

    #[test]
    fn r_and_q_act_at_once() {
        assert_eq!(typed(b"r"), [Key::RestartAll]);
        assert_eq!(typed(b"q"), [Key::Quit]);
    }

    #[test]
    fn a_number_or_a_name_acts_on_enter() {
        assert_eq!(typed(b"2"), []);
        assert_eq!(typed(b"2\r"), [Key::RestartNth(2)]);
        assert_eq!(typed(b"12\n"), [Key::RestartNth(12)]);
        assert_eq!(typed(b"worker\r"), [Key::RestartNamed("worker".into())]);
    }

    #[test]
    fn r_and_q_inside_a_name_are_letters() {
        assert_eq!(typed(b"worker\r"), [Key::RestartNamed("worker".into())]);
        assert_eq!(typed(b"wq\r"), [Key::RestartNamed("wq".into())]);
    }

    #[test]
    fn backspace_and_escape_edit_what_was_typed() {
        assert_eq!(typed(b"webx\x7f\r"), [Key::RestartNamed("web".into())]);
        assert_eq!(typed(b"web\x1b2\r"), [Key::RestartNth(2)]);
        assert_eq!(typed(b"\r\n"), []);
    }
}
