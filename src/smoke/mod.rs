//! `prodserver smoke`: start the selection, wait until every process is
//! ready, run a command against it, stop everything, and say in an exit
//! code (and a JUnit report) whether all of that worked. Made for CI.
//!
//! Theory of operation. The engine runs in-process exactly as `start` runs
//! it (the same setup, see `crate::start::prepare`, and the same goal: run
//! until stopped), on a local task. A driver beside it asks the engine for
//! its status every [`POLL`] (the engine has no readiness event to await;
//! a status is a cheap snapshot), and the pure functions of [`decide`]
//! turn it into per-process states and a verdict: all ready, a failure, or
//! the timeout. Then the command runs, with the processes' env, and a
//! graceful shutdown follows; the engine's own exit code says whether the
//! stop was clean. The log stream is written through [`ring::Tee`], which
//! keeps each instance's last lines for the failure report.
//!
//! Output: in CI the merged log stream goes to stdout as with `start`,
//! with plain `smoke:` lines between; on a terminal only the live progress
//! lines are drawn (the stream would scroll them away). Either way the
//! report of a failure (state and last lines) comes last, once the stream
//! has been flushed.

pub mod decide;
pub mod junit;
pub mod progress;
pub mod ring;

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::error::Error;
use crate::logs::{self, Format, Logs};
use crate::os;
use crate::plan::Plan;
use crate::resolve::ResolvedPlan;
use crate::start;
use crate::supervisor::core::{Goal, InstanceStatus, Reply, Request};
use crate::supervisor::engine::{Control, Engine, RunOptions};
use decide::{seconds, CommandEnd, ProcState, Startup};
use progress::Progress;
use ring::{Rings, Tee};

/// How often the driver asks the engine where things stand.
pub const POLL: Duration = Duration::from_millis(50);

/// How long the failure report waits for the last lines to reach the
/// rings before it takes them as they are.
const LINES_SETTLE: Duration = Duration::from_secs(1);

pub struct Settings {
    /// Processes named on the command line (empty: all).
    pub names: Vec<String>,
    /// From the start until every process is ready.
    pub timeout: Duration,
    pub junit: Option<PathBuf>,
    /// Run once everything is ready (empty: none).
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub runtime_dir: PathBuf,
}

/// Runs the smoke test; `Ok` carries its exit code, `Err` why nothing
/// could be started.
pub fn run(plan: Plan, resolved: ResolvedPlan, settings: Settings) -> Result<i32, Error> {
    let began = Instant::now();
    let prepared = start::prepare(
        &plan,
        &resolved,
        &settings.names,
        &settings.env,
        &settings.runtime_dir,
        false,
    )?;
    let selected = prepared.selected.clone();
    let tty = std::io::stdout().is_terminal();
    let rings = Rings::default();
    let tee = Tee::new(rings.clone(), (!tty).then(std::io::stdout));
    let log_settings = logs::Settings {
        format: Format::Text { color: false },
        prefix_width: start::prefix_width(&plan, &selected),
        timestamps: false,
        priorities: false,
    };
    let (logs, writer) = Logs::start_with(log_settings, Box::new(tee))
        .map_err(|e| Error::setup("start the log writer", e))?;
    let runtime = start::runtime()?;
    let notify_dir =
        start::prepare_children(&plan, &resolved, &selected, &settings.runtime_dir, &logs)?;
    let base_env = os::scrub_inherited_env(settings.env);
    let command_env = decide::command_env(&base_env, &plan, &selected);
    let mut ids = selected.clone();
    ids.sort_unstable();
    let processes: Vec<(String, bool)> = ids
        .iter()
        .map(|id| {
            (
                plan.processes[*id].name.clone(),
                plan.processes[*id].oneshot,
            )
        })
        .collect();
    let project = plan.name.clone();
    let opts = RunOptions {
        selected,
        base_env,
        runtime_dir: settings.runtime_dir,
        resolved,
        notify_dir,
        goal: Goal::UntilStopped,
    };
    let (engine, server, claim) = prepared.engine(plan, opts, &logs);
    let driver = Driver {
        control: engine.control(),
        exec_pids: engine.exec_pids(),
        logs: logs.clone(),
        rings: rings.clone(),
        processes,
        tty,
        began,
        timeout: settings.timeout,
        command: settings.command,
        command_env,
    };
    let local = tokio::task::LocalSet::new();
    let report = local.block_on(&runtime, driver.drive(engine, server));
    start::finish(&runtime, logs, writer);
    drop(claim);
    Ok(report.conclude(&project, &rings, tty, settings.junit.as_deref()))
}

