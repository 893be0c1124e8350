//! The merged log stream: every line of every child, prefixed, on our stdout.
//!
//! Theory of operation:
//!
//! ```text
//!  child pipe ──pump──┐  (read 64 KiB, split, format a batch)
//!  child pipe ──pump──┼──► bounded batch queue ──► writer thread ──► stdout
//!  supervisor ─event()┘    + bounded event queue  (events first)
//! ```
//!
//! - [`Logs::pump`] is a future per child stream; [`Logs::event`] and
//!   [`Logs::project_event`] are plain non-blocking calls for the supervisor.
//! - One std thread ([`writer`]) owns the output, so lines of one stream stay
//!   in order and lines are never interleaved mid-line.
//! - Backpressure: the batch queue is bounded, so a slow stdout reader stops
//!   the pumps reading and the children block on their own writes. Events
//!   never wait: when their queue is full they are counted, not queued, and
//!   a summary line follows once the output catches up. Memory bounds are
//!   in [`writer`]'s docs.
//! - Line rules (split at 64 KiB, `+|`/`"continued"` marks, U+FFFD, CRLF):
//!   [`lines`] and [`format`].
//!
//! Ordering note: events jump the batch queue, so an "exited" event can be
//! written before the last lines of the process it is about, unless the
//! caller awaits that process's pumps (they end at EOF) before emitting it.

pub mod color;
pub mod format;
pub mod lines;
mod pump;
mod recent;
pub mod writer;

use std::future::Future;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::io::AsyncRead;

pub use color::use_color;
pub use format::{Format, Stream, Tone};
pub use recent::{KEEP_LINES, MAX_LINE_BYTES};
pub use writer::{Discarded, Stats, Stopped, WriterHandle, EXIT_FLUSH_LIMIT};

use format::{LineFormat, Source};
use recent::RecentStore;
use writer::Channel;

/// The name shown on prodserver's own lines.
pub const PROJECT_LABEL: &str = "prodserver";

/// Sees each line a pump reads (see [`Logs::pump_with_hook`]); returns
/// whether it wants more. Runs on the pump's task, so it must be quick and
/// never block: match, and on a hit send an event.
pub type LineHook = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// Clonable handle to the log stream.
#[derive(Debug, Clone)]
pub struct Logs {
    format: Format,
    width: usize,
    timestamps: bool,
    priorities: bool,
    channel: Arc<Channel>,
    recent: Arc<RecentStore>,
    /// Pumps created and not yet finished (see [`Logs::pumps_finished`]).
    pumps: Arc<tokio::sync::watch::Sender<usize>>,
}

/// Width of the label `name.N`, for computing the `prefix_width` to pass to
/// [`Logs::start`]: the maximum over every instance of the project.
pub fn label_width(process: &str, instance: u32) -> usize {
    format::label(process, Some(instance)).chars().count()
}

/// Counts a pump as live until dropped (finished or cancelled).
struct LivePump(Arc<tokio::sync::watch::Sender<usize>>);

impl LivePump {
    fn new(count: &Arc<tokio::sync::watch::Sender<usize>>) -> Self {
        count.send_modify(|n| *n += 1);
        LivePump(Arc::clone(count))
    }
}

impl Drop for LivePump {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// How [`Logs::start_with`] renders lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub format: Format,
    /// Labels are padded to this many characters (see [`label_width`]).
    pub prefix_width: usize,
    /// Text lines start with their RFC 3339 UTC time (JSON lines always
    /// carry `time`).
    pub timestamps: bool,
    /// Text warnings and errors carry syslog priority prefixes: stdout
    /// is journald's (see `LineFormat::with_priorities`).
    pub priorities: bool,
}

impl Logs {
    /// Starts the writer thread on `out` (stdout in production; any writer
    /// in tests). Labels are padded to `prefix_width` characters.
    pub fn start(
        format: Format,
        prefix_width: usize,
        out: Box<dyn Write + Send>,
    ) -> io::Result<(Logs, WriterHandle)> {
        Self::start_with(
            Settings {
                format,
                prefix_width,
                timestamps: false,
                priorities: false,
            },
            out,
        )
    }

    /// [`Logs::start`] with every setting.
    pub fn start_with(
        settings: Settings,
        out: Box<dyn Write + Send>,
    ) -> io::Result<(Logs, WriterHandle)> {
        // The writer formats its own "events were dropped" line, when the
        // event queue overflowed, with the same look as `project_event`.
        let summary = move |message: &str, out: &mut Vec<u8>| {
            let mut fmt = LineFormat::with_timestamps(
                settings.format,
                settings.prefix_width,
                settings.timestamps,
                Source {
                    process: PROJECT_LABEL,
                    instance: None,
                    pid: None,
                    stream: Stream::Event,
                },
            )
            .with_priorities(settings.priorities);
            fmt.set_time(SystemTime::now());
            fmt.write_event(out, message, Tone::Warn);
        };
        let (channel, handle) = writer::spawn(out, Box::new(summary))?;
        let logs = Logs {
            format: settings.format,
            width: settings.prefix_width,
            timestamps: settings.timestamps,
            priorities: settings.priorities,
            channel,
            recent: Arc::new(RecentStore::default()),
            pumps: Arc::new(tokio::sync::watch::Sender::new(0)),
        };
        Ok((logs, handle))
    }

