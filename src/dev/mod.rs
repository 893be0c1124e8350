//! `prodserver dev`: `start` with each process's `.dev` overrides (applied
//! by the config loader), plus a watcher that restarts exactly the
//! processes a saved file concerns, and keys on a terminal.
//!
//! A change travels: notify event → ignore rules ([`filter`]) → some
//! process's globs match ([`route`]) → trailing-edge debounce
//! ([`debounce`]) → content really changed ([`watch::Watch::changed`]) →
//! one restart per process at a time ([`queue`]) → the engine's rollout
//! (graceful stop, then start: sequential unless the process surges).
//!
//! No loops: a process that writes into its own watched tree at start
//! (generated settings, a version file) rewrites the same bytes each
//! time, and a rewrite that changes no byte is not a change. A process
//! that writes *different* bytes at each start would loop: exclude that
//! file with `[processes.NAME.dev] ignore`.

pub mod debounce;
pub mod filter;
pub mod keys;
pub mod queue;
pub mod route;
pub mod watch;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::logs::{Logs, Tone};
use crate::plan::Plan;
use crate::supervisor::core::{Reply, Request};
use crate::supervisor::engine::Control;

use debounce::Debouncer;
use keys::{Key, Keys, RawMode};
use queue::Queue;
use route::Route;
use watch::{Backend, Raw, Watch};

/// `--poll`'s interval: every watched folder is listed and its files
/// stat'ed this often.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

pub struct Options {
    /// notify's PollWatcher instead of inotify.
    pub poll: bool,
}

/// A prepared watcher, ready to run beside the engine.
pub struct Dev {
    root: PathBuf,
    poll: bool,
    debounce: Duration,
    routes: Vec<Route>,
    watch: Watch,
    raw: mpsc::UnboundedReceiver<Raw>,
    keys: Option<(mpsc::UnboundedReceiver<Key>, RawMode)>,
}

/// Walks and watches the project, before anything is spawned (so what
/// the processes write at their first start is compared with the tree as
/// it was). `selected` are the processes this run supervises.
pub fn prepare(
    plan: &Plan,
    selected: &[usize],
    runtime_dir: &Path,
    opts: &Options,
) -> Result<Dev, String> {
    let mut routes = Vec::new();
    for id in selected {
        let spec = &plan.processes[*id];
        // The loader compiled every glob already: an error here is a bug
        // worth reporting, not a panic.
        routes.push(route::route(spec, &plan.dev).map_err(|e| format!("{}: {e}", spec.name))?);
    }
    let (tx, raw) = mpsc::unbounded_channel();
    let backend = if opts.poll {
        Backend::Poll(POLL_INTERVAL)
    } else {
        Backend::Native
    };
    let wanted = |rel: &Path| routes.iter().any(|r| r.matches(rel));
    let watch = Watch::start(&plan.root, runtime_dir, backend, tx, &wanted)
        .map_err(|e| format!("cannot watch {}: {e}", plan.root.display()))?;
    let keys = RawMode::enable().map(|mode| {
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::spawn(move || read_keys(tx));
        (rx, mode)
    });
    Ok(Dev {
        root: plan.root.clone(),
        poll: opts.poll,
        debounce: plan.dev.debounce,
        routes,
        watch,
        raw,
        keys,
    })
}

/// Reads stdin key by key until it closes or nobody listens.
fn read_keys(tx: mpsc::UnboundedSender<Key>) {
    let mut keys = Keys::default();
    let mut byte = [0u8; 1];
    let mut stdin = std::io::stdin().lock();
    while let Ok(1) = stdin.read(&mut byte) {
        if let Some(key) = keys.feed(byte[0]) {
            if tx.send(key).is_err() {
                return;
            }
        }
    }
}

