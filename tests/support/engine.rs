//! The engine run in-process through its library API, on a config file,
//! with real children: tests steer it through [`Control`] and read its
//! output as written.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prodserver::config::LoadOptions;
use prodserver::logs::{Format, Logs};
use prodserver::supervisor::core::{Goal, InstanceStatus, Reply, Request};
use prodserver::supervisor::engine::{Control, Engine, RunOptions};

/// How long any one request or condition may take.
pub const T: Duration = Duration::from_secs(30);

#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A config in a scratch folder, and the runtime folder the engine uses.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub runtime: tempfile::TempDir,
    pub config: PathBuf,
}

impl Setup {
    pub fn new(config: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tempfile::tempdir().unwrap();
        let path = dir.path().join("prodserver.toml");
        std::fs::write(&path, config).unwrap();
        Setup {
            dir,
            runtime,
            config: path,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            hold_sockets: true,
            env: std::env::vars().collect(),
            runtime_dir: self.runtime.path().to_path_buf(),
            dev: false,
        }
    }

    /// Runs the engine on the config (every process, child protocol on),
    /// hands `test` its control and output, and returns the exit code and
    /// the whole output once the engine has ended.
    pub fn run<F>(&self, test: F) -> (i32, String)
    where
        F: AsyncFnOnce(Control, Captured),
    {
        let _turn = exclusive();
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let (loaded, resolved) = prodserver::resolve::load(&self.config, &self.load_options())
            .unwrap_or_else(|e| panic!("{:?}", e.diagnostics));
        let plan = loaded.plan;
        let out = Captured::default();
        let (logs, writer) =
            Logs::start(Format::Text { color: false }, 12, Box::new(out.clone())).unwrap();
        let keeper = prodserver::os::start_keeper_among_threads().unwrap();
        let notify_dir = prodserver::notify::prepare_dir(self.runtime.path()).unwrap();
        let opts = RunOptions {
            selected: (0..plan.processes.len()).collect(),
            base_env: env.into_iter().collect(),
            runtime_dir: self.runtime.path().to_path_buf(),
            resolved,
            notify_dir: Some(notify_dir),
            goal: Goal::UntilStopped,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _dump = DumpOnPanic(out.clone());
        let code = rt.block_on(async {
            let engine = Engine::new(plan, opts, keeper, logs.clone());
            let control = engine.control();
            let run = tokio::spawn(engine.run());
            test(control.clone(), out.clone()).await;
            let _ = control.request(Request::Shutdown).await;
            tokio::time::timeout(T, run)
                .await
                .expect("the engine ends")
                .expect("joins")
        });
        let _ = writer.flush_and_stop();
        (code, out.text())
    }
}

/// An engine owns its process's children: it reaps the ones it does not
/// know and kills them when it ends. Two engines in one test process would
/// take each other's children, and so would an engine a child the test
/// runs itself: hold this while doing either (a panicking test must not
/// block the others).
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static ONE_ENGINE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE_ENGINE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A failing test shows what the engine said until then.
struct DumpOnPanic(Captured);

impl Drop for DumpOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- the engine's output ----\n{}", self.0.text());
        }
    }
}

pub async fn status(control: &Control) -> Vec<InstanceStatus> {
    match control.request(Request::Status).await {
        Some(Reply::Status(s)) => s,
        other => panic!("{other:?}"),
    }
}

pub fn pid_of(status: &[InstanceStatus], name: &str) -> Option<i32> {
    status
        .iter()
        .find(|s| s.id.to_string() == name)
        .and_then(|s| s.pid)
}

pub async fn ask(control: &Control, request: Request) -> Reply {
    tokio::time::timeout(T, control.request(request.clone()))
        .await
        .unwrap_or_else(|_| panic!("no reply to {request:?} within {T:?}"))
        .unwrap_or_else(|| panic!("the engine ended before answering {request:?}"))
}

/// Polls `status` every 10 ms until `cond` holds on it, within [`T`];
/// returns that status. `what` names the condition in the failure.
pub async fn wait_status(
    control: &Control,
    what: &str,
    mut cond: impl FnMut(&[InstanceStatus]) -> bool,
) -> Vec<InstanceStatus> {
    let mut last = Vec::new();
    let found = tokio::time::timeout(T, async {
        loop {
            last = status(control).await;
            if cond(&last) {
                return last.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("not within {T:?}: {what}; last status: {last:#?}"))
}