    fn line_format(
        &self,
        process: &str,
        instance: Option<u32>,
        pid: Option<u32>,
        stream: Stream,
    ) -> LineFormat {
        LineFormat::with_timestamps(
            self.format,
            self.width,
            self.timestamps,
            Source {
                process,
                instance,
                pid,
                stream,
            },
        )
        .with_priorities(self.priorities)
    }

    fn emit_event(
        &self,
        process: &str,
        instance: Option<u32>,
        pid: Option<u32>,
        message: &str,
        tone: Tone,
    ) {
        let mut fmt = self.line_format(process, instance, pid, Stream::Event);
        fmt.set_time(SystemTime::now());
        let mut bytes = Vec::with_capacity(message.len() + 128);
        fmt.write_event(&mut bytes, message, tone);
        let label = format::label(process, instance);
        self.channel.push_event(&bytes, &label);
    }

    /// A supervisor event about one instance (spawned, exited, ...), shown
    /// with that instance's prefix (JSON: `"stream":"event"`). Never waits:
    /// safe to call from the supervisor loop whatever stdout is doing.
    pub fn event(&self, process: &str, instance: u32, pid: Option<u32>, message: &str) {
        self.emit_event(process, Some(instance), pid, message, Tone::Plain);
    }

    /// [`Logs::event`] in a colour that makes it stand out (text with colour
    /// on; otherwise the same as `event`).
    pub fn toned_event(
        &self,
        process: &str,
        instance: u32,
        pid: Option<u32>,
        message: &str,
        tone: Tone,
    ) {
        self.emit_event(process, Some(instance), pid, message, tone);
    }

    /// An event about the whole project, prefixed `prodserver |` (JSON:
    /// `"process":"prodserver"`, `instance` and `pid` null). Never waits.
    pub fn project_event(&self, message: &str) {
        self.emit_event(PROJECT_LABEL, None, None, message, Tone::Plain);
    }

    /// [`Logs::project_event`] with a [`Tone`].
    pub fn toned_project_event(&self, message: &str, tone: Tone) {
        self.emit_event(PROJECT_LABEL, None, None, message, tone);
    }

    /// Everything written to the output from now on, as it is written
    /// (chunks of whole lines); a subscriber that lags loses chunks and
    /// never slows the output. Ends when the writer stops.
    pub fn subscribe(&self) -> tokio::sync::mpsc::Receiver<std::sync::Arc<[u8]>> {
        self.channel.subscribe()
    }

    /// Resolves once every line pumped so far has been written out; bound
    /// the wait with a timeout (a slow reader may hold it up).
    pub async fn barrier(&self) {
        self.channel.barrier().await
    }

    /// Copies `reader` (a child's stdout or stderr) into the log until EOF,
    /// including a final line without newline. Spawn it as a task per
    /// stream. It ends early, dropping `reader`, only if the writer has been
    /// stopped; a read error is reported as an event, then ends the pump.
    pub fn pump<R>(
        &self,
        process: String,
        instance: u32,
        pid: u32,
        stream: Stream,
        reader: R,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        self.pump_with_hook(process, instance, pid, stream, reader, None)
    }

    /// [`Logs::pump`], also showing every line (each piece of a split
    /// line, without its newline) to `hook` until it returns false: how a
    /// `log` health probe sees the output. The line is logged either way.
    pub fn pump_with_hook<R>(
        &self,
        process: String,
        instance: u32,
        pid: u32,
        stream: Stream,
        reader: R,
        hook: Option<LineHook>,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        // Counted from creation, not from the first poll: a pump spawned
        // just before the engine returns must still be waited for.
        let live = LivePump::new(&self.pumps);
        let run = pump::run(self.clone(), process, instance, pid, stream, reader, hook);
        async move {
            let _live = live;
            run.await
        }
    }

    /// Resolves once every pump created so far has finished (reached EOF,
    /// or was dropped): at exit, the children's last lines are then queued
    /// for the writer. Bound the wait: a stalled stdout holds pumps up, and
    /// a grandchild may keep a pipe open.
    pub async fn pumps_finished(&self) {
        let mut rx = self.pumps.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// The last lines (up to [`KEEP_LINES`] = 20, each at most
    /// [`MAX_LINE_BYTES`] = 2 KiB then `…`, oldest first, both
    /// streams) of the latest pid pumped for this instance. Complete once
    /// that instance's pumps have returned.
    pub fn last_lines(&self, process: &str, instance: u32) -> Vec<String> {
        self.recent.last_lines(process, instance)
    }

    /// What is queued for the writer right now (for status and tests).
    pub fn stats(&self) -> Stats {
        self.channel.stats()
    }
}