/// What the driver needs beside the engine.
struct Driver {
    control: Control,
    exec_pids: crate::health::probe::ExecPids,
    logs: Logs,
    rings: Rings,
    /// Name and oneshot-ness of every selected process, in file order.
    processes: Vec<(String, bool)>,
    tty: bool,
    began: Instant,
    timeout: Duration,
    command: Vec<String>,
    command_env: Vec<(String, String)>,
}

/// How the wait for readiness ended.
enum WaitEnd {
    Decided(Startup),
    Interrupted,
    /// Before smoke decided (it ran everything to its end, or a oneshot
    /// failed and took everything down).
    EngineEnded,
}

/// A process that failed or was not ready: its state when smoke gave up,
/// and per instance its state and last lines.
struct Failure {
    process: String,
    state: String,
    instances: Vec<(String, String, Vec<String>)>,
}

/// Everything the verdict and the report need.
struct Report {
    interrupted: Option<i32>,
    startup: Startup,
    /// When the wait ended (since smoke began).
    waited: Duration,
    timeout: Duration,
    progress: Progress,
    failures: Vec<Failure>,
    command: Option<(String, CommandEnd, Duration)>,
    /// The command line given, run or not.
    command_line: Option<String>,
    /// The engine's exit code: 0 when the stop was clean.
    stop: i32,
    total: Duration,
}

impl Driver {
    async fn drive(self, engine: Engine, server: start::Server) -> Report {
        let server = server.serve();
        let engine = tokio::task::spawn_local(engine.run_to_end());
        let mut interrupts = Interrupts::listen(&self.logs);
        let mut progress = Progress::new(
            &self
                .processes
                .iter()
                .map(|(n, _)| n.clone())
                .collect::<Vec<_>>(),
        );
        let (end, mut last) = self.wait(&mut progress, &mut interrupts).await;
        let mut engine = engine;
        let mut stop = None;
        let startup = match end {
            WaitEnd::Decided(startup) => startup,
            WaitEnd::Interrupted => Startup::Failed,
            WaitEnd::EngineEnded => {
                // It ended by itself (a oneshot failed and took everything
                // down, or everything ran to its end): its final status
                // says how each process ended.
                let (code, status) = (&mut engine)
                    .await
                    .unwrap_or((crate::exit::INTERNAL, Vec::new()));
                stop = Some(code);
                let states = self.states(&status);
                self.show(&mut progress, &states, self.began.elapsed());
                last = status;
                let named = self.named(states);
                if decide::wait(&named) == decide::Wait::AllReady && code == crate::exit::OK {
                    Startup::Ready
                } else {
                    Startup::Failed
                }
            }
        };
        // The live block was drawn by the last update: redrawing it now
        // would move over the lines said since.
        let waited = self.began.elapsed();
        let mut failures = Vec::new();
        if matches!(startup, Startup::Failed | Startup::TimedOut) && interrupts.first.is_none() {
            // The lines written so far, not the stop's: what explains it.
            let _ = tokio::time::timeout(LINES_SETTLE, self.logs.barrier()).await;
            failures = self.failures(&progress, &last);
        }
        let mut command = None;
        if startup == Startup::Ready && interrupts.first.is_none() && !self.command.is_empty() {
            let text = shell_words::join(&self.command);
            say(&format!("smoke: running {text}"));
            let (end, took) = self.run_command(&mut interrupts).await;
            say(&match &end {
                CommandEnd::Exited(0) => format!("smoke: the command passed in {}", seconds(took)),
                CommandEnd::Exited(c) => format!("smoke: the command FAILED with exit code {c}"),
                CommandEnd::Signaled(s) => {
                    format!("smoke: the command was killed by {}", os::signal_name(*s))
                }
                CommandEnd::NotStarted(why) => format!("smoke: the command FAILED: {why}"),
            });
            command = Some((text, end, took));
        }
        let stop = match stop {
            Some(code) => code,
            None => {
                // `None`: the engine ended on its own meanwhile (a critical
                // process failed); its code says so.
                let _ = self.control.request(Request::Shutdown).await;
                engine.await.map_or(crate::exit::INTERNAL, |(code, _)| code)
            }
        };
        if let Some(server) = server {
            server.abort();
        }
        Report {
            interrupted: interrupts.first,
            startup,
            waited,
            timeout: self.timeout,
            command_line: (!self.command.is_empty()).then(|| shell_words::join(&self.command)),
            progress,
            failures,
            command,
            stop,
            total: self.began.elapsed(),
        }
    }