impl Dev {
    /// Runs until the engine ends (the caller drops this future then,
    /// which restores the terminal).
    pub async fn run(mut self, control: Control, logs: Logs) {
        self.introduce(&logs);
        let mut debouncer = Debouncer::new(self.debounce);
        let mut queue = Queue::default();
        let (done_tx, mut done) = mpsc::unbounded_channel::<(String, Option<Reply>)>();
        let (mut keys, _mode) = match self.keys.take() {
            Some((rx, mode)) => (Some(rx), Some(mode)),
            None => (None, None),
        };
        let restart = |name: String, reason: String| {
            let control = control.clone();
            let done_tx = done_tx.clone();
            tokio::spawn(async move {
                let reply = control
                    .request(Request::Restart {
                        process: name.clone(),
                        instance: None,
                        reason: Some(reason),
                    })
                    .await;
                let _ = done_tx.send((name, reply));
            });
        };
        loop {
            let deadline = debouncer.deadline();
            tokio::select! {
                raw = self.raw.recv() => match raw {
                    Some(Raw::Paths(paths)) => {
                        let now = std::time::Instant::now();
                        for rel in self.watch.candidates(paths) {
                            if self.routes.iter().any(|r| r.matches(&rel)) {
                                debouncer.push(now, rel);
                            }
                        }
                        for p in self.watch.problems.drain(..) {
                            logs.toned_project_event(&format!("dev: {p}"), Tone::Warn);
                        }
                    }
                    Some(Raw::Error(e)) => {
                        logs.toned_project_event(&format!("dev: watcher: {e}"), Tone::Warn);
                    }
                    None => return,
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    let Some(batch) = debouncer.take(std::time::Instant::now()) else {
                        continue;
                    };
                    let changed: Vec<PathBuf> =
                        batch.into_iter().filter(|p| self.watch.changed(p)).collect();
                    for (i, paths) in route::affected(&self.routes, &changed) {
                        let name = self.routes[i].name.clone();
                        if let Some(reason) = queue.want(&name, route::reason(&paths)) {
                            restart(name, reason);
                        }
                    }
                }
                Some((name, reply)) = done.recv() => {
                    match reply {
                        Some(Reply::Failed(why)) => logs.toned_project_event(
                            &format!("dev: restarting {name} failed: {why}"),
                            Tone::Warn,
                        ),
                        None => return,
                        Some(_) => {}
                    }
                    if let Some(reason) = queue.done(&name) {
                        restart(name, reason);
                    }
                }
                key = recv(&mut keys), if keys.is_some() => match key {
                    Some(key) => self.on_key(key, &control, &logs, &mut queue, &restart),
                    // stdin closed: no more keys.
                    None => keys = None,
                },
            }
        }
    }

    fn on_key(
        &self,
        key: Key,
        control: &Control,
        logs: &Logs,
        queue: &mut Queue,
        restart: &dyn Fn(String, String),
    ) {
        let mut want = |name: &str, reason: String| {
            if let Some(reason) = queue.want(name, reason) {
                restart(name.to_string(), reason);
            }
        };
        match key {
            Key::Quit => {
                let control = control.clone();
                tokio::spawn(async move { control.request(Request::Shutdown).await });
            }
            Key::RestartAll => {
                for r in &self.routes {
                    want(&r.name, "key r pressed".into());
                }
            }
            Key::RestartNth(n) => match n.checked_sub(1).and_then(|i| self.routes.get(i)) {
                Some(r) => want(&r.name, format!("key {n} pressed")),
                None => logs.project_event(&format!(
                    "dev: no process {n}: they are numbered 1 to {}",
                    self.routes.len()
                )),
            },
            Key::RestartNamed(name) => {
                if self.routes.iter().any(|r| r.name == name) {
                    want(&name, "restart typed".into());
                } else {
                    let known: Vec<&str> = self.routes.iter().map(|r| r.name.as_str()).collect();
                    logs.project_event(&format!(
                        "dev: no process named {name}; they are: {}",
                        known.join(", ")
                    ));
                }
            }
        }
    }

    fn introduce(&mut self, logs: &Logs) {
        let how = if self.poll {
            format!(
                "polling every {}",
                crate::units::format_duration(POLL_INTERVAL)
            )
        } else {
            "inotify".to_string()
        };
        logs.project_event(&format!(
            "dev: watching {} ({how}, {} folders), restarts debounced {}",
            self.root.display(),
            self.watch.folders(),
            crate::units::format_duration(self.debounce)
        ));
        for r in &self.routes {
            if r.globs.is_empty() {
                logs.project_event(&format!(
                    "dev: {} restarts on no file change (set `watch` to choose files)",
                    r.name
                ));
            } else {
                logs.project_event(&format!(
                    "dev: {} restarts when {} change",
                    r.name,
                    r.globs.join(", ")
                ));
            }
        }
        for p in self.watch.problems.drain(..) {
            logs.toned_project_event(&format!("dev: {p}"), Tone::Warn);
        }
        if self.keys.is_some() {
            let listing: Vec<String> = self
                .routes
                .iter()
                .enumerate()
                .map(|(i, r)| format!("{} {}", i + 1, r.name))
                .collect();
            logs.project_event(&format!(
                "dev: keys: r restarts everything, q quits, a number or a name then Enter restarts one: {}",
                listing.join(", ")
            ));
        }
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(d.into()).await;
    }
}

async fn recv(keys: &mut Option<mpsc::UnboundedReceiver<Key>>) -> Option<Key> {
    match keys {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
