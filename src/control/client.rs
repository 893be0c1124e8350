//! The CLI's side: plain blocking I/O, one connection per command.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::protocol::{Cmd, Reply, Request};

/// Why the CLI could not talk to a supervisor.
#[derive(Debug)]
pub enum ConnectError {
    /// No socket, or nobody listening on it (a supervisor killed hard).
    NotRunning,
    /// The socket is someone else's.
    Denied(io::Error),
    Other(io::Error),
}

pub struct Client {
    read: BufReader<UnixStream>,
    write: UnixStream,
}

impl Client {
    pub fn connect(socket: &Path) -> Result<Client, ConnectError> {
        let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ConnectError::NotRunning,
            io::ErrorKind::PermissionDenied => ConnectError::Denied(e),
            _ => ConnectError::Other(e),
        })?;
        let write = stream.try_clone().map_err(ConnectError::Other)?;
        Ok(Client {
            read: BufReader::new(stream),
            write,
        })
    }

    pub fn send(&mut self, cmd: Cmd) -> io::Result<()> {
        self.write.write_all(Request::new(cmd).to_line().as_bytes())
    }

    /// The next reply line; `None` once the supervisor hung up.
    pub fn next_reply(&mut self) -> io::Result<Option<Reply>> {
        let mut line = String::new();
        if self.read.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad reply: {e}")))
    }

    /// Sends `cmd` and waits for its reply (a restart waits for readiness).
    pub fn call(&mut self, cmd: Cmd) -> io::Result<Reply> {
        if let Err(e) = self.send(cmd) {
            // A supervisor that refuses us answers first and hangs up at
            // once, maybe before our request got there: read its reason.
            return match self.next_reply() {
                Ok(Some(reply)) => Ok(reply),
                _ => Err(e),
            };
        }
        self.next_reply()?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the supervisor hung up without answering (it may have stopped)",
            )
        })
    }
}