    /// Until every process is ready, one failed, the timeout passed, a
    /// signal came or the engine ended; also returns the last status seen.
    async fn wait(
        &self,
        progress: &mut Progress,
        interrupts: &mut Interrupts,
    ) -> (WaitEnd, Vec<InstanceStatus>) {
        let deadline = self.began + self.timeout;
        let mut last = Vec::new();
        loop {
            let Some(Reply::Status(status)) = self.control.request(Request::Status).await else {
                return (WaitEnd::EngineEnded, last);
            };
            let elapsed = self.began.elapsed();
            let states = self.states(&status);
            self.show(progress, &states, elapsed);
            last = status;
            let named = self.named(states);
            match decide::wait(&named) {
                decide::Wait::AllReady => {
                    say(&format!(
                        "smoke: every process is ready in {}",
                        seconds(elapsed)
                    ));
                    return (WaitEnd::Decided(Startup::Ready), last);
                }
                decide::Wait::Failed(_) => return (WaitEnd::Decided(Startup::Failed), last),
                decide::Wait::Waiting => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return (WaitEnd::Decided(Startup::TimedOut), last);
            }
            tokio::select! {
                biased;
                sig = interrupts.recv() => {
                    say(&format!("smoke: {} received: stopping", os::signal_name(sig)));
                    // The engine heard it too and is stopping everything.
                    return (WaitEnd::Interrupted, last);
                }
                _ = tokio::time::sleep_until((now + POLL).min(deadline).into()) => {}
            }
        }
    }

    /// Every selected process's state, in file order.
    fn states(&self, status: &[InstanceStatus]) -> Vec<ProcState> {
        self.processes
            .iter()
            .map(|(name, oneshot)| decide::process_state(name, *oneshot, status))
            .collect()
    }

    fn named(&self, states: Vec<ProcState>) -> Vec<(String, ProcState)> {
        self.processes
            .iter()
            .map(|(n, _)| n.clone())
            .zip(states)
            .collect()
    }

    fn show(&self, progress: &mut Progress, states: &[ProcState], elapsed: Duration) {
        let lines = progress.update(states, elapsed);
        if self.tty {
            print_now(&progress.redraw(elapsed));
        } else {
            for line in lines {
                say(&line);
            }
        }
    }

    /// The processes that are not done, with their instances' last lines.
    fn failures(&self, progress: &Progress, status: &[InstanceStatus]) -> Vec<Failure> {
        progress
            .rows
            .iter()
            .filter(|row| !row.state.is_done())
            .map(|row| Failure {
                process: row.name.clone(),
                state: row.state.describe(),
                instances: status
                    .iter()
                    .filter(|s| s.id.process == row.name)
                    .map(|s| {
                        let label = s.id.to_string();
                        (label.clone(), instance_detail(s), self.rings.last(&label))
                    })
                    .collect(),
            })
            .collect()
    }

    /// Runs the command to its end. A signal to smoke is passed on to it
    /// as SIGTERM (a terminal's ^C reached it already); a second one kills
    /// it.
    async fn run_command(&self, interrupts: &mut Interrupts) -> (CommandEnd, Duration) {
        let started = Instant::now();
        let mut cmd = tokio::process::Command::new(&self.command[0]);
        cmd.args(&self.command[1..])
            .env_clear()
            .envs(self.command_env.iter().cloned());
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                let why = format!("cannot run {}: {e}", self.command[0]);
                return (CommandEnd::NotStarted(why), started.elapsed());
            }
        };
        let pid = child.id().map(|p| p as i32);
        // Before the first await: the engine's orphan reaping must not
        // take its exit status from tokio.
        if let Some(pid) = pid {
            self.exec_pids.insert(pid);
        }
        let mut signalled = false;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = interrupts.recv() => {
                    match (signalled, pid) {
                        (false, Some(pid)) => {
                            let _ = os::send(pid, libc::SIGTERM);
                        }
                        _ => {
                            let _ = child.start_kill();
                        }
                    }
                    signalled = true;
                }
            }
        };
        if let Some(pid) = pid {
            self.exec_pids.remove(pid);
        }
        let end = match status {
            Ok(status) => {
                use std::os::unix::process::ExitStatusExt;
                match (status.code(), status.signal()) {
                    (Some(code), _) => CommandEnd::Exited(code),
                    (None, Some(sig)) => CommandEnd::Signaled(sig),
                    (None, None) => CommandEnd::NotStarted("its exit status is unknown".into()),
                }
            }
            Err(e) => CommandEnd::NotStarted(format!("cannot wait for it: {e}")),
        };
        (end, started.elapsed())
    }
}

/// `running, 3 restarts, last exited with code 1`.
fn instance_detail(s: &InstanceStatus) -> String {
    let mut text = format!(
        "{}, {}",
        s.state,
        crate::supervisor::summary::restarts_count(s.restarts)
    );
    if let Some(exit) = s.last_exit {
        text.push_str(&format!(", last {}", exit.describe()));
    }
    text
}

impl Report {
    /// Prints the report, writes the JUnit file, returns the exit code.
    fn conclude(
        self,
        project: &str,
        rings: &Rings,
        tty: bool,
        junit: Option<&std::path::Path>,
    ) -> i32 {
        let command = self.command.as_ref().map(|(_, end, _)| end);
        let mut code = decide::exit_code(self.interrupted, &self.startup, command, self.stop);
        for f in &self.failures {
            let why = match self.startup {
                Startup::TimedOut => format!(
                    "not ready within {}",
                    crate::config::units::format_duration(self.timeout)
                ),
                _ => "did not become ready".to_string(),
            };
            say(&format!("smoke: {} {why}: {}", f.process, f.state));
            for (label, detail, lines) in &f.instances {
                say(&format!("smoke: {label}: {detail}"));
                if lines.is_empty() {
                    say(&format!("smoke: {label} wrote nothing"));
                    continue;
                }
                say(&format!("smoke: last {} lines of {label}:", lines.len()));
                for line in lines {
                    say(&format!("  {line}"));
                }
            }
        }
        if self.stop != crate::exit::OK && self.startup == Startup::Ready {
            // On a terminal the stream, and the exit summary with it, was
            // not shown: the summary says what was not clean.
            if tty {
                let own = rings.last(logs::PROJECT_LABEL);
                let from = own
                    .iter()
                    .rposition(|l| l == "exit summary:")
                    .unwrap_or(own.len());
                for line in &own[from..] {
                    say(&format!("  {line}"));
                }
            }
            say(&format!(
                "smoke: the stop was not clean (exit code {})",
                self.stop
            ));
        }
        if let Some(path) = junit {
            let xml = junit::render(project, &self.cases(), self.total);
            if let Err(e) = junit::write_atomic(path, &xml) {
                eprintln!(
                    "error: cannot write the JUnit report {}: {e}",
                    path.display()
                );
                if code == crate::exit::OK {
                    code = crate::exit::INTERNAL;
                }
            }
        }
        if code == crate::exit::OK {
            say(&format!("smoke: passed in {}", seconds(self.total)));
        } else {
            say(&format!("smoke: FAILED: exiting with code {code}"));
        }
        code
    }

    /// One case per process, the command's, and the stop's.
    fn cases(&self) -> Vec<junit::Case> {
        use junit::{Case, Outcome};
        let mut cases = Vec::new();
        for row in &self.progress.rows {
            let failure = self.failures.iter().find(|f| f.process == row.name);
            let outcome = match failure {
                None if row.state.is_done() => Outcome::Passed,
                None => Outcome::Skipped {
                    message: format!("{} when smoke was interrupted", row.state.describe()),
                },
                Some(f) => {
                    let mut text = String::new();
                    for (label, detail, lines) in &f.instances {
                        text.push_str(&format!("{label}: {detail}\n"));
                        for line in lines {
                            text.push_str(&format!("{label} | {line}\n"));
                        }
                    }
                    let message = match self.startup {
                        Startup::TimedOut => format!(
                            "not ready within {}: {}",
                            crate::config::units::format_duration(self.timeout),
                            f.state
                        ),
                        _ => f.state.clone(),
                    };
                    Outcome::Failed { message, text }
                }
            };
            cases.push(Case {
                name: row.name.clone(),
                time: Some(row.settled_at.unwrap_or(self.waited)),
                outcome,
            });
        }
        if let (None, Some(text)) = (&self.command, &self.command_line) {
            cases.push(Case {
                name: format!("command: {text}"),
                time: None,
                outcome: Outcome::Skipped {
                    message: "not run: the processes were not all ready".into(),
                },
            });
        }
        if let Some((text, end, took)) = &self.command {
            cases.push(Case {
                name: format!("command: {text}"),
                time: Some(*took),
                outcome: match end {
                    CommandEnd::Exited(0) => Outcome::Passed,
                    end => Outcome::Failed {
                        message: match end {
                            CommandEnd::NotStarted(why) => why.clone(),
                            _ => format!("exit code {}", end.code()),
                        },
                        text: "its output went to smoke's stdout, not into this report".into(),
                    },
                },
            });
        }
        let stop = if self.stop == crate::exit::OK {
            junit::Outcome::Passed
        } else {
            junit::Outcome::Failed {
                message: format!("not clean: prodserver's exit code {}", self.stop),
                text: "see the exit summary in the output".into(),
            }
        };
        cases.push(Case {
            name: "stop".into(),
            time: None,
            outcome: stop,
        });
        cases
    }
}

/// SIGINT and SIGTERM, as smoke hears them (the engine hears them too and
/// stops everything): the first one is remembered.
struct Interrupts {
    rx: Option<mpsc::UnboundedReceiver<i32>>,
    first: Option<i32>,
}

impl Interrupts {
    fn listen(logs: &Logs) -> Interrupts {
        let (tx, rx) = mpsc::unbounded_channel();
        for sig in [libc::SIGINT, libc::SIGTERM] {
            match signal(SignalKind::from_raw(sig)) {
                Ok(mut stream) => {
                    let tx = tx.clone();
                    tokio::task::spawn_local(async move {
                        while stream.recv().await.is_some() {
                            if tx.send(sig).is_err() {
                                break;
                            }
                        }
                    });
                }
                Err(e) => {
                    logs.project_event(&format!(
                        "smoke cannot listen to {}: {e}",
                        os::signal_name(sig)
                    ));
                    return Interrupts {
                        rx: None,
                        first: None,
                    };
                }
            }
        }
        Interrupts {
            rx: Some(rx),
            first: None,
        }
    }

    /// The next signal; never resolves without a listener.
    async fn recv(&mut self) -> i32 {
        let sig = match &mut self.rx {
            Some(rx) => rx.recv().await,
            None => None,
        };
        match sig {
            Some(sig) => {
                self.first.get_or_insert(sig);
                sig
            }
            None => std::future::pending().await,
        }
    }
}

/// A `smoke:` line on stdout, between the stream's lines (both write
/// whole lines under stdout's lock).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn print_now(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
